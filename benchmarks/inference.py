"""Surrogate inference throughput: the engine vs plain eager PyTorch vs the FLOP limit.

Usage: python benchmarks/inference.py [--model data/wjets_model.pt] [--events 1000000]
                                      [--device cpu cuda]
Prints, measured side by side in one process, for each device (the CPU, and CUDA when torch
sees a GPU): events/s of SurrogateEngine.predict (numpy in, numpy out: on a GPU the
host-device transfers are inside the timing; chunked, per-event noise, fixed blocks, the
automatic chunk size), of one plain forward call of the same module on data already on the
device, and the arithmetic limit: the model's multiply-adds per event against the float32
throughput of a 4096 x 4096 matmul on the same device and threads. On a GPU use at least
--events 100000000.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from timing import best_rate

from coffea_fastsim.embedded import embedded_model
from coffea_fastsim.surrogate.flow_sampling import sampling_flops
from coffea_fastsim.surrogate.inference import SurrogateEngine
from coffea_fastsim.surrogate.model_file import load_model


def matmul_flops(device: torch.device, repeats: int = 5) -> float:
    """Best float32 FLOP/s of a 4096 x 4096 matrix product on ``device``."""

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    a, b = torch.randn(4096, 4096, device=device), torch.randn(4096, 4096, device=device)
    torch.mm(a, b)
    synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * 4096**3 / best


def _linear_flops(module: torch.nn.Module) -> int:
    """2 x multiply-adds of every linear layer of ``module``, per event."""
    return sum(2 * p.shape[0] * p.shape[1] for _, p in module.named_parameters() if p.ndim == 2)


def flops_per_event(module: torch.nn.Module, passes: int = 1) -> int:
    """FLOPs per sample: every linear layer once for the Gaussian model. A flow sampled by
    feature group counts what ``flow_sampling.sampling_flops`` gives for each transform; a
    transform or module without groups (an exported program) counts as ``passes`` whole
    evaluations."""
    groups = getattr(module, "sampling_groups", None)
    if groups is None:
        return passes * _linear_flops(module)
    total = 0
    for transform, transform_groups in zip(module.flow.transform.transforms, groups, strict=True):
        if transform_groups is None:
            total += passes * _linear_flops(transform)
        else:
            total += sampling_flops(transform, transform_groups)
    return total


def sampling_passes(metadata: dict) -> int:
    """Evaluations of each network per sample: 1 for the Gaussian model; for a flow, the
    passes of its sampling direction (one per feature for a fully autoregressive flow,
    whose inverse finds one feature per pass)."""
    flow = metadata.get("training_config", {}).get("flow")
    if metadata.get("model_family") != "flow" or not flow:
        return 1
    return int(flow.get("passes") or len(metadata["input_features"]))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="model file (default: the embedded model)")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--device",
        nargs="+",
        default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"],
        help="devices to measure (default: cpu, and cuda when available)",
    )
    args = parser.parse_args()
    model_path = args.model or embedded_model()

    metadata = load_model(model_path).metadata
    mean = np.asarray(metadata["standardization"]["gen_mean"])
    std = np.asarray(metadata["standardization"]["gen_std"])
    rng = np.random.default_rng(0)
    gen = (mean + std * rng.standard_normal((args.events, len(mean)))).astype(np.float32)
    ids = np.arange(args.events, dtype=np.uint64)

    for device in map(torch.device, args.device):
        engine = SurrogateEngine(model_path, device=str(device), seed=0)
        engine.predict(gen[:1000], ids[:1000], ids[:1000], ids[:1000])  # load, warm up
        engine_rate = best_rate(
            lambda engine=engine: engine.predict(gen, ids, ids, ids), args.events, args.repeats
        )
        module = load_model(model_path, map_location=device).module
        x = torch.from_numpy(gen).to(device)
        eps = torch.randn_like(x)

        def eager(module=module, x=x, eps=eps, device=device) -> None:
            with torch.inference_mode():
                module(x, eps)
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        eager_rate = best_rate(eager, args.events, args.repeats)
        flops = matmul_flops(device)
        per_event = flops_per_event(module, sampling_passes(metadata))
        limit = flops / per_event
        print(f"device: {device} ({device_name(device)})")
        print(f"  chunk size: {engine.resolved_chunk_size():,} events")
        print(f"  network passes per sample: {sampling_passes(metadata)}")
        print(f"  engine.predict (chunked, per-event noise): {engine_rate:14,.0f} events/s")
        print(f"  plain eager forward (one batch, torch RNG): {eager_rate:14,.0f} events/s")
        print(f"  ratio engine / eager: {engine_rate / eager_rate:.2f}")
        print(
            f"  FLOP limit: {per_event / 1e3:.0f} kFLOP/event at {flops / 1e9:,.0f} GFLOP/s "
            f"(4096^2 matmul) = {limit:14,.0f} events/s; engine at {engine_rate / limit:.0%} of it"
        )


if __name__ == "__main__":
    main()
