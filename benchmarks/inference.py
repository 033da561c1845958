"""Surrogate inference throughput: the engine vs plain eager PyTorch on the same model.

Usage: python benchmarks/inference.py [--model data/wjets_model.pt] [--events 1000000]
Prints events/s of each and their ratio, measured side by side in one process.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from coffea_fastsim.embedded import embedded_model
from coffea_fastsim.inference import SurrogateEngine
from coffea_fastsim.model_io import load_model


def best_rate(function, n_events: int, repeats: int) -> float:
    """Best events/s over ``repeats`` calls of ``function``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return n_events / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="model file (default: the embedded model)")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model_path = args.model or embedded_model()

    loaded = load_model(model_path)
    mean = np.asarray(loaded.metadata["standardization"]["gen_mean"])
    std = np.asarray(loaded.metadata["standardization"]["gen_std"])
    rng = np.random.default_rng(0)
    gen = (mean + std * rng.standard_normal((args.events, len(mean)))).astype(np.float32)
    ids = np.arange(args.events, dtype=np.uint64)

    engine = SurrogateEngine(model_path, device="cpu", seed=0)
    engine_rate = best_rate(lambda: engine.predict(gen, ids, ids, ids), args.events, args.repeats)

    module = loaded.module
    x = torch.from_numpy(gen)
    eps = torch.randn_like(x)

    def eager() -> None:
        with torch.inference_mode():
            module(x, eps)

    eager_rate = best_rate(eager, args.events, args.repeats)
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, torch threads {torch.get_num_threads()}")
    print(f"engine.predict (chunked, per-event noise): {engine_rate:12,.0f} events/s")
    print(f"plain eager forward (one batch, torch RNG): {eager_rate:12,.0f} events/s")
    print(f"ratio engine / eager: {engine_rate / eager_rate:.2f}")


if __name__ == "__main__":
    main()
