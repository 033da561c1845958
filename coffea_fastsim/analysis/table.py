"""The observables of one sample, computed once from its feature vectors and passed along.

A sample (GEN, RECO, RECO' or DL) enters the fidelity suite as feature vectors; its 20
observables (the 9 features and the 11 auxiliary ones) are computed here once, and every
consumer (histograms, metrics, classifier, correlations, figures) reads them from the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from coffea_fastsim.analysis.features import observables_of
from coffea_fastsim.analysis.observables import AUX_NAMES, OBSERVABLE_NAMES

__all__ = ["ObservableTable"]


@dataclass(frozen=True)
class ObservableTable:
    """Feature vectors of a sample and its observables, row-aligned.

    Arguments:
        features: shape (n, 9), float64, order of ``FEATURE_NAMES``, GeV and log(GeV).
        values: per name of ``OBSERVABLE_NAMES`` (in that order), shape (n,), float64.
    """

    features: np.ndarray
    values: Mapping[str, np.ndarray]

    @classmethod
    def of(cls, features: np.ndarray) -> ObservableTable:
        """The table of feature vectors of shape (n, 9); computes every observable once."""
        features = np.asarray(features, dtype=np.float64)
        return cls(features, observables_of(features))

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, name: str) -> np.ndarray:
        """The values of one observable, shape (n,)."""
        return self.values[name]

    def take(self, rows: np.ndarray) -> ObservableTable:
        """The table of the events at ``rows`` (indices or a boolean mask), nothing recomputed."""
        return ObservableTable(
            self.features[rows], {name: values[rows] for name, values in self.values.items()}
        )

    def columns(self, names: Sequence[str] = OBSERVABLE_NAMES) -> np.ndarray:
        """The observables ``names`` as columns, shape (n, len(names)), float64."""
        return np.column_stack([self.values[name] for name in names])

    def auxiliary(self) -> np.ndarray:
        """The auxiliary observables as columns, shape (n, 11), order of ``AUX_NAMES``."""
        return self.columns(AUX_NAMES)
