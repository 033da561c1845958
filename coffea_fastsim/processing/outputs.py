"""The output folder of a run: checked before any work, owned by one run configuration.

The configuration of a run (model checksum, noise seed, selection, processor, dataset name,
whether the DL dataset is written, and every input with its content identity) is recorded in
``OUTPUT/run.json`` before the first chunk. A rerun with the same configuration resumes (from
the checkpoints) and rewrites the outputs; a rerun with another one is refused unless the
user asks to replace the previous outputs, which are then removed first: the completeness
markers (``run.json``, ``manifest.json``) go first, then everything else, each by an atomic
rename into a hidden folder that is deleted afterwards. A run removes ``manifest.json`` when
it starts and writes it last, so a folder whose run failed never looks complete.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIGURATION_NAME",
    "OUTPUT_ENTRIES",
    "DiskFullError",
    "OutputFolderError",
    "check_output_folder",
    "claim_output_folder",
    "disk_full_is_named",
    "remove_unlisted_files",
]

CONFIGURATION_NAME = "run.json"
#: What a run (and the demo) writes into its folder; the completeness markers first.
OUTPUT_ENTRIES = (
    CONFIGURATION_NAME,
    "manifest.json",
    "histograms.coffea",
    "dataset",
    "checkpoints",
    "plots",
)


class OutputFolderError(ValueError):
    """The output folder cannot be used: not a folder, not writable, or another run's."""


class DiskFullError(OSError):
    """No space left on the device while writing the outputs."""


def check_output_folder(path: Path) -> None:
    """Create ``path`` if needed and check that a file can be written in it.

    Raises:
        OutputFolderError: naming ``path`` when it is a file, cannot be created, or is not
            writable.
    """
    if path.exists() and not path.is_dir():
        raise OutputFolderError(f"output folder {path} is an existing file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(descriptor)
        Path(probe).unlink()
    except OSError as error:
        raise OutputFolderError(
            f"output folder {path} cannot be written: {error.strerror or error}"
        ) from error


def _differences(recorded: Mapping[str, Any], configuration: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(recorded) | set(configuration))
    return [key for key in keys if recorded.get(key) != configuration.get(key)]


def _remove_outputs(path: Path, present: Iterable[str]) -> None:
    trash = Path(tempfile.mkdtemp(prefix=".replaced-", dir=path))
    for name in present:
        (path / name).rename(trash / name)
    shutil.rmtree(trash)


def claim_output_folder(path: Path, configuration: Mapping[str, Any], replace: bool) -> None:
    """Make ``path`` the folder of a run with ``configuration`` (JSON-serializable).

    Arguments:
        path: the output folder (checked with :func:`check_output_folder` first).
        configuration: what fixes every output of the run.
        replace: remove the outputs of another configuration instead of refusing.

    Raises:
        OutputFolderError: ``path`` holds the outputs of another (or an unrecorded)
            configuration and ``replace`` is false; the message names what differs.
    """
    check_output_folder(path)
    for leftover in path.glob(".replaced-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    present = [name for name in OUTPUT_ENTRIES if (path / name).exists()]
    record = path / CONFIGURATION_NAME
    configuration = json.loads(json.dumps(configuration))  # as it reads back
    recorded = json.loads(record.read_text()) if record.is_file() else None
    if present and recorded != configuration:
        if not replace:
            what = (
                "outputs of a run with no recorded configuration"
                if recorded is None
                else "the outputs of another run configuration (it differs in: "
                + ", ".join(_differences(recorded, configuration))
                + ")"
            )
            raise OutputFolderError(
                f"output folder {path} holds {what}; use --replace to remove them first, "
                "or choose another folder"
            )
        _remove_outputs(path, present)
    (path / "manifest.json").unlink(missing_ok=True)
    temporary = path / f".{CONFIGURATION_NAME}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(configuration, indent=1, sort_keys=True))
    temporary.replace(record)


def remove_unlisted_files(directory: Path, listed: Iterable[str], pattern: str) -> list[Path]:
    """Delete the files matching ``pattern`` in ``directory`` that are not in ``listed``
    (e.g. DL dataset chunks of an earlier run with another chunk size); returns them."""
    keep = {Path(name).name for name in listed}
    stale = [file for file in directory.glob(pattern) if file.name not in keep]
    for file in stale:
        file.unlink()
    return stale


def _disk_full(error: BaseException | None) -> OSError | None:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and (
            error.errno == errno.ENOSPC or "No space left on device" in str(error)
        ):
            return error
        error = error.__cause__ or error.__context__
    return None


@contextmanager
def disk_full_is_named(path: Path) -> Iterator[None]:
    """Turn a 'no space left on device' error, however wrapped (by coffea, pyarrow ...),
    into :class:`DiskFullError` naming the output folder."""
    try:
        yield
    except Exception as error:
        cause = _disk_full(error)
        if cause is None:
            raise
        raise DiskFullError(
            errno.ENOSPC,
            f"disk full while writing the outputs in {path} ({cause.filename or cause}); "
            "the run is not complete: free space and rerun the same command to resume",
        ) from error
