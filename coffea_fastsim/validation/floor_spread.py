"""The floor's own spread: RECO' vs RECO measured with K re-simulations of the same events.

The floor of the report is one detector draw: RECO' from one independent detector seed. Its
W1/sigma moves from one draw to the next as the DL sample's does (``noise_draws``), and a
target set as a multiple of it inherits that noise. With K re-simulations of the test
events (``generate --resimulations K`` writes NAME.resim1.root … NAME.resimK.root) the floor
is measured K times on the events valid in RECO and in every twin:

- the floors' mean and spread (standard deviation over mean) per observable and residual;
- the model (the mean W1/sigma over its noise draws) against the first floor, the one the
  report's tables use, and against the mean of the K floors;
- every re-simulation after the first scored against the first floor as a model is: a
  perfect model. Where it lies above a limit, that limit is beyond what the detector's own
  randomness allows against one floor.

Observables whose mean floor is below ``EXACT_FLOOR`` (a coordinate the detector measures to
float32 rounding, the reference detector's muon directions) are shown and not counted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.features import EventFeatures
from coffea_fastsim.analysis.reading import InputFileError, read_features
from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.surrogate.inference import SurrogateEngine
from coffea_fastsim.validation.noise_draws import w1_of_candidate
from coffea_fastsim.validation.samples import MIN_MATCHED_EVENTS, match_reco_prime

__all__ = [
    "EXACT_FLOOR",
    "FloorSpread",
    "floor_spread",
    "floor_spread_lines",
    "floor_spread_summary",
    "twin_path",
    "twin_paths",
]

#: Mean floor W1/sigma below which an observable counts as measured exactly (float32
#: rounding of a coordinate the detector does not smear), and is not counted.
EXACT_FLOOR = 1e-6
#: The limits of the targets: observables and relative residuals, as multiples of the floor.
OBSERVABLE_LIMIT, RESIDUAL_LIMIT = 1.5, 2.0


def twin_path(test_file: str | os.PathLike[str], k: int) -> Path:
    """The k-th re-simulation of ``test_file`` as ``generate --resimulations`` names it:
    NAME.resimK.root next to NAME.root."""
    path = Path(test_file)
    return path.with_name(f"{path.stem}.resim{k}{path.suffix}")


def twin_paths(test_files: Sequence[Path], count: int) -> tuple[tuple[Path, ...], ...]:
    """Re-simulations 1 … ``count`` of each test file, checked to exist.

    Returns:
        per test file, its ``count`` twins in order.

    Raises:
        ValueError: ``count`` below 1.
        InputFileError: a twin is missing (named, with the command that makes it).
    """
    if count < 1:
        raise ValueError(f"resimulations must be at least 1, got {count}")
    twins = tuple(tuple(twin_path(f, k) for k in range(1, count + 1)) for f in test_files)
    for test_file, paths in zip(test_files, twins, strict=True):
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise InputFileError(
                f"{missing[0]}: no such re-simulation of {test_file} (generate the test "
                f"sample with --resimulations {count}, same seed, to get NAME.resim1.root … "
                f"NAME.resim{count}.root)"
            )
    return twins


@dataclass(frozen=True)
class FloorSpread:
    """The floor measured with K re-simulations, and the model on the same events.

    Arguments:
        n_events: events valid in RECO and in every re-simulation.
        observables, residuals: per observable name, W1/sigma of re-simulation k vs RECO,
            shape (K,), k = 1 … K in order (residuals: of the relative residual, as
            ``comparison.compare``).
        model_observables, model_residuals: per observable name, the model's mean W1/sigma
            over its noise draws on the same events.
        draws: the model's noise draws (seeds ``seed`` … ``seed + draws - 1``).
    """

    n_events: int
    observables: dict[str, np.ndarray]
    residuals: dict[str, np.ndarray]
    model_observables: dict[str, float]
    model_residuals: dict[str, float]
    draws: int

    @property
    def resimulations(self) -> int:
        """K, the number of floors."""
        return len(next(iter(self.observables.values())))

    @property
    def counted(self) -> tuple[str, ...]:
        """The observables the limits count: those whose mean floor is not exact."""
        return tuple(n for n, v in self.observables.items() if v.mean() >= EXACT_FLOOR)

    def floors(self, attribute: str) -> dict[str, np.ndarray]:
        """The K floors of the observables (``attribute="observables"``) or of their
        residuals (``"residuals"``)."""
        return self.observables if attribute == "observables" else self.residuals

    def model(self, attribute: str) -> dict[str, float]:
        """The model's mean W1/sigma of the observables or of their residuals."""
        return self.model_observables if attribute == "observables" else self.model_residuals

    def model_over_floor(self, attribute: str, reference: str) -> dict[str, float]:
        """The model's W1/sigma over the first floor (``reference="first"``) or over the mean
        of the floors (``"mean"``), per counted observable."""
        model, floors = self.model(attribute), self.floors(attribute)
        return {
            name: model[name] / (floors[name][0] if reference == "first" else floors[name].mean())
            for name in self.counted
        }

    def twin_over_first(self, attribute: str, k: int) -> dict[str, float]:
        """Re-simulation ``k`` (2 … K) scored as a model against the first floor, per counted
        observable."""
        if not 2 <= k <= self.resimulations:
            raise ValueError(f"k must be in 2 … {self.resimulations}, got {k}")
        floors = self.floors(attribute)
        return {name: floors[name][k - 1] / floors[name][0] for name in self.counted}


def _common_rows(
    test_file: Path, twins: Sequence[Path], analysis: AnalysisDefinition
) -> tuple[EventFeatures, np.ndarray, list[np.ndarray]]:
    """The test file's features, the rows of its events valid in RECO and every twin, and
    each twin's RECO features of them, shape (n, n_features)."""
    features = read_features(test_file, analysis)
    if not features.has_reco:
        raise InputFileError(f"{test_file} has no RECO collections: cannot validate")
    matches = []
    for path in twins:
        twin = read_features(path, analysis)
        if not twin.has_reco:
            raise InputFileError(f"{path} has no RECO collections: it is no re-simulation")
        rows, twin_rows = match_reco_prime(features, twin, path)
        matches.append((twin, dict(zip(rows.tolist(), twin_rows.tolist(), strict=True))))
    common = np.array(
        sorted(set.intersection(*(set(lookup) for _, lookup in matches))), dtype=np.int64
    )
    if len(common) < MIN_MATCHED_EVENTS:
        raise InputFileError(
            f"{test_file}: only {len(common)} events valid in RECO and all {len(twins)} "
            "re-simulations"
        )
    twin_reco = [
        twin.reco[np.array([lookup[r] for r in common.tolist()], dtype=np.int64)]  # type: ignore[index]
        for twin, lookup in matches
    ]
    return features, common, twin_reco


def floor_spread(
    test_files: Sequence[Path],
    twins: Sequence[Sequence[Path]],
    model: Path,
    seed: int,
    draws: int,
    analysis: AnalysisDefinition,
) -> FloorSpread:
    """Measure the floor with each re-simulation and the model on the same events.

    Arguments:
        test_files: the GEN+RECO test files.
        twins: per test file, its K >= 2 re-simulations in order (``twin_paths``).
        model: the nominal model file.
        seed, draws: the model's noise draws, seeds ``seed`` … ``seed + draws - 1``; the DL
            of an event is the report's (the noise is keyed by the event, not its position).
        analysis: the analysis definition.

    Raises:
        ValueError: fewer than two re-simulations, a count per file that differs, or
            ``draws`` below 1.
        InputFileError: a file without RECO, a twin of other events, or too few events
            valid in all.
    """
    counts = {len(t) for t in twins}
    if len(twins) != len(test_files) or len(counts) != 1 or counts.pop() < 2:
        raise ValueError("give every test file the same number (at least 2) of re-simulations")
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    parts = [_common_rows(Path(f), t, analysis) for f, t in zip(test_files, twins, strict=True)]
    gen_features = np.concatenate([f.gen[rows] for f, rows, _ in parts])
    ids = [
        np.concatenate([getattr(f, key)[rows] for f, rows, _ in parts])
        for key in ("run", "luminosity_block", "event")
    ]
    gen = ObservableTable.of(gen_features, analysis)
    reco = ObservableTable.of(np.concatenate([f.reco[rows] for f, rows, _ in parts]), analysis)  # type: ignore[index]
    names = analysis.observable_names
    per_twin = [
        w1_of_candidate(
            gen, ObservableTable.of(np.concatenate([t[k] for _, _, t in parts]), analysis), reco
        )
        for k in range(len(twins[0]))
    ]
    per_draw = [
        w1_of_candidate(
            gen,
            ObservableTable.of(
                SurrogateEngine(model, seed=s).predict(gen_features, *ids).astype(np.float64),
                analysis,
            ),
            reco,
        )
        for s in range(seed, seed + draws)
    ]
    return FloorSpread(
        n_events=len(gen_features),
        observables={n: np.array([t[0][n] for t in per_twin]) for n in names},
        residuals={n: np.array([t[1][n] for t in per_twin]) for n in names},
        model_observables={n: float(np.mean([d[0][n] for d in per_draw])) for n in names},
        model_residuals={n: float(np.mean([d[1][n] for d in per_draw])) for n in names},
        draws=draws,
    )


def _above(ratios: dict[str, float], limit: float) -> str:
    above = sorted(((v, n) for n, v in ratios.items() if v > limit), reverse=True)
    listed = ", ".join(f"{n} {v:.2f}" for v, n in above)
    return f"{len(above)}/{len(ratios)}" + (f" ({listed})" if listed else "")


def floor_spread_summary(spread: FloorSpread) -> str:
    """One line: how many observables (> 1.5x) and residuals (> 2x) lie above the limits for
    the model against the first and the mean floor, and for the re-simulations against the
    first floor."""
    k = spread.resimulations
    parts = []
    for label, obs, res in (
        (
            "model / first floor",
            spread.model_over_floor("observables", "first"),
            spread.model_over_floor("residuals", "first"),
        ),
        (
            f"model / mean of {k} floors",
            spread.model_over_floor("observables", "mean"),
            spread.model_over_floor("residuals", "mean"),
        ),
    ):
        parts.append(f"{label}: {_count(obs, OBSERVABLE_LIMIT)}, {_count(res, RESIDUAL_LIMIT)}")
    twins = [
        f"{_count(spread.twin_over_first('observables', j), OBSERVABLE_LIMIT)}, "
        f"{_count(spread.twin_over_first('residuals', j), RESIDUAL_LIMIT)}"
        for j in range(2, k + 1)
    ]
    label = "re-simulation 2" if k == 2 else f"re-simulations 2-{k}"
    parts.append(f"{label} / first floor (a perfect model): " + "; ".join(twins))
    return "floor over " + f"{k} re-simulations, above 1.5x / 2x: " + " | ".join(parts)


def _count(ratios: dict[str, float], limit: float) -> str:
    return f"{sum(v > limit for v in ratios.values())}/{len(ratios)}"


def _floor_cell(values: np.ndarray) -> str:
    mean = values.mean()
    spread = values.std(ddof=1) / mean if mean >= EXACT_FLOOR else 0.0
    floors = " ".join(f"{v:.4f}" for v in values)
    return f"{floors} | {mean:.4f} | " + (f"{spread:.0%}" if mean >= EXACT_FLOOR else "exact")


def floor_spread_lines(spread: FloorSpread) -> list[str]:
    """The report's section: per observable and residual the K floors, their mean and
    spread, the model against the first and the mean floor, and the largest multiple of the
    first floor that a re-simulation reached; then the counts above the limits."""
    k = spread.resimulations
    lines = [
        "",
        "## 9. The floor's own spread",
        "",
        f"The floor measured with each of {k} re-simulations of the same GEN events "
        f"({spread.n_events} events valid in RECO and in all of them; the tables above use "
        "the first): W1/sigma of each against RECO, their mean and spread (standard "
        f"deviation / mean). The model is its mean W1/sigma over {spread.draws} noise "
        "draw(s) on these events, against the first floor and against the mean floor. "
        "Re-simulations 2 and on are scored against the first floor as a model is: each is "
        "a perfect model, and where it exceeds a limit (1.5x for an observable, 2x for a "
        "residual) that limit is within the floor's own noise.",
        "",
    ]
    for attribute, title, limit in (
        ("observables", "observable", OBSERVABLE_LIMIT),
        ("residuals", "relative residual", RESIDUAL_LIMIT),
    ):
        floors, model = spread.floors(attribute), spread.model(attribute)
        first = spread.model_over_floor(attribute, "first")
        mean = spread.model_over_floor(attribute, "mean")
        twins = {
            name: max(spread.twin_over_first(attribute, j)[name] for j in range(2, k + 1))
            for name in spread.counted
        }
        lines += [
            f"| {title} | floors 1-{k} | mean floor | spread | DL | DL / first | DL / mean | "
            "re-simulation / first, largest |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, values in floors.items():
            counted = name in first
            ratios = (
                f"{first[name]:.2f} | {mean[name]:.2f} | {twins[name]:.2f}"
                if counted
                else "- | - | -"
            )
            lines.append(f"| {name} | {_floor_cell(values)} | {model[name]:.4f} | {ratios} |")
        lines += [
            "",
            f"Above {limit}x: DL / first floor {_above(first, limit)}; DL / mean floor "
            f"{_above(mean, limit)}; re-simulations / first floor "
            + "; ".join(
                _above(spread.twin_over_first(attribute, j), limit) for j in range(2, k + 1)
            )
            + ".",
            "",
        ]
    return lines
