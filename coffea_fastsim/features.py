"""The W(->mu nu)+1 jet selection and feature vector, written once for GEN and RECO.

GEN selection: the leading prompt final-state muon with pT > 22 GeV, and the leading GEN jet
with pT > 30 GeV, |eta| < 2.4 and Delta R(mu, jet) > 0.5. RECO objects are the reconstructed
muon and jet closest in Delta R to the selected GEN muon and jet; an event has a valid RECO
feature vector only if both exist, the muon satisfies |pT_GEN - pT_RECO| / pT_GEN < 10%,
and the jet mass is positive (its logarithm is a feature).

The input is any awkward record array with NanoAOD collections: coffea NanoEvents, or the
arrays uproot reads. Only these fields are used: GenPart (pt, eta, phi, mass, pdgId, status,
statusFlags), GenJet (pt, eta, phi, mass), GenMET (pt, phi), and, for RECO, Muon and Jet
(pt, eta, phi, mass) and MET (pt, phi); event identity from run, luminosityBlock, event.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np
import vector

from coffea_fastsim.observables import AUX_NAMES, FEATURE_NAMES

__all__ = [
    "EventFeatures",
    "Selection",
    "auxiliary_from_features",
    "build_features",
    "has_reco_branches",
    "missing_gen_branches",
    "observables_of",
]

vector.register_awkward()

MUON_PDG_ID = 13
PROMPT_FLAG_BIT = 0  # CMS GenPart statusFlags bit 0: isPrompt

GEN_FIELDS: dict[str, tuple[str, ...]] = {
    "GenPart": ("pt", "eta", "phi", "mass", "pdgId", "status", "statusFlags"),
    "GenJet": ("pt", "eta", "phi", "mass"),
    "GenMET": ("pt", "phi"),
}
RECO_FIELDS: dict[str, tuple[str, ...]] = {
    "Muon": ("pt", "eta", "phi", "mass"),
    "Jet": ("pt", "eta", "phi", "mass"),
    "MET": ("pt", "phi"),
}
ID_FIELDS: tuple[str, ...] = ("run", "luminosityBlock", "event")


@dataclass(frozen=True)
class Selection:
    """Cuts of the W+jet selection (GeV for momenta).

    Arguments:
        muon_pt_min: minimum pT of the prompt GEN muon.
        jet_pt_min: minimum pT of the GEN jet.
        jet_abs_eta_max: maximum |eta| of the GEN jet.
        muon_jet_delta_r_min: minimum Delta R between the GEN muon and the GEN jet.
        muon_pt_residual_max: maximum |pT_GEN - pT_RECO| / pT_GEN of the matched RECO muon.
    """

    muon_pt_min: float = 22.0
    jet_pt_min: float = 30.0
    jet_abs_eta_max: float = 2.4
    muon_jet_delta_r_min: float = 0.5
    muon_pt_residual_max: float = 0.10


@dataclass(frozen=True)
class EventFeatures:
    """Feature vectors of the events that pass the GEN selection.

    Arguments:
        run, luminosity_block, event: event identity, shape (n,), uint64.
        gen: GEN feature vectors, shape (n, 9), float64, order of ``FEATURE_NAMES``.
        reco: RECO feature vectors, shape (n, 9), float64; rows where ``reco_valid`` is
            False are NaN. None when the input has no RECO collections.
        reco_valid: shape (n,), bool: the event has a matched RECO muon and jet that pass
            the RECO requirements. All False when the input has no RECO collections.
        n_input: number of events given to :func:`build_features`.
        n_gen_nonfinite: events with a NaN or infinite value in a GEN kinematic branch that
            the selection reads; they are excluded from the selection and counted here.
    """

    run: np.ndarray
    luminosity_block: np.ndarray
    event: np.ndarray
    gen: np.ndarray
    reco: np.ndarray | None
    reco_valid: np.ndarray
    n_input: int
    n_gen_nonfinite: int = 0

    def __len__(self) -> int:
        return len(self.gen)

    @property
    def has_reco(self) -> bool:
        """Whether the input had RECO collections."""
        return self.reco is not None


def _missing_fields(events: ak.Array, required: dict[str, tuple[str, ...]]) -> list[str]:
    missing = []
    for collection, fields in required.items():
        if collection not in events.fields:
            missing.append(collection)
            continue
        present = set(events[collection].fields)
        missing.extend(f"{collection}_{name}" for name in fields if name not in present)
    return missing


def missing_gen_branches(events: ak.Array) -> list[str]:
    """Names of the GEN branches (``Collection_field``) that the selection needs but are absent."""
    missing = _missing_fields(events, GEN_FIELDS)
    return missing + [name for name in ID_FIELDS if name not in events.fields]


def has_reco_branches(events: ak.Array) -> bool:
    """Whether the input has every RECO collection and field the RECO features need."""
    return not _missing_fields(events, RECO_FIELDS)


def _momentum4d(collection: ak.Array) -> ak.Array:
    return vector.zip(
        {
            "pt": collection.pt,
            "eta": collection.eta,
            "phi": collection.phi,
            "mass": collection.mass,
        }
    )


def _nonfinite_gen(events: ak.Array) -> np.ndarray:
    """Per event: does any GEN kinematic value (pt, eta, phi, mass) read here fail isfinite?"""
    bad = np.zeros(len(events), dtype=bool)
    for collection in ("GenPart", "GenJet", "GenMET"):
        for name in GEN_FIELDS[collection]:
            if name not in ("pt", "eta", "phi", "mass"):
                continue
            values = events[collection][name]
            not_finite = ~np.isfinite(values)
            if values.ndim > 1:
                not_finite = ak.any(not_finite, axis=1)
            bad |= ak.to_numpy(not_finite).astype(bool)
    return bad


def _closest(candidates: ak.Array, target: ak.Array) -> ak.Array:
    """The candidate with the smallest Delta R to ``target`` per event (None if no candidate)."""
    delta_r = candidates.deltaR(target)
    index = ak.argmin(delta_r, axis=1, keepdims=True)
    return ak.firsts(candidates[index])


def _feature_matrix(
    muon: ak.Array, jet: ak.Array, met_pt: ak.Array, met_phi: ak.Array
) -> np.ndarray:
    """The (n, 9) feature matrix from per-event muon and jet 4-vectors and MET (GeV)."""
    # A massless RECO jet gives log(0) = -inf; the caller marks such events invalid.
    with np.errstate(divide="ignore"):
        log_mass = np.log(jet.mass)
    columns = [
        muon.px,
        muon.py,
        muon.pz,
        jet.px,
        jet.py,
        jet.pz,
        log_mass,
        met_pt * np.cos(met_phi),
        met_pt * np.sin(met_phi),
    ]
    return np.column_stack(
        [
            ak.to_numpy(ak.fill_none(c, np.nan), allow_missing=False).astype(np.float64)
            for c in columns
        ]
    ).reshape(-1, len(FEATURE_NAMES))


def _event_ids(events: ak.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(ak.to_numpy(events[name]).astype(np.uint64) for name in ID_FIELDS)  # type: ignore[return-value]


def build_features(events: ak.Array, selection: Selection | None = None) -> EventFeatures:
    """Apply the GEN selection and compute GEN (and, when present, RECO) feature vectors.

    Arguments:
        events: NanoAOD-like events (coffea NanoEvents or uproot arrays), length N.
        selection: the cuts; the paper's values by default.

    Returns:
        The features of the n <= N events that pass the GEN selection.

    Raises:
        KeyError: a GEN branch or an event-identity branch is missing; the message lists them.
    """
    selection = selection or Selection()
    missing = missing_gen_branches(events)
    if missing:
        raise KeyError(f"missing GEN branches needed by the W+jet selection: {', '.join(missing)}")
    n_input = len(events)

    genpart = events.GenPart
    is_prompt_muon = (
        (abs(genpart.pdgId) == MUON_PDG_ID)
        & (genpart.status == 1)
        & ((genpart.statusFlags & (1 << PROMPT_FLAG_BIT)) != 0)
        & (genpart.pt > selection.muon_pt_min)
    )
    gen_muons = _momentum4d(genpart[is_prompt_muon])
    gen_muons = gen_muons[ak.argsort(gen_muons.pt, axis=1, ascending=False)]
    gen_muon = ak.firsts(gen_muons)

    gen_jets = _momentum4d(events.GenJet)
    jet_ok = (gen_jets.pt > selection.jet_pt_min) & (abs(gen_jets.eta) < selection.jet_abs_eta_max)
    jet_ok = jet_ok & ak.fill_none(
        gen_jets.deltaR(gen_muon) > selection.muon_jet_delta_r_min, False
    )
    selected_jets = gen_jets[jet_ok]
    gen_jet = ak.firsts(selected_jets[ak.argsort(selected_jets.pt, axis=1, ascending=False)])

    passes = ak.to_numpy(
        ~ak.is_none(gen_muon) & ~ak.is_none(gen_jet) & ak.fill_none(gen_jet.mass > 0, False)
    )
    nonfinite = _nonfinite_gen(events)
    passes = passes.astype(bool) & ~nonfinite

    gen_muon, gen_jet, passed = gen_muon[passes], gen_jet[passes], events[passes]
    gen = _feature_matrix(gen_muon, gen_jet, passed.GenMET.pt, passed.GenMET.phi)
    run, lumi, event = _event_ids(passed)

    reco = None
    reco_valid = np.zeros(len(gen), dtype=bool)
    if has_reco_branches(events):
        reco_muon = _closest(_momentum4d(passed.Muon), gen_muon)
        reco_jet = _closest(_momentum4d(passed.Jet), gen_jet)
        reco = _feature_matrix(reco_muon, reco_jet, passed.MET.pt, passed.MET.phi)
        muon_residual = abs(ak.fill_none(reco_muon.pt, np.nan) - gen_muon.pt) / gen_muon.pt
        reco_valid = np.asarray(
            ak.to_numpy(muon_residual < selection.muon_pt_residual_max)
            & np.isfinite(reco).all(axis=1),
            dtype=bool,
        )
        reco[~reco_valid] = np.nan

    return EventFeatures(
        run=run,
        luminosity_block=lumi,
        event=event,
        gen=gen,
        reco=reco,
        reco_valid=reco_valid,
        n_input=n_input,
        n_gen_nonfinite=int(nonfinite.sum()),
    )


def auxiliary_from_features(features: np.ndarray) -> dict[str, np.ndarray]:
    """The auxiliary observables computed from feature vectors (GEN, RECO or DL alike).

    Arguments:
        features: shape (n, 9), order of ``FEATURE_NAMES``, GeV and log(GeV).

    Returns:
        One array of shape (n,) per name of ``AUX_NAMES``: muon and jet pT (GeV), eta, phi;
        MET (GeV) and its phi; the transverse mass M_T of the massless muon and MET
        transverse momenta (GeV); S_T = MET + pT_mu + pT_jet (GeV); the jet mass M_j (GeV).
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != len(FEATURE_NAMES):
        raise ValueError(
            f"features must have shape (n, {len(FEATURE_NAMES)}), got {features.shape}"
        )
    muon = vector.array({"px": features[:, 0], "py": features[:, 1], "pz": features[:, 2]})
    jet = vector.array({"px": features[:, 3], "py": features[:, 4], "pz": features[:, 5]})
    met = vector.array({"px": features[:, 7], "py": features[:, 8]})
    muon_pt, met_pt = np.asarray(muon.pt), np.asarray(met.rho)
    transverse_sum = muon.to_xy() + met
    mt_squared = (muon_pt + met_pt) ** 2 - np.asarray(transverse_sum.rho) ** 2
    values = {
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
    return {name: values[name] for name in AUX_NAMES}


def observables_of(features: np.ndarray) -> dict[str, np.ndarray]:
    """The 9 features and the auxiliary observables of feature vectors of shape (n, 9)."""
    features = np.asarray(features, dtype=np.float64)
    values = {name: features[:, i] for i, name in enumerate(FEATURE_NAMES)}
    values.update(auxiliary_from_features(features))
    return values
