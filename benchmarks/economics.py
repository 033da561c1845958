"""The resource argument of analysis-specific fast simulation, from measured costs.

For N requested events of which n go through the full (reference) simulation, compare
- the traditional workflow: every event generated and fully simulated and stored;
- the proposed workflow: every event generated (GEN kept), n fully simulated, a surrogate
  trained on them, and the other N - n events made by the surrogate (DL dataset kept).

Usage:
  python benchmarks/economics.py --events 1000000 --fraction 0.1 \\
      --gen-seconds 0.0087 --gen-bytes 260 --dl-seconds 1.8e-6 --dl-bytes 40 \\
      --full-seconds 100 --full-bytes 1e6 --train-seconds 60

Defaults: the per-event costs measured on this project's machine (docs/benchmarks.md), and
the full-simulation cost of a GEANT4-based workflow quoted by the reference study
(O(100) s and O(1) MB per event). ``--full-seconds`` and ``--full-bytes`` can be set to the
project's own particle-level reference detector instead.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

__all__ = ["Costs", "savings"]


@dataclass(frozen=True)
class Costs:
    """Per-event costs: CPU seconds and bytes on disk of each step."""

    gen_seconds: float
    gen_bytes: float
    full_seconds: float
    full_bytes: float
    dl_seconds: float
    dl_bytes: float
    train_seconds: float


def savings(n_events: int, fraction: float, costs: Costs) -> dict[str, float]:
    """CPU and disk of both workflows for ``n_events`` requested, ``fraction`` fully simulated."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n_full = fraction * n_events
    n_dl = n_events - n_full
    traditional_cpu = n_events * (costs.gen_seconds + costs.full_seconds)
    traditional_disk = n_events * costs.full_bytes
    proposed_cpu = (
        n_events * costs.gen_seconds
        + n_full * costs.full_seconds
        + costs.train_seconds
        + n_dl * costs.dl_seconds
    )
    proposed_disk = n_events * costs.gen_bytes + n_full * costs.full_bytes + n_dl * costs.dl_bytes
    return {
        "traditional_cpu_hours": traditional_cpu / 3600,
        "proposed_cpu_hours": proposed_cpu / 3600,
        "cpu_saved": 1 - proposed_cpu / traditional_cpu,
        "traditional_disk_gb": traditional_disk / 1e9,
        "proposed_disk_gb": proposed_disk / 1e9,
        "disk_saved": 1 - proposed_disk / traditional_disk,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=float, default=1e6, help="N, requested events")
    parser.add_argument("--fraction", type=float, default=0.1, help="n / N, fully simulated")
    parser.add_argument("--gen-seconds", type=float, default=1 / 115, help="GEN CPU s/event")
    parser.add_argument("--gen-bytes", type=float, default=260.0, help="GEN bytes/event")
    parser.add_argument("--full-seconds", type=float, default=100.0, help="full sim CPU s/event")
    parser.add_argument("--full-bytes", type=float, default=1e6, help="full sim bytes/event")
    parser.add_argument("--dl-seconds", type=float, default=1 / 550_000, help="surrogate s/event")
    parser.add_argument("--dl-bytes", type=float, default=40.0, help="DL dataset bytes/event")
    parser.add_argument("--train-seconds", type=float, default=60.0, help="training, CPU s")
    args = parser.parse_args()
    costs = Costs(
        gen_seconds=args.gen_seconds,
        gen_bytes=args.gen_bytes,
        full_seconds=args.full_seconds,
        full_bytes=args.full_bytes,
        dl_seconds=args.dl_seconds,
        dl_bytes=args.dl_bytes,
        train_seconds=args.train_seconds,
    )
    result = savings(int(args.events), args.fraction, costs)
    print(f"N = {args.events:,.0f} events, n = {args.fraction:.0%} of N fully simulated")
    print(f"per event: {costs}")
    print(
        f"CPU:  traditional {result['traditional_cpu_hours']:12,.1f} h, "
        f"proposed {result['proposed_cpu_hours']:12,.1f} h, saved {result['cpu_saved']:.1%}"
    )
    print(
        f"disk: traditional {result['traditional_disk_gb']:12,.2f} GB, "
        f"proposed {result['proposed_disk_gb']:12,.2f} GB, saved {result['disk_saved']:.1%}"
    )


if __name__ == "__main__":
    main()
