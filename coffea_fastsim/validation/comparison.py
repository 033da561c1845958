"""A candidate sample (DL or RECO') compared with RECO on the same events.

Histograms are those of :mod:`coffea_fastsim.analysis.histograms` (the processor's), filled
with the processor's fill functions; every comparison reads the observables of
:class:`ObservableTable` and computes none of them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import hist
import numpy as np

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.histograms import (
    RESIDUAL_PREFIX,
    fill_observables,
    fill_residuals,
    make_histograms,
    relative_residual,
)
from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.surrogate.ensemble import ensemble_band
from coffea_fastsim.validation.metrics import Agreement, agreement, histogram_chi2
from coffea_fastsim.validation.residuals import fill_residual_axes, residual_axes

__all__ = [
    "ComparisonSet",
    "ScalingResult",
    "clipped_residuals",
    "compare",
    "correlation_matrix",
    "counts",
    "double_ratio",
    "fill",
    "histogram_keys",
]


def histogram_keys(analysis: AnalysisDefinition) -> tuple[str, ...]:
    """Keys of the observable and residual histograms of `analysis`, in report order."""
    names = analysis.observable_names
    return (*names, *(f"{RESIDUAL_PREFIX}{name}" for name in names))


def fill(
    gen: ObservableTable, candidate: ObservableTable | None, reco: ObservableTable
) -> dict[str, hist.Hist]:
    """The processor's histograms with GEN, the candidate (in the "dl" category) and RECO.

    Arguments:
        gen, candidate, reco: observables of the same events; candidate None leaves the
            "dl" category empty.
    """
    histograms = make_histograms(gen.analysis)
    fill_observables(histograms, "gen", gen.values)
    for sample, table in (("dl", candidate), ("reco", reco)):
        if table is not None:
            fill_observables(histograms, sample, table.values)
            fill_residuals(histograms, sample, table.values, gen.values)
    return histograms


def counts(histograms: dict[str, hist.Hist], key: str, sample: str) -> np.ndarray:
    """Entries per bin of ``sample`` in histogram ``key``, shape (n_bins,)."""
    return histograms[key][sample, :].values()


def clipped_residuals(table: ObservableTable, gen: ObservableTable) -> dict[str, np.ndarray]:
    """Relative residuals, clipped to the residual histogram range so that events with
    x_GEN near 0 (px, py, phi ...) count at the edge instead of dominating W1 and sigma.
    Their W1 is divided by the pooled sigma of both samples: the RECO residual of a
    coordinate measured almost exactly (muon eta, phi) has nearly zero spread."""
    _, low, high = gen.analysis.residual_binning
    return {
        name: np.clip(relative_residual(table[name], gen[name]), low, high)
        for name in gen.analysis.observable_names
    }


def _band(
    histograms: dict[str, hist.Hist], members: Sequence[dict[str, hist.Hist]], keys: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per key, the ensemble band of the members' "dl" histograms, shape (n_bins,)."""
    return {
        key: ensemble_band(
            np.array([counts(h, key, "dl") for h in members], dtype=np.float64).reshape(
                len(members), histograms[key].axes[1].size
            )
        )
        for key in keys
    }


@dataclass(frozen=True)
class ComparisonSet:
    """A candidate (DL or RECO') compared with RECO on the same events.

    Arguments:
        histograms: the processor's histograms; the candidate is in the "dl" category.
        band: per histogram key, the ensemble spread of the candidate's unit-normalized
            bins, shape (n_bins,) (zeros without an ensemble).
        observables: per observable name, the agreement of the distributions.
        residuals: per observable name, the agreement of the relative residuals.
        chi2_stat: per histogram key, (chi2, ndf) with statistical errors only.
        figure_histograms: per histogram key, what the figures draw: the observables as in
            ``histograms``, the residuals on axes fitted to the RECO residuals of these
            events (:mod:`coffea_fastsim.validation.residuals`); no number reads them.
        figure_band: the ensemble band of ``figure_histograms``, as ``band``.
    """

    histograms: dict[str, hist.Hist]
    band: dict[str, np.ndarray]
    observables: dict[str, Agreement]
    residuals: dict[str, Agreement]
    chi2_stat: dict[str, tuple[float, int]]
    figure_histograms: dict[str, hist.Hist]
    figure_band: dict[str, np.ndarray]


def compare(
    gen: ObservableTable,
    candidate: ObservableTable,
    reco: ObservableTable,
    candidate_members: Sequence[ObservableTable] = (),
) -> ComparisonSet:
    """Agreement of a candidate with RECO for every observable and residual.

    Arguments:
        gen, candidate, reco: observables of the same events.
        candidate_members: the candidate from each ensemble member; its bin-by-bin spread
            is the band, added to the chi2. Fewer than two: no band.
    """
    histograms = fill(gen, candidate, reco)
    keys = histogram_keys(gen.analysis)
    member_histograms = [fill(gen, member, reco) for member in candidate_members]
    band = _band(histograms, member_histograms, keys)
    axes = residual_axes(gen, reco)
    figure_histograms = histograms | fill_residual_axes(axes, gen, candidate, reco)
    figure_band = band | _band(
        figure_histograms,
        [fill_residual_axes(axes, gen, member, reco) for member in candidate_members],
        [axis.key for axis in axes.values()],
    )
    residuals, reco_residuals = clipped_residuals(candidate, gen), clipped_residuals(reco, gen)
    observable_agreement, residual_agreement = {}, {}
    for name in gen.analysis.observable_names:
        residual_key = f"{RESIDUAL_PREFIX}{name}"
        observable_agreement[name] = agreement(
            candidate[name],
            reco[name],
            counts(histograms, name, "dl"),
            counts(histograms, name, "reco"),
            band[name],
        )
        residual_agreement[name] = agreement(
            residuals[name],
            reco_residuals[name],
            counts(histograms, residual_key, "dl"),
            counts(histograms, residual_key, "reco"),
            band[residual_key],
            pooled=True,
        )
    chi2_stat = {
        key: histogram_chi2(counts(histograms, key, "dl"), counts(histograms, key, "reco"))
        for key in keys
    }
    return ComparisonSet(
        histograms,
        band,
        observable_agreement,
        residual_agreement,
        chi2_stat,
        figure_histograms,
        figure_band,
    )


def correlation_matrix(table: ObservableTable) -> np.ndarray:
    """Pearson correlations of the observables, shape (n_observables, n_observables), in the
    analysis's order (20 x 20 for wjets)."""
    columns = table.columns()
    columns = columns[np.isfinite(columns).all(axis=1)]
    return np.corrcoef(columns, rowvar=False)


def double_ratio(
    large: dict[str, hist.Hist], small: dict[str, hist.Hist], key: str
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """(DL/RECO)_large / (DL/RECO)_small per bin, its error, and its flatness chi2 and ndf.

    Each histogram is unit-normalized; the error combines the Poisson errors of the four
    histograms. The flatness chi2 is taken around the error-weighted mean of the bins where
    all four histograms are filled; ndf = those bins - 1.

    Returns:
        (ratio, error) of shape (n_bins,) (nan in unfilled bins), chi2, ndf.
    """
    parts = [
        counts(large, key, "dl"),
        counts(large, key, "reco"),
        counts(small, key, "dl"),
        counts(small, key, "reco"),
    ]
    filled = np.all([p > 0 for p in parts], axis=0)
    ratio = np.full(filled.shape, np.nan)
    error = np.full(filled.shape, np.nan)
    fractions = [p[filled] / p.sum() for p in parts]
    ratio[filled] = (fractions[0] / fractions[1]) / (fractions[2] / fractions[3])
    error[filled] = ratio[filled] * np.sqrt(sum(1.0 / p[filled] for p in parts))
    ndf = int(filled.sum()) - 1
    if ndf < 1:
        return ratio, error, float("nan"), 0
    weights = 1.0 / error[filled] ** 2
    mean = np.sum(weights * ratio[filled]) / weights.sum()
    chi2 = float(np.sum(weights * (ratio[filled] - mean) ** 2))
    return ratio, error, chi2, ndf


@dataclass(frozen=True)
class ScalingResult:
    """The scaling test: the model applied to a sample larger than its training sample.

    Arguments:
        comparison: DL vs RECO on the large sample.
        double_ratios: per histogram key, (ratio, error, chi2, ndf) of :func:`double_ratio`.
        n_events: matched events of the large sample.
        n_training_events: training events of the nominal model (from its metadata), or None.
    """

    comparison: ComparisonSet
    double_ratios: dict[str, tuple[np.ndarray, np.ndarray, float, int]]
    n_events: int
    n_training_events: int | None

    @property
    def flatness(self) -> tuple[float, int]:
        """Total (chi2, ndf) of the double ratios of the observables (not the residuals)."""
        names = list(self.comparison.observables)
        chi2 = sum(self.double_ratios[name][2] for name in names if self.double_ratios[name][3] > 0)
        ndf = sum(self.double_ratios[name][3] for name in names)
        return float(chi2), int(ndf)

    @property
    def size_ratio(self) -> float | None:
        """Matched events of the large sample / training events; None when unknown."""
        if not self.n_training_events:
            return None
        return self.n_events / self.n_training_events
