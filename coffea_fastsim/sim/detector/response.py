"""Building blocks of the detector models: the parametrized efficiencies and resolutions of
the Delphes cards, log-normal smearing, and the jagged RECO records (GeV throughout)."""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

__all__ = [
    "CMS_JET_ENERGY_SCALE",
    "MUON_PDG_ID",
    "NEUTRINO_PDG_IDS",
    "NO_JET_ENERGY_SCALE",
    "CaloResolution",
    "EtaPtTable",
    "JetEnergyScale",
    "MuonEfficiency",
    "TrackResolution",
    "bin_index",
    "collection",
    "flat_field",
    "flat_polar",
    "lognormal",
    "met_record",
    "polar_coordinates",
    "same_event_pairs",
    "wrap_phi",
]

NEUTRINO_PDG_IDS: tuple[int, ...] = (12, 14, 16)
MUON_PDG_ID = 13


def polar_coordinates(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (pt, eta, phi, mass) of Cartesian four-momenta (GeV); mass of spacelike -> 0."""
    pt = np.hypot(px, py)
    eta = np.arcsinh(np.divide(pz, pt, out=np.zeros_like(pz), where=pt > 0))
    phi = np.arctan2(py, px)
    mass = np.sqrt(np.maximum(energy**2 - px**2 - py**2 - pz**2, 0.0))
    return pt, eta, phi, mass


def bin_index(abs_eta_max: tuple[float, ...], abs_eta: np.ndarray) -> np.ndarray:
    """Index of the |eta| bin (previous edge, edge], len(abs_eta_max) beyond the last edge."""
    return np.searchsorted(np.asarray(abs_eta_max), abs_eta, side="left")


@dataclass(frozen=True)
class EtaPtTable:
    """Piecewise-constant function of |eta| and pT, zero outside the table.

    Arguments:
        abs_eta_max: upper |eta| edges of the bins; the first bin starts at |eta| = 0.
        pt_edges: pT edges in GeV; bins are (low, high], as in a Delphes formula.
        values: values[i][j] for |eta| bin i and pT bin j.
    """

    abs_eta_max: tuple[float, ...]
    pt_edges: tuple[float, ...]
    values: tuple[tuple[float, ...], ...]

    def __call__(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        table = np.pad(np.asarray(self.values, dtype=float), ((0, 1), (1, 1)))
        i = bin_index(self.abs_eta_max, np.abs(eta))
        j = np.searchsorted(np.asarray(self.pt_edges), pt, side="left")
        return table[i, j]


@dataclass(frozen=True)
class TrackResolution:
    """Relative pT resolution sigma(pT)/pT = sqrt(a^2 + (b pT)^2) in |eta| bins, 0 beyond.

    Arguments:
        abs_eta_max: upper |eta| edges of the bins.
        constant: a per bin.
        slope: b per bin, in 1/GeV.
    """

    abs_eta_max: tuple[float, ...]
    constant: tuple[float, ...]
    slope: tuple[float, ...]

    def __call__(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        i = bin_index(self.abs_eta_max, np.abs(eta))
        a = np.append(self.constant, 0.0)[i]
        b = np.append(self.slope, 0.0)[i]
        return np.sqrt(a**2 + (b * pt) ** 2)


@dataclass(frozen=True)
class CaloResolution:
    """Energy resolution sigma(E) = f(|eta|) sqrt((c E)^2 + s^2 E + n^2) in GeV, in |eta| bins,
    0 beyond; the shape factor is f = a + b (|eta| - eta0)^2 (1 when `eta_shape` is empty).

    Arguments:
        abs_eta_max: upper |eta| edges of the bins.
        constant: c per bin.
        stochastic: s per bin, in sqrt(GeV).
        noise: n per bin, in GeV.
        eta_shape: (a, b, eta0) per bin, or () for f = 1.
    """

    abs_eta_max: tuple[float, ...]
    constant: tuple[float, ...]
    stochastic: tuple[float, ...]
    noise: tuple[float, ...]
    eta_shape: tuple[tuple[float, float, float], ...] = ()

    def __call__(self, energy: np.ndarray, eta: np.ndarray) -> np.ndarray:
        abs_eta = np.abs(eta)
        i = bin_index(self.abs_eta_max, abs_eta)
        c = np.append(self.constant, 0.0)[i]
        s = np.append(self.stochastic, 0.0)[i]
        n = np.append(self.noise, 0.0)[i]
        sigma = np.sqrt((c * energy) ** 2 + s**2 * energy + n**2)
        if not self.eta_shape:
            return sigma
        a, b, eta0 = (np.append(column, 0.0)[i] for column in zip(*self.eta_shape, strict=True))
        return (a + b * (abs_eta - eta0) ** 2) * sigma


@dataclass(frozen=True)
class MuonEfficiency:
    """Muon identification efficiency: `plateau` for pT_min < pT <= knee and |eta| <= abs_eta_max,
    falling as plateau * exp(-(pT - knee) * slope) above the knee, 0 elsewhere.

    Arguments:
        pt_min: threshold in GeV.
        abs_eta_max: acceptance.
        plateau: efficiency on the plateau.
        knee: pT in GeV where the high-pT fall-off starts.
        slope: fall-off rate in 1/GeV.
    """

    pt_min: float
    abs_eta_max: float
    plateau: float
    knee: float
    slope: float

    def __call__(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        inside = (pt > self.pt_min) & (np.abs(eta) <= self.abs_eta_max)
        falloff = np.exp(-np.maximum(pt - self.knee, 0.0) * self.slope)
        return np.where(inside, self.plateau * falloff, 0.0)


#: The CMS card's MuonEfficiency module (identification after tracking).
CMS_MUON_EFFICIENCY = MuonEfficiency(
    pt_min=10.0, abs_eta_max=2.4, plateau=0.95, knee=1.0e3, slope=5.0e-4
)


@dataclass(frozen=True)
class JetEnergyScale:
    """Delphes JetEnergyScale: the jet four-momentum is multiplied by
    sqrt((offset - slope |eta|)^2 / pT + 1), pT in GeV.

    Arguments:
        offset: GeV^(1/2).
        slope: GeV^(1/2) per unit of |eta|.
    """

    offset: float = 2.5
    slope: float = 0.15

    def __call__(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """The factor of jets of transverse momentum pt (GeV) and pseudorapidity eta."""
        return np.sqrt((self.offset - self.slope * np.abs(eta)) ** 2 / pt + 1.0)


#: The JetEnergyScale of the Delphes CMS card.
CMS_JET_ENERGY_SCALE = JetEnergyScale()
#: No correction: the factor is 1.
NO_JET_ENERGY_SCALE = JetEnergyScale(offset=0.0, slope=0.0)


def same_event_pairs(
    counts: np.ndarray, event: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (target, object of the target's event), for cone sums and matching.

    Arguments:
        counts: objects per event, shape (n_events,); the objects are flat, sorted by event.
        event: event of each target, shape (n_targets,).

    Returns:
        (owner, offset, other), each shape (n_pairs,): the target of the pair, the
        object's position within its event and its flat index.
    """
    first = np.cumsum(counts) - counts
    lengths = counts[event]
    owner = np.repeat(np.arange(event.size), lengths)
    offset = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, offset, first[event][owner] + offset


def lognormal(rng: np.random.Generator, mean: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Log-normal draws with the given mean and standard deviation (Delphes ``LogNormal``)."""
    b = np.sqrt(np.log1p((sigma / mean) ** 2))
    return mean * np.exp(b * rng.standard_normal(mean.shape) - 0.5 * b**2)


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Azimuth wrapped into [-pi, pi)."""
    return (phi + np.pi) % (2.0 * np.pi) - np.pi


def flat_field(array: ak.Array, name: str) -> np.ndarray:
    """Field `name` of a jagged record array, flattened to one numpy array."""
    return ak.to_numpy(ak.flatten(array[name], axis=1))


def flat_polar(
    vectors: ak.Array,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counts per event and flat (pt, eta, phi, mass) of jagged Cartesian four-momenta."""
    counts = ak.to_numpy(ak.num(vectors, axis=1))
    return counts, *polar_coordinates(*(flat_field(vectors, f) for f in ("px", "py", "pz", "E")))


def collection(counts: np.ndarray, order_key: np.ndarray, **fields: np.ndarray) -> ak.Array:
    """Jagged records from flat per-object arrays, sorted by decreasing order_key per event."""
    jagged = ak.unflatten(ak.zip(fields, depth_limit=1), counts)
    keys = ak.unflatten(order_key, counts)
    return jagged[ak.argsort(keys, axis=1, ascending=False)]


def met_record(px: np.ndarray, py: np.ndarray, sum_et: np.ndarray) -> ak.Array:
    """Per-event MET records (pt, phi, sumEt) from its components and scalar sum (GeV)."""
    return ak.zip({"pt": np.hypot(px, py), "phi": np.arctan2(py, px), "sumEt": sum_et})
