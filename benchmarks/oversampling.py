"""How the error of an oversampled histogram falls with K, against independent samples.

Usage: python benchmarks/oversampling.py [--samples 150] [--size 300]
       [--output docs/figures/oversampling]

For K = 1, 2, 4, 8, 16, 64: ``validation.oversampling.measure_errors`` simulates independent
GEN samples (Poisson(size) events drawn from the embedded sample's selected events) with K
replicas each, and compares, over the well-filled bins of the DL muon pT and M_T histograms,
the spread of the bin contents with the stored errors and with the naive sum of squared
weights. The K -> infinity limit (the GEN statistics) comes from a fit of the stored
variance to A + B / K, which is exact for a bin: E[(c / K)^2] = p^2 + p (1 - p) / K for
c ~ Binomial(K, p) replicas of an event in the bin.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from coffea_fastsim.analysis.reading import read_features
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.embedded import embedded_model, embedded_sample
from coffea_fastsim.surrogate.inference import SurrogateEngine
from coffea_fastsim.validation.oversampling import measure_errors

OVERSAMPLING = (1, 2, 4, 8, 16, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=150)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--output", type=Path, default=Path("docs/figures/oversampling"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # many small evaluations
    population = read_features(embedded_sample(), WJETS)
    engine = SurrogateEngine(embedded_model(), seed=5)
    rows = []
    filled = None
    for oversample in OVERSAMPLING:
        measured = measure_errors(
            WJETS,
            engine,
            population,
            oversample,
            n_samples=args.samples,
            mean_size=args.size,
            seed=1,
        )
        if filled is None:
            filled = measured.mean > 5  # the same bins for every K
        total = measured.mean[filled].sum()
        rows.append(
            {
                "K": oversample,
                "measured": float(np.sqrt(measured.spread[filled].sum()) / total),
                "stored": float(np.sqrt(measured.stored[filled].sum()) / total),
                "naive": float(np.sqrt(measured.naive[filled].sum()) / total),
                "measured_over_stored": float(
                    measured.spread[filled].sum() / measured.stored[filled].sum()
                ),
            }
        )
    inverse_k = 1.0 / np.array(OVERSAMPLING)
    _, limit_variance = np.polyfit(inverse_k, [r["stored"] ** 2 for r in rows], 1)
    limit = float(np.sqrt(max(limit_variance, 0.0)))

    print(f"{args.samples} independent samples of Poisson({args.size}) GEN events per K")
    print(f"{'K':>3} {'measured':>9} {'stored':>9} {'naive':>9} {'meas/stored var':>16}")
    for row in rows:
        print(
            f"{row['K']:>3} {row['measured']:9.4f} {row['stored']:9.4f} {row['naive']:9.4f} "
            f"{row['measured_over_stored']:16.3f}"
        )
    print(f"K -> infinity (GEN statistics): {limit:.4f}")

    args.output.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(6, 4.2))
    ks = np.array(OVERSAMPLING)
    # Relative error of a standard deviation estimated from n samples: 1 / sqrt(2 (n - 1)).
    spread_error = np.array([r["measured"] for r in rows]) / np.sqrt(2 * (args.samples - 1))
    axes.errorbar(
        ks,
        [r["measured"] for r in rows],
        yerr=spread_error,
        fmt="o",
        color="black",
        label="spread of independent samples",
    )
    axes.plot(ks, [r["stored"] for r in rows], "-", color="C0", label="stored error (grouped)")
    axes.plot(ks, [r["naive"] for r in rows], "--", color="C3", label=r"naive $\sum w^2$")
    axes.axhline(limit, color="grey", linestyle=":", label=r"$K \to \infty$: GEN statistics")
    axes.set_xscale("log", base=2)
    axes.set_xticks(ks, [str(k) for k in ks])
    axes.set_xlabel("replicas per GEN event K")
    axes.set_ylabel(r"relative error, $\sqrt{\sum_b \sigma_b^2} / \sum_b n_b$")
    axes.set_title(f"DL $p_T^\\mu$ and $M_T$, {args.size} GEN events per sample", fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path = args.output / "error_vs_k.png"
    figure.savefig(path, dpi=120)
    print(f"figure: {path}")
    print(json.dumps({"rows": rows, "limit": limit}))


if __name__ == "__main__":
    main()
