"""Known-answer tests of the classifier two-sample test of p(output | GEN)."""

from __future__ import annotations

import numpy as np
import pytest

from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.validation.classifier import classifier_inputs, classifier_two_sample_test

N_EVENTS = 4000


def _gen_and_response(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GEN features and two independent draws of a detector response given GEN."""
    rng = np.random.default_rng(seed)
    gen = rng.normal(size=(N_EVENTS, 9)) * 40.0
    gen[:, 6] = rng.normal(2.0, 0.5, N_EVENTS)
    width = np.abs(gen) * 0.1 + 1.0

    def response() -> np.ndarray:
        return gen + rng.normal(size=gen.shape) * width

    return gen, response(), response()


def _test(gen: np.ndarray, candidate: np.ndarray, reco: np.ndarray, **options: int):
    tables = (ObservableTable.of(a, WJETS) for a in (gen, candidate, reco))
    return classifier_two_sample_test(*tables, **options)


def test_inputs_are_gen_output_and_auxiliary():
    gen, reco, _ = _gen_and_response(0)
    inputs = classifier_inputs(
        ObservableTable.of(gen[:5], WJETS), ObservableTable.of(reco[:5], WJETS)
    )
    assert inputs.shape == (5, 9 + 9 + 11)
    assert np.array_equal(inputs[:, :9], gen[:5])
    assert np.array_equal(inputs[:, 9:18], reco[:5])


@pytest.mark.slow
def test_same_conditional_law_gives_auc_one_half():
    gen, reco, candidate = _gen_and_response(1)
    result = _test(gen, candidate, reco, seed=2, n_bootstrap=50)
    assert result.n_train + result.n_test == N_EVENTS
    assert 0.0 < result.auc_error < 0.03
    assert abs(result.auc - 0.5) < max(3 * result.auc_error, 0.02)


@pytest.mark.slow
def test_one_sigma_shift_in_one_feature_is_detected():
    gen, reco, candidate = _gen_and_response(3)
    candidate[:, 3] += np.abs(gen[:, 3]) * 0.1 + 1.0  # the response width of jet px
    result = _test(gen, candidate, reco, seed=2, n_bootstrap=50)
    assert result.auc > 0.5 + 5 * result.auc_error
    assert result.auc > 0.6


def test_input_errors():
    gen, reco, candidate = _gen_and_response(0)
    with pytest.raises(ValueError, match="same shape"):
        _test(gen, candidate[:10], reco)
    with pytest.raises(ValueError, match="at least 20 events"):
        _test(gen[:10], candidate[:10], reco[:10])
    with pytest.raises(ValueError, match="n_bootstrap"):
        _test(gen, candidate, reco, n_bootstrap=1)
