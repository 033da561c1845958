"""What RECO' shares with RECO beyond the GEN features: correlations of known value."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.analysis.zmumu import ZMUMU
from coffea_fastsim.surrogate.coordinates import TargetCoordinates
from coffea_fastsim.validation.shared_response import (
    response_labels,
    shared_response,
    shared_response_lines,
)

N_EVENTS = 40_000


def _gen_events(rng: np.random.Generator, n: int) -> np.ndarray:
    """W+jet GEN features: muon and jet of pT 30-300 GeV, |eta| < 2, log M_j, MET."""
    columns = []
    for _ in range(2):
        pt, eta, phi = rng.uniform(30, 300, n), rng.uniform(-2, 2, n), rng.uniform(-3, 3, n)
        columns += [pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)]
    columns += [rng.uniform(1, 4, n), rng.normal(0, 30, n), rng.normal(0, 30, n)]
    return np.column_stack(columns)


def _reco(gen: np.ndarray, response: np.ndarray) -> np.ndarray:
    coordinates = TargetCoordinates(WJETS.feature_names, WJETS.responses)
    return coordinates.decode(torch.from_numpy(gen), torch.from_numpy(response)).numpy()


def _table(features: np.ndarray) -> ObservableTable:
    return ObservableTable.of(features, WJETS)


@pytest.mark.parametrize(("hidden", "noise"), [(1.0, 1.0), (1.0, 3.0), (0.0, 1.0)])
def test_a_hidden_share_is_the_correlation_of_the_two_passes(hidden: float, noise: float):
    """r = h + e: corr(RECO, RECO') = var h / (var h + var e); a model of GEN shares nothing."""
    rng = np.random.default_rng(5)
    gen = _gen_events(rng, N_EVENTS)
    scale = np.array([0.02, 0, 0, 0.05, 0.01, 0.01, 0.1, 2.0, 2.0])  # muon direction exact
    h = rng.normal(size=gen.shape) * hidden

    def detector_pass() -> np.ndarray:
        return _reco(gen, (h + rng.normal(size=gen.shape) * noise) * scale)

    reco, reco_prime = detector_pass(), detector_pass()
    dl = _reco(gen, rng.normal(size=gen.shape) * np.hypot(hidden, noise) * scale)
    shared = shared_response(_table(gen), _table(reco), _table(reco_prime), _table(dl), WJETS)
    expected = hidden**2 / (hidden**2 + noise**2)
    measured = [i for i, s in enumerate(scale) if s > 0]
    tolerance = 5 / np.sqrt(N_EVENTS)
    np.testing.assert_allclose(shared.floor[measured], expected, atol=tolerance)
    np.testing.assert_allclose(shared.model[measured], 0.0, atol=tolerance)
    assert np.isnan(shared.floor[[1, 2]]).all()
    assert np.isnan(shared.model[[1, 2]]).all()
    np.testing.assert_allclose(shared.spread[0], 0.02 * np.hypot(hidden, noise), rtol=0.03)
    if expected > 0:  # 0.5 and 0.1, both above MIN_SHARED = 0.05
        assert set(shared.shared) == {shared.labels[i] for i in measured}
    else:
        assert shared.shared == ()


def test_a_response_the_gen_features_fix_is_shared_by_dl_too():
    """r = f(x) + e: DL that draws f(x) + e' shares as much as RECO' does, nothing is flagged."""
    rng = np.random.default_rng(6)
    gen = _gen_events(rng, N_EVENTS)
    log_mass = gen[:, 6]
    f = np.zeros_like(gen)
    f[:, 6] = 0.3 * (log_mass - 2.5)  # the mass response depends on the GEN mass
    f[:, 3] = 0.1 * np.log(np.hypot(gen[:, 3], gen[:, 4]) / 100)  # jet pT response on pT

    def draw() -> np.ndarray:
        return _reco(gen, f + rng.normal(size=gen.shape) * 0.05)

    reco, reco_prime, dl = draw(), draw(), draw()
    shared = shared_response(_table(gen), _table(reco), _table(reco_prime), _table(dl), WJETS)
    assert shared.floor[6] > 0.9  # var f / var r = 0.0675 / 0.0700
    assert shared.model[6] > 0.9
    np.testing.assert_allclose(shared.beyond_gen, 0.0, atol=5 / np.sqrt(N_EVENTS))
    assert shared.shared == ()
    assert "within the reach of a model of the GEN features" in shared_response_lines(shared)[-1]


@pytest.mark.parametrize(
    ("analysis", "expected"),
    [
        (
            WJETS,
            (
                "muon log(pT ratio)",
                "muon delta eta",
                "muon delta phi",
                "jet log(pT ratio)",
                "jet delta eta",
                "jet delta phi",
                "jet_log_mass difference",
                "met along jet",
                "met across jet",
            ),
        ),
        (ZMUMU, None),
    ],
)
def test_every_feature_has_one_label(analysis, expected):
    labels = response_labels(analysis)
    assert len(labels) == len(analysis.feature_names) == len(set(labels))
    if expected is not None:
        assert labels == expected


def test_the_report_section_names_the_shared_coordinates():
    rng = np.random.default_rng(7)
    gen = _gen_events(rng, 5_000)
    scale = np.array([0.02, 0, 0, 0.05, 0.01, 0.01, 0.1, 2.0, 2.0])
    h = rng.normal(size=gen.shape) * scale
    reco = _reco(gen, h + rng.normal(size=gen.shape) * 0.05 * scale)
    reco_prime = _reco(gen, h + rng.normal(size=gen.shape) * 0.05 * scale)
    dl = _reco(gen, rng.permutation(h))
    shared = shared_response(_table(gen), _table(reco), _table(reco_prime), _table(dl), WJETS)
    lines = shared_response_lines(shared)
    assert lines[1].startswith("## 8.")
    assert "| muon delta eta | exact | exact | exact | exact |" in lines
    assert "jet_log_mass difference" in lines[-1]
    assert "met across jet" in lines[-1]
