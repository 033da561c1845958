"""Names, labels, units and binning of the analysis observables, defined once.

The feature vector (9 entries, the surrogate's input and output) and the auxiliary
observables computed from it follow the W(->mu nu)+1 jet benchmark of the analysis-specific
fast-simulation approach: muon and jet Cartesian momenta, the logarithm of the jet mass and
the Cartesian missing transverse momentum. Every other module (training, inference,
histograms, plots, validation) takes names, order and binning from here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AUX_NAMES",
    "FEATURE_NAMES",
    "OBSERVABLES",
    "OBSERVABLE_NAMES",
    "RESIDUAL_BINNING",
    "Observable",
]


@dataclass(frozen=True)
class Observable:
    """One analysis observable.

    Arguments:
        name: column name, as written in datasets and used for histogram keys.
        label: axis label for plots (LaTeX, with unit).
        bins: number of regular bins of the histogram.
        low: lower edge of the histogram range (in the observable's unit).
        high: upper edge of the histogram range.
    """

    name: str
    label: str
    bins: int
    low: float
    high: float


FEATURES: tuple[Observable, ...] = (
    Observable("muon_px", r"$p_x^{\mu}$ [GeV]", 60, -150.0, 150.0),
    Observable("muon_py", r"$p_y^{\mu}$ [GeV]", 60, -150.0, 150.0),
    Observable("muon_pz", r"$p_z^{\mu}$ [GeV]", 60, -400.0, 400.0),
    Observable("jet_px", r"$p_x^{j}$ [GeV]", 60, -250.0, 250.0),
    Observable("jet_py", r"$p_y^{j}$ [GeV]", 60, -250.0, 250.0),
    Observable("jet_pz", r"$p_z^{j}$ [GeV]", 60, -600.0, 600.0),
    Observable("jet_log_mass", r"$\log(M_j / \mathrm{GeV})$", 60, -1.0, 5.0),
    Observable("met_x", r"$E_x^{miss}$ [GeV]", 60, -150.0, 150.0),
    Observable("met_y", r"$E_y^{miss}$ [GeV]", 60, -150.0, 150.0),
)

AUXILIARY: tuple[Observable, ...] = (
    Observable("muon_pt", r"$p_T^{\mu}$ [GeV]", 60, 0.0, 200.0),
    Observable("muon_eta", r"$\eta^{\mu}$", 60, -3.0, 3.0),
    Observable("muon_phi", r"$\phi^{\mu}$", 64, -3.2, 3.2),
    Observable("jet_pt", r"$p_T^{j}$ [GeV]", 60, 0.0, 300.0),
    Observable("jet_eta", r"$\eta^{j}$", 60, -3.0, 3.0),
    Observable("jet_phi", r"$\phi^{j}$", 64, -3.2, 3.2),
    Observable("met", r"$E_T^{miss}$ [GeV]", 60, 0.0, 200.0),
    Observable("met_phi", r"$\phi_{miss}$", 64, -3.2, 3.2),
    Observable("mt", r"$M_T$ [GeV]", 60, 0.0, 200.0),
    Observable("st", r"$S_T$ [GeV]", 60, 0.0, 600.0),
    Observable("jet_mass", r"$M_j$ [GeV]", 60, 0.0, 60.0),
)

OBSERVABLES: tuple[Observable, ...] = FEATURES + AUXILIARY
FEATURE_NAMES: tuple[str, ...] = tuple(o.name for o in FEATURES)
AUX_NAMES: tuple[str, ...] = tuple(o.name for o in AUXILIARY)
OBSERVABLE_NAMES: tuple[str, ...] = FEATURE_NAMES + AUX_NAMES

#: Binning (bins, low, high) of the relative residual (x - x_GEN) / x_GEN histograms.
RESIDUAL_BINNING: tuple[int, float, float] = (80, -1.0, 1.0)
