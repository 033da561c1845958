"""The dask-awkward mode next to the Runner, and the cost of oversampling.

Usage: python benchmarks/ecosystem.py [--events 400000] [--work-dir /tmp/fastsim-bench]

Measured side by side in one run, on one GEN-only input (the embedded sample repeated, event
numbers made unique, as in benchmarks/processor.py), one torch thread per process, the
histograms of FastSimProcessor as the output (no DL dataset), best of two runs each:
- one process: the Runner's iterative executor vs the dask-awkward graph
  (``columnar.fill_histograms``) on dask's synchronous scheduler, chunks = partitions;
- the same two on one warm dask LocalCluster of two single-thread workers;
- ``oversample`` K = 1, 4, 16 with the iterative executor: events/s and the cost against K = 1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import dask
import torch
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory
from dask.distributed import Client, LocalCluster
from processor import make_input
from timing import best_rate

from coffea_fastsim.analysis.reading import ignore_nanoaod_warnings
from coffea_fastsim.embedded import embedded_model
from coffea_fastsim.processing.columnar import fill_histograms
from coffea_fastsim.processing.processor import FastSimConfig, FastSimProcessor
from coffea_fastsim.processing.runner import run_processor

#: Timed runs per measurement; the best is kept (the machine is shared).
REPEATS = 2
OVERSAMPLING = (1, 4, 16)


def dask_awkward_run(path: Path, n_events: int, chunksize: int, scheduler: object) -> None:
    """Build the graph of the processor's histograms over ``path`` and compute it."""
    steps = [[start, min(start + chunksize, n_events)] for start in range(0, n_events, chunksize)]
    events = NanoEventsFactory.from_root(
        {str(path): {"object_path": "Events", "steps": steps}},
        schemaclass=NanoAODSchema,
        mode="dask",
    ).events()
    config = FastSimConfig(model=embedded_model(), threads=1)
    dask.compute(fill_histograms(events, config), scheduler=scheduler)


def main() -> None:
    ignore_nanoaod_warnings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/fastsim-bench"))
    parser.add_argument("--chunksize", type=int, default=100_000)
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    path = make_input(args.work_dir / f"gen_{args.events}.root", args.events)
    fileset = {"events": [str(path)]}
    common = {"chunksize": args.chunksize, "status": False}
    results: dict[str, float] = {}

    def runner(executor: str = "iterative", oversample: int = 1, **options: object) -> None:
        config = FastSimConfig(model=embedded_model(), threads=1, oversample=oversample)
        run_processor(fileset, FastSimProcessor(config), executor=executor, **common, **options)

    def rate(function) -> float:
        function()  # warm: imports, model, page cache
        return best_rate(function, args.events, REPEATS)

    results["runner_iterative"] = rate(runner)
    results["dask_awkward_sync"] = rate(
        lambda: dask_awkward_run(path, args.events, args.chunksize, "sync")
    )
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        address = cluster.scheduler_address
        results["runner_dask_2"] = rate(lambda: runner("dask", workers=2, scheduler=address))
        results["dask_awkward_2"] = rate(
            lambda: dask_awkward_run(path, args.events, args.chunksize, client)
        )
    for oversample in OVERSAMPLING:
        results[f"oversample_{oversample}"] = rate(lambda k=oversample: runner(oversample=k))

    print(f"input: {args.events:,} GEN events, chunks/partitions of {args.chunksize:,}")
    print(f"one process   Runner (iterative): {results['runner_iterative']:10,.0f} events/s")
    print(f"one process   dask-awkward (sync): {results['dask_awkward_sync']:9,.0f} events/s")
    print(f"2 dask workers Runner (dask):     {results['runner_dask_2']:10,.0f} events/s")
    print(f"2 dask workers dask-awkward:      {results['dask_awkward_2']:10,.0f} events/s")
    for oversample in OVERSAMPLING:
        value = results[f"oversample_{oversample}"]
        cost = results["oversample_1"] / value
        line = f"oversample K={oversample:<2d} (iterative): {value:10,.0f} GEN events/s"
        print(f"{line}, cost x{cost:.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
