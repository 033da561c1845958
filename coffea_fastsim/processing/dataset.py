"""The analysis-specific DL dataset: event identity and DL features, one Parquet file per chunk.

Only the event identity and the analysis's features (float32) are stored, about 40 bytes per
event for the 9 of wjets; the auxiliary observables are computed from the features when the
dataset is read, with the same function as everywhere else (the definition's
``auxiliary_from_features``).

Each chunk's file is named by the input file's UUID and entry range, and written atomically
(a temporary file in the same directory, then an atomic rename), so a run that stops half-way
never leaves a partial file. The dataset of a run is the files its manifest lists:
:func:`read_dataset` reads those and checks their row count against the manifest, so a file
left by an earlier run in the same folder is never read as part of it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import awkward as ak
import numpy as np

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.registry import DEFAULT_ANALYSIS, resolve_analysis

__all__ = ["check_dataset_name", "chunk_file_name", "read_dataset", "write_chunk"]

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def check_dataset_name(name: str) -> str:
    """``name`` when it is a plain file name (letters, digits, ``_ . -``, not starting with a
    dot), so that the dataset's folder stays inside the output folder; else ValueError."""
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name):
        raise ValueError(
            f"dataset name {name!r} must be a plain name (letters, digits, '_', '.', '-', "
            "not starting with '.'): it names a folder inside the output folder"
        )
    return name


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


def _listed_files(directory: Path) -> tuple[list[Path], int]:
    """The files and row count the run's manifest lists for the dataset in ``directory``
    (``OUTPUT/dataset/NAME``, manifest in ``OUTPUT/manifest.json``)."""
    manifest_path = directory.parent.parent / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        record = manifest["datasets"][directory.name]
        files, rows = record["dataset_files"], int(record["dataset_rows"])
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{directory}: no manifest at {manifest_path}; a DL dataset is read through the "
            "manifest of the run that wrote it (or give its files)"
        ) from None
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{manifest_path} lists no DL dataset {directory.name!r} ({error!r})"
        ) from error
    if not manifest.get("complete", False):
        raise ValueError(f"{manifest_path}: the run that wrote {directory} is not complete")
    return [directory / Path(name).name for name in files], rows


def read_dataset(
    directory: str | os.PathLike,
    auxiliary: bool = True,
    analysis: str | AnalysisDefinition = DEFAULT_ANALYSIS,
    files: list[str | os.PathLike] | None = None,
) -> ak.Array:
    """Read a DL dataset: the chunk files its run's manifest lists, in file-name order.

    Arguments:
        directory: the dataset directory, ``OUTPUT/dataset/NAME`` of a run.
        auxiliary: add the auxiliary observables computed from the stored features.
        analysis: the analysis the dataset was made with (name, file.py:NAME or definition).
        files: read these chunk files instead of the manifest's (``dataset_files`` of a
            processor output); no row count check.

    Returns:
        One record per event: run, luminosityBlock, event, the features (and auxiliaries).

    Raises:
        FileNotFoundError: no manifest next to the dataset, or a listed file is missing.
        ValueError: the run is not complete, or the files hold another number of rows than
            the manifest says.
    """
    directory = Path(directory)
    rows = None
    if files is None:
        listed, rows = _listed_files(directory)
    else:
        listed = [Path(name) for name in files]
    if not listed:
        raise FileNotFoundError(f"no DL dataset files in {directory}")
    data = ak.concatenate([ak.from_parquet(f) for f in sorted(listed)])
    if rows is not None and len(data) != rows:
        raise ValueError(
            f"{directory}: the listed files hold {len(data)} rows, the manifest says {rows}"
        )
    definition = resolve_analysis(analysis)
    if not auxiliary or not all(name in data.fields for name in definition.feature_names):
        return data
    features = np.column_stack([ak.to_numpy(data[name]) for name in definition.feature_names])
    columns = {name: data[name] for name in data.fields}
    columns.update(definition.auxiliary_from_features(features))
    return ak.zip(columns, depth_limit=1)
