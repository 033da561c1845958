"""The run use case: a processor over input files into an output folder, checked end to end.

:func:`run_and_save` builds the processor named by ``RunOptions.processor`` (``module:Class``),
runs it with coffea's Runner, saves the histograms atomically, writes the manifest and
reports whether the outputs account for every input event. The command line's ``run`` and
``demo`` only parse their arguments into :class:`RunOptions`, call it and print the report.
The heavy imports (torch, coffea) happen when a run starts, so the command line's help stays
fast.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coffea_fastsim.analysis.registry import DEFAULT_ANALYSIS

if TYPE_CHECKING:
    from coffea_fastsim.processing.processor import FastSimProcessor

__all__ = [
    "DEFAULT_PROCESSOR",
    "IncompleteRunError",
    "RunOptions",
    "RunReport",
    "load_processor_class",
    "run_and_save",
]

#: The processor of ``run`` when none is named.
DEFAULT_PROCESSOR = "coffea_fastsim.processing.processor:FastSimProcessor"


class IncompleteRunError(RuntimeError):
    """The run finished but its outputs do not account for every input event."""


@dataclass(frozen=True)
class RunOptions:
    """What one run reads, computes and writes.

    Arguments:
        inputs: NanoAOD-like ROOT files.
        model: surrogate model file.
        output_dir: folder of the histograms, the manifest, the DL dataset and checkpoints.
        dataset: dataset name, the output key and the DL dataset's subfolder.
        processor: ``module:Class`` of a ``FastSimProcessor`` (sub)class.
        executor: ``"iterative"``, ``"futures"`` or ``"dask"``.
        workers: processes of the futures executor and of a dask LocalCluster.
        scheduler: address of an existing dask scheduler; None: a LocalCluster.
        chunksize: events per Runner chunk.
        inference_chunk_size: events per surrogate evaluation; None: automatic.
        device: torch device request (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``).
        seed: seed of the per-event DL noise.
        write_dataset: write the DL dataset (Parquet, one file per chunk).
        skip_bad_files: skip unreadable files instead of stopping.
        resume: reuse chunks checkpointed by an earlier run of the same configuration.
        status: show progress bars (on stderr).
        oversample: K, DL replicas per selected GEN event (``FastSimConfig.oversample``).
        root_file: also write every histogram as TH1D/TH2D to this ROOT file
            (``root_export``); None: no ROOT file.
        analysis: the analysis definition, a built-in name or ``path/to/file.py:NAME``.
    """

    inputs: tuple[Path, ...]
    model: Path
    output_dir: Path
    dataset: str = "events"
    processor: str = DEFAULT_PROCESSOR
    executor: str = "futures"
    workers: int = 2
    scheduler: str | None = None
    chunksize: int = 100_000
    inference_chunk_size: int | None = None
    device: str = "auto"
    seed: int = 0
    write_dataset: bool = True
    skip_bad_files: bool = False
    resume: bool = True
    status: bool = True
    oversample: int = 1
    root_file: Path | None = None
    analysis: str = DEFAULT_ANALYSIS

    def torch_threads(self) -> int | None:
        """Torch threads per worker: one when several worker processes share the cores."""
        return 1 if self.executor != "iterative" and self.workers > 1 else None


@dataclass(frozen=True)
class RunReport:
    """What a finished run wrote and found.

    Arguments:
        histograms: the saved ``histograms.coffea``.
        manifest: the written ``manifest.json``.
        dataset_dir: the DL dataset's folder, None when no dataset was written.
        summary: one line per dataset: events read, selected, matched, throughput.
        notes: what the user should know although the outputs are complete.
        problems: where the outputs do not cover every input event (empty: complete).
        root_file: the written ROOT histogram file, None when none was asked for.
    """

    histograms: Path
    manifest: Path
    dataset_dir: Path | None
    summary: tuple[str, ...]
    notes: tuple[str, ...]
    problems: tuple[str, ...]
    root_file: Path | None = None

    def raise_if_incomplete(self) -> None:
        """Raise :class:`IncompleteRunError` listing the problems, if there are any."""
        if self.problems:
            raise IncompleteRunError(
                f"the outputs do not cover every input event (see {self.manifest}):\n  "
                + "\n  ".join(self.problems)
            )


def load_processor_class(spec: str) -> type[FastSimProcessor]:
    """The processor class named by ``spec``, ``"module:Class"``.

    Raises:
        ValueError: naming ``spec`` when it is malformed, its module or class cannot be
            found, or the class is not a ``FastSimProcessor``.
    """
    from coffea_fastsim.processing.processor import FastSimProcessor

    module_name, colon, class_name = spec.partition(":")
    if not colon or not module_name or not class_name:
        raise ValueError(f"processor {spec!r}: expected 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"processor {spec!r}: cannot import {module_name} ({error})") from error
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, FastSimProcessor):
        raise ValueError(
            f"processor {spec!r}: {module_name} has no FastSimProcessor subclass {class_name}"
        )
    return cls


def _save_histograms(output: dict[str, Any], directory: Path) -> Path:
    from coffea.util import save

    path = directory / "histograms.coffea"
    temporary = directory / f".histograms.coffea.{os.getpid()}.tmp"
    save(output, temporary)
    temporary.replace(path)
    return path


def _summary(output: dict[str, Any], seconds: float) -> tuple[str, ...]:
    lines = []
    for name, result in output.items():
        cutflow = result["cutflow"]
        lines.append(
            f"[{name}] {cutflow['input']} events read, {cutflow['gen_selected']} pass the GEN "
            f"selection, {cutflow['reco_matched']} have valid RECO partners "
            f"({seconds:.1f} s, {cutflow['input'] / max(seconds, 1e-9):.0f} events/s)"
        )
    return tuple(lines)


def run_and_save(options: RunOptions) -> RunReport:
    """Run ``options.processor`` over ``options.inputs`` and save every output.

    Returns:
        The report; call :meth:`RunReport.raise_if_incomplete` to fail on missing events.
    """
    from coffea_fastsim.processing.manifest import (
        build_manifest,
        manifest_notes,
        manifest_problems,
        write_manifest,
    )
    from coffea_fastsim.processing.processor import FastSimConfig
    from coffea_fastsim.processing.root_export import write_root_histograms
    from coffea_fastsim.processing.runner import make_fileset, run_processor

    processor_class = load_processor_class(options.processor)
    if options.skip_bad_files:
        # The Runner skips unreadable files itself; the manifest lists them.
        fileset = {options.dataset: [str(path) for path in options.inputs]}
    else:
        fileset = make_fileset(options.inputs, options.dataset, options.analysis)
    dataset_dir = options.output_dir / "dataset" if options.write_dataset else None
    config = FastSimConfig(
        analysis=options.analysis,
        model=options.model,
        chunk_size=options.inference_chunk_size,
        device=options.device,
        seed=options.seed,
        output_dir=dataset_dir,
        threads=options.torch_threads(),
        oversample=options.oversample,
    )
    fastsim = processor_class(config)
    result = run_processor(
        fileset,
        fastsim,
        executor=options.executor,  # type: ignore[arg-type]
        workers=options.workers,
        scheduler=options.scheduler,
        chunksize=options.chunksize,
        skipbadfiles=options.skip_bad_files,
        checkpoint_dir=options.output_dir / "checkpoints" if options.resume else None,
        status=options.status,
    )
    options.output_dir.mkdir(parents=True, exist_ok=True)
    histograms = _save_histograms(result.output, options.output_dir)
    root_file = None
    if options.root_file is not None:
        root_file = write_root_histograms(result.output, options.root_file)
    manifest = build_manifest(
        fileset, result.output, fastsim.engine.metadata, options.seed, result.lost_workers
    )
    manifest_path = write_manifest(manifest, options.output_dir)
    return RunReport(
        histograms=histograms,
        manifest=manifest_path,
        dataset_dir=None if dataset_dir is None else dataset_dir / options.dataset,
        summary=_summary(result.output, result.seconds),
        notes=tuple(manifest_notes(manifest)),
        problems=tuple(manifest_problems(manifest)),
        root_file=root_file,
    )
