"""Z/gamma*(->mu mu) + 1 jet at 13 TeV.

GEN selection: the leading prompt final-state muon with pT > 25 GeV and |eta| < 2.4; the
leading prompt muon of opposite charge with pT > 20 GeV and |eta| < 2.4; the leading GEN jet
with pT > 30 GeV, |eta| < 2.4 and Delta R > 0.5 from both muons. RECO partners are the
reconstructed muons and jet closest in Delta R; each muon needs
|pT_GEN - pT_RECO| / pT_GEN < 10 %. Features (12): px, py, pz of both muons and of the jet;
log of the jet mass; MET x, y. Auxiliary observables (13): the dimuon mass, pT and rapidity;
|Delta phi| between the dimuon and the jet; pT and eta of each muon and of the jet; the jet
mass; MET and phi_miss. Region: the Z peak, 76 < m_mumu < 106 GeV, with the dimuon pT in it.
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

__all__ = ["ZMUMU"]

#: Muon mass (GeV, PDG), to rebuild the muon 4-vectors from their 3-momenta.
MUON_MASS = 0.1056584


def _features(objects: Mapping[str, Any]) -> np.ndarray:
    """(n, 12) from the two muon and the jet 4-vectors and MET (GeV)."""
    muon1, muon2, jet, met = objects["muon1"], objects["muon2"], objects["jet"], objects["met"]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mass = np.log(np.asarray(jet.mass))
    columns = [
        *(getattr(muon, c) for muon in (muon1, muon2) for c in ("px", "py", "pz")),
        jet.px,
        jet.py,
        jet.pz,
        log_mass,
        met.pt * np.cos(met.phi),
        met.pt * np.sin(met.phi),
    ]
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in columns]).reshape(-1, 12)


def _recover(features: np.ndarray) -> dict[str, Any]:
    """The muon and jet 4-vectors (muon mass, jet mass from its log) and the MET 2-vector."""

    def momentum(first: int, mass: np.ndarray | float) -> Any:
        columns = features[:, first : first + 3]
        return vector.array(
            {
                "px": columns[:, 0],
                "py": columns[:, 1],
                "pz": columns[:, 2],
                "M": np.broadcast_to(mass, len(features)),
            }
        )

    return {
        "muon1": momentum(0, MUON_MASS),
        "muon2": momentum(3, MUON_MASS),
        "jet": momentum(6, np.exp(features[:, 9])),
        "met": vector.array({"px": features[:, 10], "py": features[:, 11]}),
    }


def _auxiliary(objects: Mapping[str, Any], features: np.ndarray) -> dict[str, np.ndarray]:
    """Dimuon mass, pT, rapidity and |Delta phi(mumu, jet)|; muon, jet and MET quantities."""
    muon1, muon2, jet, met = objects["muon1"], objects["muon2"], objects["jet"], objects["met"]
    dimuon = muon1 + muon2
    return {
        "mumu_mass": np.asarray(dimuon.mass),
        "mumu_pt": np.asarray(dimuon.pt),
        "mumu_rapidity": np.asarray(dimuon.rapidity),
        "mumu_jet_dphi": np.abs(np.asarray(dimuon.deltaphi(jet))),
        "muon1_pt": np.asarray(muon1.pt),
        "muon1_eta": np.asarray(muon1.eta),
        "muon2_pt": np.asarray(muon2.pt),
        "muon2_eta": np.asarray(muon2.eta),
        "jet_pt": np.asarray(jet.pt),
        "jet_eta": np.asarray(jet.eta),
        "jet_mass": np.asarray(jet.mass),
        "met": np.asarray(met.rho),
        "met_phi": np.asarray(met.phi),
    }


def _muon(name: str, pt_min: float, **options: Any) -> GenObject:
    return GenObject(
        name,
        "GenPart",
        "Muon",
        pdg_id=13,
        prompt=True,
        pt_min=pt_min,
        abs_eta_max=2.4,
        # Within Delta R 0.1: otherwise, when one muon is not reconstructed, the other's RECO
        # muon (closest, and within 10 % in pT) was taken for both, and its response in the
        # first muon's direction is a swap, not a measurement.
        match_delta_r_max=0.1,
        match_pt_residual_max=0.10,
        **options,
    )


ZMUMU = AnalysisDefinition(
    name="zmumu",
    description=(
        "Z/gamma*(->mu mu)+1 jet: two opposite-charge prompt muons (pT > 25, 20 GeV), "
        "jet pT > 30 GeV, |eta| < 2.4"
    ),
    objects=(
        _muon("muon1", 25.0),
        _muon("muon2", 20.0, opposite_charge_to="muon1"),
        GenObject(
            "jet",
            "GenJet",
            "Jet",
            pt_min=30.0,
            abs_eta_max=2.4,
            away_from=("muon1", "muon2"),
            delta_r_min=0.5,
        ),
    ),
    features=(
        Observable("muon1_px", r"$p_x^{\mu_1}$ [GeV]", 60, -200.0, 200.0),
        Observable("muon1_py", r"$p_y^{\mu_1}$ [GeV]", 60, -200.0, 200.0),
        Observable("muon1_pz", r"$p_z^{\mu_1}$ [GeV]", 60, -500.0, 500.0),
        Observable("muon2_px", r"$p_x^{\mu_2}$ [GeV]", 60, -150.0, 150.0),
        Observable("muon2_py", r"$p_y^{\mu_2}$ [GeV]", 60, -150.0, 150.0),
        Observable("muon2_pz", r"$p_z^{\mu_2}$ [GeV]", 60, -400.0, 400.0),
        Observable("jet_px", r"$p_x^{j}$ [GeV]", 60, -250.0, 250.0),
        Observable("jet_py", r"$p_y^{j}$ [GeV]", 60, -250.0, 250.0),
        Observable("jet_pz", r"$p_z^{j}$ [GeV]", 60, -600.0, 600.0),
        Observable("jet_log_mass", r"$\log(M_j / \mathrm{GeV})$", 60, -1.0, 5.0, "log(GeV)"),
        Observable("met_x", r"$E_x^{miss}$ [GeV]", 60, -100.0, 100.0),
        Observable("met_y", r"$E_y^{miss}$ [GeV]", 60, -100.0, 100.0),
    ),
    compute_features=_features,
    recover_objects=_recover,
    compute_auxiliary=_auxiliary,
    auxiliary=(
        Observable("mumu_mass", r"$m_{\mu\mu}$ [GeV]", 50, 50.0, 150.0),
        Observable("mumu_pt", r"$p_T^{\mu\mu}$ [GeV]", 60, 0.0, 300.0),
        Observable("mumu_rapidity", r"$y^{\mu\mu}$", 50, -2.5, 2.5, ""),
        Observable("mumu_jet_dphi", r"$|\Delta\phi(\mu\mu, j)|$", 32, 0.0, 3.2, ""),
        Observable("muon1_pt", r"$p_T^{\mu_1}$ [GeV]", 60, 0.0, 200.0),
        Observable("muon1_eta", r"$\eta^{\mu_1}$", 50, -2.5, 2.5, ""),
        Observable("muon2_pt", r"$p_T^{\mu_2}$ [GeV]", 60, 0.0, 150.0),
        Observable("muon2_eta", r"$\eta^{\mu_2}$", 50, -2.5, 2.5, ""),
        Observable("jet_pt", r"$p_T^{j}$ [GeV]", 60, 0.0, 300.0),
        Observable("jet_eta", r"$\eta^{j}$", 50, -2.5, 2.5, ""),
        Observable("jet_mass", r"$M_j$ [GeV]", 60, 0.0, 60.0),
        Observable("met", r"$E_T^{miss}$ [GeV]", 50, 0.0, 100.0),
        Observable("met_phi", r"$\phi_{miss}$", 64, -3.2, 3.2, ""),
    ),
    responses=(
        Response("muon1", "momentum", ("muon1_px", "muon1_py", "muon1_pz")),
        Response("muon2", "momentum", ("muon2_px", "muon2_py", "muon2_pz")),
        Response("jet", "momentum", ("jet_px", "jet_py", "jet_pz")),
        Response("jet_mass", "difference", ("jet_log_mass",)),
        Response("met", "transverse", ("met_x", "met_y"), axis="jet"),
    ),
    regions=(
        Region(
            "z_peak",
            "Z peak (76 < m_mumu < 106 GeV)",
            (("mumu_mass", 76.0),),
            "mumu_pt",
            below=(("mumu_mass", 106.0),),
        ),
    ),
)
