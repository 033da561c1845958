"""One-dimensional agreement figures between two samples of an observable."""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance

from coffea_fastsim.features import observables_of
from coffea_fastsim.observables import OBSERVABLE_NAMES

__all__ = ["agreement_table", "wasserstein_over_sigma"]


def wasserstein_over_sigma(sample: np.ndarray, reference: np.ndarray) -> float:
    """Wasserstein-1 distance between two samples, divided by the reference's standard deviation.

    Arguments:
        sample: values, shape (n,); non-finite values are ignored.
        reference: values, shape (m,); non-finite values are ignored.

    Returns:
        W1 / std(reference), dimensionless; 0 for identical distributions.
    """
    sample = np.asarray(sample, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    sample, reference = sample[np.isfinite(sample)], reference[np.isfinite(reference)]
    if sample.size == 0 or reference.size == 0:
        raise ValueError("both samples need at least one finite value")
    scale = reference.std()
    if scale == 0:
        raise ValueError("the reference sample has zero spread")
    return float(wasserstein_distance(sample, reference) / scale)


def agreement_table(
    sample_features: np.ndarray, reference_features: np.ndarray
) -> dict[str, float]:
    """W1 / std(reference) of every observable (9 features + auxiliary) of two samples.

    Arguments:
        sample_features: feature vectors, shape (n, 9), e.g. DL.
        reference_features: feature vectors, shape (m, 9), e.g. RECO.
    """
    sample, reference = observables_of(sample_features), observables_of(reference_features)
    return {
        name: wasserstein_over_sigma(sample[name], reference[name]) for name in OBSERVABLE_NAMES
    }
