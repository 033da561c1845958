"""Generation speed with the particle-level detector at several pileup levels.

Usage: python benchmarks/detector.py [--mu 0 50 200] [--events 400] [--workers 2]
For each mu, generates --events W+jet events (Pythia8 + detector) with --workers processes,
and prints events/s, the fraction passing the GEN selection with a valid RECO match, and the
projected time for 300,000 such events. The minimum-bias pool is made (and cached) first,
outside the timing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from coffea_fastsim.generation import GenerationConfig, generate_sample
from coffea_fastsim.pileup import MinBiasPoolConfig, make_min_bias_pool
from coffea_fastsim.reading import read_features

TARGET_SELECTED = 300_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mu", type=float, nargs="+", default=[0.0, 50.0, 200.0])
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    start = time.perf_counter()
    make_min_bias_pool(MinBiasPoolConfig(), args.workers)
    print(f"minimum-bias pool ready in {time.perf_counter() - start:.0f} s")
    print(f"{'mu':>6} {'events/s':>9} {'selected':>9} {'h for 300k selected':>20}")
    with tempfile.TemporaryDirectory() as directory:
        for mu in args.mu:
            path = Path(directory) / f"mu{mu:g}.root"
            config = GenerationConfig(
                n_events=args.events,
                seed=args.seed,
                n_workers=args.workers,
                events_per_job=max(1, args.events // args.workers),
                mu=mu,
                progress=False,
            )
            summary = generate_sample(path, config)
            features = read_features(path)
            selected = features.reco_valid.sum() / args.events
            hours = TARGET_SELECTED / (summary.events_per_second * selected) / 3600
            print(f"{mu:6g} {summary.events_per_second:9.1f} {selected:9.3f} {hours:20.2f}")
    print(f"cores: {os.cpu_count()}, workers: {args.workers}")


if __name__ == "__main__":
    main()
