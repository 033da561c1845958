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
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coffea_fastsim.analysis.registry import DEFAULT_ANALYSIS
from coffea_fastsim.processing.outputs import CONFIGURATION_NAME

if TYPE_CHECKING:
    from coffea_fastsim.processing.processor import FastSimConfig, FastSimProcessor

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
        replace: remove the outputs of another configuration in ``output_dir`` first
            (otherwise such a run is refused).
        allow_nonfinite: keep events with NaN or infinite DL output instead of failing.
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
    replace: bool = False
    allow_nonfinite: bool = False
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


def _partition_inputs(options: RunOptions) -> tuple[list[str], dict[str, str]]:
    """The readable inputs and ``{path: error}`` of the others (with ``skip_bad_files``);
    without it, the first bad input raises ``InputFileError``."""
    from coffea_fastsim.analysis.reading import InputFileError
    from coffea_fastsim.processing.runner import make_fileset

    if not options.skip_bad_files:
        return make_fileset(options.inputs, options.dataset, options.analysis)[options.dataset], {}
    good, bad = [], {}
    for path in options.inputs:
        try:
            make_fileset([path], options.dataset, options.analysis)
            good.append(str(path))
        except InputFileError as error:
            bad[str(path)] = str(error)
    return good, bad


def _configuration(
    options: RunOptions, fastsim: FastSimProcessor, identities: list[dict[str, Any]]
) -> dict[str, Any]:
    fingerprint = json.loads(fastsim.fingerprint())
    fingerprint.pop("output_dir", None)
    return {
        **fingerprint,
        "processor": options.processor,
        "dataset": options.dataset,
        "write_dataset": options.write_dataset,
        "inputs": identities,
    }


def run_and_save(options: RunOptions) -> RunReport:
    """Run ``options.processor`` over ``options.inputs`` and save every output.

    Before any chunk: the dataset name and the output folder are checked, the inputs are
    checked (with ``skip_bad_files``, the bad ones set aside) and each readable one must be
    given once, the processor (and its model) is loaded, and the
    folder is claimed for this configuration (``outputs.claim_output_folder``).

    Returns:
        The report; call :meth:`RunReport.raise_if_incomplete` to fail on missing events.

    Raises:
        OutputFolderError, DuplicateInputError, InputFileError, ValueError: before any chunk.
        DiskFullError: naming the output folder.
    """
    from coffea_fastsim.processing.dataset import check_dataset_name
    from coffea_fastsim.processing.inputs import check_distinct_inputs, file_identity
    from coffea_fastsim.processing.outputs import (
        check_output_folder,
        claim_output_folder,
        disk_full_is_named,
    )

    check_dataset_name(options.dataset)
    check_output_folder(options.output_dir)
    processor_class = load_processor_class(options.processor)
    good, bad = _partition_inputs(options)
    check_distinct_inputs(good)  # a skipped bad file cannot be counted twice
    identities = [file_identity(path) for path in options.inputs]
    fastsim = processor_class(_processor_config(options))
    claim_output_folder(
        options.output_dir, _configuration(options, fastsim, identities), options.replace
    )
    with disk_full_is_named(options.output_dir):
        return _run_and_write(options, fastsim, good, bad)


def _processor_config(options: RunOptions) -> FastSimConfig:
    from coffea_fastsim.processing.processor import FastSimConfig

    return FastSimConfig(
        analysis=options.analysis,
        model=options.model,
        chunk_size=options.inference_chunk_size,
        device=options.device,
        seed=options.seed,
        output_dir=options.output_dir / "dataset" if options.write_dataset else None,
        threads=options.torch_threads(),
        oversample=options.oversample,
        allow_nonfinite=options.allow_nonfinite,
    )


def _run_and_write(
    options: RunOptions, fastsim: FastSimProcessor, good: list[str], bad: dict[str, str]
) -> RunReport:
    from coffea_fastsim.processing.manifest import (
        build_manifest,
        manifest_notes,
        manifest_problems,
        write_manifest,
    )
    from coffea_fastsim.processing.outputs import remove_unlisted_files
    from coffea_fastsim.processing.root_export import write_root_histograms
    from coffea_fastsim.processing.runner import RunResult, run_processor

    if good:
        result = run_processor(
            {options.dataset: good},
            fastsim,
            executor=options.executor,  # type: ignore[arg-type]
            workers=options.workers,
            scheduler=options.scheduler,
            chunksize=options.chunksize,
            skipbadfiles=options.skip_bad_files,
            checkpoint_dir=options.output_dir / "checkpoints" if options.resume else None,
            status=options.status,
        )
    else:  # every input was bad and skipped: nothing to run, the manifest says so
        result = RunResult({}, 0.0)
    histograms = _save_histograms(result.output, options.output_dir)
    root_file = None
    if options.root_file is not None:
        root_file = write_root_histograms(result.output, options.root_file)
    dataset_dir = options.output_dir / "dataset" / options.dataset
    if options.write_dataset and dataset_dir.is_dir():
        listed = result.output.get(options.dataset, {}).get("dataset_files", [])
        remove_unlisted_files(dataset_dir, listed, "*.parquet")
    manifest = build_manifest(
        {options.dataset: [str(path) for path in options.inputs]},
        result.output,
        fastsim.engine.metadata,
        options.seed,
        result.lost_workers,
        bad_files=bad,
        configuration=json.loads((options.output_dir / CONFIGURATION_NAME).read_text()),
        allow_nonfinite=options.allow_nonfinite,
    )
    manifest_path = write_manifest(manifest, options.output_dir)
    return RunReport(
        histograms=histograms,
        manifest=manifest_path,
        dataset_dir=dataset_dir if options.write_dataset else None,
        summary=_summary(result.output, result.seconds),
        notes=tuple(manifest_notes(manifest)),
        problems=tuple(manifest_problems(manifest)),
        root_file=root_file,
    )
