"""The analysis-specific DL dataset: event identity and DL features, one Parquet file per chunk.

Only the event identity and the analysis's features (float32) are stored, about 40 bytes per
event for the 9 of wjets; the auxiliary observables are computed from the features when the
dataset is read, with the same function as everywhere else (the definition's
``auxiliary_from_features``).

Each chunk's file is named by the input file's UUID and entry range, and written atomically
(a temporary file in the same directory, then an atomic rename), so a run that stops half-way
never leaves a partial file, and the files of a finished run can be read as one dataset with
``awkward.from_parquet(directory)``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import awkward as ak
import numpy as np

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.registry import DEFAULT_ANALYSIS, resolve_analysis

__all__ = ["chunk_file_name", "read_dataset", "write_chunk"]


def chunk_file_name(file_id: str, entry_start: int, entry_stop: int) -> str:
    """File name of the chunk of entries [entry_start, entry_stop) of the input file ``file_id``."""
    safe_id = "".join(c if c.isalnum() or c in "-_" else "_" for c in file_id)
    return f"{safe_id}-{entry_start:012d}-{entry_stop:012d}.parquet"


def write_chunk(directory: str | os.PathLike, name: str, columns: Mapping[str, np.ndarray]) -> Path:
    """Write ``columns`` (arrays of shape (n,)) as one Parquet file, atomically.

    Returns:
        The path of the written file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    table = ak.zip({key: np.asarray(value) for key, value in columns.items()}, depth_limit=1)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    os.close(descriptor)
    try:
        ak.to_parquet(table, temporary, compression="zstd")
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def read_dataset(
    directory: str | os.PathLike,
    auxiliary: bool = True,
    analysis: str | AnalysisDefinition = DEFAULT_ANALYSIS,
) -> ak.Array:
    """Read all chunk files of a DL dataset directory, in file-name order.

    Arguments:
        directory: the dataset directory (one ``*.parquet`` file per chunk).
        auxiliary: add the auxiliary observables computed from the stored features.
        analysis: the analysis the dataset was made with (name, file.py:NAME or definition).

    Returns:
        One record per event: run, luminosityBlock, event, the features (and auxiliaries).
    """
    files = sorted(Path(directory).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no DL dataset files (*.parquet) in {directory}")
    data = ak.concatenate([ak.from_parquet(f) for f in files])
    definition = resolve_analysis(analysis)
    if not auxiliary or not all(name in data.fields for name in definition.feature_names):
        return data
    features = np.column_stack([ak.to_numpy(data[name]) for name in definition.feature_names])
    columns = {name: data[name] for name in data.fields}
    columns.update(definition.auxiliary_from_features(features))
    return ak.zip(columns, depth_limit=1)
