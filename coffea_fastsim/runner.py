"""Run a FastSimProcessor over files with coffea's ``processor.Runner``.

The same processor and the same files give identical histograms with the iterative, futures
and dask executors: the DL noise of each event is fixed by its identity, not by its chunk.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from coffea import processor
from coffea.nanoevents import NanoAODSchema

from coffea_fastsim.reading import TREE_NAME, check_input_file

__all__ = ["EXECUTORS", "Fileset", "make_fileset", "run_processor"]

ExecutorName = Literal["iterative", "futures", "dask"]
EXECUTORS: tuple[str, ...] = ("iterative", "futures", "dask")
Fileset = Mapping[str, Sequence[str]]


def make_fileset(
    files: Sequence[str | os.PathLike], dataset: str = "events"
) -> dict[str, list[str]]:
    """A coffea fileset ``{dataset: [files]}``, after checking that every file is readable.

    Raises:
        InputFileError: naming the first file that is missing, unreadable or has no Events tree.
    """
    if not files:
        raise ValueError("no input files given")
    for path in files:
        check_input_file(path)
    return {dataset: [os.fspath(path) for path in files]}


@contextlib.contextmanager
def _dask_client(workers: int, scheduler: str | None) -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


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
    status: bool = True,
) -> dict[str, Any]:
    """Run ``processor_instance`` on ``fileset`` with a coffea ``processor.Runner``.

    Arguments:
        fileset: ``{dataset: [file paths or URLs]}``.
        processor_instance: a coffea processor, e.g. ``FastSimProcessor``.
        executor: ``"iterative"``, ``"futures"`` (local processes) or ``"dask"``.
        workers: processes for the futures executor and for a dask ``LocalCluster``.
        scheduler: address of an existing dask scheduler (``tcp://host:8786``); dask only.
        chunksize: events per Runner chunk.
        retries: dask retries of a failed chunk (e.g. a lost worker).
        skipbadfiles: skip (and report) files that cannot be read instead of failing.
        status: show progress bars.

    Returns:
        The processor's accumulated output.
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
            skipbadfiles=skipbadfiles,
        )
        return runner(dict(fileset), processor_instance=processor_instance, treename=TREE_NAME)

    if executor == "iterative":
        return run_with(processor.IterativeExecutor(status=status))
    if executor == "futures":
        return run_with(processor.FuturesExecutor(workers=workers, status=status))
    with _dask_client(workers, scheduler) as client:
        return run_with(processor.DaskExecutor(client=client, status=status, retries=retries))
