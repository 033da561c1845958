"""Events that share a (run, luminosityBlock, event): counted across chunks, files and workers.

Private productions often restart the event number in every job file, so the identity of an
event need not be unique. The DL noise stays independent (its key includes the GEN features,
see ``coffea_fastsim.surrogate.noise``), but a user should know: each chunk returns the
sorted distinct 64-bit hashes of its selected events' identities and the number of repeats
within the chunk as an :class:`EventIdentities`; coffea's accumulator only collects the
chunks' hash arrays (no merge per addition), and :attr:`EventIdentities.repeats` counts the
repeats across chunks once, with one sort of all the hashes, when the run asks for it.
Memory: 8 bytes per selected event (distinct within its chunk) in the accumulated output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from coffea_fastsim.surrogate.noise import event_identity_hash

__all__ = ["EventIdentities"]


def _distinct_sorted(values: np.ndarray) -> np.ndarray:
    """The distinct values of a uint64 array, sorted, shape (k,).

    ``np.sort`` and one comparison: much faster than ``np.unique`` on random 64-bit hashes."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


class EventIdentities:
    """The identity hashes of a set of events, in parts, and the repeats within the parts.

    Arguments:
        hashes: identity hashes (``event_identity_hash``), shape (n,), uint64, in any order;
            they form one part, and the events that repeat a hash inside it are counted.
    """

    def __init__(self, hashes: np.ndarray | None = None) -> None:
        values = np.zeros(0, np.uint64) if hashes is None else np.asarray(hashes, np.uint64)
        distinct = _distinct_sorted(values)
        self.parts: list[np.ndarray] = [distinct] if len(distinct) else []
        self.repeats_within = len(values) - len(distinct)

    @classmethod
    def of(
        cls, run: np.ndarray, luminosity_block: np.ndarray, event: np.ndarray
    ) -> EventIdentities:
        """The identities of events given as (run, luminosityBlock, event) arrays, shape (n,)."""
        return cls(event_identity_hash(run, luminosity_block, event))

    def __add__(self, other: EventIdentities) -> EventIdentities:
        if not isinstance(other, EventIdentities):
            return NotImplemented
        total = EventIdentities()
        total.parts = self.parts + other.parts
        total.repeats_within = self.repeats_within + other.repeats_within
        return total

    def __iadd__(self, other: EventIdentities) -> EventIdentities:
        if not isinstance(other, EventIdentities):
            return NotImplemented
        self.parts.extend(other.parts)
        self.repeats_within += other.repeats_within
        return self

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Checkpoints of the previous layout hold ``hashes`` (sorted, distinct) and ``repeats``.
        if "hashes" in state:
            hashes = state["hashes"]
            state = {"parts": [hashes] if len(hashes) else [], "repeats_within": state["repeats"]}
        self.__dict__.update(state)

    def _distinct(self) -> np.ndarray:
        if len(self.parts) == 1:
            return self.parts[0]
        return _distinct_sorted(np.concatenate([np.zeros(0, np.uint64), *self.parts]))

    @property
    def repeats(self) -> int:
        """Events that repeat the identity of an earlier event (within or across parts)."""
        stored = sum(len(part) for part in self.parts)
        return self.repeats_within + stored - len(self._distinct())

    def __len__(self) -> int:
        """Number of distinct identities."""
        return len(self._distinct())
