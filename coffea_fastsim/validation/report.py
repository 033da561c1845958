"""The validation report: a markdown file and its figures (PNG and PDF).

The figures follow the reference study's Figs. 3-12 (distributions with DL/RECO ratios,
residuals, the large-sample test, double ratios, 2D DL vs RECO), plus the correlation
differences, the classifier ROC curves and the W1/sigma overview.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from coffea_fastsim.analysis.histograms import RESIDUAL_PREFIX
from coffea_fastsim.analysis.observables import AUX_NAMES, FEATURE_NAMES, OBSERVABLE_NAMES
from coffea_fastsim.processing.plotting import FORMATS
from coffea_fastsim.validation.figures import (
    plot_classifier,
    plot_correlation_difference,
    plot_distributions,
    plot_dl_vs_reco,
    plot_double_ratios,
    plot_w1_overview,
)
from coffea_fastsim.validation.metrics import Agreement
from coffea_fastsim.validation.suite import ComparisonSet, ValidationResult

__all__ = ["write_figures", "write_report"]

_RESIDUAL_FEATURES = [f"{RESIDUAL_PREFIX}{n}" for n in FEATURE_NAMES]
_RESIDUAL_AUX = [f"{RESIDUAL_PREFIX}{n}" for n in AUX_NAMES]


def write_figures(
    result: ValidationResult, directory: Path, formats: Sequence[str] = FORMATS
) -> dict[str, tuple[str, Path]]:
    """Draw every figure of the report into ``directory``.

    Returns:
        Figure id -> (caption, PNG path), in report order.
    """
    model, floor = result.model, result.floor
    sample = result.sample
    figures: dict[str, tuple[str, Callable[[Path, Sequence[str]], list[Path]]]] = {
        "fig03_features": (
            "Fig. 3: the 9 features, GEN, RECO, DL (band: ensemble spread) and RECO'",
            lambda p, f: plot_distributions(
                model, floor, FEATURE_NAMES, p, "Feature vector", formats=f
            ),
        ),
        "fig04_auxiliary": (
            "Fig. 4: the 11 auxiliary observables",
            lambda p, f: plot_distributions(
                model, floor, AUX_NAMES, p, "Auxiliary observables", formats=f
            ),
        ),
        "fig05_residuals_features": (
            "Fig. 5: relative residuals (x - x_GEN)/x_GEN of the features",
            lambda p, f: plot_distributions(
                model, floor, _RESIDUAL_FEATURES, p, "Residuals, features", formats=f
            ),
        ),
        "fig06_residuals_auxiliary": (
            "Fig. 6: relative residuals of the auxiliary observables",
            lambda p, f: plot_distributions(
                model, floor, _RESIDUAL_AUX, p, "Residuals, auxiliary", formats=f
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
                    large, None, FEATURE_NAMES, p, "Large sample, features", formats=f
                ),
            ),
            "fig08_large_auxiliary": (
                "Fig. 8: the auxiliary observables on the large sample",
                lambda p, f: plot_distributions(
                    large, None, AUX_NAMES, p, "Large sample, auxiliary", formats=f
                ),
            ),
            "fig09_double_ratios": (
                "Fig. 9: double ratios (DL/RECO)_large / (DL/RECO)_test with flatness chi2/ndf",
                lambda p, f: plot_double_ratios(scaling, OBSERVABLE_NAMES, p, formats=f),
            ),
        }
    figures |= {
        "fig10_dl_vs_reco_features": (
            "Fig. 10: DL vs RECO of the same events, features",
            lambda p, f: plot_dl_vs_reco(
                model, sample.dl, sample.reco, FEATURE_NAMES, p, "DL vs RECO, features", formats=f
            ),
        ),
        "fig11_dl_vs_reco_auxiliary": (
            "Fig. 11: DL vs RECO of the same events, auxiliary observables",
            lambda p, f: plot_dl_vs_reco(
                model, sample.dl, sample.reco, AUX_NAMES, p, "DL vs RECO, auxiliary", formats=f
            ),
        ),
    }
    if scaling is not None:
        figures["fig12_large_residuals"] = (
            "Fig. 12: relative residuals on the large sample",
            lambda p, f: plot_distributions(
                scaling.comparison,
                None,
                _RESIDUAL_FEATURES + _RESIDUAL_AUX,
                p,
                "Large sample, residuals",
                formats=f,
            ),
        )
    figures |= {
        "correlation_difference": (
            "Correlation matrices of the 20 observables: DL - RECO (and RECO' - RECO)",
            lambda p, f: plot_correlation_difference(result.correlations, p, formats=f),
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


def _format(value: float, digits: int = 4) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def _chi2(chi2: float, ndf: int) -> str:
    return "n/a" if ndf == 0 else f"{chi2 / ndf:.2f}"


def _agreement_table(
    model: ComparisonSet, floor: ComparisonSet | None, attribute: str, prefix: str
) -> list[str]:
    header = "| observable | W1/sigma DL | KS DL | chi2/ndf DL (stat) | chi2/ndf DL (stat ⊕ band) |"
    rule = "|---|---|---|---|---|"
    if floor is not None:
        header += " W1/sigma RECO' | KS RECO' | chi2/ndf RECO' |"
        rule += "---|---|---|"
    lines = [header, rule]
    for name in OBSERVABLE_NAMES:
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


def _correlation_lines(correlations: dict[str, np.ndarray]) -> list[str]:
    difference = correlations["dl"] - correlations["reco"]
    lines = [f"- max |rho_DL - rho_RECO| = {np.nanmax(np.abs(difference)):.3f}"]
    if "reco_prime" in correlations:
        floor = correlations["reco_prime"] - correlations["reco"]
        lines.append(f"- max |rho_RECO' - rho_RECO| = {np.nanmax(np.abs(floor)):.3f} (floor)")
    upper = np.triu_indices(len(OBSERVABLE_NAMES), k=1)
    order = np.argsort(-np.abs(difference[upper]))[:5]
    pairs = ", ".join(
        f"{OBSERVABLE_NAMES[upper[0][i]]}-{OBSERVABLE_NAMES[upper[1][i]]} "
        f"({difference[upper][i]:+.3f})"
        for i in order
    )
    lines.append(f"- largest differences DL - RECO: {pairs}")
    return lines


def _furthest_from_floor(result: ValidationResult, count: int = 3) -> list[str]:
    model, floor = result.model, result.floor
    reference = floor if floor is not None else None
    excess = {
        name: model.observables[name].w1_over_sigma
        - (reference.observables[name].w1_over_sigma if reference is not None else 0.0)
        for name in OBSERVABLE_NAMES
    }
    lines = []
    for name in sorted(excess, key=excess.__getitem__, reverse=True)[:count]:
        residual = model.residuals[name].w1_over_sigma
        residual_floor = (
            f" (floor {reference.residuals[name].w1_over_sigma:.4f})"
            if reference is not None
            else ""
        )
        floor_w1 = (
            f" vs {reference.observables[name].w1_over_sigma:.4f} for RECO'"
            if reference is not None
            else ""
        )
        lines.append(
            f"- **{name}**: W1/sigma {model.observables[name].w1_over_sigma:.4f}{floor_w1}; "
            f"its relative residual has W1/sigma {residual:.4f}{residual_floor}, "
            + (
                "so the event-by-event response (resolution or bias given GEN) is mismodelled."
                if reference is None or residual > 2 * reference.residuals[name].w1_over_sigma
                else "while its residual is close to the floor: the distribution differs more than "
                "the response, a sign of the GEN-dependence of the bias or of the tails."
            )
        )
    return lines


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
    config, sample = result.config, result.sample
    metadata = result.model_metadata
    n_train = metadata.get("n_events", {}).get("train", "unknown")
    floor = result.floor
    lines = ["# Validation of the surrogate", ""]
    if command:
        lines += ["Produced by:", "", "```bash", command, "```", ""]
    lines += [
        "## Inputs",
        "",
        f"- test sample: `{config.test_sample}`, {len(sample)} events with a valid RECO match"
        + (" in both RECO and RECO'" if floor is not None else ""),
        f"- RECO' (same GEN events, independent detector seed): `{config.reco_prime}`"
        if config.reco_prime is not None
        else "- RECO': none (no floor)",
        f"- nominal model: `{result.ensemble.nominal}` (trained on {n_train} events, "
        f"seed {metadata.get('training_config', {}).get('seed', '?')}, best epoch "
        f"{metadata.get('best_epoch', '?')})",
        f"- ensemble for the band: {len(result.ensemble.members)} model(s): "
        + ", ".join(f"`{p.name}`" for p in result.ensemble.members),
        f"- DL noise seed {config.seed}: DL is `SurrogateEngine.predict`, as in the processor",
        "",
        "## Summary",
        "",
        "```",
        result.model_summary.line("model (DL vs RECO)"),
    ]
    floor_summary = result.floor_summary
    if floor_summary is not None:
        lines.append(floor_summary.line("floor (RECO' vs RECO)"))
    lines += [
        "```",
        "",
        "W1/sigma is over the 20 observables (9 features, 11 auxiliary). "
        "AUC 0.5 means the classifier cannot tell the samples apart.",
        "",
    ]
    lines += ["## Figures", ""]
    lines += [
        f"- [{caption}]({os.path.relpath(path, output.parent)})"
        for caption, path in figures.values()
    ]
    lines += ["", "## 1. One-dimensional agreement", ""]
    lines += [
        "W1/sigma: Wasserstein-1 distance / std(RECO); KS: two-sample Kolmogorov-Smirnov "
        "statistic; chi2/ndf of the unit-normalized histograms (processor binning) with the "
        "statistical errors of both and, in the last DL column, the ensemble band in "
        "quadrature. The RECO' columns are the floor: what an exact simulation of the same "
        "events achieves.",
        "",
    ]
    lines += _agreement_table(result.model, floor, "observables", "")
    lines += [
        "",
        f"![features]({os.path.relpath(figures['fig03_features'][1], output.parent)})",
        "",
    ]
    lines += [f"![auxiliary]({os.path.relpath(figures['fig04_auxiliary'][1], output.parent)})", ""]
    lines += ["## 2. Relative residuals (x - x_GEN)/x_GEN", ""]
    lines += [
        "Residuals are clipped to the histogram range [-1, 1] before W1 and KS, so that events "
        "with x_GEN near 0 (px, py, phi) count at the edge instead of dominating; W1 is divided "
        "by the standard deviation of both residual samples together, because the RECO "
        "residual of a coordinate the detector measures almost exactly has nearly zero spread.",
        "",
    ]
    lines += _agreement_table(result.model, floor, "residuals", RESIDUAL_PREFIX)
    for key in ("fig05_residuals_features", "fig06_residuals_auxiliary"):
        lines += ["", f"![{key}]({os.path.relpath(figures[key][1], output.parent)})"]
    lines += ["", "## 3. Classifier two-sample test", ""]
    classifier = result.model_classifier
    lines += [
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
    lines += ["", f"![roc]({os.path.relpath(figures['classifier_roc'][1], output.parent)})", ""]
    lines += ["## 4. Correlations", ""]
    lines += _correlation_lines(result.correlations)
    for key in (
        "correlation_difference",
        "fig10_dl_vs_reco_features",
        "fig11_dl_vs_reco_auxiliary",
    ):
        lines += ["", f"![{key}]({os.path.relpath(figures[key][1], output.parent)})"]
    lines += ["", "## 5. Systematic band", ""]
    n_members = len(result.ensemble.members)
    if n_members >= 2:
        relative = {
            name: np.nanmedian(
                np.where(
                    result.model.histograms[name]["dl", :].values() > 0,
                    result.model.band[name]
                    / np.maximum(result.model.histograms[name]["dl", :].values(), 1)
                    * result.model.histograms[name]["dl", :].sum(),
                    np.nan,
                )
            )
            for name in OBSERVABLE_NAMES
        }
        lines += [
            f"{n_members} models trained with different seeds; the band is the bin-by-bin "
            "standard deviation of their unit-normalized DL histograms, drawn as the shaded area "
            "and added in quadrature to the DL statistical error (figures and chi2 above). Median "
            "relative band per observable: "
            + ", ".join(f"{name} {100 * value:.1f}%" for name, value in relative.items())
            + ".",
        ]
    else:
        lines.append("One model only: no band (train with `--ensemble K` for one).")
    lines += ["", "## 6. Scaling", ""]
    scaling = result.scaling
    if scaling is None:
        lines.append("No large sample given (`--large-test`): no scaling test.")
    else:
        chi2, ndf = scaling.flatness
        factor = (
            f", {scaling.n_events / scaling.n_training_events:.1f} times the training sample"
            if scaling.n_training_events
            else ""
        )
        lines += [
            f"Large sample `{config.large_test}`: {scaling.n_events} events{factor}. Double ratio "
            "(DL/RECO)_large / (DL/RECO)_test per bin; flatness chi2/ndf around its weighted mean "
            f"(all 20 observables): {chi2:.1f}/{ndf} = {chi2 / max(ndf, 1):.2f}.",
            "",
            "| observable | W1/sigma DL (large) | flatness chi2/ndf |",
            "|---|---|---|",
        ]
        for name in OBSERVABLE_NAMES:
            _, _, c, n = scaling.double_ratios[name]
            w1 = scaling.comparison.observables[name].w1_over_sigma
            lines.append(f"| {name} | {w1:.4f} | {_chi2(c, n)} |")
        for key in (
            "fig07_large_features",
            "fig08_large_auxiliary",
            "fig09_double_ratios",
            "fig12_large_residuals",
        ):
            lines += ["", f"![{key}]({os.path.relpath(figures[key][1], output.parent)})"]
    lines += ["", "## Closing note", "", "```", result.model_summary.line("model (DL vs RECO)")]
    if floor_summary is not None:
        lines.append(floor_summary.line("floor (RECO' vs RECO)"))
    lines += [
        "```",
        "",
        "Observables furthest from the floor (largest W1/sigma excess over RECO'):",
        "",
    ]
    lines += _furthest_from_floor(result)
    lines.append("")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines))
    return output
