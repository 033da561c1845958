"""An analysis as a definition: what it selects, what the surrogate maps, what it plots.

An `AnalysisDefinition` is a small frozen object. Its GEN objects (`GenObject`) say which
collection each object comes from, the cuts, the prompt flag, the charge pairing and the
overlap removal, and how the object finds its RECO partner. Its feature vector (names,
units, binning) is computed from the selected objects by one function and turned back into
objects by another; its auxiliary observables are computed from those objects. Selection,
feature building, histograms, the DL dataset schema, training, the model file, validation
and plots all read the definition, so a new analysis is a new definition, not new code paths
(docs/analyses.md walks through writing one).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "GEN_COLLECTIONS",
    "MET_COLLECTIONS",
    "RESPONSE_KINDS",
    "AnalysisDefinition",
    "DefinitionError",
    "GenObject",
    "MissingET",
    "Observable",
    "Region",
    "Response",
]

#: GEN collections an object can come from, and the fields the selection reads there.
GEN_COLLECTIONS: dict[str, tuple[str, ...]] = {
    "GenPart": ("pt", "eta", "phi", "mass", "pdgId", "status", "statusFlags"),
    "GenJet": ("pt", "eta", "phi", "mass"),
}
#: The missing transverse momentum: GEN and RECO collections, and their fields.
MET_COLLECTIONS: dict[str, tuple[str, ...]] = {"GenMET": ("pt", "phi"), "MET": ("pt", "phi")}


class DefinitionError(ValueError):
    """An analysis definition is inconsistent; the message names the definition and field."""


@dataclass(frozen=True)
class Observable:
    """One observable: a feature or an auxiliary quantity, with its histogram binning.

    Arguments:
        name: column name, as written in datasets and used for histogram keys.
        label: axis label for plots (LaTeX, with the unit in brackets).
        bins: number of regular bins of the histogram.
        low: lower edge of the histogram range (in the observable's unit).
        high: upper edge of the histogram range.
        unit: the unit ("GeV", "log(GeV)", "" for dimensionless).
    """

    name: str
    label: str
    bins: int
    low: float
    high: float
    unit: str = "GeV"


@dataclass(frozen=True)
class GenObject:
    """One GEN object that the analysis selects, and how it finds its RECO partner.

    The object is the highest-pT candidate of `collection` that passes every cut; an object
    of a collection never reuses an object selected before it from the same collection.

    Arguments:
        name: the object's name in the feature functions (``objects[name]``).
        collection: GEN collection, a key of GEN_COLLECTIONS.
        reco: RECO collection of its partner (e.g. ``"Muon"``, ``"Jet"``).
        pdg_id: |pdgId| of the candidates (GenPart only).
        prompt: only final-state (status 1) candidates with the isPrompt flag (GenPart only).
        pt_min: candidates need pT > pt_min (GeV).
        abs_eta_max: candidates need |eta| < abs_eta_max; None: no cut.
        opposite_charge_to: name of an earlier GenPart object whose pdgId sign it must oppose.
        away_from: names of earlier objects it must be separated from in Delta R.
        delta_r_min: Delta R > delta_r_min from each of `away_from`.
        match_pt_residual_max: the RECO partner (closest in Delta R) needs
            |pT_GEN - pT_RECO| / pT_GEN < this; None: no cut.
        match_delta_r_max: the RECO partner needs Delta R < this; None: the closest is taken.
    """

    name: str
    collection: str
    reco: str
    pdg_id: int | None = None
    prompt: bool = False
    pt_min: float = 0.0
    abs_eta_max: float | None = None
    opposite_charge_to: str | None = None
    away_from: tuple[str, ...] = ()
    delta_r_min: float = 0.0
    match_pt_residual_max: float | None = None
    match_delta_r_max: float | None = None


@dataclass(frozen=True)
class Region:
    """An analysis-level output: the events inside every cut, their yield per sample (GEN,
    DL, RECO) and the histogram of one observable in the region.

    Arguments:
        name: output keys are ``NAME_yields`` and ``NAME_OBSERVABLE``.
        label: what the histogram's axis label adds (e.g. "signal region").
        above: (observable name, cut) pairs: the region keeps events with values > cut.
        observable: the observable histogrammed in the region.
        below: (observable name, cut) pairs: the region keeps events with values < cut.
    """

    name: str
    label: str
    above: tuple[tuple[str, float], ...]
    observable: str
    below: tuple[tuple[str, float], ...] = ()


#: Kinds of detector response and the number of features each one covers.
RESPONSE_KINDS: dict[str, int] = {"momentum": 3, "difference": 1, "transverse": 2}


@dataclass(frozen=True)
class Response:
    """How the detector changes some features of one object, in the detector's coordinates.

    A surrogate trained with the detector target learns these responses instead of the
    RECO features themselves; the RECO-like features are then the GEN features with the
    response applied, so every observable comes out of the same objects.

    Arguments:
        name: the object's name (``axis`` of a transverse response refers to it).
        kind: one of RESPONSE_KINDS:
            "momentum": features (px, py, pz) in GeV; the response is
            (log(pT_RECO / pT_GEN), eta_RECO - eta_GEN, phi_RECO - phi_GEN wrapped to
            [-pi, pi)).
            "difference": one feature; the response is x_RECO - x_GEN (for a log mass,
            log(m_RECO / m_GEN)).
            "transverse": features (x, y) of a transverse vector in GeV, e.g. the missing
            momentum; the response is the RECO - GEN difference, its components along and
            across the GEN transverse direction of the momentum response ``axis``.
        features: the feature names it covers, in the order above.
        axis: the name of a "momentum" response (transverse kind only).
    """

    name: str
    kind: str
    features: tuple[str, ...]
    axis: str | None = None


class MissingET(NamedTuple):
    """The missing transverse momentum of the selected events: pT (GeV) and phi, shape (n,)."""

    pt: np.ndarray
    phi: np.ndarray


#: objects -> feature matrix (n, n_features), float64; objects[name] are vector Momentum4D
#: arrays in the file's float type (NaN where absent), objects["met"] a MissingET.
FeatureFunction = Callable[[Mapping[str, Any]], np.ndarray]
#: feature matrix (n, n_features) -> {name: vector array} of the objects it describes.
RecoverFunction = Callable[[np.ndarray], Mapping[str, Any]]
#: (recovered objects, feature matrix) -> {auxiliary name: values (n,)}.
AuxiliaryFunction = Callable[[Mapping[str, Any], np.ndarray], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class AnalysisDefinition:
    """Everything the plugin needs to know about one analysis.

    Arguments:
        name: short name (``--analysis NAME``).
        description: one line for listings.
        objects: the GEN objects, selected in this order; an event is selected when every
            object is found and its GEN feature vector is finite.
        features: the feature vector the surrogate maps, in order.
        compute_features: objects -> feature matrix (see FeatureFunction).
        recover_objects: feature matrix -> objects (see RecoverFunction).
        compute_auxiliary: (objects, features) -> auxiliary observables.
        auxiliary: the auxiliary observables, in order.
        met: whether the selection reads GenMET (and MET for RECO): ``objects["met"]``.
        regions: analysis-level outputs of the processor.
        residual_binning: (bins, low, high) of the relative residual histograms.
        responses: the detector responses that cover the feature vector, each feature once
            (see Response); empty: the analysis offers only the paper target (the RECO
            features themselves). Not part of the hash: it says how a surrogate may
            parametrize the features, not what they are; a model file records the layout it
            was trained with.
    """

    name: str
    description: str
    objects: tuple[GenObject, ...]
    features: tuple[Observable, ...]
    compute_features: FeatureFunction
    recover_objects: RecoverFunction
    compute_auxiliary: AuxiliaryFunction
    auxiliary: tuple[Observable, ...] = ()
    met: bool = True
    regions: tuple[Region, ...] = ()
    residual_binning: tuple[int, float, float] = (80, -1.0, 1.0)
    responses: tuple[Response, ...] = ()
    _hash: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        _check(self)
        object.__setattr__(self, "_hash", _definition_hash(self))

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the feature vector's entries, in order."""
        return tuple(o.name for o in self.features)

    @property
    def auxiliary_names(self) -> tuple[str, ...]:
        """Names of the auxiliary observables, in order."""
        return tuple(o.name for o in self.auxiliary)

    @property
    def observables(self) -> tuple[Observable, ...]:
        """Features, then auxiliary observables."""
        return self.features + self.auxiliary

    @property
    def observable_names(self) -> tuple[str, ...]:
        """Names of the features, then of the auxiliary observables."""
        return self.feature_names + self.auxiliary_names

    @property
    def hash(self) -> str:
        """SHA-256 of the definition: its fields and the source of its functions."""
        return self._hash

    @property
    def record(self) -> dict[str, str]:
        """What a model file records of the analysis it was trained for."""
        return {"name": self.name, "hash": self.hash}

    def observable(self, name: str) -> Observable:
        """The observable called `name`."""
        for observable in self.observables:
            if observable.name == name:
                return observable
        raise DefinitionError(
            f"analysis {self.name!r} has no observable {name!r}; it has {self.observable_names}"
        )

    def auxiliary_from_features(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """The auxiliary observables of feature vectors (GEN, RECO or DL alike).

        Arguments:
            features: shape (n, n_features), order of `feature_names`.

        Returns:
            One array of shape (n,) per name of `auxiliary_names`.
        """
        features = self.check_features(features, "features")
        values = self.compute_auxiliary(self.recover_objects(features), features)
        missing = [name for name in self.auxiliary_names if name not in values]
        if missing:
            raise DefinitionError(
                f"analysis {self.name!r}: compute_auxiliary does not return {missing}"
            )
        return {name: np.asarray(values[name]) for name in self.auxiliary_names}

    def observables_of(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """The features and the auxiliary observables of feature vectors (n, n_features)."""
        features = self.check_features(features, "features")
        values = {name: features[:, i] for i, name in enumerate(self.feature_names)}
        values.update(self.auxiliary_from_features(features))
        return values

    def check_features(self, features: np.ndarray, argument: str) -> np.ndarray:
        """`features` as float64, or an error naming the analysis if the width is not
        the definition's."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.features):
            raise ValueError(
                f"{argument} must have shape (n, {len(self.features)}) for the analysis "
                f"{self.name!r} ({', '.join(self.feature_names)}), got {features.shape}"
            )
        return features


def _check(definition: AnalysisDefinition) -> None:
    """Raise DefinitionError naming the definition and the field that is wrong."""

    def fail(field_name: str, message: str) -> None:
        raise DefinitionError(f"analysis {definition.name!r}, field {field_name}: {message}")

    if not definition.name or not definition.name.isidentifier():
        fail("name", f"{definition.name!r} is not a valid identifier")
    if not definition.objects:
        fail("objects", "an analysis selects at least one GEN object")
    if not definition.features:
        fail("features", "the feature vector is empty")
    names: list[str] = []
    for obj in definition.objects:
        where = f"objects[{obj.name!r}]"
        if obj.collection not in GEN_COLLECTIONS:
            fail(f"{where}.collection", f"{obj.collection!r} is not one of {list(GEN_COLLECTIONS)}")
        if obj.collection != "GenPart" and (obj.pdg_id is not None or obj.prompt):
            fail(f"{where}.pdg_id", f"pdg_id and prompt apply to GenPart, not {obj.collection}")
        earlier = set(names)
        for other in (*obj.away_from, *filter(None, [obj.opposite_charge_to])):
            if other not in earlier:
                fail(f"{where}.away_from", f"{other!r} is not an object selected before it")
        if obj.name in earlier or obj.name == "met":
            fail(f"{where}.name", "object names are unique and 'met' is reserved")
        names.append(obj.name)
    seen: set[str] = set()
    for group, observables in (
        ("features", definition.features),
        ("auxiliary", definition.auxiliary),
    ):
        for observable in observables:
            where = f"{group}[{observable.name!r}]"
            if observable.name in seen:
                fail(where, "the name is used twice")
            seen.add(observable.name)
            if not (isinstance(observable.bins, int) and observable.bins > 0):
                fail(f"{where}.bins", f"no binning: bins = {observable.bins!r}")
            if not (math.isfinite(observable.low) and math.isfinite(observable.high)):
                fail(f"{where}.low/high", "the histogram range is not finite")
            if not observable.low < observable.high:
                fail(f"{where}.low/high", f"empty range [{observable.low}, {observable.high}]")
    _check_responses(definition, fail)
    for region in definition.regions:
        cuts = (*region.above, *region.below)
        for name in (*(name for name, _ in cuts), region.observable):
            if name not in seen:
                fail(f"regions[{region.name!r}]", f"{name!r} is not an observable")


def _check_responses(definition: AnalysisDefinition, fail: Callable[[str, str], None]) -> None:
    """The responses cover every feature once, with the arity of their kind."""
    if not definition.responses:
        return
    covered: list[str] = []
    momenta: set[str] = set()
    for response in definition.responses:
        where = f"responses[{response.name!r}]"
        arity = RESPONSE_KINDS.get(response.kind)
        if arity is None:
            fail(f"{where}.kind", f"{response.kind!r} is not one of {list(RESPONSE_KINDS)}")
        if len(response.features) != arity:
            fail(
                f"{where}.features",
                f"a {response.kind} response covers {arity} features, got {response.features}",
            )
        unknown = [f for f in response.features if f not in definition.feature_names]
        if unknown:
            fail(f"{where}.features", f"{unknown} are not features of the analysis")
        if response.kind == "transverse" and response.axis not in momenta:
            fail(f"{where}.axis", f"{response.axis!r} is not a momentum response before it")
        if response.kind != "transverse" and response.axis is not None:
            fail(f"{where}.axis", "only a transverse response has an axis")
        if response.kind == "momentum":
            momenta.add(response.name)
        covered.extend(response.features)
    twice = sorted({f for f in covered if covered.count(f) > 1})
    missing = [f for f in definition.feature_names if f not in covered]
    if twice or missing:
        fail("responses", f"features covered twice: {twice}; not covered: {missing}")


def _source(function: Callable[..., Any]) -> str:
    """The source code of `function`, or its qualified name when there is none."""
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return f"{getattr(function, '__module__', '')}.{getattr(function, '__qualname__', '')}"


def _definition_hash(definition: AnalysisDefinition) -> str:
    content = {
        "name": definition.name,
        "objects": [asdict(o) for o in definition.objects],
        "features": [asdict(o) for o in definition.features],
        "auxiliary": [asdict(o) for o in definition.auxiliary],
        "met": definition.met,
        "regions": [asdict(r) for r in definition.regions],
        "residual_binning": list(definition.residual_binning),
        "functions": [
            _source(f)
            for f in (
                definition.compute_features,
                definition.recover_objects,
                definition.compute_auxiliary,
            )
        ],
    }
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
