"""The detector step: seconds per event of the reference detector against the surrogate.

Usage: python benchmarks/detector_step.py [--mu 0 50 200] [--events 500] [--seed 1]

Measured side by side in one process on one core (one torch thread):
- reference: ``reconstruct`` of the particle-level detector (cms-particle: tracking,
  calorimeters, particle flow, pileup, jets, muons, MET) on one batch of Pythia8 W+jet
  events, for each mu; the events and their GEN record are made once, outside the timing,
  and the minimum-bias pool is made (and cached) beforehand;
- surrogate: what replaces it, per GEN event: the W+jet selection and feature vectors
  (``build_features``) and ``SurrogateEngine.predict`` on the selected events, on the
  embedded sample's GEN collections, read into memory beforehand.
Prints seconds per event of each and the speed-up of the detector step.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from coffea_fastsim.analysis.features import build_features
from coffea_fastsim.analysis.reading import open_events
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.embedded import embedded_model, embedded_sample
from coffea_fastsim.sim.detector.pileup import MinBiasPoolConfig, make_min_bias_pool
from coffea_fastsim.sim.detector.registry import make_detector
from coffea_fastsim.sim.generation import GenerationConfig, charge_lookup, gen_event_record
from coffea_fastsim.sim.pythia_config import make_pythia, pythia_seed
from coffea_fastsim.surrogate.inference import SurrogateEngine

#: Timed repetitions of the surrogate step; the best is kept.
REPEATS = 5


def detector_seconds_per_event(events: int, seed: int, mus: list[float]) -> dict[float, float]:
    """Seconds per event of the cms-particle detector's ``reconstruct`` for each mu."""
    pythia = make_pythia(pythia_seed(seed, 0), GenerationConfig(n_events=events).pthat_min)
    batch = pythia.nextBatch(events)
    _, particles, gen_jets = gen_event_record(batch.prt, charge_lookup(pythia))
    pool = make_min_bias_pool(MinBiasPoolConfig(), 1) if any(mu > 0 for mu in mus) else None
    seconds = {}
    for mu in mus:
        options = {"mu": mu, "pool": pool} if mu > 0 else {}
        detector = make_detector("cms-particle", **options)
        rng = np.random.default_rng(seed)
        start = time.perf_counter()
        detector.reconstruct(particles, gen_jets, rng)
        seconds[mu] = (time.perf_counter() - start) / len(batch)
    return seconds


def surrogate_seconds_per_event() -> tuple[float, int, int]:
    """Best seconds per GEN event of selection, features and inference; events, selected."""
    events = open_events(embedded_sample())
    engine = SurrogateEngine(embedded_model(), device="cpu")
    best = float("inf")
    for _ in range(REPEATS + 1):  # the first run loads the model
        start = time.perf_counter()
        features = build_features(events, WJETS)
        engine.predict(features.gen, features.run, features.luminosity_block, features.event)
        best = min(best, time.perf_counter() - start)
    return best / len(events), len(events), len(features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mu", type=float, nargs="+", default=[0.0, 50.0, 200.0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    detector = detector_seconds_per_event(args.events, args.seed, args.mu)
    surrogate, n_events, n_selected = surrogate_seconds_per_event()
    print(
        f"surrogate (selection + features + inference, {n_events:,} GEN events, "
        f"{n_selected:,} selected): {surrogate * 1e6:.2f} us/event"
    )
    print(f"{'mu':>6} {'detector s/event':>17} {'speed-up':>10}")
    for mu, seconds in detector.items():
        print(f"{mu:6g} {seconds:17.2e} {seconds / surrogate:10,.0f}")
    print(f"one core, one torch thread; detector on {args.events} Pythia8 W+jet events")


if __name__ == "__main__":
    main()
