"""One-dimensional agreement figures between two samples of an observable.

Three figures per observable, each 0 for identical distributions:

- W1/sigma: the Wasserstein-1 distance divided by the reference's standard deviation
  (the FlashSim convention), from the unbinned samples;
- KS: the two-sample Kolmogorov-Smirnov statistic (largest distance between the empirical
  CDFs), from the unbinned samples;
- chi2/ndf of the two unit-normalized histograms, with the statistical errors of both and,
  optionally, a systematic error per bin (the ensemble band), in quadrature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import ks_2samp, wasserstein_distance

from coffea_fastsim.analysis.table import ObservableTable

__all__ = [
    "Agreement",
    "agreement",
    "agreement_table",
    "chi2_per_ndf",
    "histogram_chi2",
    "ks_statistic",
    "wasserstein_over_sigma",
]


def _finite(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError(f"{name} has no finite value")
    return values


def wasserstein_over_sigma(
    sample: np.ndarray, reference: np.ndarray, pooled: bool = False
) -> float:
    """Wasserstein-1 distance between two samples, divided by the reference's standard deviation.

    Arguments:
        sample: values, shape (n,); non-finite values are ignored.
        reference: values, shape (m,); non-finite values are ignored.
        pooled: divide by the standard deviation of both samples together instead, for
            references that can be (nearly) constant, e.g. the residual of a coordinate the
            detector measures almost exactly; 0 when both are one and the same value.

    Returns:
        W1 / std(reference), dimensionless; 0 for identical distributions.
    """
    sample, reference = _finite(sample, "sample"), _finite(reference, "reference")
    scale = np.concatenate([sample, reference]).std() if pooled else reference.std()
    if scale == 0 and pooled:
        return 0.0  # both samples are one and the same value
    if scale == 0:
        raise ValueError("the reference sample has zero spread")
    return float(wasserstein_distance(sample, reference) / scale)


def ks_statistic(sample: np.ndarray, reference: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup|F_sample - F_reference|, in [0, 1].

    Arguments:
        sample: values, shape (n,); non-finite values are ignored.
        reference: values, shape (m,); non-finite values are ignored.
    """
    sample, reference = _finite(sample, "sample"), _finite(reference, "reference")
    return float(ks_2samp(sample, reference, method="asymp").statistic)


def histogram_chi2(
    counts: np.ndarray,
    reference_counts: np.ndarray,
    systematic: np.ndarray | None = None,
) -> tuple[float, int]:
    """chi2 and ndf of the shapes of two histograms with the same binning.

    Both histograms are normalized to unit sum. The statistical variance of the difference
    of the fractions in a bin is p (1/N + 1/N_ref), with p the pooled fraction (the
    Poisson errors of both histograms under the hypothesis of equal shapes; as ROOT's
    ``Chi2Test`` for unweighted histograms). ``systematic`` adds a per-bin uncertainty of
    the first histogram's fraction in quadrature. Bins that are empty in both are skipped;
    ndf = (used bins) - 1 for the normalization.

    Arguments:
        counts: entries per bin, shape (n_bins,), e.g. DL.
        reference_counts: entries per bin, shape (n_bins,), e.g. RECO.
        systematic: absolute uncertainty of the unit-normalized ``counts`` per bin,
            shape (n_bins,), e.g. the ensemble band; None for none.

    Returns:
        (chi2, ndf); (nan, 0) when fewer than two bins are filled.
    """
    counts = np.asarray(counts, dtype=np.float64)
    reference_counts = np.asarray(reference_counts, dtype=np.float64)
    if counts.shape != reference_counts.shape:
        raise ValueError(f"histogram shapes differ: {counts.shape} and {reference_counts.shape}")
    total, reference_total = counts.sum(), reference_counts.sum()
    used = (counts + reference_counts) > 0
    ndf = int(used.sum()) - 1
    if ndf < 1 or total == 0 or reference_total == 0:
        return float("nan"), 0
    fraction, reference_fraction = counts / total, reference_counts / reference_total
    pooled = (counts + reference_counts) / (total + reference_total)
    variance = pooled * (1.0 / total + 1.0 / reference_total)
    if systematic is not None:
        variance = variance + np.asarray(systematic, dtype=np.float64) ** 2
    chi2 = np.sum((fraction[used] - reference_fraction[used]) ** 2 / variance[used])
    return float(chi2), ndf


def chi2_per_ndf(chi2: float, ndf: int) -> float:
    """chi2 / ndf, nan when ndf is 0 (fewer than two filled bins)."""
    return chi2 / ndf if ndf > 0 else float("nan")


@dataclass(frozen=True)
class Agreement:
    """Agreement of one observable between a sample and a reference (0: identical).

    Arguments:
        w1_over_sigma: Wasserstein-1 distance / std(reference).
        ks: two-sample Kolmogorov-Smirnov statistic.
        chi2: chi2 of the unit-normalized histograms (see :func:`histogram_chi2`).
        ndf: its degrees of freedom.
    """

    w1_over_sigma: float
    ks: float
    chi2: float
    ndf: int

    @property
    def chi2_per_ndf(self) -> float:
        """chi2 / ndf (nan when ndf is 0)."""
        return chi2_per_ndf(self.chi2, self.ndf)


def agreement(
    sample: np.ndarray,
    reference: np.ndarray,
    counts: np.ndarray,
    reference_counts: np.ndarray,
    systematic: np.ndarray | None = None,
    pooled: bool = False,
) -> Agreement:
    """W1/sigma and KS of two unbinned samples, chi2 of their histograms.

    Arguments:
        sample, reference: values, shapes (n,) and (m,).
        counts, reference_counts: histograms of the same values, shape (n_bins,).
        systematic: per-bin uncertainty of the normalized ``counts`` (see
            :func:`histogram_chi2`).
        pooled: sigma of both samples together (see :func:`wasserstein_over_sigma`).
    """
    chi2, ndf = histogram_chi2(counts, reference_counts, systematic)
    return Agreement(
        w1_over_sigma=wasserstein_over_sigma(sample, reference, pooled),
        ks=ks_statistic(sample, reference),
        chi2=chi2,
        ndf=ndf,
    )


def agreement_table(sample: ObservableTable, reference: ObservableTable) -> dict[str, float]:
    """W1 / std(reference) of every observable (features + auxiliary) of two samples.

    Arguments:
        sample: observables of n events, e.g. DL.
        reference: observables of m events, e.g. RECO.
    """
    return {
        name: wasserstein_over_sigma(sample[name], reference[name])
        for name in sample.analysis.observable_names
    }
