"""Selected GEN events in, DL events out: the one step that every execution path shares.

The coffea Runner (``FastSimProcessor``) and the dask-awkward graph (``processing.columnar``)
both call :func:`simulate`, so that a DL value depends only on the event, the model and the
seed, never on the path that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coffea_fastsim.analysis.features import EventFeatures
from coffea_fastsim.surrogate.inference import SurrogateEngine

__all__ = ["DLEvents", "check_oversample", "simulate"]


def check_oversample(oversample: int) -> int:
    """``oversample`` as an int; a TypeError or ValueError naming the argument otherwise."""
    if isinstance(oversample, bool) or not isinstance(oversample, (int, np.integer)):
        raise TypeError(f"oversample must be an integer, got {type(oversample).__name__}")
    if oversample < 1:
        raise ValueError(f"oversample must be a positive integer, got {oversample}")
    return int(oversample)


@dataclass(frozen=True)
class DLEvents:
    """The DL events of a chunk: ``oversample`` replicas of each selected GEN event.

    Arguments:
        features: DL feature vectors, shape (n * K, n_features), float32, in the order of the
            analysis's features; replica-major: rows r * n ... r * n + n - 1 are replica r
            of the n events.
        source: row in the ``EventFeatures`` of each DL event, shape (n * K,), int64.
        replica: replica index of each DL event, 0 ... K - 1, shape (n * K,), uint32.
        oversample: K, the replicas per GEN event; each carries the weight 1 / K.
    """

    features: np.ndarray
    source: np.ndarray
    replica: np.ndarray
    oversample: int

    def __len__(self) -> int:
        return len(self.features)

    @property
    def weight(self) -> float:
        """The weight of one DL event, 1 / K."""
        return 1.0 / self.oversample


def simulate(engine: SurrogateEngine, features: EventFeatures, oversample: int = 1) -> DLEvents:
    """DL features of the selected events of a chunk, ``oversample`` replicas each.

    Replica r of an event draws its noise with the replica index r in the noise key, so the
    replicas are independent and each is reproducible whatever the chunking; replica 0 is
    the DL event of a run without oversampling. The K replicas are one engine call on
    K * n rows (a replica index per row), so small chunks fill the model's evaluation
    blocks instead of padding one block per replica.

    Arguments:
        engine: the surrogate and the noise seed.
        features: the selected events of a chunk (``build_features``), n of them.
        oversample: K >= 1, replicas per event.
    """
    oversample = check_oversample(oversample)
    n_events = len(features)
    replica = np.repeat(np.arange(oversample, dtype=np.uint32), n_events)
    ids = tuple(
        np.tile(column, oversample)
        for column in (features.run, features.luminosity_block, features.event)
    )
    dl = engine.predict(np.tile(features.gen, (oversample, 1)), *ids, replica=replica)
    return DLEvents(
        features=dl,
        source=np.tile(np.arange(n_events, dtype=np.int64), oversample),
        replica=replica,
        oversample=oversample,
    )
