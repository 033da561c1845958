"""The DL sample's own noise: W1/sigma of DL vs RECO over independent draws of its noise.

One DL sample of n events is one draw from the surrogate's p(RECO | GEN). Its W1/sigma to
RECO changes from one draw to the next: the bulk of a distribution moves by about
1/sqrt(n) of its spread, and a few events in a tail weigh on W1 in proportion to their
distance. With 24,000 W+jet events the jet-mass W1/sigma of one model ranged over a factor
of 2.5 between noise seeds. Drawing the noise K times for the same events (seeds ``seed``,
``seed + 1`` … ``seed + K - 1``, the samples ``--seed`` would give) tells a miss of the
model from an unlucky draw: the mean over the draws is the model's W1/sigma on these
events, the range its spread. The floor (RECO' vs RECO) stays one detector draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.surrogate.inference import SurrogateEngine
from coffea_fastsim.validation.comparison import ComparisonSet, clipped_residuals
from coffea_fastsim.validation.metrics import wasserstein_over_sigma
from coffea_fastsim.validation.samples import MatchedSample

__all__ = ["NoiseDraws", "noise_draw_lines", "noise_draw_summary", "noise_draws", "w1_of_candidate"]


@dataclass(frozen=True)
class NoiseDraws:
    """W1/sigma of DL vs RECO for each noise draw of the same events.

    Arguments:
        seeds: the DL noise seed of each draw, K values; the first is the report's DL.
        observables: per observable name, W1/sigma of each draw, shape (K,).
        residuals: per observable name, W1/sigma of its residual in each draw, shape (K,)
            (the residual's pooled sigma, as in ``comparison.compare``).
    """

    seeds: tuple[int, ...]
    observables: dict[str, np.ndarray]
    residuals: dict[str, np.ndarray]


def w1_of_candidate(
    gen: ObservableTable, candidate: ObservableTable, reco: ObservableTable
) -> tuple[dict[str, float], dict[str, float]]:
    """W1/sigma of every observable and of its residual, candidate vs RECO, computed as
    ``comparison.compare`` computes them (same numbers)."""
    residuals, reco_residuals = clipped_residuals(candidate, gen), clipped_residuals(reco, gen)
    names = gen.analysis.observable_names
    return (
        {name: wasserstein_over_sigma(candidate[name], reco[name]) for name in names},
        {
            name: wasserstein_over_sigma(residuals[name], reco_residuals[name], pooled=True)
            for name in names
        },
    )


def noise_draws(model: Path, sample: MatchedSample, seed: int, count: int) -> NoiseDraws:
    """W1/sigma of ``count`` DL draws of the matched events, with seeds ``seed`` …
    ``seed + count - 1``; the first draw is ``sample.dl`` (predicted with ``seed``).

    Raises:
        ValueError: ``count`` below 1.
    """
    if count < 1:
        raise ValueError(f"noise draws must be at least 1, got {count}")
    analysis = sample.gen.analysis
    gen_features = sample.gen.features
    per_draw = [w1_of_candidate(sample.gen, sample.dl, sample.reco)]
    for draw_seed in range(seed + 1, seed + count):
        dl = SurrogateEngine(model, seed=draw_seed).predict(
            gen_features, sample.run, sample.luminosity_block, sample.event
        )
        table = ObservableTable.of(dl.astype(np.float64), analysis)
        per_draw.append(w1_of_candidate(sample.gen, table, sample.reco))
    names = analysis.observable_names
    return NoiseDraws(
        seeds=tuple(range(seed, seed + count)),
        observables={name: np.array([d[0][name] for d in per_draw]) for name in names},
        residuals={name: np.array([d[1][name] for d in per_draw]) for name in names},
    )


def _worst(values: dict[str, float], digits: int = 2) -> str:
    name = max(values, key=values.__getitem__)
    return f"{values[name]:.{digits}f} ({name})"


def noise_draw_summary(draws: NoiseDraws, floor: ComparisonSet | None) -> str:
    """The summary line of the draws: the largest mean W1/sigma and, with a floor, the
    largest mean multiple of the floor's, of the observables and of their residuals
    (observables whose floor is 0, measured exactly, are left out of the multiples)."""
    means = {name: float(values.mean()) for name, values in draws.observables.items()}
    line = f"model over {len(draws.seeds)} noise draws: mean W1/sigma worst {_worst(means, 4)}"
    if floor is None:
        return line
    multiples = []
    for attribute in ("observables", "residuals"):
        reference = getattr(floor, attribute)
        multiples.append(
            {
                name: float(values.mean()) / reference[name].w1_over_sigma
                for name, values in getattr(draws, attribute).items()
                if reference[name].w1_over_sigma > 0
            }
        )
    return f"{line}; / floor: worst {_worst(multiples[0])}, residuals worst {_worst(multiples[1])}"


def _cell(values: np.ndarray, floor: float | None) -> str:
    """Mean (min-max) of the draws, and as a multiple of the floor."""
    text = f"{values.mean():.4f} ({values.min():.4f}-{values.max():.4f})"
    if floor is None or floor <= 0:
        return f"{text} | -"
    ratio = values / floor
    return f"{text} | {ratio.mean():.2f} ({ratio.min():.2f}-{ratio.max():.2f})"


def noise_draw_lines(draws: NoiseDraws, floor: ComparisonSet | None) -> list[str]:
    """The report's section on the draws: per observable and residual, the mean and range
    of W1/sigma, and as multiples of the floor's."""
    seeds = draws.seeds
    lines = [
        "",
        "## 7. The DL draw's own noise",
        "",
        f"W1/sigma of DL vs RECO over {len(seeds)} draws of the DL noise for the same events "
        f"(seeds {seeds[0]}-{seeds[-1]}; the tables above show seed {seeds[0]}): the mean of "
        "the draws and their range (min-max), and the same as multiples of the floor's "
        "W1/sigma (one RECO' draw). A model whose mean is near the floor and whose range "
        "covers it differs from RECO by the noise of one draw.",
        "",
        "| observable | W1/sigma DL | / floor | residual W1/sigma DL | / floor |",
        "|---|---|---|---|---|",
    ]
    for name, values in draws.observables.items():
        observable_floor = residual_floor = None
        if floor is not None:
            observable_floor = floor.observables[name].w1_over_sigma
            residual_floor = floor.residuals[name].w1_over_sigma
        lines.append(
            f"| {name} | {_cell(values, observable_floor)} | "
            f"{_cell(draws.residuals[name], residual_floor)} |"
        )
    return lines
