"""Run a FastSimProcessor over files with coffea's ``processor.Runner``.

The same processor and the same files give identical histograms and DL datasets with the
iterative, futures and dask executors: the DL noise of each event is fixed by its identity,
not by its chunk. Failed dask tasks (e.g. a lost worker) are retried; chunk outputs can be
checkpointed so that an interrupted run resumes where it stopped.

Interrupts: the futures and dask worker processes ignore SIGINT, and the futures workers
die with the main process (``PR_SET_PDEATHSIG`` on Linux, a thread watching the parent
elsewhere). On Ctrl-C the main process cancels the pending chunks and terminates the futures
workers without waiting, or closes the dask client and its LocalCluster, so the run stops
within seconds and keeps the checkpoints of the finished chunks. Progress bars go to stderr.

Worker memory: dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which
also fixes glibc's mmap threshold at 128 KiB, so that every larger temporary tensor of the
surrogate maps and zero-fills fresh pages (the one-pass flow samples 106,000 instead of
266,000 events/s). The LocalCluster started here also gives its workers
``WORKER_ENVIRONMENT`` (``MALLOC_MMAP_THRESHOLD_`` at glibc's largest, 32 MiB: such
temporaries come from the heap again, and the trim threshold still returns its free top to
the system); a cluster of your own takes it as ``distributed.nanny.pre-spawn-environ``
(docs/dask-awkward.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, Literal

import loky
import uproot
from coffea import processor
from coffea.nanoevents import NanoAODSchema
from coffea.util import coffea_console

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.features import missing_gen_branches
from coffea_fastsim.analysis.reading import TREE_NAME, InputFileError, check_input_file
from coffea_fastsim.analysis.registry import DEFAULT_ANALYSIS, resolve_analysis
from coffea_fastsim.processing.checkpoint import ChunkCheckpointer

__all__ = [
    "BAD_FILE_ERRORS",
    "EXECUTORS",
    "WORKER_ENVIRONMENT",
    "Fileset",
    "RunResult",
    "check_gen_branches",
    "make_fileset",
    "run_processor",
    "worker_environment",
]

ExecutorName = Literal["iterative", "futures", "dask"]
EXECUTORS: tuple[str, ...] = ("iterative", "futures", "dask")
Fileset = Mapping[str, Sequence[str]]
#: Environment of the dask workers of the LocalCluster that a run starts, added to dask's
#: ``distributed.nanny.pre-spawn-environ`` (see the module docstring): glibc's largest mmap
#: threshold, 32 MiB on 64-bit systems.
WORKER_ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": "33554432"}
#: Errors of unreadable (missing, truncated, corrupted) files that ``skipbadfiles`` skips.
BAD_FILE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, EOFError)


@dataclass(frozen=True)
class RunResult:
    """Outcome of :func:`run_processor`.

    Arguments:
        output: the processor's accumulated output.
        seconds: wall-clock time of the run.
        lost_workers: dask workers that left during the run (their tasks were retried).
    """

    output: dict[str, Any]
    seconds: float
    lost_workers: tuple[str, ...] = ()


def check_gen_branches(
    path: str | os.PathLike, analysis: AnalysisDefinition, branches: Set[str] | None = None
) -> None:
    """Raise :class:`InputFileError` naming the file, the analysis and the GEN branches it
    lacks; `branches` are the file's Events branches when the caller has read them already."""
    if branches is None:
        with uproot.open(path) as file:
            branches = set(file[TREE_NAME].keys())
    missing = missing_gen_branches(branches, analysis)
    if missing:
        raise InputFileError(
            f"{path} lacks GEN branches needed by the analysis {analysis.name!r}: "
            f"{', '.join(missing)}"
        )


def make_fileset(
    files: Sequence[str | os.PathLike],
    dataset: str = "events",
    analysis: str | AnalysisDefinition = DEFAULT_ANALYSIS,
) -> dict[str, list[str]]:
    """A coffea fileset ``{dataset: [files]}``, after checking every file.

    Raises:
        InputFileError: naming the first file that is missing, unreadable, has no Events
            tree, or lacks a GEN branch that the selection of `analysis` reads.
    """
    if not files:
        raise ValueError("no input files given")
    definition = resolve_analysis(analysis)
    for path in files:
        check_gen_branches(path, definition, check_input_file(path))
    return {dataset: [os.fspath(path) for path in files]}


@contextlib.contextmanager
def worker_environment() -> Iterator[None]:
    """Within it, a dask LocalCluster starts its workers with ``WORKER_ENVIRONMENT`` added to
    dask's ``distributed.nanny.pre-spawn-environ`` (a value configured there wins)."""
    import dask

    environment = {**WORKER_ENVIRONMENT, **dask.config.get("distributed.nanny.pre-spawn-environ")}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environment}):
        yield


@contextlib.contextmanager
def _dask_client(workers: int, scheduler: str | None) -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with _sigint_ignored_by_children(), worker_environment():
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    with cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def _sigint_ignored_by_children() -> Iterator[None]:
    """Ignore SIGINT while the dask worker processes start, so that they inherit it: a
    terminal's Ctrl-C reaches the whole process group, and only the main process should act
    on it (the workers are then closed with the cluster). The handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


_PR_SET_PDEATHSIG = 1


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _worker_initializer(parent: int) -> None:
    """In each futures worker: leave Ctrl-C to the main process, die with it. Does nothing
    in the main process itself (``parent``), whose Ctrl-C handler must stay as it is."""
    if os.getpid() == parent:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


@contextlib.contextmanager
def _process_pool(workers: int) -> Iterator[loky.ProcessPoolExecutor]:
    """coffea's default futures pool (loky), with workers that stop at once when the run is
    interrupted or fails, and that die with the main process."""
    pool = loky.ProcessPoolExecutor(
        max_workers=workers, initializer=_worker_initializer, initargs=(os.getpid(),)
    )
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, kill_workers=True)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def _progress_on_stderr() -> Iterator[None]:
    """coffea's progress bars on stderr, so that stdout holds only results."""
    previous = coffea_console.file
    coffea_console.file = sys.stderr
    try:
        yield
    finally:
        coffea_console.file = previous


def _worker_names(client: Any) -> set[str]:
    return set(client.scheduler_info(n_workers=-1)["workers"])


def run_processor(
    fileset: Fileset,
    processor_instance: processor.ProcessorABC,
    *,
    executor: ExecutorName = "iterative",
    workers: int = 2,
    scheduler: str | None = None,
    chunksize: int = 100_000,
    retries: int = 3,
    skipbadfiles: bool = False,
    checkpoint_dir: str | os.PathLike | None = None,
    status: bool = True,
) -> RunResult:
    """Run ``processor_instance`` on ``fileset`` with a coffea ``processor.Runner``.

    Arguments:
        fileset: ``{dataset: [file paths or URLs]}``.
        processor_instance: a coffea processor, e.g. ``FastSimProcessor``.
        executor: ``"iterative"``, ``"futures"`` (local processes) or ``"dask"``.
        workers: processes for the futures executor and for a dask ``LocalCluster``.
        scheduler: address of an existing dask scheduler (``tcp://host:8786``); dask only.
        chunksize: events per Runner chunk.
        retries: dask retries of a failed chunk (e.g. a lost worker).
        skipbadfiles: skip files that cannot be read (``BAD_FILE_ERRORS``) instead of
            failing; a skipped file is missing from the output's ``files`` record, which the
            manifest reports.
        checkpoint_dir: keep each chunk's output there and reuse it in a rerun.
        status: show progress bars.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if workers <= 0:
        raise ValueError(f"workers must be positive, got {workers}")
    if chunksize <= 0:
        raise ValueError(f"chunksize must be positive, got {chunksize}")
    if scheduler is not None and executor != "dask":
        raise ValueError("scheduler is only used with executor='dask'")

    def run_with(executor_instance: processor.executor.ExecutorBase) -> dict[str, Any]:
        runner = processor.Runner(
            executor=executor_instance,
            schema=NanoAODSchema,
            chunksize=chunksize,
            skipbadfiles=BAD_FILE_ERRORS if skipbadfiles else False,
            checkpointer=None if checkpoint_dir is None else ChunkCheckpointer(checkpoint_dir),
        )
        return runner(dict(fileset), processor_instance=processor_instance, treename=TREE_NAME)

    start = time.perf_counter()
    with _progress_on_stderr():
        if executor == "iterative":
            output = run_with(processor.IterativeExecutor(status=status))
            return RunResult(output, time.perf_counter() - start)
        if executor == "futures":
            with _process_pool(workers) as pool:
                output = run_with(
                    processor.FuturesExecutor(workers=workers, status=status, pool=pool)
                )
            return RunResult(output, time.perf_counter() - start)
        return _run_dask(run_with, workers, scheduler, retries, status, start)


def _run_dask(
    run_with: Any, workers: int, scheduler: str | None, retries: int, status: bool, start: float
) -> RunResult:
    with _dask_client(workers, scheduler) as client:
        before = _worker_names(client)
        output = run_with(processor.DaskExecutor(client=client, status=status, retries=retries))
        lost = tuple(sorted(before - _worker_names(client)))
    return RunResult(output, time.perf_counter() - start, lost)
