"""The run manifest: what was read, what was selected, what was written, and whether it adds up.

Written at the end of a run as JSON (atomically), it lets a production check that nothing was
lost: each input file with its entries in the file and entries processed, skipped or partly
processed files, the selected event count against the rows in the DL dataset, events that
share a (run, luminosityBlock, event), the model's checksum and training-sample hash, the
noise seed, the run configuration and the package version. ``"complete"`` is true only when
everything adds up; the manifest is written last, so a folder without one holds no finished run.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import uproot

from coffea_fastsim import __version__
from coffea_fastsim.analysis.reading import TREE_NAME

__all__ = [
    "MANIFEST_NAME",
    "build_manifest",
    "manifest_notes",
    "manifest_problems",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"


def _entries_in_file(path: str) -> int | None:
    try:
        with uproot.open(path) as file:
            return int(file[TREE_NAME].num_entries)
    except Exception:
        return None


def _file_record(
    path: str, processed: Mapping[str, Mapping[str, int]], error: str | None
) -> dict[str, Any]:
    in_file = _entries_in_file(path)
    done = processed.get(path)
    entries = 0 if done is None else int(done["entries"])
    if in_file is None or error is not None:
        status = "unreadable"
    elif entries > in_file:
        status = "overcounted"
    elif done is None and in_file > 0:
        status = "skipped"
    elif entries < in_file:
        status = "partial"
    else:
        status = "complete"
    record = {
        "path": path,
        "entries_in_file": in_file,
        "entries_processed": entries,
        "gen_selected": 0 if done is None else int(done["gen_selected"]),
        "status": status,
    }
    if error is not None:
        record["error"] = error
    return record


def _dataset_rows(files: Sequence[str]) -> int:
    return sum(pq.ParquetFile(name).metadata.num_rows for name in files)


def build_manifest(
    fileset: Mapping[str, Sequence[str]],
    output: Mapping[str, Any],
    model_metadata: Mapping[str, Any],
    seed: int,
    lost_workers: Sequence[str] = (),
    *,
    bad_files: Mapping[str, str] | None = None,
    configuration: Mapping[str, Any] | None = None,
    allow_nonfinite: bool = False,
) -> dict[str, Any]:
    """The manifest of a finished run.

    Arguments:
        fileset: the ``{dataset: [files]}`` that was run.
        output: the FastSimProcessor output ``{dataset: {...}}``.
        model_metadata: the model file's metadata (checksum, sample hash ...).
        seed: the noise seed.
        lost_workers: dask workers lost during the run.
        bad_files: ``{path: error}`` of files found unreadable before the run (skipped).
        configuration: the run configuration (``outputs.run_configuration``).
        allow_nonfinite: whether non-finite DL outputs were allowed.
    """
    bad_files = bad_files or {}
    datasets = {}
    for dataset, files in fileset.items():
        result = output.get(dataset, {})
        cutflow = dict(result.get("cutflow", {}))
        dataset_files = list(result.get("dataset_files", []))
        processed = result.get("files", {})
        record: dict[str, Any] = {
            "files": [
                _file_record(os.fspath(p), processed, bad_files.get(os.fspath(p))) for p in files
            ],
            "cutflow": cutflow,
            "dataset_files": dataset_files,
            "identity_repeats": int(result.get("identity_repeats", 0)),
        }
        if dataset_files:
            rows = _dataset_rows(dataset_files)
            record["dataset_rows"] = rows
            # One row per DL event: K per selected event when oversampled.
            expected = cutflow.get("dl_events", cutflow.get("gen_selected", 0))
            record["dataset_rows_match_selected"] = rows == expected
        datasets[dataset] = record
    manifest = {
        "package_version": __version__,
        "python": platform.python_version(),
        "model": {
            "checksum": model_metadata.get("checksum"),
            "sample_hash": model_metadata.get("sample_hash"),
            "package_version": model_metadata.get("package_version"),
        },
        "seed": seed,
        "allow_nonfinite": allow_nonfinite,
        "lost_workers": list(lost_workers),
        "configuration": dict(configuration or {}),
        "datasets": datasets,
    }
    manifest["complete"] = not manifest_problems(manifest)
    return manifest


def manifest_problems(manifest: Mapping[str, Any]) -> list[str]:
    """Where the outputs are incomplete: skipped or partial files, dataset rows that do not
    match the selected count. Empty when everything adds up."""
    problems = []
    for dataset, record in manifest["datasets"].items():
        for file in record["files"]:
            if file["status"] not in ("complete",):
                reason = f": {file['error']}" if "error" in file else ""
                problems.append(
                    f"[{dataset}] {file['path']}: {file['status']} "
                    f"({file['entries_processed']} of {file['entries_in_file']} entries "
                    f"processed){reason}"
                )
        if record.get("dataset_rows_match_selected") is False:
            problems.append(
                f"[{dataset}] DL dataset has {record['dataset_rows']} rows but "
                f"{record['cutflow'].get('dl_events', record['cutflow'].get('gen_selected'))} "
                "DL events were made"
            )
    return problems


def manifest_notes(manifest: Mapping[str, Any]) -> list[str]:
    """What a user should know although the outputs are complete: excluded events, retries."""
    notes = []
    for dataset, record in manifest["datasets"].items():
        cutflow = record["cutflow"]
        if cutflow.get("gen_nonfinite"):
            notes.append(
                f"[{dataset}] {cutflow['gen_nonfinite']} events excluded: NaN or infinite "
                "value in a GEN branch"
            )
        if cutflow.get("dl_nonfinite"):
            notes.append(f"[{dataset}] {cutflow['dl_nonfinite']} events with non-finite DL output")
        if record.get("identity_repeats"):
            notes.append(
                f"[{dataset}] warning: {record['identity_repeats']} selected events repeat the "
                "(run, luminosityBlock, event) of another; their DL noise is still independent "
                "(keyed by the GEN features too)"
            )
    if manifest["lost_workers"]:
        names = ", ".join(manifest["lost_workers"])
        notes.append(f"dask workers lost during the run, their tasks were retried: {names}")
    return notes


def write_manifest(manifest: Mapping[str, Any], directory: str | os.PathLike) -> Path:
    """Write ``manifest.json`` into ``directory`` atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MANIFEST_NAME
    temporary = directory / f".{MANIFEST_NAME}.{os.getpid()}.tmp"
    try:
        temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
