"""Calorimeters and energy flow: particles deposit their energy in ECAL and HCAL towers on the
card's eta-phi grids, tower energies are smeared and thresholded, and the energy a tower holds
beyond the tracks pointing at it becomes a neutral particle-flow candidate.

References:
    Delphes modules SimpleCalorimeter ECal and HCal and EFlowMerger of
    ``cards/delphes_card_CMS.tcl`` (delphes/delphes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from coffea_fastsim.sim.detector.response import CaloResolution, lognormal

__all__ = [
    "CMS_ECAL",
    "CMS_HCAL",
    "PERFECT_CALORIMETER",
    "CalorimeterCard",
    "NeutralCandidates",
    "TowerGrid",
    "energy_flow",
]


@dataclass(frozen=True)
class TowerGrid:
    """An eta-phi tower grid: rings between consecutive eta edges, each cut in equal phi bins.

    Arguments:
        eta_edges: increasing eta edges of the rings, shape (n_rings + 1,).
        n_phi: number of phi bins of each ring, shape (n_rings,).
    """

    eta_edges: tuple[float, ...]
    n_phi: tuple[int, ...]

    @classmethod
    def from_card(cls, edges: Iterable[tuple[float, int]]) -> TowerGrid:
        """Grid from Delphes ``EtaPhiBins`` entries (eta edge, phi bins of the ring that ends
        at this edge), in any order."""
        table = dict(sorted((round(eta, 6), n) for eta, n in edges))
        etas = tuple(table)
        return cls(etas, tuple(table[eta] for eta in etas[1:]))

    @property
    def n_towers(self) -> int:
        """Number of towers."""
        return int(sum(self.n_phi))

    def tower(self, eta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tower index, ring index, inside the grid) of points (eta, phi)."""
        edges = np.asarray(self.eta_edges)
        ring = np.searchsorted(edges, eta, side="left") - 1
        inside = (ring >= 0) & (ring < edges.size - 1)
        ring = np.clip(ring, 0, edges.size - 2)
        n_phi = np.asarray(self.n_phi)[ring]
        phi_bin = np.minimum(((phi + np.pi) / (2 * np.pi) * n_phi).astype(np.int64), n_phi - 1)
        offset = np.concatenate([[0], np.cumsum(self.n_phi)[:-1]])
        return offset[ring] + phi_bin, ring, inside

    def cell(self, tower: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(eta_low, eta_high, phi_low, phi_high) of towers."""
        ring = np.searchsorted(np.cumsum(self.n_phi), tower, side="right")
        offset = np.concatenate([[0], np.cumsum(self.n_phi)[:-1]])
        width = 2 * np.pi / np.asarray(self.n_phi)[ring]
        phi_low = -np.pi + (tower - offset[ring]) * width
        edges = np.asarray(self.eta_edges)
        return edges[ring], edges[ring + 1], phi_low, phi_low + width


def _ecal_grid() -> TowerGrid:
    """ECal EtaPhiBins: 0.0174 x 1 degree up to |eta| = 2.958, the HF rings above."""
    barrel = [(i * 0.0174, 360) for i in range(-85, 87)]
    endcaps = [(-2.958 + i * 0.0174, 360) for i in range(1, 85)]
    endcaps += [(1.4964 + i * 0.0174, 360) for i in range(1, 85)]
    forward = (5.0, 4.7, 4.525, 4.35, 4.175, 4.0, 3.825, 3.65, 3.475, 3.3, 3.125, 2.958)
    hf = [(sign * eta, 36) for eta in forward for sign in (-1, 1) if sign > 0 or eta != 2.958]
    return TowerGrid.from_card([*barrel, *endcaps, *hf, (-2.958, 36)])


def _hcal_grid() -> TowerGrid:
    """HCal EtaPhiBins: 5 degree towers in the barrel, 10 degree to |eta| = 4.525, 20 beyond."""
    five = [(round(i * 0.087, 3), 72) for i in range(-18, 20)]
    ten_abs = (1.74, 1.83, 1.93, 2.043, 2.172, 2.322, 2.5, 2.65, 2.868, 2.95, 3.125, 3.3)
    ten_abs += (3.475, 3.65, 3.825, 4.0, 4.175, 4.35)
    ten = [(s * eta, 36) for eta in ten_abs for s in (-1, 1)] + [(-1.653, 36), (4.525, 36)]
    twenty = [(-5.0, 18), (-4.7, 18), (-4.525, 18), (4.7, 18), (5.0, 18)]
    return TowerGrid.from_card([*five, *ten, *twenty])


@dataclass(frozen=True)
class CalorimeterCard:
    """One Delphes SimpleCalorimeter module.

    Arguments:
        grid: the towers (EtaPhiBins); None gives every particle its own cell, located at the
            particle, which makes the calorimeter granularity perfect.
        resolution: ResolutionFormula, sigma(E) in GeV at the tower centre's eta.
        fractions: EnergyFraction entries (|pdgId|, fraction of the energy deposited here);
            pdgId 0 is the default for particles not listed.
        energy_min: EnergyMin, GeV: towers below are zeroed, neutral excesses must exceed it.
        significance_min: EnergySignificanceMin, in units of sigma.
        smear_tower_center: SmearTowerCenter: candidates are placed uniformly in the tower.
    """

    grid: TowerGrid | None
    resolution: CaloResolution
    fractions: tuple[tuple[int, float], ...]
    energy_min: float
    significance_min: float
    smear_tower_center: bool = True

    def fraction(self, abs_id: np.ndarray) -> np.ndarray:
        """Fraction of the energy of particles with |pdgId| `abs_id` deposited here."""
        table = dict(self.fractions)
        ids = np.array(sorted(i for i in table if i != 0))
        values = np.array([table[i] for i in ids], dtype=float)
        position = np.minimum(np.searchsorted(ids, abs_id), ids.size - 1)
        return np.where(ids[position] == abs_id, values[position], table[0])


_INVISIBLE = ((12, 0.0), (13, 0.0), (14, 0.0), (16, 0.0), (1000022, 0.0), (1000023, 0.0))

CMS_ECAL = CalorimeterCard(
    grid=_ecal_grid(),
    resolution=CaloResolution(
        abs_eta_max=(1.5, 2.5, 5.0),
        constant=(0.008, 0.008, 0.107),
        stochastic=(0.11, 0.11, 2.08),
        noise=(0.40, 0.40, 0.0),
        eta_shape=((1.0, 0.64, 0.0), (2.16, 5.6, 2.0), (1.0, 0.0, 0.0)),
    ),
    fractions=((0, 0.0), (11, 1.0), (22, 1.0), (111, 1.0), *_INVISIBLE, (310, 0.3), (3122, 0.3)),
    energy_min=0.5,
    significance_min=2.0,
)
CMS_HCAL = CalorimeterCard(
    grid=_hcal_grid(),
    resolution=CaloResolution(
        abs_eta_max=(3.0, 5.0), constant=(0.050, 0.130), stochastic=(1.50, 2.70), noise=(0.0, 0.0)
    ),
    fractions=((0, 1.0), (11, 0.0), (22, 0.0), (111, 0.0), *_INVISIBLE, (310, 0.7), (3122, 0.7)),
    energy_min=1.0,
    significance_min=2.0,
)


def perfect_calorimeter(card: CalorimeterCard) -> CalorimeterCard:
    """`card` with per-particle cells, no smearing and no thresholds (same energy fractions)."""
    exact = CaloResolution(abs_eta_max=(np.inf,), constant=(0.0,), stochastic=(0.0,), noise=(0.0,))
    return CalorimeterCard(None, exact, card.fractions, 0.0, 0.0, smear_tower_center=False)


#: Perfect ECAL and HCAL.
PERFECT_CALORIMETER = (perfect_calorimeter(CMS_ECAL), perfect_calorimeter(CMS_HCAL))


@dataclass(frozen=True)
class NeutralCandidates:
    """Neutral energy-flow candidates, flat, in event order.

    Arguments:
        event: event index, shape (n,).
        px, py, pz, energy: four-momentum in GeV, shape (n,).
    """

    event: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray


def energy_flow(
    card: CalorimeterCard,
    rng: np.random.Generator,
    event: np.ndarray,
    deposit: dict[str, np.ndarray],
    momentum: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> NeutralCandidates:
    """Fill the towers and return the neutral excesses as candidates.

    Per tower, as SimpleCalorimeter::FinalizeTower: the summed deposit E is smeared
    log-normally with sigma(E); a tower below energy_min or significance_min sigma is zeroed;
    the neutral excess E - E_tracks (tracks weighted by their fraction here) is a candidate if
    it exceeds energy_min and significance_min sqrt(sigma^2 + sigma_tracks^2).

    Arguments:
        card: the calorimeter.
        rng: the only source of randomness.
        event: event index of every particle, shape (n,).
        deposit: per particle, shape (n,): ``eta`` and ``phi`` where it reaches the
            calorimeter, ``energy`` (GeV), ``abs_id`` (|pdgId|), ``track_energy`` (GeV, 0 if
            not tracked) and ``track_sigma`` (GeV).
        momentum: (px, py, pz, E) of the particles in GeV, used for per-particle cells.
    """
    fraction = card.fraction(deposit["abs_id"])
    if card.grid is None:
        keep = np.flatnonzero(fraction > 0)
        key = keep
    else:
        tower, _, inside = card.grid.tower(deposit["eta"], deposit["phi"])
        keep = np.flatnonzero((fraction > 0) & inside)
        key = event[keep] * card.grid.n_towers + tower[keep]
    cells, inverse = np.unique(key, return_inverse=True)
    f = fraction[keep]
    true_energy = np.bincount(inverse, f * deposit["energy"][keep])
    track_energy = np.bincount(inverse, f * deposit["track_energy"][keep])
    track_variance = np.bincount(inverse, (f * deposit["track_sigma"][keep]) ** 2)
    first = np.zeros(cells.size, dtype=np.int64)
    first[inverse[::-1]] = keep[::-1]
    if card.grid is None:
        cell_eta = deposit["eta"][first]
    else:
        eta_low, eta_high, phi_low, phi_high = card.grid.cell(cells % card.grid.n_towers)
        cell_eta = (eta_low + eta_high) / 2
    energy = lognormal(rng, true_energy, card.resolution(true_energy, cell_eta))
    sigma = card.resolution(energy, cell_eta)
    energy[(energy < card.energy_min) | (energy < card.significance_min * sigma)] = 0.0
    neutral = np.maximum(energy - track_energy, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        significance = neutral / np.sqrt(sigma**2 + track_variance)
    selected = (neutral > card.energy_min) & (significance > card.significance_min)
    neutral = neutral[selected]
    if card.grid is None:
        source = first[selected]
        scale = neutral / momentum[3][source]
        px, py, pz = (component[source] * scale for component in momentum[:3])
        return NeutralCandidates(event[source], px, py, pz, neutral)
    low, high, p_low, p_high = (x[selected] for x in (eta_low, eta_high, phi_low, phi_high))
    if card.smear_tower_center:
        eta = rng.uniform(low, high)
        phi = rng.uniform(p_low, p_high)
    else:
        eta, phi = (low + high) / 2, (p_low + p_high) / 2
    pt = neutral / np.cosh(eta)
    cell_event = cells[selected] // card.grid.n_towers
    return NeutralCandidates(
        cell_event, pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), neutral
    )
