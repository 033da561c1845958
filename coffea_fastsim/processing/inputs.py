"""Input files: their content identity, and each input counted once.

The identity of a file's content is its size, a SHA-256 of its first and last MiB and its
ROOT file UUID: a copy under another name has the same identity, a truncated or rewritten
file another one. It keys the chunk checkpoints and is recorded in the run configuration, so
nothing computed from one file's content is ever reused for another. Reading 2 MiB costs a
few milliseconds whatever the file size; a full hash of a 2 GB NanoAOD file would take
seconds per file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import uproot

__all__ = ["DuplicateInputError", "check_distinct_inputs", "content_id", "file_identity"]

_EDGE_BYTES = 1 << 20


class DuplicateInputError(ValueError):
    """The same input file was given twice (same path, ROOT UUID or content)."""


def _root_uuid(path: Path) -> str | None:
    try:
        with uproot.open(path) as file:
            return str(file.file.uuid)
    except Exception:  # unreadable files have no UUID; their content still has an identity
        return None


@lru_cache(maxsize=1024)
def _cached_identity(path: str, size: int, mtime_ns: int) -> tuple[tuple[str, Any], ...]:
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        digest.update(file.read(_EDGE_BYTES))
        if size > _EDGE_BYTES:
            file.seek(max(size - _EDGE_BYTES, _EDGE_BYTES))
            digest.update(file.read())
    return (("size", size), ("edges_sha256", digest.hexdigest()), ("uuid", _root_uuid(Path(path))))


def file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """``{"path", "size", "edges_sha256", "uuid"}`` of a file; computed once per process for
    an unchanged file. A missing file gives ``{"path", "missing": True}``."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return {"path": str(path), "missing": True}
    identity = dict(_cached_identity(str(path.resolve()), stat.st_size, stat.st_mtime_ns))
    return {"path": str(path.resolve()), **identity}


def content_id(path: str | os.PathLike) -> str:
    """A short name of the content identity of ``path``, for file names (16 hex digits)."""
    identity = file_identity(path)
    identity.pop("path")
    return hashlib.sha256(repr(sorted(identity.items())).encode()).hexdigest()[:16]


def check_distinct_inputs(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """The identities of ``paths``, after checking that no file is given twice.

    Raises:
        DuplicateInputError: naming both files when two inputs have the same resolved path,
            the same ROOT UUID, or the same size and edge hash.
    """
    identities = [file_identity(path) for path in paths]
    seen: dict[tuple[str, Any], str] = {}
    for path, identity in zip(paths, identities, strict=True):
        keys = [("path", str(Path(path).resolve()))]
        if identity.get("uuid"):
            keys.append(("ROOT UUID", identity["uuid"]))
        if not identity.get("missing"):
            keys.append(("content", (identity["size"], identity["edges_sha256"])))
        for kind, value in keys:
            if (kind, value) in seen:
                raise DuplicateInputError(
                    f"{seen[kind, value]} and {path} are the same input file (same {kind}); "
                    "give each file once"
                )
        seen.update({key: str(path) for key in keys})
    return identities
