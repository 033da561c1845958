"""The matched test events of the fidelity suite: GEN, RECO, RECO' and DL of the same events.

Only events with a valid RECO (and, with a twin file, RECO') match enter, so every sample
describes the same GEN events. DL is :meth:`SurrogateEngine.predict` with the events' own
(run, luminosityBlock, event), as in the processor. Each sample's observables are computed
once here (:class:`ObservableTable`) and passed to every comparison.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.features import EventFeatures, reco_fields
from coffea_fastsim.analysis.reading import InputFileError, read_features
from coffea_fastsim.analysis.registry import check_model_analysis
from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.surrogate.ensemble import Ensemble
from coffea_fastsim.surrogate.inference import SurrogateEngine

__all__ = ["MatchedSample", "load_matched", "match_reco_prime", "predict_members"]

#: Fewest matched events a test file must have.
MIN_MATCHED_EVENTS = 20


@dataclass(frozen=True)
class MatchedSample:
    """Events with a valid RECO (and RECO') match, all tables row-aligned.

    Arguments:
        gen, reco: the GEN and RECO observables, n rows.
        dl: the DL observables of the nominal model.
        dl_members: the DL observables of each ensemble member, k tables.
        reco_prime: the RECO' observables, or None.
        run, luminosity_block, event: event identity, shape (n,).
    """

    gen: ObservableTable
    reco: ObservableTable
    dl: ObservableTable
    dl_members: tuple[ObservableTable, ...]
    reco_prime: ObservableTable | None
    run: np.ndarray
    luminosity_block: np.ndarray
    event: np.ndarray

    def __len__(self) -> int:
        return len(self.gen)


def _event_keys(features: EventFeatures) -> np.ndarray:
    keys = np.empty(len(features), dtype=[("run", "u8"), ("lumi", "u8"), ("event", "u8")])
    keys["run"], keys["lumi"], keys["event"] = (
        features.run,
        features.luminosity_block,
        features.event,
    )
    return keys


def match_reco_prime(
    features: EventFeatures, prime: EventFeatures, prime_path: str | os.PathLike[str] = "RECO'"
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the events valid in both samples, matched by (run, lumi, event).

    Returns:
        (rows of ``features``, rows of ``prime``), each shape (n,), in ``features`` order.

    Raises:
        InputFileError: no common valid event, or a matched event whose GEN features differ
            (the files do not hold the same generated events).
    """
    keys, prime_keys = _event_keys(features), _event_keys(prime)
    valid = features.reco_valid
    prime_valid = prime.reco_valid
    _, rows, prime_rows = np.intersect1d(keys, prime_keys, assume_unique=True, return_indices=True)
    both = valid[rows] & prime_valid[prime_rows]
    rows, prime_rows = rows[both], prime_rows[both]
    order = np.argsort(rows)
    rows, prime_rows = rows[order], prime_rows[order]
    if len(rows) == 0:
        raise InputFileError(f"{prime_path}: no event (run, luminosityBlock, event) in common")
    if not np.allclose(features.gen[rows], prime.gen[prime_rows], rtol=1e-6, atol=1e-6):
        raise InputFileError(
            f"{prime_path}: the GEN features of matched events differ; RECO' must come from "
            "the same generated events"
        )
    return rows, prime_rows


def _predictions(
    members: tuple[Path, ...],
    features: EventFeatures,
    rows: np.ndarray,
    seed: int,
    analysis: AnalysisDefinition,
) -> dict[Path, np.ndarray]:
    """DL features of ``features[rows]`` per distinct model file, shape (n, n_features),
    float64.

    Raises:
        AnalysisMismatchError: a model was trained for another analysis.
    """
    predictions: dict[Path, np.ndarray] = {}
    for path in members:
        if path not in predictions:
            engine = SurrogateEngine(path, seed=seed)
            check_model_analysis(engine.metadata, analysis, path)
            predictions[path] = engine.predict(
                features.gen[rows],
                features.run[rows],
                features.luminosity_block[rows],
                features.event[rows],
            ).astype(np.float64)
    return predictions


def predict_members(
    members: tuple[Path, ...],
    features: EventFeatures,
    rows: np.ndarray,
    seed: int,
    analysis: AnalysisDefinition,
) -> np.ndarray:
    """DL features of ``features[rows]`` from each model, shape (k, n, n_features), float64."""
    predictions = _predictions(members, features, rows, seed, analysis)
    return np.stack([predictions[path] for path in members])


def _read_with_reco(path: Path, analysis: AnalysisDefinition) -> EventFeatures:
    features = read_features(path, analysis)
    if not features.has_reco:
        collections = ", ".join(reco_fields(analysis))
        raise InputFileError(f"{path} has no RECO collections ({collections}): cannot validate")
    return features


def _as_paths(paths: Path | Sequence[Path] | None) -> tuple[Path, ...]:
    if paths is None:
        return ()
    return (Path(paths),) if isinstance(paths, (str, os.PathLike)) else tuple(map(Path, paths))


def _matched_part(
    path: Path, prime_path: Path | None, analysis: AnalysisDefinition
) -> tuple[EventFeatures, np.ndarray | None]:
    """The valid events of one test file (matched with its RECO' twin) and the twin's RECO
    features of the same events."""
    features = _read_with_reco(path, analysis)
    prime_reco = None
    if prime_path is None:
        rows = np.flatnonzero(features.reco_valid)
    else:
        prime = _read_with_reco(prime_path, analysis)
        rows, prime_rows = match_reco_prime(features, prime, prime_path)
        prime_reco = prime.reco[prime_rows]  # type: ignore[index]
    if len(rows) < MIN_MATCHED_EVENTS:
        raise InputFileError(f"{path}: only {len(rows)} events with a valid RECO match")
    part = EventFeatures(
        run=features.run[rows],
        luminosity_block=features.luminosity_block[rows],
        event=features.event[rows],
        gen=features.gen[rows],
        reco=features.reco[rows],  # type: ignore[index]
        reco_valid=features.reco_valid[rows],
        n_input=features.n_input,
    )
    return part, prime_reco


def load_matched(
    path: Path | Sequence[Path],
    ensemble: Ensemble,
    seed: int,
    analysis: AnalysisDefinition,
    reco_prime: Path | Sequence[Path] | None = None,
) -> MatchedSample:
    """Read test files (and their RECO' twins, in the same order), keep valid events,
    predict DL; the files' events are concatenated in the order given.

    Raises:
        InputFileError: a file without RECO collections, twins that do not match (or not
            one twin per test file), or fewer than ``MIN_MATCHED_EVENTS`` matched events
            in a file.
    """
    paths, primes = _as_paths(path), _as_paths(reco_prime)
    if primes and len(primes) != len(paths):
        raise InputFileError(
            f"{len(paths)} test files but {len(primes)} RECO' files: give one twin per file"
        )
    parts = [_matched_part(p, primes[i] if primes else None, analysis) for i, p in enumerate(paths)]

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(part, name) for part, _ in parts])

    features = EventFeatures(
        *(joined(name) for name in ("run", "luminosity_block", "event", "gen", "reco")),
        reco_valid=joined("reco_valid"),
        n_input=sum(part.n_input for part, _ in parts),
    )
    prime_features = (
        ObservableTable.of(np.concatenate([prime for _, prime in parts]), analysis)  # type: ignore[misc]
        if primes
        else None
    )
    rows = np.arange(len(features))
    models = (ensemble.nominal, *ensemble.members)
    predictions = _predictions(models, features, rows, seed, analysis)
    tables = {path: ObservableTable.of(dl, analysis) for path, dl in predictions.items()}
    return MatchedSample(
        gen=ObservableTable.of(features.gen, analysis),
        reco=ObservableTable.of(features.reco, analysis),  # type: ignore[arg-type]
        dl=tables[ensemble.nominal],
        dl_members=tuple(tables[path] for path in ensemble.members),
        reco_prime=prime_features,
        run=features.run,
        luminosity_block=features.luminosity_block,
        event=features.event,
    )
