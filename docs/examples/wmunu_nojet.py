"""W(->mu nu) with no jet requirement: the worked example of docs/analyses.md.

Use it with ``--analysis docs/examples/wmunu_nojet.py:WMUNU`` (train, run, validate, plot) or
``FastSimConfig(analysis="docs/examples/wmunu_nojet.py:WMUNU", ...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import vector

from coffea_fastsim.analysis.definition import AnalysisDefinition, GenObject, Observable, Region


def features(objects: Mapping[str, Any]) -> np.ndarray:
    """(n, 5): the muon's px, py, pz and the MET's x, y (GeV)."""
    muon, met = objects["muon"], objects["met"]
    columns = [muon.px, muon.py, muon.pz, met.pt * np.cos(met.phi), met.pt * np.sin(met.phi)]
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])


def recover(features: np.ndarray) -> dict[str, Any]:
    """The muon 3-vector and the MET 2-vector of feature vectors (n, 5)."""
    return {
        "muon": vector.array({"px": features[:, 0], "py": features[:, 1], "pz": features[:, 2]}),
        "met": vector.array({"px": features[:, 3], "py": features[:, 4]}),
    }


def auxiliary(objects: Mapping[str, Any], features: np.ndarray) -> dict[str, np.ndarray]:
    """Muon pT and eta, MET and its phi, and the transverse mass of muon and MET."""
    muon, met = objects["muon"], objects["met"]
    muon_pt, met_pt = np.asarray(muon.pt), np.asarray(met.rho)
    mt_squared = 2 * muon_pt * met_pt * (1 - np.cos(np.asarray(muon.deltaphi(met))))
    return {
        "muon_pt": muon_pt,
        "muon_eta": np.asarray(muon.eta),
        "met": met_pt,
        "met_phi": np.asarray(met.phi),
        "mt": np.sqrt(np.clip(mt_squared, 0.0, None)),
    }


WMUNU = AnalysisDefinition(
    name="wmunu_nojet",
    description="W(->mu nu), no jet requirement: prompt muon pT > 25 GeV, |eta| < 2.4",
    objects=(
        GenObject(
            "muon",
            collection="GenPart",
            reco="Muon",
            pdg_id=13,
            prompt=True,
            pt_min=25.0,
            abs_eta_max=2.4,
            match_pt_residual_max=0.10,
        ),
    ),
    features=(
        Observable("muon_px", r"$p_x^{\mu}$ [GeV]", 60, -150.0, 150.0),
        Observable("muon_py", r"$p_y^{\mu}$ [GeV]", 60, -150.0, 150.0),
        Observable("muon_pz", r"$p_z^{\mu}$ [GeV]", 60, -400.0, 400.0),
        Observable("met_x", r"$E_x^{miss}$ [GeV]", 60, -150.0, 150.0),
        Observable("met_y", r"$E_y^{miss}$ [GeV]", 60, -150.0, 150.0),
    ),
    compute_features=features,
    recover_objects=recover,
    compute_auxiliary=auxiliary,
    auxiliary=(
        Observable("muon_pt", r"$p_T^{\mu}$ [GeV]", 60, 0.0, 200.0),
        Observable("muon_eta", r"$\eta^{\mu}$", 50, -2.5, 2.5, ""),
        Observable("met", r"$E_T^{miss}$ [GeV]", 60, 0.0, 200.0),
        Observable("met_phi", r"$\phi_{miss}$", 64, -3.2, 3.2, ""),
        Observable("mt", r"$M_T$ [GeV]", 60, 0.0, 200.0),
    ),
    regions=(Region("signal_region", "signal region", (("mt", 50.0),), "mt"),),
)
