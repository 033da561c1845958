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

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import awkward as ak
import numpy as np
import vector

from coffea_fastsim.analysis.observables import AUX_NAMES, FEATURE_NAMES

__all__ = [
    "EventFeatures",
    "Selection",
    "auxiliary_from_features",
    "branch_names",
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


def _branches(required: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(f"{group}_{field}" for group, fields in required.items() for field in fields)


#: Flat NanoAOD names of every branch the GEN selection and the event identity read.
GEN_BRANCHES: tuple[str, ...] = (*_branches(GEN_FIELDS), *ID_FIELDS)


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


def branch_names(events: ak.Array, collections: Iterable[str]) -> set[str]:
    """The flat NanoAOD names of the top-level fields of ``events`` and of the fields
    (``Collection_field``) of those ``collections`` it has."""
    names = set(events.fields)
    for collection in collections:
        if collection in names:
            names.update(f"{collection}_{name}" for name in events[collection].fields)
    return names


def missing_gen_branches(present: Collection[str]) -> list[str]:
    """The branches (flat NanoAOD names, e.g. ``GenJet_pt``) of the GEN selection and the
    event identity that are not in ``present``, e.g. the keys of a file's Events tree."""
    return [name for name in GEN_BRANCHES if name not in present]


def has_reco_branches(events: ak.Array) -> bool:
    """Whether the input has every RECO collection and field the RECO features need."""
    present = branch_names(events, RECO_FIELDS)
    return all(name in present for name in _branches(RECO_FIELDS))


@dataclass(frozen=True)
class _Flat:
    """One jagged collection as flat numpy arrays.

    Arguments:
        fields: per field, one value per object of the chunk, shape (n_objects,).
        offsets: objects of event i are at flat positions offsets[i]:offsets[i + 1],
            shape (n_events + 1,).
    """

    fields: dict[str, np.ndarray]
    offsets: np.ndarray

    def owner(self, index: np.ndarray) -> np.ndarray:
        """Event of each object at flat positions ``index``, shape of ``index``."""
        return np.searchsorted(self.offsets, index, side="right") - 1

    def all_owners(self) -> np.ndarray:
        """Event of every object, shape (n_objects,)."""
        n_events = len(self.offsets) - 1
        return np.repeat(np.arange(n_events, dtype=np.int64), np.diff(self.offsets))


def _flat(collection: ak.Array, names: tuple[str, ...]) -> _Flat:
    """Read ``names`` of a jagged collection once, as flat numpy arrays (no per-event lists).

    The selection below works on these arrays: each branch is materialized and converted
    once, and every step after that is a vectorized numpy operation on the objects that
    are still candidates, which costs far less than awkward operations on lazy arrays.
    """
    counts = ak.to_numpy(ak.num(collection[names[0]], axis=1)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    fields = {name: ak.to_numpy(ak.flatten(collection[name], axis=1)) for name in names}
    return _Flat(fields, offsets)


def _leading(owner: np.ndarray, key: np.ndarray, index: np.ndarray, n_events: int) -> np.ndarray:
    """Per event, the flat index of the candidate with the largest ``key`` (-1 if none).

    Ties go to the object that comes first in the event, as a stable descending sort would
    give; a NaN key never wins over a number.

    Arguments:
        owner: event of each candidate, shape (n_candidates,).
        key: the ordering value of each candidate, shape (n_candidates,).
        index: flat position of each candidate, shape (n_candidates,).
        n_events: number of events.
    """
    # lexsort: last key is primary; -key puts the largest first and NaN last.
    order = np.lexsort((index, -key, owner))
    owner, index = owner[order], index[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = owner[1:] != owner[:-1]
    leading = np.full(n_events, -1, dtype=np.int64)
    leading[owner[first]] = index[first]
    return leading


def _delta_r(
    eta: np.ndarray, phi: np.ndarray, other_eta: np.ndarray, other_phi: np.ndarray
) -> np.ndarray:
    """Delta R = sqrt(Delta phi^2 + Delta eta^2), Delta phi wrapped into [-pi, pi): the
    formula and operation order of vector's ``deltaR``, on plain arrays of one shape.

    The detector simulation wraps phi the same way (``sim.detector.response.wrap_phi``); the
    analysis layer imports nothing of the package and the simulation only itself, so each
    writes this line, and tests/test_features.py checks that the two and vector agree."""
    delta_phi = (phi - other_phi + np.pi) % (2 * np.pi) - np.pi
    return np.sqrt(delta_phi**2 + (eta - other_eta) ** 2)


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[index] in the branch's floating-point type (float64 for integers), NaN where
    index is -1. The kinematics are computed in the type stored in the file."""
    dtype = values.dtype if values.dtype.kind == "f" else np.float64
    taken = np.full(len(index), np.nan, dtype=dtype)
    present = index >= 0
    taken[present] = values[index[present]]
    return taken


def _objects(flat: _Flat, index: np.ndarray) -> object:
    """vector Momentum4D array of the objects at flat positions ``index`` (-1: NaN)."""
    return vector.array(
        {name: _take(flat.fields[name], index) for name in ("pt", "eta", "phi", "mass")}
    )


def _nonfinite_gen(genpart: _Flat, genjet: _Flat, genmet: dict[str, np.ndarray]) -> np.ndarray:
    """Per event: does any GEN kinematic value (pt, eta, phi, mass) read here fail isfinite?"""
    bad = np.zeros(len(genpart.offsets) - 1, dtype=bool)
    for flat in (genpart, genjet):
        for name in ("pt", "eta", "phi", "mass"):
            bad_objects = np.flatnonzero(~np.isfinite(flat.fields[name]))
            bad[flat.owner(bad_objects)] = True
    for values in genmet.values():
        bad |= ~np.isfinite(values)
    return bad


def _closest(flat: _Flat, rank: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Per selected event, the flat index of the object closest in Delta R to a target.

    Arguments:
        flat: the candidate objects of all events of the chunk.
        rank: position of each event of the chunk among the selected ones, -1 if not
            selected, shape (n_events,).
        eta, phi: the target of each selected event, shape (n_selected,).

    Returns:
        Shape (n_selected,); -1 where the event has no candidate; ties go to the first.
    """
    event_rank = rank[flat.all_owners()]
    index = np.flatnonzero(event_rank >= 0)
    owner = event_rank[index]
    with np.errstate(invalid="ignore"):
        delta_r = _delta_r(
            flat.fields["eta"][index], flat.fields["phi"][index], eta[owner], phi[owner]
        )
    return _leading(owner, -delta_r, index, len(eta))


def _feature_matrix(
    muon: object, jet: object, met_pt: np.ndarray, met_phi: np.ndarray
) -> np.ndarray:
    """The (n, 9) feature matrix from per-event muon and jet 4-vectors and MET (GeV)."""
    # A massless RECO jet gives log(0) = -inf; the caller marks such events invalid.
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
        met_pt * np.cos(met_phi),
        met_pt * np.sin(met_phi),
    ]
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in columns]).reshape(
        -1, len(FEATURE_NAMES)
    )


def _event_ids(events: ak.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(ak.to_numpy(events[name]).astype(np.uint64) for name in ID_FIELDS)  # type: ignore[return-value]


def build_features(events: ak.Array, selection: Selection | None = None) -> EventFeatures:
    """Apply the GEN selection and compute GEN (and, when present, RECO) feature vectors.

    Each branch is read once as a flat numpy array (see ``_flat``); the selection and
    matching are vectorized over all objects of the chunk and the kinematics use vector.

    Arguments:
        events: NanoAOD-like events (coffea NanoEvents or uproot arrays), length N.
        selection: the cuts; the paper's values by default.

    Returns:
        The features of the n <= N events that pass the GEN selection.

    Raises:
        KeyError: a GEN branch or an event-identity branch is missing; the message lists them.
    """
    selection = selection or Selection()
    missing = missing_gen_branches(branch_names(events, GEN_FIELDS))
    if missing:
        raise KeyError(f"missing GEN branches needed by the W+jet selection: {', '.join(missing)}")
    n_input = len(events)

    genpart = _flat(events.GenPart, GEN_FIELDS["GenPart"])
    part = genpart.fields
    is_prompt_muon = (
        (np.abs(part["pdgId"]) == MUON_PDG_ID)
        & (part["status"] == 1)
        & ((part["statusFlags"] & (1 << PROMPT_FLAG_BIT)) != 0)
        & (part["pt"] > selection.muon_pt_min)
    )
    candidates = np.flatnonzero(is_prompt_muon)
    muon_index = _leading(genpart.owner(candidates), part["pt"][candidates], candidates, n_input)
    muon_eta, muon_phi = _take(part["eta"], muon_index), _take(part["phi"], muon_index)

    genjet = _flat(events.GenJet, GEN_FIELDS["GenJet"])
    jet = genjet.fields
    candidates = np.flatnonzero(
        (jet["pt"] > selection.jet_pt_min) & (np.abs(jet["eta"]) < selection.jet_abs_eta_max)
    )
    owner = genjet.owner(candidates)
    with_muon = muon_index[owner] >= 0
    candidates, owner = candidates[with_muon], owner[with_muon]
    with np.errstate(invalid="ignore"):
        delta_r = _delta_r(
            jet["eta"][candidates], jet["phi"][candidates], muon_eta[owner], muon_phi[owner]
        )
        away = delta_r > selection.muon_jet_delta_r_min
    candidates, owner = candidates[away], owner[away]
    jet_index = _leading(owner, jet["pt"][candidates], candidates, n_input)

    genmet = {name: ak.to_numpy(events.GenMET[name]) for name in GEN_FIELDS["GenMET"]}
    nonfinite = _nonfinite_gen(genpart, genjet, genmet)
    with np.errstate(invalid="ignore"):
        passes = (muon_index >= 0) & (jet_index >= 0) & (_take(jet["mass"], jet_index) > 0)
    passed = np.flatnonzero(passes & ~nonfinite)
    muon_index, jet_index = muon_index[passed], jet_index[passed]
    gen_muon, gen_jet = _objects(genpart, muon_index), _objects(genjet, jet_index)
    gen = _feature_matrix(
        gen_muon,
        gen_jet,
        genmet["pt"][passed],
        genmet["phi"][passed],
    )
    run, lumi, event = (ids[passed] for ids in _event_ids(events))

    reco = None
    reco_valid = np.zeros(len(gen), dtype=bool)
    if has_reco_branches(events):
        # Position of each event among the selected ones (-1: not selected); the objects
        # of events that are not selected are never candidates.
        rank = np.full(n_input, -1, dtype=np.int64)
        rank[passed] = np.arange(len(passed))
        matched = []
        for name, gen_object in (("Muon", gen_muon), ("Jet", gen_jet)):
            flat = _flat(events[name], RECO_FIELDS[name])
            index = _closest(flat, rank, np.asarray(gen_object.eta), np.asarray(gen_object.phi))
            matched.append(_objects(flat, index))
        reco_muon, reco_jet = matched
        reco = _feature_matrix(
            reco_muon,
            reco_jet,
            ak.to_numpy(events.MET.pt)[passed],
            ak.to_numpy(events.MET.phi)[passed],
        )
        gen_muon_pt = np.asarray(gen_muon.pt)
        with np.errstate(invalid="ignore"):
            muon_residual = np.abs(np.asarray(reco_muon.pt) - gen_muon_pt) / gen_muon_pt
            reco_valid = (muon_residual < selection.muon_pt_residual_max) & np.isfinite(reco).all(
                axis=1
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
