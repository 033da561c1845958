"""Known-answer tests of the one-dimensional agreement figures."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.validation.metrics import (
    agreement,
    agreement_table,
    histogram_chi2,
    ks_statistic,
    wasserstein_over_sigma,
)

N_EVENTS = 40_000
EDGES = np.linspace(-4.0, 5.0, 61)


@pytest.fixture(scope="module")
def samples() -> dict[str, np.ndarray]:
    """A reference, a second sample of the same law, and one shifted by 1 sigma."""
    rng = np.random.default_rng(3)
    return {
        "reference": rng.normal(0.0, 1.0, N_EVENTS),
        "same": rng.normal(0.0, 1.0, N_EVENTS),
        "shifted": rng.normal(1.0, 1.0, N_EVENTS),
    }


def _counts(values: np.ndarray) -> np.ndarray:
    return np.histogram(values, EDGES)[0].astype(float)


def test_same_law_is_consistent_with_zero(samples):
    reference, same = samples["reference"], samples["same"]
    result = agreement(same, reference, _counts(same), _counts(reference))
    # Under the null, W1 and KS scale as 1/sqrt(n): about 0.006 and 0.006 here.
    assert result.w1_over_sigma < 4.0 / np.sqrt(N_EVENTS)
    assert result.ks < 1.63 * np.sqrt(2.0 / N_EVENTS)  # KS 1% critical value
    assert 0.5 < result.chi2_per_ndf < 1.6


def test_one_sigma_shift_gives_the_known_values(samples):
    reference, shifted = samples["reference"], samples["shifted"]
    result = agreement(shifted, reference, _counts(shifted), _counts(reference))
    # A pure shift by d moves every quantile by d: W1 = d = 1 sigma.
    assert result.w1_over_sigma == pytest.approx(1.0, abs=0.03)
    # sup |Phi(x - 1) - Phi(x)| = 2 Phi(1/2) - 1
    assert result.ks == pytest.approx(2 * norm.cdf(0.5) - 1, abs=0.01)
    assert result.chi2_per_ndf > 100


def test_chi2_of_identical_histograms_is_zero():
    counts = np.array([5.0, 10.0, 0.0, 3.0])
    assert histogram_chi2(counts, counts) == (0.0, 2)
    assert histogram_chi2(counts, 2 * counts)[0] == pytest.approx(0.0)


def test_systematic_band_lowers_chi2(samples):
    reference, shifted = _counts(samples["reference"]), _counts(samples["shifted"])
    stat, ndf = histogram_chi2(shifted, reference)
    with_band, ndf_band = histogram_chi2(shifted, reference, np.full(len(reference), 0.01))
    assert ndf == ndf_band
    assert with_band < stat


def test_chi2_needs_two_bins_and_equal_shapes():
    assert histogram_chi2(np.array([3.0, 0.0]), np.array([1.0, 0.0]))[1] == 0
    with pytest.raises(ValueError, match="shapes differ"):
        histogram_chi2(np.ones(3), np.ones(4))


@pytest.mark.parametrize("function", [wasserstein_over_sigma, ks_statistic])
def test_non_finite_values_are_ignored_and_empty_refused(function):
    values = np.array([1.0, 2.0, np.nan, np.inf, 3.0])
    assert function(values, values[np.isfinite(values)]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no finite value"):
        function(np.array([np.nan]), values)


def test_agreement_table_covers_every_observable():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(500, 9)) * 40.0
    features[:, 6] = rng.normal(2.0, 0.5, 500)
    table = agreement_table(
        ObservableTable.of(features, WJETS), ObservableTable.of(features, WJETS)
    )
    assert list(table) == list(WJETS.observable_names)
    assert all(value == 0.0 for value in table.values())


def test_pooled_w1_of_one_and_the_same_value_is_zero():
    """An exact response: every residual is 0 in both samples."""
    assert wasserstein_over_sigma(np.zeros(10), np.zeros(20), pooled=True) == 0.0
    with pytest.raises(ValueError, match="zero spread"):
        wasserstein_over_sigma(np.ones(10), np.zeros(20))
