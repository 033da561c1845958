"""Resumable runs: chunk outputs saved atomically with coffea's checkpointer interface.

coffea's ``Runner`` asks its checkpointer for a chunk's output before processing the chunk
and hands it every new output; this checkpointer keeps one file per chunk under a directory
named by the processor's fingerprint (model checksum, noise seed, selection, outputs) and
the content identity of the input file (``inputs.content_id``: size, edge hash, ROOT UUID;
never the name or the UUID alone), so a rerun of an interrupted job recomputes only the
missing chunks, and a changed model, seed or input never reuses old results. Each
checkpoint records the SHA-256 of the DL dataset files its chunk wrote; a checkpoint whose
dataset file has gone or changed is recomputed. Files are written to a temporary name and
renamed, so a crash cannot leave a half-written checkpoint.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import cloudpickle
import lz4.frame
from coffea.processor import CheckpointerABC, ProcessorABC

from coffea_fastsim.processing.inputs import content_id

__all__ = ["ChunkCheckpointer"]


def _sha256(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _dataset_files(output: Any) -> list[str]:
    # The Runner stores {"out": {dataset: result}, "processed": ...}.
    return [
        name
        for result in output.get("out", {}).values()
        for name in result.get("dataset_files", [])
    ]


class ChunkCheckpointer(CheckpointerABC):
    """One checkpoint file per (dataset, file content, entry range) and processor fingerprint.

    Arguments:
        directory: where checkpoints are kept (created on first save).
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    def path(self, metadata: Any, processor_instance: ProcessorABC) -> Path:
        """The checkpoint file of one chunk."""
        fingerprint = getattr(processor_instance, "fingerprint", None)
        identity = fingerprint() if fingerprint else type(processor_instance).__qualname__
        key = hashlib.sha256(identity.encode()).hexdigest()[:16]
        name = f"{metadata['entrystart']:012d}-{metadata['entrystop']:012d}.coffea"
        content = content_id(metadata["filename"])
        return self.directory / key / str(metadata["dataset"]) / content / name

    def load(self, metadata: Any, processor_instance: ProcessorABC) -> Any:
        path = self.path(metadata, processor_instance)
        if not path.is_file():
            return None
        try:
            saved = cloudpickle.loads(lz4.frame.decompress(path.read_bytes()))
            output, hashes = saved["output"], saved["dataset_sha256"]
        except Exception:  # an unreadable checkpoint is recomputed, never trusted
            return None
        if any(_sha256(name) != hashes.get(name) for name in _dataset_files(output)):
            return None
        return output

    def save(self, output: Any, metadata: Any, processor_instance: ProcessorABC) -> None:
        path = self.path(metadata, processor_instance)
        path.parent.mkdir(parents=True, exist_ok=True)
        hashes = {name: _sha256(name) for name in _dataset_files(output)}
        saved = {"output": output, "dataset_sha256": hashes}
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(lz4.frame.compress(cloudpickle.dumps(saved)))
        temporary.replace(path)
