"""The validation report: a markdown file and its figures (PNG and PDF).

The report only formats: every number it shows is computed by the suite
(:mod:`coffea_fastsim.validation.suite`); one function writes each section.

The figures follow the reference study's Figs. 3-12 (distributions with DL/RECO ratios,
residuals, the large-sample test, double ratios, 2D DL vs RECO), plus the correlation
differences, the classifier ROC curves and the W1/sigma overview; with several DL noise
draws, a section on their spread (:mod:`coffea_fastsim.validation.noise_draws`); with RECO',
a section on what RECO' shares with RECO beyond the GEN features
(:mod:`coffea_fastsim.validation.shared_response`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from coffea_fastsim.analysis.histograms import RESIDUAL_PREFIX
from coffea_fastsim.processing.plotting import FORMATS
from coffea_fastsim.validation.comparison import ComparisonSet
from coffea_fastsim.validation.figures import (
    plot_classifier,
    plot_correlation_difference,
    plot_distributions,
    plot_dl_vs_reco,
    plot_double_ratios,
    plot_w1_overview,
)
from coffea_fastsim.validation.floor_spread import floor_spread_lines
from coffea_fastsim.validation.metrics import Agreement, chi2_per_ndf
from coffea_fastsim.validation.noise_draws import noise_draw_lines
from coffea_fastsim.validation.residuals import RESIDUAL_CAPTION, RESIDUAL_FIGURES
from coffea_fastsim.validation.shared_response import shared_response_lines
from coffea_fastsim.validation.suite import FloorExcess, ValidationResult

__all__ = ["write_figures", "write_report"]

#: Figure id -> (caption, path of the first format), in report order.
Figures = dict[str, tuple[str, Path]]


def _residual_keys(names: Sequence[str]) -> list[str]:
    return [f"{RESIDUAL_PREFIX}{name}" for name in names]


def write_figures(
    result: ValidationResult, directory: Path, formats: Sequence[str] = FORMATS
) -> Figures:
    """Draw every figure of the report into ``directory``.

    Returns:
        Figure id -> (caption, PNG path), in report order.
    """
    model, floor = result.model, result.floor
    sample = result.sample
    analysis = result.config.definition
    features, auxiliary = analysis.feature_names, analysis.auxiliary_names
    figures: dict[str, tuple[str, Callable[[Path, Sequence[str]], list[Path]]]] = {
        "fig03_features": (
            f"Fig. 3: the {len(features)} features, GEN, RECO, DL (band: ensemble spread) "
            "and RECO'",
            lambda p, f: plot_distributions(model, floor, features, p, "Feature vector", formats=f),
        ),
        "fig04_auxiliary": (
            f"Fig. 4: the {len(auxiliary)} auxiliary observables",
            lambda p, f: plot_distributions(
                model, floor, auxiliary, p, "Auxiliary observables", formats=f
            ),
        ),
        "fig05_residuals_features": (
            f"Fig. 5: residuals of the features against GEN ({RESIDUAL_CAPTION})",
            lambda p, f: plot_distributions(
                model, floor, _residual_keys(features), p, "Residuals, features", formats=f
            ),
        ),
        "fig06_residuals_auxiliary": (
            f"Fig. 6: residuals of the auxiliary observables ({RESIDUAL_CAPTION})",
            lambda p, f: plot_distributions(
                model, floor, _residual_keys(auxiliary), p, "Residuals, auxiliary", formats=f
            ),
        ),
    }
    scaling = result.scaling
    if scaling is not None:
        large = scaling.comparison
        figures |= {
            "fig07_large_features": (
                "Fig. 7: the features on the large sample",
                lambda p, f: plot_distributions(
                    large, None, features, p, "Large sample, features", formats=f
                ),
            ),
            "fig08_large_auxiliary": (
                "Fig. 8: the auxiliary observables on the large sample",
                lambda p, f: plot_distributions(
                    large, None, auxiliary, p, "Large sample, auxiliary", formats=f
                ),
            ),
            "fig09_double_ratios": (
                "Fig. 9: double ratios (DL/RECO)_large / (DL/RECO)_test with flatness chi2/ndf",
                lambda p, f: plot_double_ratios(scaling, features + auxiliary, p, formats=f),
            ),
        }
    figures |= {
        "fig10_dl_vs_reco_features": (
            "Fig. 10: DL vs RECO of the same events, features",
            lambda p, f: plot_dl_vs_reco(
                model, sample.dl, sample.reco, features, p, "DL vs RECO, features", formats=f
            ),
        ),
        "fig11_dl_vs_reco_auxiliary": (
            "Fig. 11: DL vs RECO of the same events, auxiliary observables",
            lambda p, f: plot_dl_vs_reco(
                model, sample.dl, sample.reco, auxiliary, p, "DL vs RECO, auxiliary", formats=f
            ),
        ),
    }
    if scaling is not None:
        figures["fig12_large_residuals"] = (
            f"Fig. 12: residuals on the large sample ({RESIDUAL_CAPTION})",
            lambda p, f: plot_distributions(
                scaling.comparison,
                None,
                _residual_keys(features + auxiliary),
                p,
                "Large sample, residuals",
                formats=f,
            ),
        )
    figures |= {
        "correlation_difference": (
            f"Correlation matrices of the {len(features + auxiliary)} observables: DL - RECO "
            "(and RECO' - RECO)",
            lambda p, f: plot_correlation_difference(
                result.correlations, features + auxiliary, p, formats=f
            ),
        ),
        "classifier_roc": (
            "Classifier two-sample test: ROC curves",
            lambda p, f: plot_classifier(
                result.model_classifier, result.floor_classifier, p, formats=f
            ),
        ),
        "w1_overview": (
            "W1/sigma per observable and residual, DL vs RECO and the RECO' floor",
            lambda p, f: plot_w1_overview(model, floor, p, formats=f),
        ),
    }
    written = {}
    for name, (caption, draw) in figures.items():
        paths = draw(directory / name, formats)
        written[name] = (caption, paths[0])
    return written


def _paths(paths: object) -> str:
    """A file or files as inline code, comma-separated."""
    return ", ".join(f"`{p}`" for p in (paths if isinstance(paths, tuple) else (paths,)))


def _format(value: float, digits: int = 4) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def _chi2(chi2: float, ndf: int) -> str:
    return _format(chi2_per_ndf(chi2, ndf), 2)


def _link(figures: Figures, key: str, base: Path) -> str:
    return os.path.relpath(figures[key][1], base)


def _images(figures: Figures, keys: Sequence[str], base: Path) -> list[str]:
    return [line for key in keys for line in ("", f"![{key}]({_link(figures, key, base)})")]


def _agreement_table(
    model: ComparisonSet, floor: ComparisonSet | None, attribute: str, prefix: str
) -> list[str]:
    header = "| observable | W1/sigma DL | KS DL | chi2/ndf DL (stat) | chi2/ndf DL (stat ⊕ band) |"
    rule = "|---|---|---|---|---|"
    if floor is not None:
        header += " W1/sigma RECO' | KS RECO' | chi2/ndf RECO' |"
        rule += "---|---|---|"
    lines = [header, rule]
    for name in model.observables:
        key = f"{prefix}{name}"
        a: Agreement = getattr(model, attribute)[name]
        row = (
            f"| {name} | {_format(a.w1_over_sigma)} | {_format(a.ks)} "
            f"| {_chi2(*model.chi2_stat[key])} | {_chi2(a.chi2, a.ndf)} |"
        )
        if floor is not None:
            f: Agreement = getattr(floor, attribute)[name]
            row += f" {_format(f.w1_over_sigma)} | {_format(f.ks)} | {_chi2(f.chi2, f.ndf)} |"
        lines.append(row)
    return lines


def _header(result: ValidationResult, command: str | None) -> list[str]:
    config, metadata = result.config, result.model_metadata
    analysis = config.definition
    n_train = metadata.get("n_events", {}).get("train", "unknown")
    lines = ["# Validation of the surrogate", ""]
    if command:
        lines += ["Produced by:", "", "```bash", command, "```", ""]
    return [
        *lines,
        "## Inputs",
        "",
        f"- analysis: `{analysis.name}` ({analysis.description}), definition hash "
        f"`{analysis.hash[:12]}`",
        f"- process: test sample {result.sample_process}, model trained on "
        f"{result.training_process} (the test sample's from its GEN record, the hard-process "
        "boson; the model's as its file records it)"
        + (
            " — **the model runs on a process it was not trained on**"
            if result.untrained_process
            else ""
        ),
        f"- test sample: {_paths(config.test_sample)}, {len(result.sample)} events with a "
        "valid RECO "
        "match" + (" in both RECO and RECO'" if result.floor is not None else ""),
        f"- RECO' (same GEN events, independent detector seed): {_paths(config.floor_files)}"
        if config.floor_files is not None
        else "- RECO': none (no floor)",
        f"- nominal model: `{result.ensemble.nominal}` (trained on {n_train} events, "
        f"seed {metadata.get('training_config', {}).get('seed', '?')}, best epoch "
        f"{metadata.get('best_epoch', '?')})",
        f"- ensemble for the band: {len(result.ensemble.members)} model(s): "
        + ", ".join(f"`{p.name}`" for p in result.ensemble.members),
        f"- DL noise seed {config.seed}: DL is `SurrogateEngine.predict`, as in the processor",
        "",
    ]


def _summary_lines(result: ValidationResult) -> list[str]:
    return ["```", *result.summary_lines, "```"]


def _summary(result: ValidationResult, figures: Figures, base: Path) -> list[str]:
    analysis = result.config.definition
    return [
        "## Summary",
        "",
        *_summary_lines(result),
        "",
        f"W1/sigma is over the {len(analysis.observables)} observables "
        f"({len(analysis.features)} features, {len(analysis.auxiliary)} auxiliary). "
        "AUC 0.5 means the classifier cannot tell the samples apart.",
        "",
        "## Figures",
        "",
        *(f"- [{caption}]({os.path.relpath(path, base)})" for caption, path in figures.values()),
    ]


def _distributions(result: ValidationResult, figures: Figures, base: Path) -> list[str]:
    return [
        "",
        "## 1. One-dimensional agreement",
        "",
        "W1/sigma: Wasserstein-1 distance / std(RECO); KS: two-sample Kolmogorov-Smirnov "
        "statistic; chi2/ndf of the unit-normalized histograms (processor binning) with the "
        "statistical errors of both and, in the last DL column, the ensemble band in "
        "quadrature. The RECO' columns are the floor: what an exact simulation of the same "
        "events achieves.",
        "",
        *_agreement_table(result.model, result.floor, "observables", ""),
        "",
        f"![features]({_link(figures, 'fig03_features', base)})",
        "",
        f"![auxiliary]({_link(figures, 'fig04_auxiliary', base)})",
        "",
    ]


def _residuals(result: ValidationResult, figures: Figures, base: Path) -> list[str]:
    return [
        "## 2. Relative residuals (x - x_GEN)/x_GEN",
        "",
        "Residuals are clipped to the histogram range [-1, 1] before W1 and KS, so that events "
        "with x_GEN near 0 (px, py, phi) count at the edge instead of dominating; W1 is divided "
        "by the standard deviation of both residual samples together, because the RECO "
        "residual of a coordinate the detector measures almost exactly has nearly zero spread.",
        "",
        RESIDUAL_FIGURES,
        "",
        *_agreement_table(result.model, result.floor, "residuals", RESIDUAL_PREFIX),
        *_images(figures, ("fig05_residuals_features", "fig06_residuals_auxiliary"), base),
    ]


def _classifier(result: ValidationResult, figures: Figures, base: Path) -> list[str]:
    classifier = result.model_classifier
    lines = [
        "",
        "## 3. Classifier two-sample test",
        "",
        "A HistGradientBoosting classifier separates DL (label 1) from RECO (label 0) of the "
        "same events from [GEN features, output features, auxiliary observables]; it is "
        f"trained on {classifier.n_train} events and evaluated on the other {classifier.n_test} "
        "(both rows of an event in the same half). The error is the bootstrap spread over "
        "test events. Because GEN is an input, this tests p(output | GEN).",
        "",
        "| comparison | ROC AUC |",
        "|---|---|",
        f"| DL vs RECO | {classifier.auc:.3f} ± {classifier.auc_error:.3f} |",
    ]
    if result.floor_classifier is not None:
        fc = result.floor_classifier
        lines.append(f"| RECO' vs RECO (floor) | {fc.auc:.3f} ± {fc.auc_error:.3f} |")
    return [*lines, "", f"![roc]({_link(figures, 'classifier_roc', base)})", ""]


def _correlations(result: ValidationResult, figures: Figures, base: Path) -> list[str]:
    summary = result.correlation_summary
    lines = ["## 4. Correlations", "", f"- max |rho_DL - rho_RECO| = {summary.max_difference:.3f}"]
    if summary.floor_max_difference is not None:
        lines.append(f"- max |rho_RECO' - rho_RECO| = {summary.floor_max_difference:.3f} (floor)")
    pairs = ", ".join(f"{a}-{b} ({value:+.3f})" for a, b, value in summary.largest)
    lines.append(f"- largest differences DL - RECO: {pairs}")
    keys = ("correlation_difference", "fig10_dl_vs_reco_features", "fig11_dl_vs_reco_auxiliary")
    return [*lines, *_images(figures, keys, base)]


def _band(result: ValidationResult) -> list[str]:
    lines = ["", "## 5. Systematic band", ""]
    if result.band is None:
        return [*lines, "One model only: no band (train with `--ensemble K` for one)."]
    return [
        *lines,
        f"{len(result.ensemble.members)} models trained with different seeds; the band is the "
        "bin-by-bin standard deviation of their unit-normalized DL histograms, drawn as the "
        "shaded area and added in quadrature to the DL statistical error (figures and chi2 "
        "above). Median relative band per observable: "
        + ", ".join(f"{name} {100 * value:.1f}%" for name, value in result.band.items())
        + ".",
    ]


def _scaling(result: ValidationResult, figures: Figures, base: Path) -> list[str]:
    lines = ["", "## 6. Scaling", ""]
    scaling = result.scaling
    if scaling is None:
        return [*lines, "No large sample given (`--large-test`): no scaling test."]
    chi2, ndf = scaling.flatness
    ratio = scaling.size_ratio
    factor = f", {ratio:.1f} times the training sample" if ratio is not None else ""
    lines += [
        f"Large sample `{result.config.large_test}`: {scaling.n_events} events{factor}. Double "
        "ratio (DL/RECO)_large / (DL/RECO)_test per bin; flatness chi2/ndf around its weighted "
        f"mean (all {len(scaling.comparison.observables)} observables): {chi2:.1f}/{ndf} = "
        f"{chi2 / max(ndf, 1):.2f}.",
        "",
        "| observable | W1/sigma DL (large) | flatness chi2/ndf |",
        "|---|---|---|",
    ]
    for name in scaling.comparison.observables:
        _, _, c, n = scaling.double_ratios[name]
        w1 = scaling.comparison.observables[name].w1_over_sigma
        lines.append(f"| {name} | {w1:.4f} | {_chi2(c, n)} |")
    keys = (
        "fig07_large_features",
        "fig08_large_auxiliary",
        "fig09_double_ratios",
        "fig12_large_residuals",
    )
    return [*lines, *_images(figures, keys, base)]


def _excess_line(row: FloorExcess) -> str:
    floor_w1 = f" vs {row.floor_w1:.4f} for RECO'" if row.floor_w1 is not None else ""
    residual_floor = (
        f" (floor {row.residual_floor_w1:.4f})" if row.residual_floor_w1 is not None else ""
    )
    verdict = (
        "so the event-by-event response (resolution or bias given GEN) is mismodelled."
        if row.response_mismodelled
        else "while its residual is close to the floor: the distribution differs more than "
        "the response, a sign of the GEN-dependence of the bias or of the tails."
    )
    return (
        f"- **{row.name}**: W1/sigma {row.w1:.4f}{floor_w1}; its relative residual has "
        f"W1/sigma {row.residual_w1:.4f}{residual_floor}, {verdict}"
    )


def _closing(result: ValidationResult) -> list[str]:
    return [
        "",
        "## Closing note",
        "",
        *_summary_lines(result),
        "",
        "Observables furthest from the floor (largest W1/sigma excess over RECO'):",
        "",
        *(_excess_line(row) for row in result.furthest),
        "",
    ]


def write_report(
    result: ValidationResult,
    output: str | os.PathLike[str],
    figures_dir: str | os.PathLike[str] | None = None,
    command: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> Path:
    """Write the markdown report and its figures.

    Arguments:
        result: the output of ``run_validation``.
        output: markdown file to write.
        figures_dir: directory of the figures; default ``<output dir>/figures/validation``.
        command: the command line that produced the report, shown at its top.
        formats: figure file formats; the first is linked from the report.

    Returns:
        The markdown path.
    """
    output = Path(output)
    figures_dir = (
        Path(figures_dir) if figures_dir is not None else output.parent / "figures" / "validation"
    )
    figures = write_figures(result, figures_dir, formats)
    base = output.parent
    lines = [
        *_header(result, command),
        *_summary(result, figures, base),
        *_distributions(result, figures, base),
        *_residuals(result, figures, base),
        *_classifier(result, figures, base),
        *_correlations(result, figures, base),
        *_band(result),
        *_scaling(result, figures, base),
        *(noise_draw_lines(result.noise, result.floor) if result.noise is not None else []),
        *(shared_response_lines(result.shared) if result.shared is not None else []),
        *(floor_spread_lines(result.spread) if result.spread is not None else []),
        *_closing(result),
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.tmp")
    temporary.write_text("\n".join(lines))
    temporary.replace(output)
    return output
