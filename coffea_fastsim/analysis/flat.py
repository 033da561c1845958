"""Jagged collections as flat numpy arrays, and the vectorized steps of the selection on them.

The selection (:mod:`coffea_fastsim.analysis.features`) reads each branch once as a flat
numpy array and works on the objects that are still candidates with vectorized numpy, which
costs far less than awkward operations on lazy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np
import vector

__all__ = ["Flat", "angular_distance", "closest", "leading", "objects_at", "read_flat", "take"]


@dataclass(frozen=True)
class Flat:
    """One jagged collection as flat numpy arrays.

    Arguments:
        fields: per field, one value per object of the chunk, shape (n_objects,).
        offsets: objects of event i are at flat positions offsets[i]:offsets[i + 1],
            shape (n_events + 1,).
    """

    fields: dict[str, np.ndarray]
    offsets: np.ndarray

    def owner(self, index: np.ndarray) -> np.ndarray:
        """Event of each object at flat positions ``index``, shape of ``index``."""
        return np.searchsorted(self.offsets, index, side="right") - 1

    def all_owners(self) -> np.ndarray:
        """Event of every object, shape (n_objects,)."""
        n_events = len(self.offsets) - 1
        return np.repeat(np.arange(n_events, dtype=np.int64), np.diff(self.offsets))


def read_flat(collection: ak.Array, names: tuple[str, ...]) -> Flat:
    """Read ``names`` of a jagged collection once, as flat numpy arrays (no per-event lists).

    The selection below works on these arrays: each branch is materialized and converted
    once, and every step after that is a vectorized numpy operation on the objects that
    are still candidates, which costs far less than awkward operations on lazy arrays.
    """
    counts = ak.to_numpy(ak.num(collection[names[0]], axis=1)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    fields = {name: ak.to_numpy(ak.flatten(collection[name], axis=1)) for name in names}
    return Flat(fields, offsets)


def leading(owner: np.ndarray, key: np.ndarray, index: np.ndarray, n_events: int) -> np.ndarray:
    """Per event, the flat index of the candidate with the largest ``key`` (-1 if none).

    Ties go to the object that comes first in the event, as a stable descending sort would
    give; a NaN key never wins over a number.

    Arguments:
        owner: event of each candidate, shape (n_candidates,).
        key: the ordering value of each candidate, shape (n_candidates,).
        index: flat position of each candidate, shape (n_candidates,).
        n_events: number of events.
    """
    # lexsort: last key is primary; -key puts the largest first and NaN last.
    order = np.lexsort((index, -key, owner))
    owner, index = owner[order], index[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = owner[1:] != owner[:-1]
    leading = np.full(n_events, -1, dtype=np.int64)
    leading[owner[first]] = index[first]
    return leading


def angular_distance(
    eta: np.ndarray, phi: np.ndarray, other_eta: np.ndarray, other_phi: np.ndarray
) -> np.ndarray:
    """Delta R = sqrt(Delta phi^2 + Delta eta^2), Delta phi wrapped into [-pi, pi): the
    formula and operation order of vector's ``deltaR``, on plain arrays of one shape.

    The detector simulation wraps phi the same way (``sim.detector.response.wrap_phi``); the
    analysis layer imports nothing of the package and the simulation only itself, so each
    writes this line, and tests/test_features.py checks that the two and vector agree."""
    delta_phi = (phi - other_phi + np.pi) % (2 * np.pi) - np.pi
    return np.sqrt(delta_phi**2 + (eta - other_eta) ** 2)


def take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[index] in the branch's floating-point type (float64 for integers), NaN where
    index is -1. The kinematics are computed in the type stored in the file."""
    dtype = values.dtype if values.dtype.kind == "f" else np.float64
    taken = np.full(len(index), np.nan, dtype=dtype)
    present = index >= 0
    taken[present] = values[index[present]]
    return taken


def objects_at(flat: Flat, index: np.ndarray) -> object:
    """vector Momentum4D array of the objects at flat positions ``index`` (-1: NaN)."""
    return vector.array(
        {name: take(flat.fields[name], index) for name in ("pt", "eta", "phi", "mass")}
    )


def closest(flat: Flat, rank: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Per selected event, the flat index of the object closest in Delta R to a target.

    Arguments:
        flat: the candidate objects of all events of the chunk.
        rank: position of each event of the chunk among the selected ones, -1 if not
            selected, shape (n_events,).
        eta, phi: the target of each selected event, shape (n_selected,).

    Returns:
        Shape (n_selected,); -1 where the event has no candidate; ties go to the first.
    """
    event_rank = rank[flat.all_owners()]
    index = np.flatnonzero(event_rank >= 0)
    owner = event_rank[index]
    with np.errstate(invalid="ignore"):
        delta_r = angular_distance(
            flat.fields["eta"][index], flat.fields["phi"][index], eta[owner], phi[owner]
        )
    return leading(owner, -delta_r, index, len(eta))
