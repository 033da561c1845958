"""Training time to convergence of the paper's Gaussian surrogate.

Usage: python benchmarks/training.py [SAMPLE.root ...] [--threads 1] [--epochs 100]

The default sample is the paper preset's training sample, made by
``coffea-fastsim generate samples/paper --preset paper`` (or only its first file:
``coffea-fastsim generate samples/paper/train.root -n 1200000 --seed 101``).
The recipe is ``TrainingConfig()``'s, the one ``coffea-fastsim train`` uses: 100 epochs,
batches of 128, Adam with learning rate 0.001 / (1 + epoch), best validation epoch kept.

Prints the selected pairs and the split sizes, the time to read them, the wall time of all
epochs and per epoch, the best (kept) epoch and the time to reach it (convergence), and the
ratio of that time to the 15-minute target.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from coffea_fastsim.analysis.reading import feature_pairs
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.surrogate.training import TrainingConfig, train_surrogate

#: Target for the paper preset on 2 cores, seconds.
TARGET_SECONDS = 15 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("samples", nargs="*", type=Path, default=[Path("samples/paper/train.root")])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: 1)")
    parser.add_argument("--epochs", type=int, default=TrainingConfig.epochs)
    args = parser.parse_args()

    started = time.perf_counter()
    pairs = feature_pairs(args.samples, WJETS)
    read_seconds = time.perf_counter() - started
    config = TrainingConfig(epochs=args.epochs, threads=args.threads, progress=False)
    result = train_surrogate(pairs.gen, pairs.reco, config, WJETS.feature_names)
    history = result.history
    epochs_run = len(history.train_loss)
    to_best = history.seconds[result.best_epoch]

    print(f"machine: {os.cpu_count()} cores, torch threads {config.threads or 1}")
    print(f"samples: {', '.join(str(p) for p in args.samples)}")
    print(
        f"pairs: {len(pairs):,} (train {len(result.split.train):,}, validation "
        f"{len(result.split.validation):,}, test {len(result.split.test):,}); "
        f"read in {read_seconds:.0f} s"
    )
    print(
        f"training: {epochs_run} epochs in {history.seconds[-1]:.0f} s "
        f"({history.seconds[-1] / epochs_run:.2f} s/epoch); whole call {result.seconds:.0f} s"
    )
    best_loss = history.validation_loss[result.best_epoch]
    print(
        f"best validation epoch: {result.best_epoch} (loss {best_loss:.4f}), "
        f"reached after {to_best:.0f} s = {to_best / 60:.1f} min"
    )
    print(
        f"ratio to the 15-minute target: all epochs {history.seconds[-1] / TARGET_SECONDS:.2f}, "
        f"to the best epoch {to_best / TARGET_SECONDS:.2f}"
    )


if __name__ == "__main__":
    main()
