"""Resumable runs: chunk outputs saved atomically with coffea's checkpointer interface.

coffea's ``Runner`` asks its checkpointer for a chunk's output before processing the chunk
and hands it every new output; this checkpointer keeps one file per chunk under a directory
named by the processor's fingerprint (model checksum, noise seed, selection, outputs), so a
rerun of an interrupted job recomputes only the missing chunks, and a changed model or seed
never reuses old results. Files are written to a temporary name and renamed, so a crash
cannot leave a half-written checkpoint; a checkpoint whose DL dataset file has gone is
recomputed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import cloudpickle
import lz4.frame
from coffea.processor import CheckpointerABC, ProcessorABC

__all__ = ["ChunkCheckpointer"]


class ChunkCheckpointer(CheckpointerABC):
    """One checkpoint file per (dataset, file UUID, entry range) and processor fingerprint.

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
        return self.directory / key / str(metadata["dataset"]) / str(metadata["fileuuid"]) / name

    def load(self, metadata: Any, processor_instance: ProcessorABC) -> Any:
        path = self.path(metadata, processor_instance)
        if not path.is_file():
            return None
        try:
            output = cloudpickle.loads(lz4.frame.decompress(path.read_bytes()))
        except Exception:  # an unreadable checkpoint is recomputed, never trusted
            return None
        # The Runner stores {"out": {dataset: result}, "processed": ...}.
        for result in output.get("out", {}).values():
            if not all(Path(name).is_file() for name in result.get("dataset_files", [])):
                return None
        return output

    def save(self, output: Any, metadata: Any, processor_instance: ProcessorABC) -> None:
        path = self.path(metadata, processor_instance)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(lz4.frame.compress(cloudpickle.dumps(output)))
        temporary.replace(path)
