"""The fidelity suite: how close the surrogate's DL sample is to RECO, and to RECO's own floor.

For a test sample (GEN + RECO, optionally RECO' from an independent detector simulation of
the same events) and a model (optionally an ensemble of models trained with other seeds):

1. 1D agreement of every observable (W1/sigma, KS, chi2/ndf with the ensemble band),
2. the same for the relative residuals (x - x_GEN) / x_GEN,
3. a classifier two-sample test of p(output | GEN),
4. the correlation matrices of the observables,
5. the ensemble band,
6. optionally, the double ratio of a test sample five times larger than the training sample.

Every comparison of the model (DL vs RECO) is made the same way for the floor (RECO' vs
RECO). Histograms are those of :mod:`coffea_fastsim.analysis.histograms` (the processor's), filled
with the processor's fill functions; DL is :meth:`SurrogateEngine.predict`, as in the
processor. Only events with a valid RECO (and RECO') match enter, so every sample describes
the same GEN events.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import hist
import numpy as np

from coffea_fastsim.analysis.features import EventFeatures, observables_of
from coffea_fastsim.analysis.histograms import (
    RESIDUAL_PREFIX,
    fill_observables,
    fill_residuals,
    make_histograms,
    relative_residual,
)
from coffea_fastsim.analysis.observables import OBSERVABLE_NAMES, RESIDUAL_BINNING
from coffea_fastsim.analysis.reading import InputFileError, read_features
from coffea_fastsim.surrogate.ensemble import Ensemble, ensemble_band, resolve_ensemble
from coffea_fastsim.surrogate.inference import SurrogateEngine
from coffea_fastsim.validation.classifier import ClassifierResult, classifier_two_sample_test
from coffea_fastsim.validation.metrics import Agreement, agreement, histogram_chi2

__all__ = [
    "ComparisonSet",
    "MatchedSample",
    "ScalingResult",
    "Summary",
    "ValidationConfig",
    "ValidationResult",
    "compare",
    "double_ratio",
    "match_reco_prime",
    "predict_members",
    "run_validation",
]


@dataclass(frozen=True)
class ValidationConfig:
    """Inputs and settings of a validation.

    Arguments:
        test_sample: GEN+RECO file the surrogate never saw.
        model: model file, ensemble stem or directory (see ``ensemble.resolve_ensemble``).
        ensemble: model file, stem or directory of the ensemble members for the band, when
            they are not next to ``model``; None: the members that ``model`` names.
        reco_prime: GEN+RECO' file with the same events and an independent detector seed;
            None: no floor.
        large_test: a second, larger GEN+RECO file (five times the training sample) for
            the scaling test; None: no scaling test.
        seed: seed of the DL noise (as ``FastSimConfig.seed``) and of the classifier test.
        n_bootstrap: bootstrap resamplings of the classifier AUC.
    """

    test_sample: Path
    model: Path
    ensemble: Path | None = None
    reco_prime: Path | None = None
    large_test: Path | None = None
    seed: int = 0
    n_bootstrap: int = 200


@dataclass(frozen=True)
class MatchedSample:
    """Events with a valid RECO (and RECO') match, all arrays row-aligned.

    Arguments:
        gen, reco: features, shape (n, 9), float64.
        dl: DL features of the nominal model, shape (n, 9), float64.
        dl_members: DL features of each ensemble member, shape (k, n, 9), float64.
        reco_prime: RECO' features, shape (n, 9), or None.
        run, luminosity_block, event: event identity, shape (n,).
    """

    gen: np.ndarray
    reco: np.ndarray
    dl: np.ndarray
    dl_members: np.ndarray
    reco_prime: np.ndarray | None
    run: np.ndarray
    luminosity_block: np.ndarray
    event: np.ndarray

    def __len__(self) -> int:
        return len(self.gen)


def _event_keys(features: EventFeatures) -> np.ndarray:
    keys = np.empty(len(features), dtype=[("run", "u8"), ("lumi", "u8"), ("event", "u8")])
    keys["run"], keys["lumi"], keys["event"] = (
        features.run,
        features.luminosity_block,
        features.event,
    )
    return keys


def match_reco_prime(
    features: EventFeatures, prime: EventFeatures, prime_path: str | os.PathLike[str] = "RECO'"
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the events valid in both samples, matched by (run, lumi, event).

    Returns:
        (rows of ``features``, rows of ``prime``), each shape (n,), in ``features`` order.

    Raises:
        InputFileError: no common valid event, or a matched event whose GEN features differ
            (the files do not hold the same generated events).
    """
    keys, prime_keys = _event_keys(features), _event_keys(prime)
    valid = features.reco_valid
    prime_valid = prime.reco_valid
    _, rows, prime_rows = np.intersect1d(keys, prime_keys, assume_unique=True, return_indices=True)
    both = valid[rows] & prime_valid[prime_rows]
    rows, prime_rows = rows[both], prime_rows[both]
    order = np.argsort(rows)
    rows, prime_rows = rows[order], prime_rows[order]
    if len(rows) == 0:
        raise InputFileError(f"{prime_path}: no event (run, luminosityBlock, event) in common")
    if not np.allclose(features.gen[rows], prime.gen[prime_rows], rtol=1e-6, atol=1e-6):
        raise InputFileError(
            f"{prime_path}: the GEN features of matched events differ; RECO' must come from "
            "the same generated events"
        )
    return rows, prime_rows


def predict_members(
    members: tuple[Path, ...], features: EventFeatures, rows: np.ndarray, seed: int
) -> np.ndarray:
    """DL features of ``features[rows]`` from each model, shape (k, n, 9), float64."""
    predictions: dict[Path, np.ndarray] = {}
    for path in members:
        if path not in predictions:
            engine = SurrogateEngine(path, seed=seed)
            predictions[path] = engine.predict(
                features.gen[rows],
                features.run[rows],
                features.luminosity_block[rows],
                features.event[rows],
            ).astype(np.float64)
    return np.stack([predictions[path] for path in members])


def load_matched(
    path: Path, ensemble: Ensemble, seed: int, reco_prime: Path | None = None
) -> MatchedSample:
    """Read a test file (and its RECO' twin), keep valid events, predict DL."""
    features = read_features(path)
    if not features.has_reco:
        raise InputFileError(f"{path} has no RECO collections (Muon, Jet, MET): cannot validate")
    prime_features = None
    if reco_prime is None:
        rows = np.flatnonzero(features.reco_valid)
    else:
        prime = read_features(reco_prime)
        if not prime.has_reco:
            raise InputFileError(f"{reco_prime} has no RECO collections (Muon, Jet, MET)")
        rows, prime_rows = match_reco_prime(features, prime, reco_prime)
        prime_features = prime.reco[prime_rows]  # type: ignore[index]
    if len(rows) < 20:
        raise InputFileError(f"{path}: only {len(rows)} events with a valid RECO match")
    members = predict_members((ensemble.nominal, *ensemble.members), features, rows, seed)
    return MatchedSample(
        gen=features.gen[rows],
        reco=features.reco[rows],  # type: ignore[index]
        dl=members[0],
        dl_members=members[1:],
        reco_prime=prime_features,
        run=features.run[rows],
        luminosity_block=features.luminosity_block[rows],
        event=features.event[rows],
    )


def fill(gen: np.ndarray, candidate: np.ndarray | None, reco: np.ndarray) -> dict[str, hist.Hist]:
    """The processor's histograms with GEN, the candidate (in the "dl" category) and RECO.

    Arguments:
        gen, candidate, reco: features of the same events, shape (n, 9); candidate None
            leaves the "dl" category empty.
    """
    histograms = make_histograms()
    gen_observables = observables_of(gen)
    fill_observables(histograms, "gen", gen_observables)
    for sample, features in (("dl", candidate), ("reco", reco)):
        if features is not None:
            observables = observables_of(features)
            fill_observables(histograms, sample, observables)
            fill_residuals(histograms, sample, observables, gen_observables)
    return histograms


def _counts(histograms: dict[str, hist.Hist], key: str, sample: str) -> np.ndarray:
    return histograms[key][sample, :].values()


def _clipped_residuals(features: np.ndarray, gen: np.ndarray) -> dict[str, np.ndarray]:
    """Relative residuals, clipped to the residual histogram range so that events with
    x_GEN near 0 (px, py, phi ...) count at the edge instead of dominating W1 and sigma.
    Their W1 is divided by the pooled sigma of both samples: the RECO residual of a
    coordinate measured almost exactly (muon eta, phi) has nearly zero spread."""
    _, low, high = RESIDUAL_BINNING
    observables, gen_observables = observables_of(features), observables_of(gen)
    return {
        name: np.clip(relative_residual(observables[name], gen_observables[name]), low, high)
        for name in OBSERVABLE_NAMES
    }


@dataclass(frozen=True)
class ComparisonSet:
    """A candidate (DL or RECO') compared with RECO on the same events.

    Arguments:
        histograms: the processor's histograms; the candidate is in the "dl" category.
        band: per histogram key, the ensemble spread of the candidate's unit-normalized
            bins, shape (n_bins,) (zeros without an ensemble).
        observables: per observable name, the agreement of the distributions.
        residuals: per observable name, the agreement of the relative residuals.
        chi2_stat: per histogram key, (chi2, ndf) with statistical errors only.
    """

    histograms: dict[str, hist.Hist]
    band: dict[str, np.ndarray]
    observables: dict[str, Agreement]
    residuals: dict[str, Agreement]
    chi2_stat: dict[str, tuple[float, int]]


def compare(
    gen: np.ndarray,
    candidate: np.ndarray,
    reco: np.ndarray,
    candidate_members: np.ndarray | None = None,
) -> ComparisonSet:
    """Agreement of a candidate with RECO for every observable and residual.

    Arguments:
        gen, candidate, reco: features of the same events, shape (n, 9).
        candidate_members: the candidate from each ensemble member, shape (k, n, 9); its
            bin-by-bin spread is the band, added to the chi2. None or k < 2: no band.
    """
    histograms = fill(gen, candidate, reco)
    keys = [*OBSERVABLE_NAMES, *(f"{RESIDUAL_PREFIX}{name}" for name in OBSERVABLE_NAMES)]
    members = [] if candidate_members is None else list(candidate_members)
    member_histograms = [fill(gen, member, reco) for member in members]
    band = {
        key: ensemble_band(
            np.array([_counts(h, key, "dl") for h in member_histograms], dtype=np.float64).reshape(
                len(member_histograms), histograms[key].axes[1].size
            )
        )
        for key in keys
    }
    values, reco_values = observables_of(candidate), observables_of(reco)
    residuals, reco_residuals = _clipped_residuals(candidate, gen), _clipped_residuals(reco, gen)
    observable_agreement, residual_agreement = {}, {}
    for name in OBSERVABLE_NAMES:
        residual_key = f"{RESIDUAL_PREFIX}{name}"
        observable_agreement[name] = agreement(
            values[name],
            reco_values[name],
            _counts(histograms, name, "dl"),
            _counts(histograms, name, "reco"),
            band[name],
        )
        residual_agreement[name] = agreement(
            residuals[name],
            reco_residuals[name],
            _counts(histograms, residual_key, "dl"),
            _counts(histograms, residual_key, "reco"),
            band[residual_key],
            pooled=True,
        )
    chi2_stat = {
        key: histogram_chi2(_counts(histograms, key, "dl"), _counts(histograms, key, "reco"))
        for key in keys
    }
    return ComparisonSet(histograms, band, observable_agreement, residual_agreement, chi2_stat)


def correlation_matrix(features: np.ndarray) -> np.ndarray:
    """Pearson correlations of the observables, shape (20, 20), order of OBSERVABLE_NAMES."""
    observables = observables_of(features)
    columns = np.column_stack([observables[name] for name in OBSERVABLE_NAMES])
    columns = columns[np.isfinite(columns).all(axis=1)]
    return np.corrcoef(columns, rowvar=False)


def double_ratio(
    large: dict[str, hist.Hist], small: dict[str, hist.Hist], key: str
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """(DL/RECO)_large / (DL/RECO)_small per bin, its error, and its flatness chi2 and ndf.

    Each histogram is unit-normalized; the error combines the Poisson errors of the four
    histograms. The flatness chi2 is taken around the error-weighted mean of the bins where
    all four histograms are filled; ndf = those bins - 1.

    Returns:
        (ratio, error) of shape (n_bins,) (nan in unfilled bins), chi2, ndf.
    """
    parts = [
        _counts(large, key, "dl"),
        _counts(large, key, "reco"),
        _counts(small, key, "dl"),
        _counts(small, key, "reco"),
    ]
    filled = np.all([p > 0 for p in parts], axis=0)
    ratio = np.full(filled.shape, np.nan)
    error = np.full(filled.shape, np.nan)
    fractions = [p[filled] / p.sum() for p in parts]
    ratio[filled] = (fractions[0] / fractions[1]) / (fractions[2] / fractions[3])
    error[filled] = ratio[filled] * np.sqrt(sum(1.0 / p[filled] for p in parts))
    ndf = int(filled.sum()) - 1
    if ndf < 1:
        return ratio, error, float("nan"), 0
    weights = 1.0 / error[filled] ** 2
    mean = np.sum(weights * ratio[filled]) / weights.sum()
    chi2 = float(np.sum(weights * (ratio[filled] - mean) ** 2))
    return ratio, error, chi2, ndf


@dataclass(frozen=True)
class ScalingResult:
    """The scaling test: the model applied to a sample larger than its training sample.

    Arguments:
        comparison: DL vs RECO on the large sample.
        double_ratios: per histogram key, (ratio, error, chi2, ndf) of :func:`double_ratio`.
        n_events: matched events of the large sample.
        n_training_events: training events of the nominal model (from its metadata), or None.
    """

    comparison: ComparisonSet
    double_ratios: dict[str, tuple[np.ndarray, np.ndarray, float, int]]
    n_events: int
    n_training_events: int | None

    @property
    def flatness(self) -> tuple[float, int]:
        """Total (chi2, ndf) of the double ratios of the 20 observables."""
        chi2 = sum(
            self.double_ratios[name][2]
            for name in OBSERVABLE_NAMES
            if self.double_ratios[name][3] > 0
        )
        ndf = sum(self.double_ratios[name][3] for name in OBSERVABLE_NAMES)
        return float(chi2), int(ndf)


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
        scaling: the scaling test, or None without a large sample.
        model_metadata: metadata of the nominal model file.
    """

    config: ValidationConfig
    ensemble: Ensemble
    sample: MatchedSample
    model: ComparisonSet
    floor: ComparisonSet | None
    model_classifier: ClassifierResult
    floor_classifier: ClassifierResult | None
    correlations: dict[str, np.ndarray]
    scaling: ScalingResult | None
    model_metadata: dict

    @property
    def model_summary(self) -> Summary:
        """Summary line of the model."""
        return Summary.of(self.model, self.model_classifier)

    @property
    def floor_summary(self) -> Summary | None:
        """Summary line of the RECO' floor."""
        if self.floor is None or self.floor_classifier is None:
            return None
        return Summary.of(self.floor, self.floor_classifier)


def _scaling(
    config: ValidationConfig, ensemble: Ensemble, small: ComparisonSet, metadata: dict
) -> ScalingResult:
    large = load_matched(config.large_test, ensemble, config.seed)  # type: ignore[arg-type]
    comparison = compare(large.gen, large.dl, large.reco, large.dl_members)
    keys = [*OBSERVABLE_NAMES, *(f"{RESIDUAL_PREFIX}{name}" for name in OBSERVABLE_NAMES)]
    n_training = metadata.get("n_events", {}).get("train")
    return ScalingResult(
        comparison=comparison,
        double_ratios={
            key: double_ratio(comparison.histograms, small.histograms, key) for key in keys
        },
        n_events=len(large),
        n_training_events=int(n_training) if n_training is not None else None,
    )


def run_validation(config: ValidationConfig) -> ValidationResult:
    """Run the whole fidelity suite (see the module docstring)."""
    ensemble = resolve_ensemble(config.model)
    if config.ensemble is not None:
        ensemble = Ensemble(ensemble.nominal, resolve_ensemble(config.ensemble).members)
    sample = load_matched(config.test_sample, ensemble, config.seed, config.reco_prime)
    model = compare(sample.gen, sample.dl, sample.reco, sample.dl_members)
    model_classifier = classifier_two_sample_test(
        sample.gen, sample.dl, sample.reco, seed=config.seed, n_bootstrap=config.n_bootstrap
    )
    correlations = {"reco": correlation_matrix(sample.reco), "dl": correlation_matrix(sample.dl)}
    floor = floor_classifier = None
    if sample.reco_prime is not None:
        floor = compare(sample.gen, sample.reco_prime, sample.reco)
        floor_classifier = classifier_two_sample_test(
            sample.gen,
            sample.reco_prime,
            sample.reco,
            seed=config.seed,
            n_bootstrap=config.n_bootstrap,
        )
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
        scaling=scaling,
        model_metadata=metadata,
    )
