"""The reference analysis: W(->mu nu) + 1 jet at 13 TeV.

GEN selection: the leading prompt final-state muon with pT > 22 GeV, and the leading GEN jet
with pT > 30 GeV, |eta| < 2.4 and Delta R(mu, jet) > 0.5. RECO partners are the
reconstructed muon and jet closest in Delta R; the muon needs
|pT_GEN - pT_RECO| / pT_GEN < 10 %. Features (9): muon px, py, pz; jet px, py, pz; log of
the jet mass; MET x, y. Auxiliary observables (11): muon and jet pT, eta, phi; MET and
phi_miss; the transverse mass M_T; S_T; the jet mass. Signal region: M_T > 50 GeV and jet
pT > 40 GeV.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import vector

from coffea_fastsim.analysis.definition import (
    AnalysisDefinition,
    GenObject,
    Observable,
    Region,
    Response,
)

__all__ = ["WJETS"]


def _features(objects: Mapping[str, Any]) -> np.ndarray:
    """(n, 9) from the muon and jet 4-vectors and MET (GeV)."""
    muon, jet, met = objects["muon"], objects["jet"], objects["met"]
    # A massless jet gives log(0) = -inf: such events are not selected (GEN) or not valid.
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mass = np.log(np.asarray(jet.mass))
    columns = [
        muon.px,
        muon.py,
        muon.pz,
        jet.px,
        jet.py,
        jet.pz,
        log_mass,
        met.pt * np.cos(met.phi),
        met.pt * np.sin(met.phi),
    ]
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in columns]).reshape(-1, 9)


def _recover(features: np.ndarray) -> dict[str, Any]:
    """Muon and jet 3-vectors and the MET 2-vector of feature vectors (n, 9)."""
    return {
        "muon": vector.array({"px": features[:, 0], "py": features[:, 1], "pz": features[:, 2]}),
        "jet": vector.array({"px": features[:, 3], "py": features[:, 4], "pz": features[:, 5]}),
        "met": vector.array({"px": features[:, 7], "py": features[:, 8]}),
    }


def _auxiliary(objects: Mapping[str, Any], features: np.ndarray) -> dict[str, np.ndarray]:
    """M_T of the massless muon and MET; S_T = MET + pT_mu + pT_jet; M_j = exp(log M_j)."""
    muon, jet, met = objects["muon"], objects["jet"], objects["met"]
    muon_pt, met_pt = np.asarray(muon.pt), np.asarray(met.rho)
    transverse_sum = muon.to_xy() + met
    mt_squared = (muon_pt + met_pt) ** 2 - np.asarray(transverse_sum.rho) ** 2
    return {
        "muon_pt": muon_pt,
        "muon_eta": np.asarray(muon.eta),
        "muon_phi": np.asarray(muon.phi),
        "jet_pt": np.asarray(jet.pt),
        "jet_eta": np.asarray(jet.eta),
        "jet_phi": np.asarray(jet.phi),
        "met": met_pt,
        "met_phi": np.asarray(met.phi),
        "mt": np.sqrt(np.clip(mt_squared, 0.0, None)),
        "st": met_pt + muon_pt + np.asarray(jet.pt),
        "jet_mass": np.exp(features[:, 6]),
    }


WJETS = AnalysisDefinition(
    name="wjets",
    description="W(->mu nu)+1 jet: prompt muon pT > 22 GeV, jet pT > 30 GeV, |eta| < 2.4",
    objects=(
        GenObject(
            "muon",
            "GenPart",
            "Muon",
            pdg_id=13,
            prompt=True,
            pt_min=22.0,
            match_pt_residual_max=0.10,
        ),
        GenObject(
            "jet",
            "GenJet",
            "Jet",
            pt_min=30.0,
            abs_eta_max=2.4,
            away_from=("muon",),
            delta_r_min=0.5,
        ),
    ),
    features=(
        Observable("muon_px", r"$p_x^{\mu}$ [GeV]", 60, -150.0, 150.0),
        Observable("muon_py", r"$p_y^{\mu}$ [GeV]", 60, -150.0, 150.0),
        Observable("muon_pz", r"$p_z^{\mu}$ [GeV]", 60, -400.0, 400.0),
        Observable("jet_px", r"$p_x^{j}$ [GeV]", 60, -250.0, 250.0),
        Observable("jet_py", r"$p_y^{j}$ [GeV]", 60, -250.0, 250.0),
        Observable("jet_pz", r"$p_z^{j}$ [GeV]", 60, -600.0, 600.0),
        Observable("jet_log_mass", r"$\log(M_j / \mathrm{GeV})$", 60, -1.0, 5.0, "log(GeV)"),
        Observable("met_x", r"$E_x^{miss}$ [GeV]", 60, -150.0, 150.0),
        Observable("met_y", r"$E_y^{miss}$ [GeV]", 60, -150.0, 150.0),
    ),
    compute_features=_features,
    recover_objects=_recover,
    compute_auxiliary=_auxiliary,
    auxiliary=(
        Observable("muon_pt", r"$p_T^{\mu}$ [GeV]", 60, 0.0, 200.0),
        Observable("muon_eta", r"$\eta^{\mu}$", 60, -3.0, 3.0, ""),
        Observable("muon_phi", r"$\phi^{\mu}$", 64, -3.2, 3.2, ""),
        Observable("jet_pt", r"$p_T^{j}$ [GeV]", 60, 0.0, 300.0),
        Observable("jet_eta", r"$\eta^{j}$", 60, -3.0, 3.0, ""),
        Observable("jet_phi", r"$\phi^{j}$", 64, -3.2, 3.2, ""),
        Observable("met", r"$E_T^{miss}$ [GeV]", 60, 0.0, 200.0),
        Observable("met_phi", r"$\phi_{miss}$", 64, -3.2, 3.2, ""),
        Observable("mt", r"$M_T$ [GeV]", 60, 0.0, 200.0),
        Observable("st", r"$S_T$ [GeV]", 60, 0.0, 600.0),
        Observable("jet_mass", r"$M_j$ [GeV]", 60, 0.0, 60.0),
    ),
    responses=(
        Response("muon", "momentum", ("muon_px", "muon_py", "muon_pz")),
        Response("jet", "momentum", ("jet_px", "jet_py", "jet_pz")),
        Response("jet_mass", "difference", ("jet_log_mass",)),
        Response("met", "transverse", ("met_x", "met_y"), axis="jet"),
    ),
    regions=(Region("signal_region", "signal region", (("mt", 50.0), ("jet_pt", 40.0)), "mt"),),
)
