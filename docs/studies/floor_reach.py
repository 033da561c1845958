"""How far the RECO' floor is reachable: its own spread, and how a model's ratio to it grows
with the number of test events.

Two measurements (docs/validation.md, "How far the floor is reachable"); the floor's own
spread over K re-simulations, first measured here, is section 9 of every report made with
``validate --resimulations K``:

``quantiles``: the quantiles of a few observables in RECO, RECO' and DL (all draws together),
the differences in units of RECO's standard deviation: where a distribution is too wide.

``scaling``: test files with one re-simulation. The model's ratio to the floor on random
subsets of the matched events (a fraction of them, several subsets each): a ratio that the
detector's own noise makes stays flat, a systematic error of the model grows as sqrt(N).

    python docs/studies/floor_reach.py scaling samples/scale/w/test-01.root \
        samples/scale/w/test-02.root --model data/wjets_model.pt
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.registry import resolve_analysis
from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.sim.generation import resimulation_path
from coffea_fastsim.surrogate.ensemble import Ensemble
from coffea_fastsim.surrogate.inference import SurrogateEngine
from coffea_fastsim.validation.noise_draws import w1_of_candidate
from coffea_fastsim.validation.samples import load_matched


def counted(analysis: AnalysisDefinition) -> list[str]:
    """The observables the targets count: all but the muon directions (exact in the
    reference detector and in DL)."""
    return [
        name
        for name in analysis.observable_names
        if not (name.startswith("muon") and name.endswith(("eta", "phi")))
    ]


def w1_rows(
    gen: ObservableTable, candidate: ObservableTable, reco: ObservableTable, names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """W1/sigma of the observables and of their residuals, candidate vs RECO, shape (n,)."""
    observables, residuals = w1_of_candidate(gen, candidate, reco)
    return np.array([observables[n] for n in names]), np.array([residuals[n] for n in names])


def model_draws(
    model: Path,
    gen: np.ndarray,
    ids: Sequence[np.ndarray],
    draws: int,
    analysis: AnalysisDefinition,
) -> list[ObservableTable]:
    """The model's DL tables of ``draws`` noise draws (seeds 0 … draws - 1)."""
    return [
        ObservableTable.of(
            SurrogateEngine(model, seed=seed).predict(gen.astype(np.float32), *ids), analysis
        )
        for seed in range(draws)
    ]


def line(label: str, ratios: np.ndarray, names: list[str], limit: float) -> str:
    values = " ".join(f"{n}={v:.2f}" for n, v in zip(names, ratios, strict=True))
    return f"{label}: {(ratios > limit).sum()} above {limit}x | {values}"


def scaling(
    files: list[Path],
    model: Path,
    fractions: list[float],
    subsets: int,
    draws: int,
    analysis: AnalysisDefinition,
) -> None:
    names = counted(analysis)
    sample = load_matched(
        files, Ensemble(model, ()), 0, analysis, [resimulation_path(p, 1) for p in files]
    )
    ids = (sample.run, sample.luminosity_block, sample.event)
    tables = model_draws(model, sample.gen.features, ids, draws, analysis)
    rng = np.random.default_rng(3)
    n = len(sample)
    for fraction in fractions:
        repeats = 1 if fraction >= 1 else subsets
        observable_ratios, residual_ratios = [], []
        for _ in range(repeats):
            rows = (
                np.arange(n)
                if fraction >= 1
                else np.sort(rng.choice(n, int(fraction * n), replace=False))
            )
            gen, reco = sample.gen.take(rows), sample.reco.take(rows)
            floor = w1_rows(gen, sample.reco_prime.take(rows), reco, names)  # type: ignore[union-attr]
            model_rows = [w1_rows(gen, table.take(rows), reco, names) for table in tables]
            observable_ratios.append(np.mean([r[0] for r in model_rows], 0) / floor[0])
            residual_ratios.append(np.mean([r[1] for r in model_rows], 0) / floor[1])
        size = len(rows)
        print(
            line(
                f"N = {size} ({repeats} subsets), observables",
                np.mean(observable_ratios, 0),
                names,
                1.5,
            )
        )
        print(
            line(
                f"N = {size} ({repeats} subsets), residuals",
                np.mean(residual_ratios, 0),
                names,
                2.0,
            )
        )


def quantiles(
    files: list[Path], model: Path, observables: list[str], draws: int, analysis: AnalysisDefinition
) -> None:
    """Quantiles of observables: RECO's, and RECO' and DL (all draws together) minus RECO's,
    in units of RECO's standard deviation."""
    sample = load_matched(
        files, Ensemble(model, ()), 0, analysis, [resimulation_path(p, 1) for p in files]
    )
    ids = (sample.run, sample.luminosity_block, sample.event)
    tables = model_draws(model, sample.gen.features, ids, draws, analysis)
    levels = np.array([0.001, 0.01, 0.02, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.98, 0.99, 0.999])
    for name in observables:
        reco = sample.reco[name]
        prime = sample.reco_prime[name]  # type: ignore[index]
        dl = np.concatenate([table[name] for table in tables])
        sigma = reco.std()
        print(
            f"{name} (RECO standard deviation {sigma:.4g}): quantile, RECO, RECO' - RECO, DL - RECO"
        )
        for level, r, p, d in zip(
            levels, *(np.quantile(x, levels) for x in (reco, prime, dl)), strict=True
        ):
            print(f"  {level:5.3f} {r:10.4f} {(p - r) / sigma:+.4f} {(d - r) / sigma:+.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("scaling", "quantiles"))
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--analysis", default="wjets")
    parser.add_argument("--draws", type=int, default=5, help="DL noise draws (default 5)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--subsets", type=int, default=6, help="scaling: subsets per fraction")
    parser.add_argument("--observables", nargs="+", default=["jet_log_mass", "mt"])
    args = parser.parse_args()
    analysis = resolve_analysis(args.analysis)
    if args.mode == "scaling":
        scaling(args.files, args.model, args.fractions, args.subsets, args.draws, analysis)
    else:
        quantiles(args.files, args.model, args.observables, args.draws, analysis)


if __name__ == "__main__":
    main()
