"""The particle-level detector against the card formulas, and its closure on Pythia events."""

from __future__ import annotations

import dataclasses
import math

import awkward as ak
import numpy as np
import pytest
from particle_guns import N, single_particles

from coffea_fastsim.sim.detector.calorimeter import CMS_ECAL, CMS_HCAL, CalorimeterCard, energy_flow
from coffea_fastsim.sim.detector.jets import CMS_RHO_GRID, antikt_areas, rho_median
from coffea_fastsim.sim.detector.particle import (
    PERFECT_PARTICLE_CARD,
    CmsParticleDetector,
)
from coffea_fastsim.sim.detector.response import CaloResolution
from coffea_fastsim.sim.detector.tracking import CMS_TRACKING, propagate, track


def no_jets(n: int = N) -> ak.Array:
    fields = {c: np.zeros(0) for c in ("px", "py", "pz", "E")}
    return ak.unflatten(ak.zip(fields, with_name="Momentum4D"), np.zeros(n, dtype=np.int64))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(2024)


@pytest.mark.slow  # FastJet clusters the RECO jets
@pytest.mark.parametrize(
    ("pt", "eta", "sigma_rel"),
    # MuonMomentumSmearing sqrt(a^2 + (b pT)^2), evaluated by hand.
    [
        (50.0, 0.2, np.hypot(0.01, 50 * 1.0e-4)),
        (100.0, 1.0, np.hypot(0.015, 100 * 1.5e-4)),
        (200.0, 2.0, np.hypot(0.025, 200 * 3.5e-4)),
    ],
)
def test_muon_resolution_matches_card(pt, eta, sigma_rel, rng):
    muons = CmsParticleDetector().reconstruct(single_particles(pt, eta), no_jets(), rng).Muon
    residual = (ak.to_numpy(ak.flatten(muons.pt)) - pt) / pt
    n = residual.size
    assert abs(residual.mean()) < 4 * sigma_rel / np.sqrt(n)
    assert residual.std() == pytest.approx(sigma_rel, rel=4 / np.sqrt(2 * n))


@pytest.mark.slow  # FastJet clusters the RECO jets
@pytest.mark.parametrize(
    ("eta", "efficiency"),
    # MuonTrackingEfficiency (pT > 1 GeV) x MuonEfficiency (10 < pT <= 1 TeV, |eta| <= 2.4).
    [(0.3, 0.99 * 0.95), (-1.2, 0.99 * 0.95), (2.0, 0.98 * 0.95), (2.45, 0.0)],
)
def test_muon_efficiency_plateau(eta, efficiency, rng):
    muons = CmsParticleDetector().reconstruct(single_particles(50.0, eta), no_jets(), rng).Muon
    found = ak.to_numpy(ak.num(muons))
    assert found.mean() == pytest.approx(efficiency, abs=4 * np.sqrt(0.25 / N) + 1e-12)


@pytest.mark.parametrize(
    ("abs_id", "pt", "eta", "efficiency"),
    # ChargedHadron/Electron TrackingEfficiency of the card.
    [
        (211, 0.5, 0.0, 0.70),
        (211, 5.0, 1.0, 0.95),
        (211, 5.0, 2.0, 0.85),
        (211, 5.0, 2.6, 0.0),
        (11, 0.5, 2.0, 0.50),
        (11, 200.0, 0.5, 0.99),
    ],
)
def test_tracking_efficiency_matches_card(abs_id, pt, eta, efficiency, rng):
    tracked, _ = track(CMS_TRACKING, rng, np.full(N, abs_id), np.full(N, pt), np.full(N, eta))
    assert tracked.mean() == pytest.approx(efficiency, abs=4 * np.sqrt(0.25 / N) + 1e-12)


def test_charged_particle_bends_by_the_card_field():
    pt, charge = np.array([50.0, 50.0]), np.array([1.0, -1.0])
    hit = propagate(CMS_TRACKING, pt, np.zeros(2), np.zeros(2), charge, np.zeros(2))
    # Chord to radius R on a circle of radius r = pT / (0.2998 B): dphi = -q asin(R / 2r).
    r = 50.0 / (0.299792458 * 3.8)
    np.testing.assert_allclose(hit.phi, -charge * np.arcsin(1.29 / (2 * r)), rtol=1e-12)
    np.testing.assert_allclose(hit.eta, 0.0, atol=1e-12)


def test_looper_reaches_the_endcap():
    # pT = 0.3 GeV curls on r = 0.26 m < R / 2: it spirals to z = 3 m.
    pt, pz = np.array([0.3]), np.array([0.6])
    hit = propagate(CMS_TRACKING, pt, pz, np.zeros(1), np.ones(1), np.zeros(1))
    r = 0.3 / (0.299792458 * 3.8)
    turn = 3.0 / 0.6 * 0.3 / r
    expected = np.arcsinh(3.0 / abs(2 * r * np.sin(turn / 2)))
    np.testing.assert_allclose(hit.eta, expected, rtol=1e-12)


def test_neutral_from_displaced_vertex_points_from_the_vertex():
    hit = propagate(
        CMS_TRACKING, np.ones(1), np.zeros(1), np.zeros(1), np.zeros(1), np.full(1, 0.1)
    )
    np.testing.assert_allclose(hit.eta, np.arcsinh(0.1 / 1.29), rtol=1e-12)


def deposit(energy: np.ndarray, eta: float, abs_id: int, track_energy=None) -> dict:
    n = energy.size
    return {
        "eta": np.full(n, eta),
        "phi": np.full(n, 0.1),
        "energy": energy,
        "abs_id": np.full(n, abs_id),
        "track_energy": np.zeros(n) if track_energy is None else track_energy,
        "track_sigma": np.zeros(n),
    }


def tower_eta(card: CalorimeterCard, eta: float) -> float:
    tower, _, _ = card.grid.tower(np.array([eta]), np.array([0.1]))
    low, high, _, _ = card.grid.cell(tower)
    return float((low + high)[0] / 2)


@pytest.mark.parametrize(
    ("card", "abs_id", "energy", "eta"),
    [
        (CMS_HCAL, 130, 100.0, 0.5),
        (CMS_HCAL, 2112, 400.0, 3.6),
        (CMS_ECAL, 22, 50.0, 0.3),
        (CMS_ECAL, 22, 80.0, 2.1),
    ],
)
def test_single_neutral_response_matches_resolution(card, abs_id, energy, eta, rng):
    event = np.arange(N)
    momentum = (np.zeros(N), np.zeros(N), np.zeros(N), np.full(N, energy))
    neutral = energy_flow(card, rng, event, deposit(np.full(N, energy), eta, abs_id), momentum)
    sigma = float(card.resolution(np.array([energy]), np.array([tower_eta(card, eta)]))[0])
    assert neutral.energy.size > 0.999 * N
    assert neutral.energy.mean() == pytest.approx(energy, abs=4 * sigma / np.sqrt(N))
    assert neutral.energy.std() == pytest.approx(sigma, rel=4 / np.sqrt(2 * N))


def test_hcal_formula_is_the_card_formula():
    energy = np.array([10.0, 100.0, 1000.0])
    np.testing.assert_allclose(
        CMS_HCAL.resolution(energy, np.zeros(3)), np.sqrt(energy**2 * 0.05**2 + energy * 1.5**2)
    )
    np.testing.assert_allclose(
        CMS_HCAL.resolution(energy, np.full(3, 4.0)), np.sqrt(energy**2 * 0.13**2 + energy * 2.7**2)
    )


@pytest.mark.parametrize("energy", [5.0, 10.0, 40.0])
def test_hcal_significance_threshold(energy, rng):
    # A tower survives if its smeared E' has E' / sigma(E') > 2 with
    # sigma = sqrt(0.05^2 E'^2 + 1.5^2 E'), i.e. E' > 2.25 * 4 / (1 - 4 * 0.05^2) GeV.
    threshold = 9.0 / (1 - 4 * 0.05**2)
    sigma = np.sqrt(0.05**2 * energy**2 + 1.5**2 * energy)
    b = np.sqrt(np.log1p((sigma / energy) ** 2))
    z = (np.log(threshold) - np.log(energy) + b**2 / 2) / b
    expected = 0.5 * math.erfc(z / np.sqrt(2))
    event = np.arange(N)
    e = np.full(N, energy)
    neutral = energy_flow(CMS_HCAL, rng, event, deposit(e, 0.2, 130), (e, e, e, e))
    assert neutral.energy.size / N == pytest.approx(expected, abs=4 * np.sqrt(0.25 / N))


def test_energy_flow_subtracts_the_track(rng):
    exact = CaloResolution((5.0,), (0.0,), (0.0,), (0.0,))
    card = dataclasses.replace(
        CMS_HCAL, resolution=exact, energy_min=0.0, significance_min=0.0, smear_tower_center=False
    )
    energy = np.array([30.0, 20.0])
    dep = deposit(energy, 0.3, 211, track_energy=np.array([30.0, 0.0]))
    dep["abs_id"] = np.array([211, 130])
    neutral = energy_flow(card, rng, np.zeros(2, dtype=np.int64), dep, (energy,) * 4)
    np.testing.assert_allclose(neutral.energy, [20.0])
    np.testing.assert_allclose(np.arctanh(neutral.pz / neutral.energy), tower_eta(card, 0.3))


def test_antikt_area_is_a_disc_less_the_lens():
    # Two jets 0.5 apart with R = 0.5: the softer loses the lens of two unit circles.
    areas = antikt_areas(np.array([2]), np.array([0.0, 0.5]), np.zeros(2), 0.5)
    half = 0.5
    lens = 2 * 0.25 * (np.arccos(half) - half * np.sqrt(1 - half**2))
    np.testing.assert_allclose(areas, [np.pi * 0.25, np.pi * 0.25 - lens])


def test_rho_is_the_median_cell_density():
    # 30 central cells (5 x 6), 1 GeV in 20 of them: the median density is 1 GeV / area.
    n_eta, n_phi, area = CMS_RHO_GRID.cells()[1]
    eta = -2.5 + (np.arange(20) % n_eta + 0.5) * 5.0 / n_eta
    phi = -np.pi + (np.arange(20) // n_eta + 0.5) * 2 * np.pi / n_phi
    rho = rho_median(CMS_RHO_GRID, np.zeros(20, dtype=np.int64), 1, np.ones(20), eta, phi)
    assert n_eta * n_phi == 30
    np.testing.assert_allclose(rho[0], [0.0, 1.0 / area, 0.0])


@pytest.mark.slow  # FastJet clusters the RECO jets
def test_same_rng_same_output_other_rng_other_output():
    particles = single_particles(45.0, 0.7, n=300)
    detector = CmsParticleDetector()

    def run(seed: int) -> ak.Array:
        return detector.reconstruct(particles, no_jets(300), np.random.default_rng(seed))

    assert ak.array_equal(run(1), run(1))
    assert not ak.array_equal(run(1), run(2))


def test_negative_mu_is_rejected():
    with pytest.raises(ValueError, match="mu"):
        CmsParticleDetector(mu=-1.0)


@pytest.fixture(scope="module")
def pythia_events():
    """300 W+jet events: GEN columns, detector input particles and GEN jets."""
    from coffea_fastsim.sim.generation import gen_event_record
    from coffea_fastsim.sim.pythia_config import make_pythia

    pythia = make_pythia(17, 20.0)

    def charge_of(ids: np.ndarray) -> np.ndarray:
        return np.array([pythia.particleData.charge(int(i)) for i in ids], dtype=float)

    return gen_event_record(pythia.nextBatch(300).prt, charge_of)


@pytest.mark.slow
def test_perfect_detector_closure(pythia_events, rng):
    columns, particles, gen_jets = pythia_events
    reco = CmsParticleDetector(PERFECT_PARTICLE_CARD).reconstruct(particles, gen_jets, rng)
    gen_met = columns["GenMET"]
    np.testing.assert_allclose(
        ak.to_numpy(reco.MET.pt * np.cos(reco.MET.phi)),
        ak.to_numpy(gen_met.pt * np.cos(gen_met.phi)),
        atol=1e-9 * float(ak.max(reco.MET.sumEt)),
    )
    jets = reco.Jet
    matched = columns["GenJet"][jets.genJetIdx]
    assert ak.all(jets.genJetIdx >= 0)
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(jets.pt)), ak.to_numpy(ak.flatten(matched.pt)), rtol=1e-9
    )
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(jets.mass)),
        ak.to_numpy(ak.flatten(matched.mass)),
        rtol=1e-6,
        atol=1e-6,
    )
    gen_muons = columns["GenPart"][reco.Muon.genPartIdx]
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(reco.Muon.pt)), ak.to_numpy(ak.flatten(gen_muons.pt)), rtol=1e-6
    )
    # Every final-state muon is found: the W muon in each event at least.
    assert ak.all(ak.num(reco.Muon) >= 1)


def synthetic_pool(path) -> None:
    """A pileup pool of soft isotropic-in-eta particles (0.5 GeV pT, |eta| < 5): 2/3 charged
    pions, 1/3 photons and K0L, about 100 per interaction."""
    from coffea_fastsim.sim.detector.pileup import save_pool

    rng = np.random.default_rng(3)
    counts = rng.poisson(100, 500)
    n = int(counts.sum())
    eta, phi = rng.uniform(-5, 5, n), rng.uniform(-np.pi, np.pi, n)
    pt = rng.exponential(0.5, n) + 0.1
    kind = rng.integers(0, 6, n)
    pdg_id = np.array([211, -211, 211, -211, 22, 130])[kind]
    mass = np.where(kind < 4, 0.1396, np.where(kind == 5, 0.4976, 0.0))
    p4 = np.stack(
        [
            pt * np.cos(phi),
            pt * np.sin(phi),
            pt * np.sinh(eta),
            np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2),
        ],
        axis=1,
    )
    save_pool(path, counts, p4, pdg_id, np.sign(pdg_id) * (kind < 4))


@pytest.mark.slow
def test_rho_area_correction_restores_the_jet_response(pythia_events, tmp_path):
    columns, particles, gen_jets = pythia_events
    path = tmp_path / "pool.npz"
    synthetic_pool(path)

    def response(mu: float, correction: bool) -> float:
        detector = CmsParticleDetector(mu=mu, pool=path, rho_correction=correction)
        jets = detector.reconstruct(particles, gen_jets, np.random.default_rng(5)).Jet
        jets = jets[jets.genJetIdx >= 0]
        gen = columns["GenJet"][jets.genJetIdx]
        central = (gen.pt > 50) & (abs(gen.eta) < 2.4)
        return float(np.mean(ak.to_numpy(ak.flatten((jets.pt / gen.pt)[central]))))

    without_pileup = response(0.0, True)
    assert without_pileup == pytest.approx(1.0, abs=0.05)
    assert response(100.0, False) > without_pileup + 0.1
    assert response(100.0, True) == pytest.approx(without_pileup, abs=0.05)
