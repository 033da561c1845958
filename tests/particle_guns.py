"""Single-particle inputs for detector tests, in the detector's particle layout."""

from __future__ import annotations

import awkward as ak
import numpy as np

N = 20_000
MUON_MASS = 0.1056584
NEUTRAL = frozenset({12, 14, 16, 22, 111, 130, 310, 2112})
NEGATIVE_BY_SIGN = frozenset({11, 13, 15})  # charged leptons: PDG id > 0 is negative


def charge(pdg_id: int) -> float:
    """Electric charge (e) of the particles the tests shoot."""
    if abs(pdg_id) in NEUTRAL:
        return 0.0
    sign = float(np.sign(pdg_id))
    return -sign if abs(pdg_id) in NEGATIVE_BY_SIGN else sign


def single_particles(
    pt: float, eta: float, pdg_id: int = 13, n: int = N, mass: float = MUON_MASS, seed: int = 0
) -> ak.Array:
    """One particle per event at fixed pT (GeV) and eta, uniform phi, shape (n, 1)."""
    phi = np.random.default_rng(seed).uniform(-np.pi, np.pi, n)
    pz = np.full(n, pt * np.sinh(eta))
    fields = {
        "px": pt * np.cos(phi),
        "py": pt * np.sin(phi),
        "pz": pz,
        "E": np.sqrt(pt**2 + pz**2 + mass**2),
        "pdgId": np.full(n, pdg_id),
        "charge": np.full(n, charge(pdg_id)),
        "genPartIdx": np.zeros(n, dtype=np.int64),
        "genJetIdx": np.full(n, -1),
    }
    return ak.unflatten(ak.zip(fields, with_name="Momentum4D"), np.ones(n, dtype=np.int64))
