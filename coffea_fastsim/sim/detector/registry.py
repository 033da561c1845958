"""Detector response models: GEN particles and GEN jets in, RECO muons, jets and MET out.

Every model implements the small `Detector` protocol and is registered in `DETECTORS`, so a
particle-level model (towers, particle flow, pileup) replaces the card-based one by name.
A model draws all its randomness from the `numpy.random.Generator` it is given: the same GEN
events reconstructed with another generator give an independent RECO sample.

Input layout (awkward arrays, one entry per event):

- ``particles``: the final-state particles, records ``Momentum4D`` with fields ``px``, ``py``,
  ``pz``, ``E`` (GeV), ``pdgId``, ``charge`` (units of e), ``genPartIdx`` (index into the
  pruned GenPart collection, -1 if not kept) and ``genJetIdx`` (index of the GEN jet the
  particle was clustered into, -1 if none).
- ``gen_jets``: the GEN jets sorted by decreasing pT, records ``Momentum4D`` (``px``,
  ``py``, ``pz``, ``E`` in GeV).

Output: records with ``Muon`` (pt, eta, phi, mass, charge, genPartIdx), ``Jet`` (pt, eta,
phi, mass, genJetIdx), each sorted by decreasing pT, and ``MET`` (pt, phi, sumEt); GeV. A
model may add the optional branches of `coffea_fastsim.sim.nanoaod_writer` (``Jet.area``,
``Pileup``, ``Rho``), as `CmsParticleDetector` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import awkward as ak
import numpy as np

from coffea_fastsim.sim.detector.jets import jets_with_muon
from coffea_fastsim.sim.detector.particle import CmsParticleDetector
from coffea_fastsim.sim.detector.response import (
    CMS_JET_ENERGY_SCALE,
    CMS_MUON_EFFICIENCY,
    MUON_PDG_ID,
    NEUTRINO_PDG_IDS,
    CaloResolution,
    EtaPtTable,
    JetEnergyScale,
    MuonEfficiency,
    TrackResolution,
    bin_index,
    collection,
    flat_field,
    flat_polar,
    lognormal,
    met_record,
    polar_coordinates,
    same_event_pairs,
    wrap_phi,
)

__all__ = [
    "CMS_CARD",
    "DETECTORS",
    "CaloResolution",
    "CmsCard",
    "CmsCardDetector",
    "CmsParticleDetector",
    "Detector",
    "EtaPtTable",
    "MuonEfficiency",
    "PerfectDetector",
    "TrackResolution",
    "make_detector",
    "polar_coordinates",
]


class Detector(Protocol):
    """A detector response model, see the module docstring for the array layouts."""

    name: str

    def reconstruct(
        self, particles: ak.Array, gen_jets: ak.Array, rng: np.random.Generator
    ) -> ak.Array:
        """Return per-event records with ``Muon``, ``Jet`` and ``MET``."""
        ...


@dataclass(frozen=True)
class CmsCard:
    """Parametrizations of the Delphes CMS card, ``cards/delphes_card_CMS.tcl`` of
    delphes/delphes (modules named per field). Energies and momenta in GeV.

    Arguments:
        muon_tracking_efficiency: module MuonTrackingEfficiency.
        muon_momentum_resolution: module MuonMomentumSmearing (log-normal pT smearing).
        muon_efficiency: module MuonEfficiency, applied to the smeared pT.
        muon_isolation_dr: module MuonIsolation, DeltaRMax.
        muon_isolation_pt_min: MuonIsolation, PTMin of the particles summed in the cone.
        muon_isolation_ratio_max: MuonIsolation, PTRatioMax of cone sum pT over muon pT.
        hcal_resolution: module HCal, ResolutionFormula (log-normal energy smearing).
        calorimeter_abs_eta_max: outer |eta| edge of the HCal towers.
        tower_abs_eta_max: upper |eta| edges of the HCal tower sizes below.
        tower_size: HCal tower size in eta and phi (5 and 10 degree towers); the jet axis
            is smeared by a Gaussian of width tower_size / sqrt(12).
        jet_energy_scale: module JetEnergyScale.
        jet_pt_min: module FastJetFinder, JetPTMin.
    """

    muon_tracking_efficiency: EtaPtTable = field(
        default_factory=lambda: EtaPtTable(
            abs_eta_max=(1.5, 2.5),
            pt_edges=(0.1, 1.0, np.inf),
            values=((0.75, 0.99), (0.70, 0.98)),
        )
    )
    muon_momentum_resolution: TrackResolution = field(
        default_factory=lambda: TrackResolution(
            abs_eta_max=(0.5, 1.5, 2.5),
            constant=(0.01, 0.015, 0.025),
            slope=(1.0e-4, 1.5e-4, 3.5e-4),
        )
    )
    muon_efficiency: MuonEfficiency = CMS_MUON_EFFICIENCY
    muon_isolation_dr: float = 0.5
    muon_isolation_pt_min: float = 0.5
    muon_isolation_ratio_max: float = 0.25
    hcal_resolution: CaloResolution = field(
        default_factory=lambda: CaloResolution(
            abs_eta_max=(3.0, 5.0), constant=(0.050, 0.130), stochastic=(1.50, 2.70), noise=(0, 0)
        )
    )
    calorimeter_abs_eta_max: float = 5.0
    tower_abs_eta_max: tuple[float, ...] = (1.74, 5.0)
    tower_size: tuple[float, ...] = (0.087, 0.175)
    jet_energy_scale: JetEnergyScale = CMS_JET_ENERGY_SCALE
    jet_pt_min: float = 20.0

    def jet_angular_resolution(self, eta: np.ndarray) -> np.ndarray:
        """Gaussian width of the jet eta and phi smearing (tower size / sqrt(12))."""
        size = np.append(self.tower_size, 0.0)[bin_index(self.tower_abs_eta_max, np.abs(eta))]
        return size / np.sqrt(12.0)


CMS_CARD = CmsCard()


class PerfectDetector:
    """RECO equals GEN: every final-state muon, every GEN jet, and MET = -(sum of the visible
    particles' pT), which equals GenMET by transverse-momentum conservation."""

    name = "perfect"

    def reconstruct(
        self, particles: ak.Array, gen_jets: ak.Array, rng: np.random.Generator
    ) -> ak.Array:
        """See `Detector.reconstruct`; `rng` is not used."""
        counts, pt, eta, phi, mass = flat_polar(particles)
        event = np.repeat(np.arange(len(counts)), counts)
        abs_id = np.abs(flat_field(particles, "pdgId"))
        mu = abs_id == MUON_PDG_ID
        visible = ~np.isin(abs_id, NEUTRINO_PDG_IDS)
        n = len(counts)
        muons = collection(
            np.bincount(event[mu], minlength=n),
            pt[mu],
            pt=pt[mu],
            eta=eta[mu],
            phi=phi[mu],
            mass=mass[mu],
            charge=flat_field(particles, "charge")[mu],
            genPartIdx=flat_field(particles, "genPartIdx")[mu],
        )
        j_counts, j_pt, j_eta, j_phi, j_mass = flat_polar(gen_jets)
        j_first = np.repeat(np.cumsum(j_counts) - j_counts, j_counts)
        jets = collection(
            j_counts,
            j_pt,
            pt=j_pt,
            eta=j_eta,
            phi=j_phi,
            mass=j_mass,
            genJetIdx=np.arange(j_pt.size) - j_first,
        )
        v_pt, v_phi, v_event = pt[visible], phi[visible], event[visible]
        met = met_record(
            -np.bincount(v_event, v_pt * np.cos(v_phi), minlength=n),
            -np.bincount(v_event, v_pt * np.sin(v_phi), minlength=n),
            np.bincount(v_event, v_pt, minlength=n),
        )
        return ak.zip({"Muon": muons, "Jet": jets, "MET": met}, depth_limit=1)


class CmsCardDetector:
    """Per-object smearing and efficiencies of the Delphes CMS card (`CmsCard`).

    Muons: tracking efficiency, log-normal pT smearing, identification efficiency and
    isolation (cone sum of the true pT of visible particles). Jets: each GEN jet's energy
    is smeared log-normally with the HCal resolution (pT and mass scale with it), its axis is
    smeared by the tower granularity, the card's jet energy scale factor is applied, jets
    containing a reconstructed muon are removed (UniqueObjectFinder) and pT > jet_pt_min is
    kept. MET: minus the vector sum of reconstructed muons, jets and the unclustered
    particles (|eta| within the calorimeter, energies smeared with the HCal resolution;
    tracked muons not reconstructed as muons enter with their smeared track pT).

    Arguments:
        card: the parametrizations, default the CMS card.
    """

    name = "cms-card"

    def __init__(self, card: CmsCard = CMS_CARD) -> None:
        self.card = card

    def reconstruct(
        self, particles: ak.Array, gen_jets: ak.Array, rng: np.random.Generator
    ) -> ak.Array:
        """See `Detector.reconstruct`."""
        card = self.card
        counts, pt, eta, phi, mass = flat_polar(particles)
        event = np.repeat(np.arange(len(counts)), counts)
        energy = flat_field(particles, "E")
        abs_id = np.abs(flat_field(particles, "pdgId"))
        jet_of = flat_field(particles, "genJetIdx")
        visible = ~np.isin(abs_id, NEUTRINO_PDG_IDS)

        # Muons, in the card's module order.
        mu = np.flatnonzero(abs_id == MUON_PDG_ID)
        tracked = rng.random(mu.size) < card.muon_tracking_efficiency(pt[mu], eta[mu])
        mu_pt = lognormal(rng, pt[mu], card.muon_momentum_resolution(pt[mu], eta[mu]) * pt[mu])
        identified = tracked & (rng.random(mu.size) < card.muon_efficiency(mu_pt, eta[mu]))
        cone = self._cone_sum_pt(mu[identified], counts, pt, eta, phi, visible)
        isolated = np.zeros(mu.size, dtype=bool)
        isolated[identified] = cone <= card.muon_isolation_ratio_max * mu_pt[identified]
        reco_mu = mu[isolated]

        # Jets from GEN jets.
        j_counts, j_pt, j_eta, j_phi, j_mass = flat_polar(gen_jets)
        je = flat_field(gen_jets, "E")
        response = lognormal(rng, je, card.hcal_resolution(je, j_eta)) / je
        width = card.jet_angular_resolution(j_eta)
        r_eta = j_eta + width * rng.standard_normal(je.size)
        r_phi = wrap_phi(j_phi + width * rng.standard_normal(je.size))
        r_pt = j_pt * response
        scale = card.jet_energy_scale(r_pt, r_eta)
        r_pt, r_mass = r_pt * scale, j_mass * response * scale
        j_first = np.cumsum(j_counts) - j_counts
        with_muon = jets_with_muon(j_counts, event[reco_mu], jet_of[reco_mu])
        kept_jet = (
            (r_pt > card.jet_pt_min) & (np.abs(r_eta) <= card.calorimeter_abs_eta_max) & ~with_muon
        )

        # Unclustered: particles in no reconstructed jet and not a reconstructed muon.
        j_event = np.repeat(np.arange(len(j_counts)), j_counts)
        in_kept_jet = np.zeros(pt.size, dtype=bool)
        clustered = np.flatnonzero(jet_of >= 0)
        in_kept_jet[clustered] = kept_jet[j_first[event[clustered]] + jet_of[clustered]]
        calo = (
            visible
            & (abs_id != MUON_PDG_ID)
            & (np.abs(eta) <= card.calorimeter_abs_eta_max)
            & ~in_kept_jet
        )
        calo_pt = lognormal(rng, energy, card.hcal_resolution(energy, eta)) / energy * pt
        track_mu = tracked & ~isolated & ~in_kept_jet[mu]
        u_pt = np.concatenate([np.where(calo, calo_pt, 0.0), mu_pt[track_mu]])
        u_phi = np.concatenate([phi, phi[mu[track_mu]]])
        u_event = np.concatenate([event, event[mu[track_mu]]])

        n = len(counts)
        mu_event = event[reco_mu]
        objects_pt = np.concatenate([u_pt, mu_pt[isolated], r_pt[kept_jet]])
        objects_phi = np.concatenate([u_phi, phi[reco_mu], r_phi[kept_jet]])
        objects_event = np.concatenate([u_event, mu_event, j_event[kept_jet]])
        met_x = -np.bincount(objects_event, objects_pt * np.cos(objects_phi), minlength=n)
        met_y = -np.bincount(objects_event, objects_pt * np.sin(objects_phi), minlength=n)
        sum_et = np.bincount(objects_event, objects_pt, minlength=n)

        muons = collection(
            np.bincount(mu_event, minlength=n),
            mu_pt[isolated],
            pt=mu_pt[isolated],
            eta=eta[reco_mu],
            phi=phi[reco_mu],
            mass=mass[reco_mu],
            charge=flat_field(particles, "charge")[reco_mu],
            genPartIdx=flat_field(particles, "genPartIdx")[reco_mu],
        )
        jets = collection(
            np.bincount(j_event[kept_jet], minlength=n),
            r_pt[kept_jet],
            pt=r_pt[kept_jet],
            eta=r_eta[kept_jet],
            phi=r_phi[kept_jet],
            mass=r_mass[kept_jet],
            genJetIdx=(np.arange(je.size) - j_first[j_event])[kept_jet],
        )
        return ak.zip(
            {"Muon": muons, "Jet": jets, "MET": met_record(met_x, met_y, sum_et)}, depth_limit=1
        )

    def _cone_sum_pt(
        self,
        candidates: np.ndarray,
        counts: np.ndarray,
        pt: np.ndarray,
        eta: np.ndarray,
        phi: np.ndarray,
        visible: np.ndarray,
    ) -> np.ndarray:
        """Scalar pT sum (GeV) of the other visible particles above the isolation threshold in
        a cone around each candidate (flat particle indices), in the candidate's event."""
        event_of = np.repeat(np.arange(len(counts)), counts)
        owner, _, other = same_event_pairs(counts, event_of[candidates])
        d_phi = wrap_phi(phi[other] - phi[candidates][owner])
        d_eta = eta[other] - eta[candidates][owner]
        in_cone = (
            (np.hypot(d_eta, d_phi) < self.card.muon_isolation_dr)
            & (pt[other] > self.card.muon_isolation_pt_min)
            & visible[other]
            & (other != candidates[owner])
        )
        return np.bincount(owner, pt[other] * in_cone, minlength=candidates.size)


DETECTORS: dict[str, Callable[..., Detector]] = {
    CmsParticleDetector.name: CmsParticleDetector,
    CmsCardDetector.name: CmsCardDetector,
    PerfectDetector.name: PerfectDetector,
}


def make_detector(name: str, **kwargs: object) -> Detector:
    """Build the detector registered under `name`, passing `kwargs` to its constructor."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; known detectors: {sorted(DETECTORS)}")
    return DETECTORS[name](**kwargs)
