"""Jets: anti-kt clustering of many events at once (FastJet), jet areas, and the median
pileup density rho on a fixed eta-phi grid.

References:
    Cacciari, Salam, Soyez, "The anti-k_t jet clustering algorithm", JHEP 04 (2008) 063;
    "The catchment area of jets", JHEP 04 (2008) 005; Delphes modules FastJetFinder,
    FastJetGridMedianEstimator Rho and JetPileUpSubtractor of
    ``cards/CMS_PhaseII/CMS_PhaseII_200PU_v03.tcl`` (delphes/delphes).
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from coffea_fastsim.sim.detector.response import wrap_phi

__all__ = [
    "CMS_RHO_GRID",
    "RhoGrid",
    "antikt_areas",
    "cluster",
    "jets_with_muon",
    "rho_median",
]


def cluster(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    energy: np.ndarray,
    counts: np.ndarray,
    r: float,
    min_pt: float,
) -> tuple[ak.Array, np.ndarray]:
    """Anti-kt jets of flat inputs grouped in events by `counts` (inputs in event order).

    Arguments:
        px, py, pz, energy: input four-momenta in GeV, shape (n,).
        counts: inputs per event, shape (n_events,).
        r: distance parameter.
        min_pt: jet pT threshold in GeV.

    Returns:
        The jets per event sorted by decreasing pT (Momentum4D px, py, pz, E in GeV) and, per
        input, the index of its jet in its event (-1 if in none), shape (n,).
    """
    import fastjet

    inputs = ak.unflatten(
        ak.zip({"px": px, "py": py, "pz": pz, "E": energy}, with_name="Momentum4D"), counts
    )
    sequence = fastjet.ClusterSequence(inputs, fastjet.JetDefinition(fastjet.antikt_algorithm, r))
    jets = sequence.inclusive_jets(min_pt=min_pt)
    constituents = sequence.constituent_index(min_pt=min_pt)
    order = ak.argsort(np.hypot(jets.px, jets.py), axis=1, ascending=False)
    jets = ak.zip({c: jets[c][order] for c in ("px", "py", "pz", "E")}, with_name="Momentum4D")
    constituents = constituents[order]
    owner = ak.broadcast_arrays(ak.local_index(constituents, axis=1), constituents)[0]
    event_first = np.cumsum(counts) - counts
    member = ak.flatten(constituents + ak.Array(event_first), axis=None)
    jet_of = np.full(px.size, -1)
    jet_of[ak.to_numpy(member)] = ak.to_numpy(ak.flatten(owner, axis=None))
    return jets, jet_of


def jets_with_muon(
    jet_counts: np.ndarray, muon_event: np.ndarray, muon_jet: np.ndarray
) -> np.ndarray:
    """Which jets hold a reconstructed muon (Delphes UniqueObjectFinder removes them).

    Arguments:
        jet_counts: jets per event, shape (n_events,); the jets are flat, sorted by event.
        muon_event: event of each muon, shape (n_muons,).
        muon_jet: index within its event of the jet each muon was clustered into, -1 for
            none, shape (n_muons,).

    Returns:
        shape (sum(jet_counts),), bool.
    """
    first = np.cumsum(jet_counts) - jet_counts
    with_muon = np.zeros(int(jet_counts.sum()), dtype=bool)
    in_jet = muon_jet >= 0
    with_muon[first[muon_event[in_jet]] + muon_jet[in_jet]] = True
    return with_muon


def antikt_areas(counts: np.ndarray, eta: np.ndarray, phi: np.ndarray, r: float) -> np.ndarray:
    """Areas of anti-kt jets in the eta-phi plane: a disc of radius r less the lenses that
    harder jets closer than 2 r take from it (the hard-jet limit of the anti-kt area).

    Arguments:
        counts: jets per event, shape (n_events,); jets sorted by decreasing pT per event.
        eta, phi: jet axes, shape (n_jets,).
        r: distance parameter.

    Returns:
        Areas, shape (n_jets,).
    """
    local = ak.unflatten(np.arange(eta.size), counts)
    pairs = ak.argcombinations(local, 2, axis=1)
    first = np.cumsum(counts) - counts
    event = np.repeat(np.arange(counts.size), ak.to_numpy(ak.num(pairs)))
    harder = ak.to_numpy(ak.flatten(pairs["0"])) + first[event]
    softer = ak.to_numpy(ak.flatten(pairs["1"])) + first[event]
    distance = np.hypot(eta[harder] - eta[softer], wrap_phi(phi[harder] - phi[softer]))
    half = np.minimum(distance / (2 * r), 1.0)
    lens = 2 * r**2 * (np.arccos(half) - half * np.sqrt(1 - half**2))
    return np.pi * r**2 - np.bincount(softer, lens, minlength=eta.size)


@dataclass(frozen=True)
class RhoGrid:
    """FastJetGridMedianEstimator: rho is the median over grid cells of the scalar pT sum per
    unit area, in each eta range separately (eta stands for the rapidity).

    Arguments:
        ranges: GridRange entries (eta_min, eta_max, cell size in eta, cell size in phi).
    """

    ranges: tuple[tuple[float, float, float, float], ...]

    def cells(self) -> list[tuple[int, int, float]]:
        """(cells in eta, cells in phi, cell area) per range, as FastJet rounds them."""
        out = []
        for low, high, d_eta, d_phi in self.ranges:
            n_eta = max(1, int((high - low) / d_eta + 0.5))
            n_phi = max(1, int(2 * np.pi / d_phi + 0.5))
            out.append((n_eta, n_phi, (high - low) / n_eta * 2 * np.pi / n_phi))
        return out

    def range_of(self, eta: np.ndarray) -> np.ndarray:
        """Index of the range holding each eta (the nearest range outside them)."""
        lows = np.array([low for low, *_ in self.ranges])
        return np.clip(np.searchsorted(lows, eta, side="right") - 1, 0, len(self.ranges) - 1)


#: Rho on the charged-hadron-subtracted energy flow with 1 x 1 cells as in
#: CMS_PhaseII_200PU_v03.tcl, its eta ranges split at the edge of the tracker as that card
#: does at its own (|eta| = 4 there, 2.5 for the Run-2 tracker): where tracks are missing the
#: charged pileup is not subtracted and the density is higher.
CMS_RHO_GRID = RhoGrid(((-5.0, -2.5, 1.0, 1.0), (-2.5, 2.5, 1.0, 1.0), (2.5, 5.0, 1.0, 1.0)))


def rho_median(
    grid: RhoGrid,
    event: np.ndarray,
    n_events: int,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
) -> np.ndarray:
    """Median pT density (GeV per unit area) per event and range, shape (n_events, n_ranges).

    Arguments:
        grid: the ranges and cell sizes.
        event: event index of every candidate, shape (n,).
        n_events: number of events.
        pt, eta, phi: candidate kinematics, shape (n,).
    """
    rho = np.zeros((n_events, len(grid.ranges)))
    for k, ((low, high, _, _), (n_eta, n_phi, area)) in enumerate(
        zip(grid.ranges, grid.cells(), strict=True)
    ):
        inside = (eta >= low) & (eta < high)
        i_eta = np.minimum(((eta[inside] - low) / (high - low) * n_eta).astype(np.int64), n_eta - 1)
        i_phi = np.minimum(
            ((phi[inside] + np.pi) / (2 * np.pi) * n_phi).astype(np.int64), n_phi - 1
        )
        n_cells = n_eta * n_phi
        cell = event[inside] * n_cells + i_eta * n_phi + i_phi
        density = np.bincount(cell, pt[inside], minlength=n_events * n_cells) / area
        rho[:, k] = np.median(density.reshape(n_events, n_cells), axis=1)
    return rho
