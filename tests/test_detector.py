"""Detector models against the Delphes CMS card formulas, on synthetic single objects."""

from __future__ import annotations

import dataclasses

import awkward as ak
import numpy as np
import pytest
from particle_guns import MUON_MASS, N, single_particles

from coffea_fastsim.sim.detector.jets import jets_with_muon
from coffea_fastsim.sim.detector.registry import (
    CMS_CARD,
    DETECTORS,
    CaloResolution,
    CmsCardDetector,
    PerfectDetector,
    make_detector,
)
from coffea_fastsim.sim.detector.response import NO_JET_ENERGY_SCALE, same_event_pairs


def test_same_event_pairs_by_hand():
    # events with 2, 0 and 3 objects; targets in events 2 and 0
    owner, offset, other = same_event_pairs(np.array([2, 0, 3]), np.array([2, 0]))
    assert owner.tolist() == [0, 0, 0, 1, 1]
    assert offset.tolist() == [0, 1, 2, 0, 1]
    assert other.tolist() == [2, 3, 4, 0, 1]


def test_jets_with_muon_by_hand():
    # two jets in event 0, one in event 1; muons in jet 1 of event 0, in no jet, in no jet
    mask = jets_with_muon(np.array([2, 1]), np.array([0, 1, 0]), np.array([1, -1, -1]))
    assert mask.tolist() == [False, True, False]


def single_jets(pt: float, eta: float, n: int = N, seed: int = 0) -> ak.Array:
    """One massless GEN jet per event at fixed pT (GeV) and eta, uniform phi."""
    phi = np.random.default_rng(seed).uniform(-np.pi, np.pi, n)
    fields = {
        "px": pt * np.cos(phi),
        "py": pt * np.sin(phi),
        "pz": np.full(n, pt * np.sinh(eta)),
        "E": np.full(n, pt * np.cosh(eta)),
    }
    return ak.unflatten(ak.zip(fields, with_name="Momentum4D"), np.ones(n, dtype=np.int64))


def no_jets(n: int = N) -> ak.Array:
    return single_jets(50.0, 0.0, n)[:, :0]


def no_particles(n: int = N) -> ak.Array:
    return single_particles(50.0, 0.0, n=n)[:, :0]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.mark.parametrize(
    ("pt", "eta", "sigma_rel"),
    [
        # sqrt(a^2 + (b pT)^2) of MuonMomentumSmearing, evaluated by hand.
        (50.0, 0.2, np.sqrt(0.01**2 + (50 * 1.0e-4) ** 2)),
        (100.0, 1.0, np.sqrt(0.015**2 + (100 * 1.5e-4) ** 2)),
        (200.0, 2.0, np.sqrt(0.025**2 + (200 * 3.5e-4) ** 2)),
    ],
)
def test_muon_momentum_resolution_matches_card(pt, eta, sigma_rel, rng):
    muons = CmsCardDetector().reconstruct(single_particles(pt, eta), no_jets(), rng).Muon
    residual = (ak.to_numpy(ak.flatten(muons.pt)) - pt) / pt
    n = residual.size
    assert abs(residual.mean()) < 4 * sigma_rel / np.sqrt(n)
    assert residual.std() == pytest.approx(sigma_rel, rel=4 / np.sqrt(2 * n))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(muons.eta)), eta, rtol=1e-12)


@pytest.mark.parametrize(
    ("eta", "efficiency"),
    # MuonTrackingEfficiency (pT > 1 GeV) times MuonEfficiency (10 < pT <= 1 TeV).
    [(0.3, 0.99 * 0.95), (-1.2, 0.99 * 0.95), (2.0, 0.98 * 0.95)],
)
def test_muon_efficiency_plateau(eta, efficiency, rng):
    muons = CmsCardDetector().reconstruct(single_particles(50.0, eta), no_jets(), rng).Muon
    found = ak.to_numpy(ak.num(muons))
    assert found.max() == 1
    assert found.mean() == pytest.approx(efficiency, abs=4 * np.sqrt(efficiency * 0.05 / N))


@pytest.mark.parametrize(("pt", "eta"), [(50.0, 2.45), (50.0, -3.0), (8.0, 0.0)])
def test_no_muon_outside_acceptance(pt, eta, rng):
    muons = CmsCardDetector().reconstruct(single_particles(pt, eta), no_jets(), rng).Muon
    assert ak.sum(ak.num(muons)) == 0


def test_non_isolated_muon_is_rejected(rng):
    muon = single_particles(30.0, 0.5, n=1000)
    pion = single_particles(10.0, 0.6, pdg_id=211, n=1000, mass=0.1396)
    pion["px"], pion["py"] = muon.px * 10 / 30, muon.py * 10 / 30
    isolated = CmsCardDetector().reconstruct(muon, no_jets(1000), rng).Muon
    in_jet = (
        CmsCardDetector().reconstruct(ak.concatenate([muon, pion], axis=1), no_jets(1000), rng).Muon
    )
    assert ak.sum(ak.num(isolated)) > 900
    assert ak.sum(ak.num(in_jet)) == 0


def detector_without(**card_changes) -> CmsCardDetector:
    return CmsCardDetector(dataclasses.replace(CMS_CARD, **card_changes))


NO_CALO_SMEARING = CaloResolution(
    abs_eta_max=(5.0,), constant=(0.0,), stochastic=(0.0,), noise=(0.0,)
)


@pytest.mark.parametrize(
    ("pt", "eta", "scale"),
    # sqrt((2.5 - 0.15 |eta|)^2 / pT + 1) of JetEnergyScale, evaluated by hand.
    [(30.0, 1.0, np.sqrt(2.35**2 / 30 + 1)), (100.0, -3.5, np.sqrt(1.975**2 / 100 + 1))],
)
def test_jet_energy_scale_matches_card(pt, eta, scale, rng):
    detector = detector_without(hcal_resolution=NO_CALO_SMEARING, tower_size=(0.0, 0.0))
    jets = detector.reconstruct(no_particles(100), single_jets(pt, eta, n=100), rng).Jet
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(jets.pt)), pt * scale, rtol=1e-12)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(jets.eta)), eta, rtol=1e-12)


@pytest.mark.parametrize(
    ("energy", "eta", "sigma_rel"),
    # sqrt((c E)^2 + s^2 E) / E of the HCal, evaluated by hand.
    [
        (100.0, 0.0, np.sqrt(0.05**2 + 1.5**2 / 100)),
        (2000.0, 4.0, np.sqrt(0.13**2 + 2.7**2 / 2000)),
    ],
)
def test_jet_energy_resolution_matches_hcal(energy, eta, sigma_rel, rng):
    detector = detector_without(jet_energy_scale=NO_JET_ENERGY_SCALE)
    pt = energy / np.cosh(eta)
    jets = detector.reconstruct(no_particles(), single_jets(pt, eta), rng).Jet
    reco_pt = ak.to_numpy(ak.flatten(jets.pt))
    assert reco_pt.size > 0.999 * N
    reco_energy = reco_pt * np.cosh(ak.to_numpy(ak.flatten(jets.eta)))
    ratio = reco_pt / pt
    assert abs(ratio.mean() - 1) < 4 * sigma_rel / np.sqrt(N)
    assert ratio.std() == pytest.approx(sigma_rel, rel=4 / np.sqrt(2 * N))
    assert reco_energy.mean() == pytest.approx(energy, rel=0.02)


def test_jet_angular_resolution_is_tower_size(rng):
    jets = CmsCardDetector().reconstruct(no_particles(), single_jets(200.0, 0.5), rng).Jet
    d_eta = ak.to_numpy(ak.flatten(jets.eta)) - 0.5
    assert d_eta.std() == pytest.approx(0.087 / np.sqrt(12), rel=4 / np.sqrt(2 * d_eta.size))


def test_jet_containing_reconstructed_muon_is_removed(rng):
    muon = single_particles(40.0, 0.0, n=2000)
    muon["genJetIdx"] = np.zeros(2000, dtype=np.int64)[:, np.newaxis]
    jet = single_jets(40.0, 0.0, n=2000)
    reco = CmsCardDetector().reconstruct(muon, jet, rng)
    has_muon = ak.to_numpy(ak.num(reco.Muon)) == 1
    np.testing.assert_array_equal(ak.to_numpy(ak.num(reco.Jet)), (~has_muon).astype(int))


def test_perfect_detector_returns_gen(rng):
    particles = ak.concatenate(
        [single_particles(35.0, 1.1, n=50), single_particles(20.0, -0.3, pdg_id=-14, n=50, mass=0)],
        axis=1,
    )
    jets = single_jets(60.0, -2.0, n=50)
    reco = PerfectDetector().reconstruct(particles, jets, rng)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(reco.Muon.pt)), 35.0, rtol=1e-12)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(reco.Muon.eta)), 1.1, rtol=1e-12)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(reco.Muon.mass)), MUON_MASS, rtol=1e-9)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(reco.Muon.charge)), -1)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(reco.Jet.pt)), 60.0, rtol=1e-12)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(reco.Jet.eta)), -2.0, rtol=1e-12)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(reco.Jet.genJetIdx)), 0)
    # MET is minus the visible (muon) pT, the neutrino is invisible.
    np.testing.assert_allclose(ak.to_numpy(reco.MET.pt), 35.0, rtol=1e-12)
    np.testing.assert_allclose(ak.to_numpy(reco.MET.sumEt), 35.0, rtol=1e-12)


#: Detectors that cluster RECO jets with FastJet (the generate extra): their tests are slow.
CLUSTERING_DETECTORS = {"cms-particle"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.slow) if name in CLUSTERING_DETECTORS else name
        for name in sorted(DETECTORS)
    ],
)
def test_randomness_comes_only_from_rng(name):
    particles = single_particles(45.0, 0.7, n=500)
    jets = single_jets(80.0, 0.2, n=500)
    detector = make_detector(name)

    def run(seed: int) -> ak.Array:
        return detector.reconstruct(particles, jets, np.random.default_rng(seed))

    assert ak.array_equal(run(1), run(1))
    assert ak.array_equal(run(1), run(2)) == (name == "perfect")


def test_unknown_detector_lists_known_names():
    with pytest.raises(ValueError, match=r"cms-card.*perfect"):
        make_detector("delphes-atlas")
