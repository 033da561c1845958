"""The selection and feature building of an analysis definition, written once for GEN and RECO.

`build_features(events, analysis)` selects the GEN objects of `analysis.objects` in order
(see `coffea_fastsim.analysis.definition.GenObject`), keeps the events where every object
is found and the GEN feature vector is finite, and matches each GEN object to the RECO
object of its partner collection closest in Delta R; an event has a valid RECO feature
vector only if every partner exists, passes its residual and Delta R cuts, and the RECO
feature vector is finite.

The input is any awkward record array with NanoAOD collections: coffea NanoEvents, or the
arrays uproot reads. Only the collections the definition names are read (pt, eta, phi,
mass, and pdgId, status, statusFlags of GenPart), GenMET and MET (pt, phi) when the
definition uses MET, and the event identity (run, luminosityBlock, event).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import awkward as ak
import numpy as np
import vector

from coffea_fastsim.analysis.definition import (
    GEN_COLLECTIONS,
    MET_COLLECTIONS,
    AnalysisDefinition,
    DefinitionError,
    GenObject,
    MissingET,
)
from coffea_fastsim.analysis.flat import (
    Flat,
    angular_distance,
    closest,
    leading,
    objects_at,
    read_flat,
    take,
)

__all__ = [
    "ID_FIELDS",
    "EventFeatures",
    "branch_names",
    "build_features",
    "gen_branches",
    "gen_fields",
    "has_reco_branches",
    "missing_gen_branches",
    "reco_fields",
]

vector.register_awkward()

PROMPT_FLAG_BIT = 0  # CMS GenPart statusFlags bit 0: isPrompt
#: Fields read from a RECO collection of an object's partner.
RECO_OBJECT_FIELDS: tuple[str, ...] = ("pt", "eta", "phi", "mass")
ID_FIELDS: tuple[str, ...] = ("run", "luminosityBlock", "event")


def _branches(required: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(f"{group}_{field}" for group, fields in required.items() for field in fields)


def gen_fields(analysis: AnalysisDefinition) -> dict[str, tuple[str, ...]]:
    """GEN collection -> fields that the selection of `analysis` reads."""
    fields = {o.collection: GEN_COLLECTIONS[o.collection] for o in analysis.objects}
    if analysis.met:
        fields["GenMET"] = MET_COLLECTIONS["GenMET"]
    return fields


def gen_branches(analysis: AnalysisDefinition) -> tuple[str, ...]:
    """Flat NanoAOD names of every branch the GEN selection of `analysis` and the event
    identity read."""
    return (*_branches(gen_fields(analysis)), *ID_FIELDS)


def reco_fields(analysis: AnalysisDefinition) -> dict[str, tuple[str, ...]]:
    """RECO collection -> fields that the RECO features of `analysis` read."""
    fields = {o.reco: RECO_OBJECT_FIELDS for o in analysis.objects}
    if analysis.met:
        fields["MET"] = MET_COLLECTIONS["MET"]
    return fields


@dataclass(frozen=True)
class EventFeatures:
    """Feature vectors of the events that pass the GEN selection.

    Arguments:
        run, luminosity_block, event: event identity, shape (n,), uint64.
        gen: GEN feature vectors, shape (n, n_features), float64, order of the analysis's
            ``feature_names``.
        reco: RECO feature vectors, shape (n, n_features), float64; rows where
            ``reco_valid`` is False are NaN. None when the input has no RECO collections.
        reco_valid: shape (n,), bool: every GEN object has a RECO partner that passes the
            matching cuts. All False when the input has no RECO collections.
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


def missing_gen_branches(present: Collection[str], analysis: AnalysisDefinition) -> list[str]:
    """The branches (flat NanoAOD names, e.g. ``GenJet_pt``) of the GEN selection of
    `analysis` and the event identity that are not in ``present``, e.g. the keys of a file's
    Events tree."""
    return [name for name in gen_branches(analysis) if name not in present]


def has_reco_branches(events: ak.Array, analysis: AnalysisDefinition) -> bool:
    """Whether the input has every RECO collection and field the RECO features need."""
    required = reco_fields(analysis)
    present = branch_names(events, required)
    return all(name in present for name in _branches(required))


def _nonfinite_gen(
    flats: dict[str, Flat], genmet: dict[str, np.ndarray], n_events: int
) -> np.ndarray:
    """Per event: does any GEN kinematic value (pt, eta, phi, mass) read here fail isfinite?"""
    bad = np.zeros(n_events, dtype=bool)
    for flat in flats.values():
        for name in ("pt", "eta", "phi", "mass"):
            bad_objects = np.flatnonzero(~np.isfinite(flat.fields[name]))
            bad[flat.owner(bad_objects)] = True
    for values in genmet.values():
        bad |= ~np.isfinite(values)
    return bad


def _event_ids(events: ak.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(ak.to_numpy(events[name]).astype(np.uint64) for name in ID_FIELDS)  # type: ignore[return-value]


def _candidates(
    obj: GenObject,
    flat: Flat,
    selected: dict[str, tuple[Flat, np.ndarray]],
    n_events: int,
) -> np.ndarray:
    """Per event, the flat index of the object `obj` (-1 if none): the highest-pT candidate
    that passes its cuts, is not an object already selected from the same collection, has
    the opposite pdgId sign of `opposite_charge_to` and is away from `away_from`."""
    fields = flat.fields
    passes = fields["pt"] > obj.pt_min
    if obj.pdg_id is not None:
        passes &= np.abs(fields["pdgId"]) == obj.pdg_id
    if obj.prompt:
        passes &= (fields["status"] == 1) & ((fields["statusFlags"] & (1 << PROMPT_FLAG_BIT)) != 0)
    if obj.abs_eta_max is not None:
        passes &= np.abs(fields["eta"]) < obj.abs_eta_max
    candidates = np.flatnonzero(passes)
    owner = flat.owner(candidates)
    same_collection = [
        index for other, (other_flat, index) in selected.items() if other_flat is flat
    ]
    for index in same_collection:
        keep = candidates != index[owner]
        candidates, owner = candidates[keep], owner[keep]
    if obj.opposite_charge_to is not None:
        partner = selected[obj.opposite_charge_to][1][owner]
        sign = np.sign(fields["pdgId"])
        keep = (partner >= 0) & (sign[candidates] == -sign[np.maximum(partner, 0)])
        candidates, owner = candidates[keep], owner[keep]
    for other in obj.away_from:
        other_flat, other_index = selected[other]
        present = other_index[owner] >= 0
        candidates, owner = candidates[present], owner[present]
        other_eta = take(other_flat.fields["eta"], other_index)
        other_phi = take(other_flat.fields["phi"], other_index)
        with np.errstate(invalid="ignore"):
            delta_r = angular_distance(
                fields["eta"][candidates],
                fields["phi"][candidates],
                other_eta[owner],
                other_phi[owner],
            )
            away = delta_r > obj.delta_r_min
        candidates, owner = candidates[away], owner[away]
    return leading(owner, fields["pt"][candidates], candidates, n_events)


def _feature_vectors(
    analysis: AnalysisDefinition, objects: dict[str, object], n_events: int
) -> np.ndarray:
    """`analysis.compute_features(objects)`, checked to be (n_events, n_features)."""
    features = np.asarray(analysis.compute_features(objects), dtype=np.float64)
    expected = (n_events, len(analysis.features))
    if features.shape != expected:
        raise DefinitionError(
            f"analysis {analysis.name!r}, field compute_features: returned shape "
            f"{features.shape}, expected {expected} (one column per feature)"
        )
    return features


def _gen_objects(
    analysis: AnalysisDefinition,
    selected: dict[str, tuple[Flat, np.ndarray]],
    genmet: dict[str, np.ndarray],
    events: np.ndarray,
) -> dict[str, object]:
    """The selected GEN objects (and MET) of the events at positions `events`."""
    objects: dict[str, object] = {
        name: objects_at(flat, index[events]) for name, (flat, index) in selected.items()
    }
    if analysis.met:
        objects["met"] = MissingET(genmet["pt"][events], genmet["phi"][events])
    return objects


def _reco_features(
    events: ak.Array,
    analysis: AnalysisDefinition,
    gen_objects: dict[str, object],
    passed: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """RECO feature vectors of the selected events and whether each is valid."""
    n_input = len(events)
    # Position of each event among the selected ones (-1: not selected); the objects of
    # events that are not selected are never candidates.
    rank = np.full(n_input, -1, dtype=np.int64)
    rank[passed] = np.arange(len(passed))
    flats = {
        name: read_flat(events[name], RECO_OBJECT_FIELDS)
        for name in dict.fromkeys(o.reco for o in analysis.objects)
    }
    reco_objects: dict[str, object] = {}
    valid = np.ones(len(passed), dtype=bool)
    for obj in analysis.objects:
        gen = gen_objects[obj.name]
        gen_eta, gen_phi = np.asarray(gen.eta), np.asarray(gen.phi)  # type: ignore[attr-defined]
        flat = flats[obj.reco]
        index = closest(flat, rank, gen_eta, gen_phi)
        if obj.match_delta_r_max is not None:
            with np.errstate(invalid="ignore"):
                delta_r = angular_distance(
                    take(flat.fields["eta"], index),
                    take(flat.fields["phi"], index),
                    gen_eta,
                    gen_phi,
                )
            index = np.where(delta_r < obj.match_delta_r_max, index, -1)
        reco = objects_at(flat, index)
        reco_objects[obj.name] = reco
        if obj.match_pt_residual_max is not None:
            gen_pt = np.asarray(gen.pt)  # type: ignore[attr-defined]
            with np.errstate(invalid="ignore"):
                residual = np.abs(np.asarray(reco.pt) - gen_pt) / gen_pt  # type: ignore[attr-defined]
                valid &= residual < obj.match_pt_residual_max
    if analysis.met:
        reco_objects["met"] = MissingET(
            ak.to_numpy(events.MET.pt)[passed], ak.to_numpy(events.MET.phi)[passed]
        )
    reco = _feature_vectors(analysis, reco_objects, len(passed))
    valid &= np.isfinite(reco).all(axis=1)
    reco[~valid] = np.nan
    return reco, valid


def build_features(events: ak.Array, analysis: AnalysisDefinition) -> EventFeatures:
    """Apply the GEN selection of `analysis` and compute GEN (and, when present, RECO)
    feature vectors.

    Each branch is read once as a flat numpy array (see ``flat``); the selection and
    matching are vectorized over all objects of the chunk and the kinematics use vector.

    Arguments:
        events: NanoAOD-like events (coffea NanoEvents or uproot arrays), length N.
        analysis: the analysis definition.

    Returns:
        The features of the n <= N events that pass the GEN selection.

    Raises:
        KeyError: a GEN branch or an event-identity branch is missing; the message names
            the analysis and lists them.
    """
    missing = missing_gen_branches(branch_names(events, gen_fields(analysis)), analysis)
    if missing:
        raise KeyError(
            f"missing GEN branches needed by the analysis {analysis.name!r}: {', '.join(missing)}"
        )
    n_input = len(events)
    flats = {
        name: read_flat(events[name], fields)
        for name, fields in gen_fields(analysis).items()
        if name in GEN_COLLECTIONS
    }
    selected: dict[str, tuple[Flat, np.ndarray]] = {}
    for obj in analysis.objects:
        flat = flats[obj.collection]
        selected[obj.name] = (flat, _candidates(obj, flat, selected, n_input))
    genmet = (
        {name: ak.to_numpy(events.GenMET[name]) for name in MET_COLLECTIONS["GenMET"]}
        if analysis.met
        else {}
    )
    nonfinite = _nonfinite_gen(flats, genmet, n_input)
    found = np.logical_and.reduce([index >= 0 for _, index in selected.values()])
    candidates = np.flatnonzero(found & ~nonfinite)
    finite = np.isfinite(
        _feature_vectors(
            analysis, _gen_objects(analysis, selected, genmet, candidates), len(candidates)
        )
    ).all(axis=1)
    passed = candidates[finite]
    gen_objects = _gen_objects(analysis, selected, genmet, passed)
    gen = _feature_vectors(analysis, gen_objects, len(passed))
    run, lumi, event = (ids[passed] for ids in _event_ids(events))

    reco = None
    reco_valid = np.zeros(len(gen), dtype=bool)
    if has_reco_branches(events, analysis):
        reco, reco_valid = _reco_features(events, analysis, gen_objects, passed)

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
