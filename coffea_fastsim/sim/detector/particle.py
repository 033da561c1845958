"""A particle-level, Delphes-like CMS detector with pileup: tracks, ECAL and HCAL towers,
energy flow, charged-hadron subtraction, rho-area corrected anti-kt jets, isolated muons, MET.

Module order follows ``cards/delphes_card_CMS.tcl`` (delphes/delphes): ParticlePropagator,
tracking efficiencies and momentum smearing, ECal and HCal (energy flow), EFlowMerger,
MuonEfficiency, MuonIsolation, MissingET, FastJetFinder, JetEnergyScale, UniqueObjectFinder;
with pileup, PileUpMerger, TrackPileUpSubtractor, Rho and JetPileUpSubtractor as in
``cards/CMS_PhaseII/CMS_PhaseII_200PU_v03.tcl``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np

from coffea_fastsim.sim.detector.calorimeter import (
    CMS_ECAL,
    CMS_HCAL,
    PERFECT_CALORIMETER,
    CalorimeterCard,
    energy_flow,
)
from coffea_fastsim.sim.detector.jets import (
    CMS_RHO_GRID,
    RhoGrid,
    antikt_areas,
    cluster,
    jets_with_muon,
    rho_median,
)
from coffea_fastsim.sim.detector.pileup import (
    CMS_PILEUP,
    MinBiasPool,
    MinBiasPoolConfig,
    PileupCard,
    make_min_bias_pool,
)
from coffea_fastsim.sim.detector.response import (
    CMS_JET_ENERGY_SCALE,
    CMS_MUON_EFFICIENCY,
    MUON_PDG_ID,
    NEUTRINO_PDG_IDS,
    NO_JET_ENERGY_SCALE,
    JetEnergyScale,
    MuonEfficiency,
    collection,
    flat_field,
    met_record,
    polar_coordinates,
    same_event_pairs,
    wrap_phi,
)
from coffea_fastsim.sim.detector.tracking import (
    CMS_TRACKING,
    PERFECT_TRACKING,
    TrackingCard,
    propagate,
    track,
)

__all__ = [
    "CMS_PARTICLE_CARD",
    "PERFECT_PARTICLE_CARD",
    "CmsParticleCard",
    "CmsParticleDetector",
]


@dataclass(frozen=True)
class CmsParticleCard:
    """Parametrizations of the particle-level detector (modules named per field; GeV, m).

    Arguments:
        tracking: ParticlePropagator, *TrackingEfficiency, *MomentumSmearing.
        ecal: ECal (SimpleCalorimeter, its energy-flow output: photons).
        hcal: HCal (SimpleCalorimeter, its energy-flow output: neutral hadrons).
        muon_efficiency: MuonEfficiency, applied to the smeared track pT.
        muon_isolation_dr: MuonIsolation DeltaRMax.
        muon_isolation_pt_min: MuonIsolation PTMin of the candidates summed in the cone.
        muon_isolation_ratio_max: MuonIsolation PTRatioMax.
        jet_r: FastJetFinder ParameterR (anti-kt).
        jet_pt_min: FastJetFinder JetPTMin, and JetPileUpSubtractor JetPTMin after rho * area.
        jet_abs_eta_max: jets beyond this |eta| are dropped (calorimeter coverage).
        jet_energy_scale: JetEnergyScale.
        pileup: PileUpMerger and TrackPileUpSubtractor (CMS_PhaseII_200PU_v03).
        rho_grid: Rho (FastJetGridMedianEstimator), see
            `coffea_fastsim.sim.detector.jets.CMS_RHO_GRID`.
        gen_jet_match_dr: a jet's genJetIdx is the closest GEN jet within this Delta R.
    """

    tracking: TrackingCard = CMS_TRACKING
    ecal: CalorimeterCard = CMS_ECAL
    hcal: CalorimeterCard = CMS_HCAL
    muon_efficiency: MuonEfficiency = CMS_MUON_EFFICIENCY
    muon_isolation_dr: float = 0.5
    muon_isolation_pt_min: float = 0.5
    muon_isolation_ratio_max: float = 0.25
    jet_r: float = 0.5
    jet_pt_min: float = 20.0
    jet_abs_eta_max: float = 5.0
    jet_energy_scale: JetEnergyScale = CMS_JET_ENERGY_SCALE
    pileup: PileupCard = CMS_PILEUP
    rho_grid: RhoGrid = CMS_RHO_GRID
    gen_jet_match_dr: float = 0.25


CMS_PARTICLE_CARD = CmsParticleCard()
#: Every particle reconstructed exactly: full efficiency, no smearing, no thresholds,
#: per-particle calorimeter cells, no jet energy scale, isolation never fails.
PERFECT_PARTICLE_CARD = CmsParticleCard(
    tracking=PERFECT_TRACKING,
    ecal=PERFECT_CALORIMETER[0],
    hcal=PERFECT_CALORIMETER[1],
    muon_efficiency=MuonEfficiency(0.0, np.inf, 1.0, np.inf, 0.0),
    muon_isolation_ratio_max=np.inf,
    jet_abs_eta_max=np.inf,
    jet_energy_scale=NO_JET_ENERGY_SCALE,
)
#: Pileup interactions reconstructed together (bounds the memory of one step).
_PILEUP_PER_STEP = 2000


@dataclass(frozen=True)
class _Candidates:
    """Energy-flow candidates of a batch, flat, sorted by event."""

    event: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    particle: np.ndarray  # index of the tracked particle, -1 for neutral candidates


class CmsParticleDetector:
    """Particle-level CMS detector simulation (see the module docstring), with pileup.

    Arguments:
        card: the parametrizations, default the CMS card.
        mu: mean number of pileup interactions per event (0: no pileup, no vertex spread).
        pool: the minimum-bias pool (a `MinBiasPool` or its file); default: the cached pool
            of `MinBiasPoolConfig()`, generated on first use.
        rho_correction: subtract rho * area from jets when mu > 0 (JetPileUpSubtractor).
    """

    name = "cms-particle"

    def __init__(
        self,
        card: CmsParticleCard = CMS_PARTICLE_CARD,
        mu: float = 0.0,
        pool: MinBiasPool | str | os.PathLike | None = None,
        rho_correction: bool = True,
    ) -> None:
        if not np.isfinite(mu) or mu < 0:
            raise ValueError(f"mu must be a non-negative number of interactions, got {mu!r}")
        self.card = card
        self.mu = float(mu)
        self.rho_correction = rho_correction
        self._pool = pool

    @property
    def pool(self) -> MinBiasPool:
        """The minimum-bias pool, loaded (and generated if needed) on first use."""
        if not isinstance(self._pool, MinBiasPool):
            path = self._pool or make_min_bias_pool(MinBiasPoolConfig())
            self._pool = MinBiasPool(Path(path))
        return self._pool

    def reconstruct(
        self, particles: ak.Array, gen_jets: ak.Array, rng: np.random.Generator
    ) -> ak.Array:
        """See `coffea_fastsim.sim.detector.registry.Detector.reconstruct`; adds ``Jet.area``,
        ``Pileup`` (nPU) and ``Rho`` (fixedGridRhoFastjetCentral: rho of the range holding
        eta = 0, GeV)."""
        step = max(1, int(_PILEUP_PER_STEP / max(self.mu, 1.0)))
        parts = [
            self._reconstruct(particles[i : i + step], gen_jets[i : i + step], rng)
            for i in range(0, len(particles), step)
        ]
        return parts[0] if len(parts) == 1 else ak.concatenate(parts)

    def _reconstruct(
        self, particles: ak.Array, gen_jets: ak.Array, rng: np.random.Generator
    ) -> ak.Array:
        card = self.card
        n = len(particles)
        hard = {name: flat_field(particles, name) for name in ("px", "py", "pz", "E")}
        pdg_id = flat_field(particles, "pdgId")
        visible = ~np.isin(np.abs(pdg_id), NEUTRINO_PDG_IDS)
        counts = np.bincount(
            np.repeat(np.arange(n), ak.to_numpy(ak.num(particles)))[visible], minlength=n
        )
        event = np.repeat(np.arange(n), counts)
        columns = {
            "px": hard["px"][visible],
            "py": hard["py"][visible],
            "pz": hard["pz"][visible],
            "energy": hard["E"][visible],
            "pdg_id": pdg_id[visible],
            "charge": flat_field(particles, "charge")[visible],
            "gen_index": flat_field(particles, "genPartIdx")[visible],
        }
        pileup = self.mu > 0
        z_primary = card.pileup.vertex_z(rng, n) if pileup else np.zeros(n)
        z_vertex = z_primary[event]
        n_interactions = np.zeros(n, dtype=np.int64)
        from_pileup = np.zeros(event.size, dtype=bool)
        if pileup:
            pu = self.pool.overlay(rng, n, self.mu, card.pileup)
            n_interactions = pu.n_interactions
            extra = {
                "px": pu.px,
                "py": pu.py,
                "pz": pu.pz,
                "energy": pu.energy,
                "pdg_id": pu.pdg_id,
                "charge": pu.charge,
                "gen_index": np.full(pu.event.size, -1),
            }
            # Particles need not be grouped by event: only the candidates are sorted below.
            columns = {k: np.concatenate([v, extra[k]]) for k, v in columns.items()}
            event = np.concatenate([event, pu.event])
            z_vertex = np.concatenate([z_vertex, pu.z_vertex])
            from_pileup = np.concatenate([from_pileup, np.ones(pu.event.size, dtype=bool)])

        px, py, pz, energy = (columns[k] for k in ("px", "py", "pz", "energy"))
        pt, eta, phi, mass = polar_coordinates(px, py, pz, energy)
        abs_id = np.abs(columns["pdg_id"])
        charge = columns["charge"]
        at_calo = propagate(card.tracking, pt, pz, phi, charge, z_vertex)

        charged = np.flatnonzero(charge != 0)
        tracked = np.zeros(pt.size, dtype=bool)
        track_pt = pt.copy()
        tracked[charged], track_pt[charged] = track(
            card.tracking, rng, abs_id[charged], pt[charged], eta[charged]
        )
        track_p = track_pt * np.cosh(eta)
        track_energy = np.where(tracked, np.sqrt(track_p**2 + mass**2), 0.0)
        track_sigma = np.zeros(pt.size)
        track_sigma[tracked] = (
            card.tracking.resolution(abs_id[tracked], pt[tracked], eta[tracked])
            * track_energy[tracked]
        )
        deposit = {
            "eta": at_calo.eta,
            "phi": at_calo.phi,
            "energy": energy,
            "abs_id": abs_id,
            "track_energy": track_energy,
            "track_sigma": track_sigma,
        }
        momentum = (px, py, pz, energy)
        neutrals = [
            energy_flow(calo, rng, event, deposit, momentum) for calo in (card.ecal, card.hcal)
        ]

        # TrackPileUpSubtractor: pileup tracks resolved from the primary vertex are removed.
        kept = tracked & (
            ~from_pileup | (np.abs(z_vertex - z_primary[event]) <= card.pileup.z_resolution)
        )
        tracks = np.flatnonzero(kept)
        scale = track_pt[tracks] / pt[tracks]
        cand_event = np.concatenate([event[tracks], *(c.event for c in neutrals)])
        order = np.argsort(cand_event, kind="stable")
        candidates = _Candidates(
            event=cand_event[order],
            px=np.concatenate([px[tracks] * scale, *(c.px for c in neutrals)])[order],
            py=np.concatenate([py[tracks] * scale, *(c.py for c in neutrals)])[order],
            pz=np.concatenate([pz[tracks] * scale, *(c.pz for c in neutrals)])[order],
            energy=np.concatenate([track_energy[tracks], *(c.energy for c in neutrals)])[order],
            particle=np.concatenate([tracks, np.full(cand_event.size - tracks.size, -1)])[order],
        )
        c_pt, c_eta, c_phi, _ = polar_coordinates(
            candidates.px, candidates.py, candidates.pz, candidates.energy
        )
        rho = rho_median(card.rho_grid, candidates.event, n, c_pt, c_eta, c_phi)
        central = int(card.rho_grid.range_of(np.zeros(1))[0])

        # Muons: tracked muons, identification efficiency, then isolation on the energy flow.
        is_muon = candidates.particle >= 0
        is_muon[is_muon] = abs_id[candidates.particle[is_muon]] == MUON_PDG_ID
        muon = np.flatnonzero(is_muon)
        identified = rng.random(muon.size) < card.muon_efficiency(c_pt[muon], c_eta[muon])
        muon = muon[identified]
        charged_sum, neutral_sum = self._cone_sums(muon, candidates, c_pt, c_eta, c_phi)
        if pileup:
            cone_area = np.pi * card.muon_isolation_dr**2
            neutral_sum = np.maximum(
                neutral_sum - rho[candidates.event[muon], central] * cone_area, 0
            )
        isolated = charged_sum + neutral_sum <= card.muon_isolation_ratio_max * c_pt[muon]
        muon = muon[isolated]

        jets = self._jets(candidates, n, rho if pileup and self.rho_correction else None, muon)
        muon_particle = candidates.particle[muon]
        muon_event = candidates.event[muon]
        muons = collection(
            np.bincount(muon_event, minlength=n),
            c_pt[muon],
            pt=c_pt[muon],
            eta=c_eta[muon],
            phi=c_phi[muon],
            mass=mass[muon_particle],
            charge=charge[muon_particle],
            genPartIdx=columns["gen_index"][muon_particle],
        )
        jet_records = self._match_gen_jets(jets, gen_jets)
        met = met_record(
            -np.bincount(candidates.event, candidates.px, minlength=n),
            -np.bincount(candidates.event, candidates.py, minlength=n),
            np.bincount(candidates.event, c_pt, minlength=n),
        )
        return ak.zip(
            {
                "Muon": muons,
                "Jet": jet_records,
                "MET": met,
                "Pileup": ak.zip({"nPU": n_interactions}),
                "Rho": ak.zip({"fixedGridRhoFastjetCentral": rho[:, central]}),
            },
            depth_limit=1,
        )

    def _cone_sums(
        self,
        targets: np.ndarray,
        candidates: _Candidates,
        pt: np.ndarray,
        eta: np.ndarray,
        phi: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Charged and neutral scalar pT sums (GeV) of the other candidates above the
        isolation threshold in the isolation cone around each target candidate."""
        counts = np.bincount(candidates.event, minlength=int(candidates.event.max(initial=-1)) + 1)
        owner, _, other = same_event_pairs(counts, candidates.event[targets])
        d_r = np.hypot(eta[other] - eta[targets][owner], wrap_phi(phi[other] - phi[targets][owner]))
        in_cone = (
            (d_r < self.card.muon_isolation_dr)
            & (pt[other] > self.card.muon_isolation_pt_min)
            & (other != targets[owner])
        )
        is_charged = candidates.particle[other] >= 0
        charged = np.bincount(owner, pt[other] * (in_cone & is_charged), minlength=targets.size)
        neutral = np.bincount(owner, pt[other] * (in_cone & ~is_charged), minlength=targets.size)
        return charged, neutral

    def _jets(
        self, candidates: _Candidates, n: int, rho: np.ndarray | None, muons: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Anti-kt jets of the candidates: rho * area subtraction (if `rho` is given), jet
        energy scale, thresholds, and removal of jets holding an isolated muon."""
        card = self.card
        jets, jet_of = cluster(
            candidates.px,
            candidates.py,
            candidates.pz,
            candidates.energy,
            np.bincount(candidates.event, minlength=n),
            card.jet_r,
            card.jet_pt_min,
        )
        j_counts = ak.to_numpy(ak.num(jets))
        p4 = [ak.to_numpy(ak.flatten(jets[c])) for c in ("px", "py", "pz", "E")]
        pt, eta, phi, _ = polar_coordinates(*p4)
        area = antikt_areas(j_counts, eta, phi, card.jet_r)
        j_event = np.repeat(np.arange(n), j_counts)
        factor = np.ones(pt.size)
        if rho is not None:
            offset = rho[j_event, card.rho_grid.range_of(eta)] * area
            factor = np.maximum(pt - offset, 0.0) / pt
        with np.errstate(divide="ignore", invalid="ignore"):
            factor *= card.jet_energy_scale(pt * factor, eta)
        factor[~np.isfinite(factor)] = 0.0
        pt, mass = pt * factor, polar_coordinates(*(c * factor for c in p4))[3]
        with_muon = jets_with_muon(j_counts, candidates.event[muons], jet_of[muons])
        kept = (pt > card.jet_pt_min) & (np.abs(eta) <= card.jet_abs_eta_max) & ~with_muon
        return {
            "event": j_event[kept],
            "pt": pt[kept],
            "eta": eta[kept],
            "phi": phi[kept],
            "mass": mass[kept],
            "area": area[kept],
            "n": np.asarray(n),
        }

    def _match_gen_jets(self, jets: dict[str, np.ndarray], gen_jets: ak.Array) -> ak.Array:
        """Jet records with genJetIdx: the closest GEN jet within gen_jet_match_dr, else -1."""
        n = int(jets["n"])
        g_counts = ak.to_numpy(ak.num(gen_jets))
        _, g_eta, g_phi, _ = polar_coordinates(
            *(ak.to_numpy(ak.flatten(gen_jets[c])) for c in ("px", "py", "pz", "E"))
        )
        event = jets["event"]
        owner, offset, other = same_event_pairs(g_counts, event)
        d_r = np.hypot(
            g_eta[other] - jets["eta"][owner], wrap_phi(g_phi[other] - jets["phi"][owner])
        )
        best = np.full(event.size, np.inf)
        np.minimum.at(best, owner, d_r)
        is_best = (d_r == best[owner]) & (d_r < self.card.gen_jet_match_dr)
        gen_index = np.full(event.size, -1)
        gen_index[owner[is_best]] = offset[is_best]
        return collection(
            np.bincount(event, minlength=n),
            jets["pt"],
            pt=jets["pt"],
            eta=jets["eta"],
            phi=jets["phi"],
            mass=jets["mass"],
            area=jets["area"],
            genJetIdx=gen_index,
        )
