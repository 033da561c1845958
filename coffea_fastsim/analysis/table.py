"""The observables of one sample, computed once from its feature vectors and passed along.

A sample (GEN, RECO, RECO' or DL) enters the fidelity suite as feature vectors; its
observables (the analysis's features and auxiliary ones, 9 + 11 for wjets) are computed here
once, and every consumer (histograms, metrics, classifier, correlations, figures) reads them
from the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from coffea_fastsim.analysis.definition import AnalysisDefinition

__all__ = ["ObservableTable"]


@dataclass(frozen=True)
class ObservableTable:
    """Feature vectors of a sample and its observables, row-aligned.

    Arguments:
        features: shape (n, n_features), float64, order of the analysis's features.
        values: per name of the analysis's ``observable_names`` (in that order), shape (n,),
            float64.
        analysis: the analysis definition that computed them.
    """

    features: np.ndarray
    values: Mapping[str, np.ndarray]
    analysis: AnalysisDefinition

    @classmethod
    def of(cls, features: np.ndarray, analysis: AnalysisDefinition) -> ObservableTable:
        """The table of feature vectors of shape (n, n_features); computes every observable
        once."""
        features = np.asarray(features, dtype=np.float64)
        return cls(features, analysis.observables_of(features), analysis)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, name: str) -> np.ndarray:
        """The values of one observable, shape (n,)."""
        return self.values[name]

    def take(self, rows: np.ndarray) -> ObservableTable:
        """The table of the events at ``rows`` (indices or a boolean mask), nothing recomputed."""
        return ObservableTable(
            self.features[rows],
            {name: values[rows] for name, values in self.values.items()},
            self.analysis,
        )

    def columns(self, names: Sequence[str] | None = None) -> np.ndarray:
        """The observables ``names`` (default: all, in order) as columns, shape
        (n, len(names)), float64."""
        names = self.analysis.observable_names if names is None else names
        return np.column_stack([self.values[name] for name in names])

    def auxiliary(self) -> np.ndarray:
        """The auxiliary observables as columns, shape (n, n_auxiliary), in the analysis's
        order."""
        return self.columns(self.analysis.auxiliary_names)
