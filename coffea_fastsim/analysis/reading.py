"""Reading NanoAOD-like files into events and feature pairs, with errors that name the file."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.features import EventFeatures, build_features, reco_fields

__all__ = [
    "InputFileError",
    "check_input_file",
    "feature_pairs",
    "is_rntuple",
    "open_events",
    "read_features",
    "sample_process",
]

TREE_NAME = "Events"
#: Hard-process bosons that name a sample's process (PDG id -> name of the process).
HARD_PROCESS_BOSONS: dict[int, str] = {24: "W+jet", 23: "Z/gamma*+jet"}
#: GenPart statusFlags bit 7: isHardProcess.
_HARD_PROCESS_BIT = 7

#: NanoAODSchema warns about cross-references to collections that a file does not store
#: (generated files have no Electron or FatJet, real ones lack FatJet subjets); harmless here.
NANOAOD_WARNING_FILTER = "ignore:Missing cross-reference index:RuntimeWarning"
_CROSS_REFERENCE_WARNING = {"message": "Missing cross-reference", "category": RuntimeWarning}


class InputFileError(ValueError):
    """An input file is missing, unreadable, or lacks the Events tree or needed branches."""


def _check_baskets_inside(tree: uproot.TTree, path: Path, size: int) -> None:
    """Raise if a basket of the TTree ``tree`` lies beyond the file's ``size`` bytes."""
    for branch in tree.itervalues(recursive=True):
        n_baskets = branch.num_baskets
        if n_baskets == 0:
            continue
        seeks = np.asarray(branch.member("fBasketSeek"))[:n_baskets]
        sizes = np.asarray(branch.member("fBasketBytes"))[:n_baskets]
        if np.any(seeks + sizes > size):
            raise InputFileError(
                f"{path} is truncated: branch {branch.name} has data beyond the file's {size} bytes"
            )


def _check_pages_inside(ntuple: Any, path: Path, size: int) -> None:
    """Raise if a page of the RNTuple ``ntuple`` lies beyond the file's ``size`` bytes."""
    names = {column: record.field_id for column, record in enumerate(ntuple.column_records)}
    for cluster in ntuple.page_link_list:
        for column, pages in enumerate(cluster):
            for page in pages.pages:
                locator = page.locator
                if locator.offset + locator.num_bytes > size:
                    field = ntuple.field_records[names[column]].field_name
                    raise InputFileError(
                        f"{path} is truncated: field {field} has data beyond the file's "
                        f"{size} bytes"
                    )


def is_rntuple(events: Any) -> bool:
    """Whether an ``Events`` object that uproot opened is an RNTuple (else a TTree)."""
    return isinstance(events, uproot.behaviors.RNTuple.HasFields)


def _check_data_inside(events: Any, path: Path) -> None:
    """Raise if the data of ``events`` (TTree baskets or RNTuple pages) lie beyond the end
    of the file (a truncated copy)."""
    size = path.stat().st_size
    if is_rntuple(events):
        _check_pages_inside(events, path, size)
    else:
        _check_baskets_inside(events, path, size)


def check_input_file(path: str | os.PathLike) -> frozenset[str]:
    """Raise :class:`InputFileError` unless ``path`` is a readable, complete ROOT file with
    an Events TTree or RNTuple. Reads only metadata.

    Returns:
        The names of the Events branches (TTree) or fields (RNTuple), so that a caller that
        checks them does not read the metadata again (about 2 s for a real NanoAOD tree).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"input file not found: {path}")
    try:
        with uproot.open(path) as file:
            if TREE_NAME not in file:
                keys = ", ".join(file.keys(recursive=False)) or "none"
                raise InputFileError(f"{path} has no '{TREE_NAME}' tree (keys: {keys})")
            events = file[TREE_NAME]
            _check_data_inside(events, path)
            return frozenset(events.keys())
    except InputFileError:
        raise
    except Exception as error:
        raise InputFileError(f"{path} is not a readable ROOT file: {error}") from error


def ignore_nanoaod_warnings() -> None:
    """Silence NanoAODSchema's cross-reference warning in this process and, through
    ``PYTHONWARNINGS``, in the worker processes it starts (unless that is already set)."""
    os.environ.setdefault("PYTHONWARNINGS", NANOAOD_WARNING_FILTER)
    warnings.filterwarnings("ignore", **_CROSS_REFERENCE_WARNING)


def open_events(path: str | os.PathLike) -> ak.Array:
    """All events of one NanoAOD-like file as eager coffea NanoEvents (NanoAODSchema)."""
    path = Path(path)
    check_input_file(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", **_CROSS_REFERENCE_WARNING)
        return NanoEventsFactory.from_root(
            {str(path): TREE_NAME}, schemaclass=NanoAODSchema, mode="eager"
        ).events()


def read_features(path: str | os.PathLike, analysis: AnalysisDefinition) -> EventFeatures:
    """GEN (and RECO) feature vectors of the events of one file selected by `analysis`."""
    events = open_events(path)
    try:
        return build_features(events, analysis)
    except KeyError as error:
        raise InputFileError(f"{path}: {error.args[0]}") from error


@dataclass(frozen=True)
class FeaturePairs:
    """GEN and RECO feature vectors of the events with a valid RECO match, with their identity.

    Arguments:
        gen, reco: shape (n, n_features) each, float64, order of the analysis's features.
        run, luminosity_block, event: event identity, shape (n,), uint64; with the seed it
            fixes the surrogate's noise of each event.
    """

    gen: np.ndarray
    reco: np.ndarray
    run: np.ndarray
    luminosity_block: np.ndarray
    event: np.ndarray

    def __len__(self) -> int:
        return len(self.gen)


def feature_pairs(
    paths: Iterable[str | os.PathLike] | Sequence[str | os.PathLike],
    analysis: AnalysisDefinition,
) -> FeaturePairs:
    """The valid GEN/RECO pairs of the events of every file selected by `analysis`, in file
    order.

    Raises:
        InputFileError: a file has no RECO collections, or no file has a valid pair.
    """
    parts: list[EventFeatures] = []
    for path in paths:
        features = read_features(path, analysis)
        if not features.has_reco:
            raise InputFileError(
                f"{path} lacks RECO collections of the analysis {analysis.name!r} "
                f"({', '.join(reco_fields(analysis))}): cannot train on it"
            )
        parts.append(features)
    if sum(int(features.reco_valid.sum()) for features in parts) == 0:
        raise InputFileError(
            f"no events selected by the analysis {analysis.name!r} with valid RECO partners "
            "in the inputs"
        )

    def valid(name: str) -> np.ndarray:
        return np.concatenate([getattr(f, name)[f.reco_valid] for f in parts])

    return FeaturePairs(
        gen=valid("gen"),
        reco=valid("reco"),
        run=valid("run"),
        luminosity_block=valid("luminosity_block"),
        event=valid("event"),
    )


def sample_process(path: str | os.PathLike, entries: int = 1000) -> str:
    """The process of a sample, read from its GEN record: the hard-process bosons
    (GenPart with the isHardProcess flag and |pdgId| in HARD_PROCESS_BOSONS) of its first
    `entries` events; "unknown" when there are none.

    This needs no bookkeeping: any file with a GenPart collection tells its process, whoever
    wrote it.
    """
    check_input_file(path)
    with uproot.open(path) as file:
        tree = file[TREE_NAME]
        if "GenPart_pdgId" not in tree or "GenPart_statusFlags" not in tree:
            return "unknown"
        arrays = tree.arrays(["GenPart_pdgId", "GenPart_statusFlags"], entry_stop=entries)
    pdg_id = np.abs(ak.to_numpy(ak.flatten(arrays["GenPart_pdgId"])))
    hard = (ak.to_numpy(ak.flatten(arrays["GenPart_statusFlags"])) >> _HARD_PROCESS_BIT) & 1
    found = sorted({int(i) for i in pdg_id[hard == 1]} & set(HARD_PROCESS_BOSONS))
    return " + ".join(HARD_PROCESS_BOSONS[i] for i in found) or "unknown"
