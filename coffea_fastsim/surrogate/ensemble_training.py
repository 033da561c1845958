"""The train use case: K models with consecutive seeds, each saved with its held-out check.

Training works on arrays: the caller reads the GEN/RECO pairs
(``analysis.reading.feature_pairs``) and gives the held-out check
(``validation.heldout.heldout_agreement``), so this layer imports neither the readers nor
the metrics. Each member is saved, evaluated from its file by the check (the same inference
path as the processor), and saved again with the check's table in its metadata.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coffea_fastsim.analysis.definition import Response
from coffea_fastsim.surrogate.ensemble import member_path
from coffea_fastsim.surrogate.model_file import save_model
from coffea_fastsim.surrogate.training import TrainingConfig, TrainingResult, train_surrogate

__all__ = ["HeldOutCheck", "TrainedMember", "train_ensemble"]

#: (model file, held-out rows, noise seed) -> W1 / std(RECO) per observable.
HeldOutCheck = Callable[[Path, np.ndarray, int], dict[str, float]]


@dataclass(frozen=True)
class TrainedMember:
    """One trained and saved model.

    Arguments:
        path: the model file.
        result: the training outcome (model, history, split, metadata).
        heldout: W1 / std(RECO) per observable on the held-out events.
    """

    path: Path
    result: TrainingResult
    heldout: dict[str, float]


def train_ensemble(
    gen: np.ndarray,
    reco: np.ndarray,
    config: TrainingConfig,
    output: str | os.PathLike[str],
    check: HeldOutCheck,
    feature_names: Sequence[str],
    n_members: int = 1,
    metadata: Mapping[str, Any] | None = None,
    responses: Sequence[Response] = (),
) -> Iterator[TrainedMember]:
    """Train ``n_members`` models with seeds ``config.seed``, ``config.seed + 1`` ...

    One member is written to ``output``; several to ``member_path(output, k)``
    (model.pt -> model.0.pt ...). Each file's metadata holds the training provenance,
    ``metadata`` and "heldout_w1_over_sigma", the check of its held-out events with the
    member's seed as noise seed.

    Arguments:
        gen, reco: the training pairs, shape (n, n_features) each.
        config: the training configuration of the first member.
        output: the model file (or the name the members are numbered from).
        check: the held-out check of a saved model.
        feature_names: the analysis's feature names, in order (recorded in each file).
        n_members: models to train, at least 1.
        metadata: more provenance to store, e.g. {"sources": [...], "analysis": {...}}.
        responses: the analysis's detector responses, for ``config.target == "detector"``.

    Returns:
        An iterator that trains each member when asked for it and gives it once saved.

    Raises:
        ValueError: ``n_members`` below 1 (at once, before any training).
    """
    if n_members < 1:
        raise ValueError(f"the ensemble needs at least 1 member, got {n_members}")
    return _members(
        gen,
        reco,
        config,
        Path(output),
        check,
        tuple(feature_names),
        n_members,
        metadata or {},
        tuple(responses),
    )


def _members(
    gen: np.ndarray,
    reco: np.ndarray,
    config: TrainingConfig,
    output: Path,
    check: HeldOutCheck,
    feature_names: tuple[str, ...],
    n_members: int,
    metadata: Mapping[str, Any],
    responses: tuple[Response, ...],
) -> Iterator[TrainedMember]:
    for index in range(n_members):
        member_config = dataclasses.replace(config, seed=config.seed + index)
        path = output if n_members == 1 else member_path(output, index)
        result = train_surrogate(gen, reco, member_config, feature_names, responses)
        provenance = {**result.metadata(), **metadata}
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model(result.model, path, provenance, feature_names=feature_names)
        heldout = check(path, result.split.test, member_config.seed)
        final = {**provenance, "heldout_w1_over_sigma": heldout}
        save_model(result.model, path, final, feature_names=feature_names)
        yield TrainedMember(path, result, heldout)
