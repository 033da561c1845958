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

__all__ = ["DLEvents", "simulate"]


@dataclass(frozen=True)
class DLEvents:
    """The DL events of a chunk: ``oversample`` replicas of each selected GEN event.

    Arguments:
        features: DL feature vectors, shape (n * K, n_features), float32, in the order of the
            analysis's features;
            event-major: rows i * K ... i * K + K - 1 are the replicas of selected event i.
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


def simulate(engine: SurrogateEngine, features: EventFeatures) -> DLEvents:
    """DL features of the selected events of a chunk.

    Arguments:
        engine: the surrogate and the noise seed.
        features: the selected events of a chunk (``build_features``), n of them.
    """
    n_events = len(features)
    dl = engine.predict(features.gen, features.run, features.luminosity_block, features.event)
    return DLEvents(
        features=dl,
        source=np.arange(n_events, dtype=np.int64),
        replica=np.zeros(n_events, dtype=np.uint32),
        oversample=1,
    )
