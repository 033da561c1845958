"""The fidelity suite: how close the surrogate's DL sample is to RECO, and to RECO's own floor.

For a test sample (GEN + RECO, optionally RECO' from an independent detector simulation of
the same events) and a model (optionally an ensemble of models trained with other seeds):

1. 1D agreement of every observable (W1/sigma, KS, chi2/ndf with the ensemble band),
2. the same for the relative residuals (x - x_GEN) / x_GEN,
3. a classifier two-sample test of p(output | GEN),
4. the correlation matrices of the observables,
5. the ensemble band,
6. optionally, the double ratio of a test sample five times larger than the training sample,
7. with several DL noise draws, the spread of their W1/sigma,
8. with RECO', the share of RECO's detector response that RECO' has beyond the GEN features
   (the reach of the floor),
9. with several re-simulations, the floor measured with each: its own spread.

Every comparison of the model (DL vs RECO) is made the same way for the floor (RECO' vs
RECO). The matched events and DL come from :mod:`coffea_fastsim.validation.samples`, the
comparisons from :mod:`coffea_fastsim.validation.comparison`; this module runs them and
derives every number the report shows, so that the report only formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.reading import sample_process
from coffea_fastsim.analysis.registry import DEFAULT_ANALYSIS, resolve_analysis
from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.surrogate.ensemble import Ensemble, resolve_ensemble
from coffea_fastsim.surrogate.inference import SurrogateEngine
from coffea_fastsim.validation.classifier import ClassifierResult, classifier_two_sample_test
from coffea_fastsim.validation.comparison import (
    ComparisonSet,
    ScalingResult,
    compare,
    correlation_matrix,
    double_ratio,
    histogram_keys,
)
from coffea_fastsim.validation.floor_spread import (
    FloorSpread,
    floor_spread,
    floor_spread_summary,
    twin_path,
    twin_paths,
)
from coffea_fastsim.validation.noise_draws import NoiseDraws, noise_draw_summary, noise_draws
from coffea_fastsim.validation.samples import MatchedSample, load_matched
from coffea_fastsim.validation.shared_response import SharedResponse, shared_response

__all__ = [
    "CorrelationSummary",
    "FloorExcess",
    "Summary",
    "ValidationConfig",
    "ValidationResult",
    "furthest_from_floor",
    "median_relative_band",
    "run_validation",
]


@dataclass(frozen=True)
class ValidationConfig:
    """Inputs and settings of a validation.

    Arguments:
        test_sample: GEN+RECO file the surrogate never saw, or several (their matched
            events are joined; ``test_samples``).
        model: model file, ensemble stem or directory (see ``ensemble.resolve_ensemble``).
        ensemble: model file, stem or directory of the ensemble members for the band, when
            they are not next to ``model``; None: the members that ``model`` names.
        reco_prime: GEN+RECO' file with the same events and an independent detector seed
            (one per test file, in the same order); None: no floor.
        large_test: a second, larger GEN+RECO file (five times the training sample) for
            the scaling test; None: no scaling test.
        seed: seed of the DL noise (as ``FastSimConfig.seed``) and of the classifier test.
        n_bootstrap: bootstrap resamplings of the classifier AUC.
        noise_draws: draws of the DL noise (seeds ``seed`` … ``seed + noise_draws - 1``)
            whose W1/sigma the report gives as mean and range (``noise_draws``); 1: only
            the draw of ``seed``.
        resimulations: K >= 1 instead of ``reco_prime``: the twins NAME.resim1.root …
            NAME.resimK.root of every test file (``generate --resimulations K``); the first
            is RECO', and with K >= 2 the report adds the floor's own spread
            (``floor_spread``). 0: none.
        analysis: the analysis definition (name, ``path/to/file.py:NAME`` or definition),
            resolved when the configuration is made (``definition``); the models must be
            trained for it.
    """

    test_sample: Path | tuple[Path, ...]
    model: Path
    ensemble: Path | None = None
    reco_prime: Path | tuple[Path, ...] | None = None
    large_test: Path | None = None
    seed: int = 0
    n_bootstrap: int = 200
    noise_draws: int = 1
    resimulations: int = 0
    analysis: str | AnalysisDefinition = DEFAULT_ANALYSIS
    _definition: AnalysisDefinition = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_definition", resolve_analysis(self.analysis))
        if self.noise_draws < 1:
            raise ValueError(f"noise_draws must be at least 1, got {self.noise_draws}")
        if self.resimulations < 0:
            raise ValueError(f"resimulations must be 0 or more, got {self.resimulations}")
        if self.resimulations and self.reco_prime is not None:
            raise ValueError(
                "give the floor's files as reco_prime or as resimulations (their names), not both"
            )
        for name in ("test_sample", "reco_prime"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, value[0] if len(value) == 1 else tuple(value))

    @property
    def test_samples(self) -> tuple[Path, ...]:
        """The test files, in order."""
        sample = self.test_sample
        return tuple(sample) if isinstance(sample, tuple) else (sample,)

    @property
    def floor_files(self) -> Path | tuple[Path, ...] | None:
        """RECO' of every test file: ``reco_prime``, or the first re-simulations that
        ``resimulations`` names; None: no floor."""
        if not self.resimulations:
            return self.reco_prime
        first = tuple(twin_path(f, 1) for f in self.test_samples)
        return first[0] if len(first) == 1 else first

    @property
    def definition(self) -> AnalysisDefinition:
        """The analysis definition that ``analysis`` names, resolved when the configuration
        is made."""
        return self._definition


@dataclass(frozen=True)
class Summary:
    """The one-line summary of a candidate: median and worst W1/sigma over the observables,
    and the classifier AUC with its bootstrap error."""

    median_w1: float
    worst_w1: float
    worst_name: str
    auc: float
    auc_error: float

    @classmethod
    def of(cls, comparison: ComparisonSet, classifier: ClassifierResult) -> Summary:
        """Summary of a comparison and its classifier test."""
        w1 = {name: a.w1_over_sigma for name, a in comparison.observables.items()}
        worst = max(w1, key=w1.__getitem__)
        return cls(
            median_w1=float(np.median(list(w1.values()))),
            worst_w1=w1[worst],
            worst_name=worst,
            auc=classifier.auc,
            auc_error=classifier.auc_error,
        )

    def line(self, label: str) -> str:
        """e.g. ``model: median W1/sigma 0.012, worst 0.051 (muon_eta), AUC 0.534 +- 0.004``."""
        return (
            f"{label}: median W1/sigma {self.median_w1:.4f}, worst {self.worst_w1:.4f} "
            f"({self.worst_name}), classifier AUC {self.auc:.3f} +- {self.auc_error:.3f}"
        )


@dataclass(frozen=True)
class CorrelationSummary:
    """How far the correlations of DL (and RECO') are from those of RECO.

    Arguments:
        max_difference: max |rho_DL - rho_RECO| over the observable pairs.
        floor_max_difference: max |rho_RECO' - rho_RECO|, or None without RECO'.
        largest: the pairs with the largest |rho_DL - rho_RECO|, as (name, name,
            rho_DL - rho_RECO), largest first.
    """

    max_difference: float
    floor_max_difference: float | None
    largest: tuple[tuple[str, str, float], ...]

    @classmethod
    def of(
        cls, correlations: dict[str, np.ndarray], names: tuple[str, ...], count: int = 5
    ) -> CorrelationSummary:
        """Summary of the matrices of :func:`correlation_matrix` ("reco", "dl", "reco_prime")
        of the observables `names`."""
        difference = correlations["dl"] - correlations["reco"]
        floor = None
        if "reco_prime" in correlations:
            floor_difference = correlations["reco_prime"] - correlations["reco"]
            floor = float(np.nanmax(np.abs(floor_difference)))
        upper = np.triu_indices(len(names), k=1)
        order = np.argsort(-np.abs(difference[upper]))[:count]
        largest = tuple(
            (
                names[upper[0][i]],
                names[upper[1][i]],
                float(difference[upper][i]),
            )
            for i in order
        )
        return cls(float(np.nanmax(np.abs(difference))), floor, largest)


@dataclass(frozen=True)
class FloorExcess:
    """An observable whose DL agreement is far from the RECO' floor.

    Arguments:
        name: the observable.
        w1: W1/sigma of DL vs RECO; floor_w1: of RECO' vs RECO (None without RECO').
        residual_w1: W1/sigma of the relative residual, DL vs RECO; residual_floor_w1: of
            RECO' vs RECO (None without RECO').
        response_mismodelled: the residual is more than twice its floor (or there is no
            floor): the event-by-event response is mismodelled, not only the distribution.
    """

    name: str
    w1: float
    floor_w1: float | None
    residual_w1: float
    residual_floor_w1: float | None
    response_mismodelled: bool


def furthest_from_floor(
    model: ComparisonSet, floor: ComparisonSet | None, count: int = 3
) -> tuple[FloorExcess, ...]:
    """The ``count`` observables with the largest W1/sigma excess of DL over RECO'."""
    excess = {
        name: model.observables[name].w1_over_sigma
        - (floor.observables[name].w1_over_sigma if floor is not None else 0.0)
        for name in model.observables
    }
    rows = []
    for name in sorted(excess, key=excess.__getitem__, reverse=True)[:count]:
        residual = model.residuals[name].w1_over_sigma
        floor_w1 = residual_floor = None
        if floor is not None:
            floor_w1 = floor.observables[name].w1_over_sigma
            residual_floor = floor.residuals[name].w1_over_sigma
        rows.append(
            FloorExcess(
                name=name,
                w1=model.observables[name].w1_over_sigma,
                floor_w1=floor_w1,
                residual_w1=residual,
                residual_floor_w1=residual_floor,
                response_mismodelled=residual_floor is None or residual > 2 * residual_floor,
            )
        )
    return tuple(rows)


def median_relative_band(model: ComparisonSet) -> dict[str, float]:
    """Per observable, the median over filled bins of the band relative to the DL fraction."""
    relative = {}
    for name in model.observables:
        dl = model.histograms[name]["dl", :]
        values = dl.values()
        relative[name] = float(
            np.nanmedian(
                np.where(values > 0, model.band[name] / np.maximum(values, 1) * dl.sum(), np.nan)
            )
        )
    return relative


@dataclass(frozen=True)
class ValidationResult:
    """Everything the report shows.

    Arguments:
        config: the inputs.
        ensemble: the model files used.
        sample: the matched test events.
        model: DL vs RECO.
        floor: RECO' vs RECO, or None without RECO'.
        model_classifier, floor_classifier: the classifier two-sample tests.
        correlations: "reco", "dl" and, with RECO', "reco_prime" correlation matrices.
        correlation_summary: what the report says of them.
        band: per observable, the median relative ensemble band; None with fewer than
            two members.
        furthest: the observables furthest from the floor.
        scaling: the scaling test, or None without a large sample.
        model_metadata: metadata of the nominal model file.
        sample_process: the test sample's process, read from its GEN record
            (``reading.sample_process``).
        noise: W1/sigma over the DL noise draws; None with one draw.
        shared: what RECO' shares with RECO's detector response beyond the GEN features
            (``shared_response``); None without RECO'.
        spread: the floor measured with each re-simulation (``floor_spread``); None with
            fewer than two.
    """

    config: ValidationConfig
    ensemble: Ensemble
    sample: MatchedSample
    model: ComparisonSet
    floor: ComparisonSet | None
    model_classifier: ClassifierResult
    floor_classifier: ClassifierResult | None
    correlations: dict[str, np.ndarray]
    correlation_summary: CorrelationSummary
    band: dict[str, float] | None
    furthest: tuple[FloorExcess, ...]
    scaling: ScalingResult | None
    model_metadata: dict
    sample_process: str
    noise: NoiseDraws | None = None
    shared: SharedResponse | None = None
    spread: FloorSpread | None = None

    @property
    def training_process(self) -> str:
        """The process of the model's training samples, as recorded in the model file.

        Models made before the record hold none; they were all trained on W+jet samples.
        """
        return " + ".join(self.model_metadata.get("process") or ["W+jet"])

    @property
    def untrained_process(self) -> bool:
        """Whether the test sample's process differs from the training samples'."""
        return self.sample_process != self.training_process

    @property
    def model_summary(self) -> Summary:
        """Summary line of the model."""
        return Summary.of(self.model, self.model_classifier)

    @property
    def summary_lines(self) -> list[str]:
        """The summary of the model, of the floor (with RECO'), of the noise draws (with
        several) and of the response coordinates that RECO' shares beyond the GEN features:
        what the report's summary and the command line show."""
        lines = [self.model_summary.line("model (DL vs RECO)")]
        if self.floor_summary is not None:
            lines.append(self.floor_summary.line("floor (RECO' vs RECO)"))
        if self.noise is not None:
            lines.append(noise_draw_summary(self.noise, self.floor))
        if self.shared is not None and self.shared.shared:
            lines.append(
                "RECO' shares RECO's response beyond the GEN features (a perfect model of "
                f"them lies above the floor) in: {', '.join(self.shared.shared)}"
            )
        if self.spread is not None:
            lines.append(floor_spread_summary(self.spread))
        return lines

    @property
    def floor_summary(self) -> Summary | None:
        """Summary line of the RECO' floor."""
        if self.floor is None or self.floor_classifier is None:
            return None
        return Summary.of(self.floor, self.floor_classifier)


def _scaling(
    config: ValidationConfig, ensemble: Ensemble, small: ComparisonSet, metadata: dict
) -> ScalingResult:
    large = load_matched(config.large_test, ensemble, config.seed, config.definition)  # type: ignore[arg-type]
    comparison = compare(large.gen, large.dl, large.reco, large.dl_members)
    n_training = metadata.get("n_events", {}).get("train")
    return ScalingResult(
        comparison=comparison,
        double_ratios={
            key: double_ratio(comparison.histograms, small.histograms, key)
            for key in histogram_keys(config.definition)
        },
        n_events=len(large),
        n_training_events=int(n_training) if n_training is not None else None,
    )


def _classifier(
    sample: MatchedSample, candidate: ObservableTable, config: ValidationConfig
) -> ClassifierResult:
    return classifier_two_sample_test(
        sample.gen, candidate, sample.reco, seed=config.seed, n_bootstrap=config.n_bootstrap
    )


def run_validation(config: ValidationConfig) -> ValidationResult:
    """Run the whole fidelity suite (see the module docstring)."""
    ensemble = resolve_ensemble(config.model)
    if config.ensemble is not None:
        ensemble = Ensemble(ensemble.nominal, resolve_ensemble(config.ensemble).members)
    analysis = config.definition
    twins = twin_paths(config.test_samples, config.resimulations) if config.resimulations else None
    sample = load_matched(config.test_sample, ensemble, config.seed, analysis, config.floor_files)
    model = compare(sample.gen, sample.dl, sample.reco, sample.dl_members)
    model_classifier = _classifier(sample, sample.dl, config)
    correlations = {"reco": correlation_matrix(sample.reco), "dl": correlation_matrix(sample.dl)}
    floor = floor_classifier = shared = None
    if sample.reco_prime is not None:
        shared = shared_response(sample.gen, sample.reco, sample.reco_prime, sample.dl, analysis)
        floor = compare(sample.gen, sample.reco_prime, sample.reco)
        floor_classifier = _classifier(sample, sample.reco_prime, config)
        correlations["reco_prime"] = correlation_matrix(sample.reco_prime)
    metadata = dict(SurrogateEngine(ensemble.nominal).metadata)
    scaling = None if config.large_test is None else _scaling(config, ensemble, model, metadata)
    return ValidationResult(
        config=config,
        ensemble=ensemble,
        sample=sample,
        model=model,
        floor=floor,
        model_classifier=model_classifier,
        floor_classifier=floor_classifier,
        correlations=correlations,
        correlation_summary=CorrelationSummary.of(correlations, analysis.observable_names),
        band=median_relative_band(model) if len(ensemble.members) >= 2 else None,
        furthest=furthest_from_floor(model, floor),
        scaling=scaling,
        model_metadata=metadata,
        sample_process=sample_process(config.test_samples[0]),
        noise=(
            noise_draws(ensemble.nominal, sample, config.seed, config.noise_draws)
            if config.noise_draws > 1
            else None
        ),
        shared=shared,
        spread=(
            floor_spread(
                config.test_samples,
                twins,
                ensemble.nominal,
                config.seed,
                config.noise_draws,
                analysis,
            )
            if twins is not None and config.resimulations >= 2
            else None
        ),
    )
