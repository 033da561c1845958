"""Tracking: propagation of particles to the calorimeter surface in the solenoid field, and
track reconstruction (efficiency and momentum smearing per particle type).

References:
    Delphes modules ParticlePropagator, *TrackingEfficiency and *MomentumSmearing of
    ``cards/delphes_card_CMS.tcl`` (delphes/delphes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from coffea_fastsim.sim.detector.response import (
    MUON_PDG_ID,
    EtaPtTable,
    TrackResolution,
    lognormal,
    wrap_phi,
)

__all__ = ["CMS_TRACKING", "PERFECT_TRACKING", "Propagation", "TrackingCard", "propagate", "track"]

ELECTRON_PDG_ID = 11
#: Transverse momentum (GeV) of a unit charge on a 1 m radius in a 1 T field.
_GEV_PER_TESLA_METRE = 0.299792458


@dataclass(frozen=True)
class TrackingCard:
    """Tracker of ``cards/delphes_card_CMS.tcl`` (modules named per field); pT in GeV.

    Arguments:
        radius: ParticlePropagator Radius, m (the calorimeter's inner surface).
        half_length: ParticlePropagator HalfLength, m.
        bz: ParticlePropagator Bz, T.
        hadron_efficiency: ChargedHadronTrackingEfficiency.
        electron_efficiency: ElectronTrackingEfficiency.
        muon_efficiency: MuonTrackingEfficiency.
        hadron_resolution: ChargedHadronMomentumSmearing, sigma(pT)/pT.
        electron_resolution: ElectronMomentumSmearing, sigma(pT)/pT.
        muon_resolution: MuonMomentumSmearing, sigma(pT)/pT.
    """

    radius: float = 1.29
    half_length: float = 3.0
    bz: float = 3.8
    hadron_efficiency: EtaPtTable = field(
        default_factory=lambda: EtaPtTable(
            (1.5, 2.5), (0.1, 1.0, np.inf), ((0.70, 0.95), (0.60, 0.85))
        )
    )
    electron_efficiency: EtaPtTable = field(
        default_factory=lambda: EtaPtTable(
            (1.5, 2.5), (0.1, 1.0, 1.0e2, np.inf), ((0.73, 0.95, 0.99), (0.50, 0.83, 0.90))
        )
    )
    muon_efficiency: EtaPtTable = field(
        default_factory=lambda: EtaPtTable(
            (1.5, 2.5), (0.1, 1.0, np.inf), ((0.75, 0.99), (0.70, 0.98))
        )
    )
    hadron_resolution: TrackResolution = field(
        default_factory=lambda: TrackResolution(
            (0.5, 1.5, 2.5), (0.01, 0.015, 0.025), (1.5e-4, 2.5e-4, 5.5e-4)
        )
    )
    electron_resolution: TrackResolution = field(
        default_factory=lambda: TrackResolution(
            (0.5, 1.5, 2.5), (0.03, 0.05, 0.15), (1.3e-3, 1.7e-3, 3.1e-3)
        )
    )
    muon_resolution: TrackResolution = field(
        default_factory=lambda: TrackResolution(
            (0.5, 1.5, 2.5), (0.01, 0.015, 0.025), (1.0e-4, 1.5e-4, 3.5e-4)
        )
    )

    def efficiency(self, abs_id: np.ndarray, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Tracking efficiency of charged particles with |pdgId| `abs_id`."""
        return np.select(
            [abs_id == ELECTRON_PDG_ID, abs_id == MUON_PDG_ID],
            [self.electron_efficiency(pt, eta), self.muon_efficiency(pt, eta)],
            self.hadron_efficiency(pt, eta),
        )

    def resolution(self, abs_id: np.ndarray, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Relative pT resolution of tracks of particles with |pdgId| `abs_id`."""
        return np.select(
            [abs_id == ELECTRON_PDG_ID, abs_id == MUON_PDG_ID],
            [self.electron_resolution(pt, eta), self.muon_resolution(pt, eta)],
            self.hadron_resolution(pt, eta),
        )


CMS_TRACKING = TrackingCard()

_EVERYWHERE = EtaPtTable((np.inf,), (0.0, np.inf), ((1.0,),))
_EXACT = TrackResolution((np.inf,), (0.0,), (0.0,))
#: Every charged particle tracked with its true momentum, no field.
PERFECT_TRACKING = TrackingCard(
    bz=0.0,
    hadron_efficiency=_EVERYWHERE,
    electron_efficiency=_EVERYWHERE,
    muon_efficiency=_EVERYWHERE,
    hadron_resolution=_EXACT,
    electron_resolution=_EXACT,
    muon_resolution=_EXACT,
)


@dataclass(frozen=True)
class Propagation:
    """Where particles reach the calorimeter surface, seen from the nominal interaction point.

    Arguments:
        eta: pseudorapidity of the impact point, shape (n,).
        phi: azimuth of the impact point, shape (n,).
    """

    eta: np.ndarray
    phi: np.ndarray


def propagate(
    card: TrackingCard,
    pt: np.ndarray,
    pz: np.ndarray,
    phi: np.ndarray,
    charge: np.ndarray,
    z_vertex: np.ndarray,
) -> Propagation:
    """Propagate particles from (0, 0, z_vertex) on helices (straight lines if neutral) to the
    cylinder of the card's radius and half-length, as Delphes' ParticlePropagator.

    Arguments:
        card: the field and the cylinder.
        pt, pz: momentum components in GeV, shape (n,).
        phi: azimuth of the momentum at the vertex, shape (n,).
        charge: electric charge in units of e, shape (n,).
        z_vertex: production vertex z in m, shape (n,).
    """
    bend = _GEV_PER_TESLA_METRE * card.bz * np.abs(charge)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_curl = np.where(bend > 0, pt / np.where(bend > 0, bend, 1.0), np.inf)
        # Transverse path length to the barrel (infinite for loopers) and to the endcap.
        to_barrel = np.where(
            2 * r_curl >= card.radius,
            np.where(
                np.isfinite(r_curl),
                2 * r_curl * np.arcsin(np.minimum(card.radius / (2 * r_curl), 1.0)),
                card.radius,
            ),
            np.inf,
        )
        to_endcap = np.where(
            pz != 0, (card.half_length - np.sign(pz) * z_vertex) * pt / np.abs(pz), np.inf
        )
        path = np.minimum(to_barrel, to_endcap)
        turn = np.where(np.isfinite(r_curl), path / r_curl, 0.0)
        distance = np.where(np.isfinite(r_curl), np.abs(2 * r_curl * np.sin(turn / 2)), path)
        z_hit = z_vertex + path * pz / pt
        eta = np.arcsinh(z_hit / distance)
    return Propagation(eta=eta, phi=wrap_phi(phi - np.sign(charge) * turn / 2))


def track(
    card: TrackingCard,
    rng: np.random.Generator,
    abs_id: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Reconstruct charged particles as tracks.

    Arguments:
        card: efficiencies and resolutions.
        rng: the only source of randomness.
        abs_id: |pdgId| of the charged particles, shape (n,).
        pt, eta: their true pT (GeV) and pseudorapidity, shape (n,).

    Returns:
        tracked: whether each particle gives a track, shape (n,).
        track_pt: the log-normally smeared track pT in GeV (the true pT if not tracked).
    """
    tracked = rng.random(pt.size) < card.efficiency(abs_id, pt, eta)
    sigma = card.resolution(abs_id, pt, eta) * pt
    smeared = lognormal(rng, np.where(tracked, pt, 1.0), np.where(tracked, sigma, 0.0))
    return tracked, np.where(tracked, smeared, pt)
