"""Figures of the fidelity suite, in the layout of the reference study's Figs. 3-12.

Each figure is a grid with one panel per observable: the distributions (unit-normalized)
over a ratio panel, the 2D DL-vs-RECO histograms, the double ratios; plus the correlation
difference matrices, the classifier ROC curves and the W1/sigma overview. PNG and PDF.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import hist
import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.processing.plotting import FORMATS, STYLES
from coffea_fastsim.validation.classifier import ClassifierResult
from coffea_fastsim.validation.comparison import ComparisonSet, ScalingResult

__all__ = [
    "plot_classifier",
    "plot_correlation_difference",
    "plot_distributions",
    "plot_dl_vs_reco",
    "plot_double_ratios",
    "plot_w1_overview",
]

PRIME_STYLE = {"color": "tab:green", "linestyle": ":", "label": "RECO' (detector, new seed)"}


def _save(fig: plt.Figure, output: Path, formats: Sequence[str]) -> list[Path]:
    output.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for extension in formats:
        path = output.with_suffix(f".{extension}")
        fig.savefig(path, dpi=90)
        written.append(path)
    plt.close(fig)
    return written


def _grid(n_panels: int, ratio_panels: bool) -> tuple[plt.Figure, list, list]:
    """A figure with one cell per panel; with ``ratio_panels`` each cell is split 3:1."""
    n_columns = 3 if n_panels <= 9 else 4
    n_rows = -(-n_panels // n_columns)
    fig = plt.figure(figsize=(4.2 * n_columns, (4.6 if ratio_panels else 3.8) * n_rows))
    cells = fig.add_gridspec(n_rows, n_columns, hspace=0.4, wspace=0.35)
    mains, lowers = [], []
    for index in range(n_panels):
        cell = cells[divmod(index, n_columns)]
        if ratio_panels:
            inner = cell.subgridspec(2, 1, height_ratios=(3, 1), hspace=0.05)
            main = fig.add_subplot(inner[0])
            lower = fig.add_subplot(inner[1], sharex=main)
            main.tick_params(labelbottom=False)
            lowers.append(lower)
        else:
            main = fig.add_subplot(cell)
        mains.append(main)
    return fig, mains, lowers


def _finite_or_nan(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, np.nan)


def _fractions(histogram: hist.Hist, sample: str) -> tuple[np.ndarray, np.ndarray]:
    counts = histogram[sample, :].values()
    total = max(counts.sum(), 1.0)
    return counts / total, np.sqrt(counts) / total


def plot_distributions(
    model: ComparisonSet,
    floor: ComparisonSet | None,
    keys: Sequence[str],
    output: Path,
    title: str,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """GEN, RECO, DL (error: statistical and ensemble band in quadrature) and RECO' per key,
    unit-normalized, with DL/RECO (and RECO'/RECO) below; the band is the shaded area.

    Arguments:
        model: DL vs RECO histograms (keys of ``make_histograms``).
        floor: RECO' vs RECO (RECO' in the "dl" category), or None.
        keys: histogram keys, one panel each.
        output: file path without extension.
        title: figure title.
    """
    fig, mains, lowers = _grid(len(keys), ratio_panels=True)
    for key, main, lower in zip(keys, mains, lowers, strict=True):
        histogram = model.histograms[key]
        axis = histogram.axes[1]
        edges, centers = axis.edges, axis.centers
        reco, reco_error = _fractions(histogram, "reco")
        dl, dl_error = _fractions(histogram, "dl")
        band = model.band[key]
        total_error = np.hypot(dl_error, band)
        if "gen" in histogram.axes["source"] and histogram["gen", :].sum() > 0:
            gen, _ = _fractions(histogram, "gen")
            main.stairs(gen, edges, **STYLES["gen"])
        main.stairs(reco, edges, **STYLES["reco"])
        main.stairs(dl, edges, **STYLES["dl"])
        main.errorbar(centers, dl, yerr=total_error, fmt="none", color=STYLES["dl"]["color"])
        main.fill_between(
            edges,
            np.append(dl - band, 0),
            np.append(dl + band, 0),
            step="post",
            color=STYLES["dl"]["color"],
            alpha=0.25,
            linewidth=0,
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = _finite_or_nan(dl / reco)
            ratio_error = _finite_or_nan(
                ratio * np.sqrt((total_error / dl) ** 2 + (reco_error / reco) ** 2)
            )
            lower.errorbar(centers, ratio, yerr=ratio_error, fmt="o", markersize=2, color="black")
            if floor is not None:
                prime, _ = _fractions(floor.histograms[key], "dl")
                main.stairs(prime, edges, **PRIME_STYLE)
                lower.stairs(_finite_or_nan(prime / reco), edges, color=PRIME_STYLE["color"])
        main.set_ylabel("fraction of events", fontsize="small")
        main.set_title(axis.label, fontsize="small")
        lower.axhline(1.0, color="0.5", linewidth=1)
        lower.set_ylim(0.5, 1.5)
        lower.set_ylabel("/ RECO", fontsize="small")
        lower.set_xlabel(axis.label, fontsize="small")
    mains[0].legend(fontsize="x-small")
    fig.suptitle(title)
    return _save(fig, output, formats)


def plot_double_ratios(
    scaling: ScalingResult, keys: Sequence[str], output: Path, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """(DL/RECO)_large / (DL/RECO)_small per bin, with the flatness chi2/ndf in each panel."""
    fig, mains, _ = _grid(len(keys), ratio_panels=False)
    for key, main in zip(keys, mains, strict=True):
        axis = scaling.comparison.histograms[key].axes[1]
        ratio, error, chi2, ndf = scaling.double_ratios[key]
        main.errorbar(axis.centers, ratio, yerr=error, fmt="o", markersize=2, color="black")
        main.axhline(1.0, color="0.5", linewidth=1)
        main.set_ylim(0.0, 2.0)
        main.set_xlabel(axis.label, fontsize="small")
        main.set_ylabel("double ratio", fontsize="small")
        main.set_title(f"flatness chi2/ndf = {chi2:.1f}/{ndf}", fontsize="small")
    fig.suptitle("Double ratio (DL/RECO, large sample) / (DL/RECO, test sample)")
    return _save(fig, output, formats)


def plot_dl_vs_reco(
    model: ComparisonSet,
    dl: ObservableTable,
    reco: ObservableTable,
    names: Sequence[str],
    output: Path,
    title: str,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """2D histograms of DL vs RECO of the same events per observable (log colour scale),
    binned with the observable's histogram axis."""
    fig, mains, _ = _grid(len(names), ratio_panels=False)
    for name, main in zip(names, mains, strict=True):
        edges = model.histograms[name].axes[1].edges
        counts, _, _ = np.histogram2d(reco[name], dl[name], bins=(edges, edges))
        main.pcolormesh(edges, edges, counts.T, norm=mpl.colors.LogNorm(vmin=1), cmap="viridis")
        main.plot(edges[[0, -1]], edges[[0, -1]], color="white", linewidth=0.8, linestyle="--")
        label = model.histograms[name].axes[1].label
        main.set_xlabel(f"RECO {label}", fontsize="small")
        main.set_ylabel(f"DL {label}", fontsize="small")
    fig.suptitle(title)
    return _save(fig, output, formats)


def plot_correlation_difference(
    correlations: dict[str, np.ndarray],
    names: Sequence[str],
    output: Path,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Correlation matrices: DL - RECO and, when present, RECO' - RECO; `names` label the
    rows and columns."""
    panels = [("DL - RECO", correlations["dl"] - correlations["reco"])]
    if "reco_prime" in correlations:
        panels.append(("RECO' - RECO", correlations["reco_prime"] - correlations["reco"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 6.5), squeeze=False)
    limit = max(0.05, max(np.nanmax(np.abs(d)) for _, d in panels))
    ticks = np.arange(len(names))
    for ax, (title, difference) in zip(axes[0], panels, strict=True):
        image = ax.imshow(difference, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_xticks(ticks, names, rotation=90, fontsize="x-small")
        ax.set_yticks(ticks, names, fontsize="x-small")
        ax.set_title(f"{title} (max |diff| {np.nanmax(np.abs(difference)):.3f})")
        fig.colorbar(image, ax=ax, shrink=0.8, label="difference of Pearson correlation")
    return _save(fig, output, formats)


def plot_classifier(
    model: ClassifierResult,
    floor: ClassifierResult | None,
    output: Path,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """ROC curves of the classifier two-sample tests (diagonal: indistinguishable)."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.plot(
        model.false_positive_rate,
        model.true_positive_rate,
        color=STYLES["dl"]["color"],
        label=f"DL vs RECO, AUC {model.auc:.3f} +- {model.auc_error:.3f}",
    )
    if floor is not None:
        ax.plot(
            floor.false_positive_rate,
            floor.true_positive_rate,
            color=PRIME_STYLE["color"],
            label=f"RECO' vs RECO, AUC {floor.auc:.3f} +- {floor.auc_error:.3f}",
        )
    ax.plot([0, 1], [0, 1], color="0.5", linestyle="--", linewidth=1)
    ax.set_xlabel("false positive rate (RECO called DL)")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title("Classifier two-sample test of p(output | GEN)")
    return _save(fig, output, formats)


def plot_w1_overview(
    model: ComparisonSet,
    floor: ComparisonSet | None,
    output: Path,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """W1/sigma per observable and per residual, DL vs RECO next to the RECO' floor."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=False)
    names = list(model.observables)
    positions = np.arange(len(names))
    for ax, attribute, title in zip(
        axes, ("observables", "residuals"), ("distributions", "relative residuals"), strict=True
    ):
        ax.bar(
            positions - 0.2,
            [getattr(model, attribute)[n].w1_over_sigma for n in names],
            width=0.4,
            color=STYLES["dl"]["color"],
            label="DL vs RECO",
        )
        if floor is not None:
            ax.bar(
                positions + 0.2,
                [getattr(floor, attribute)[n].w1_over_sigma for n in names],
                width=0.4,
                color=PRIME_STYLE["color"],
                label="RECO' vs RECO (floor)",
            )
        ax.set_xticks(positions, names, rotation=90, fontsize="small")
        ax.set_ylabel("W1 / std(RECO)")
        ax.set_title(title)
        ax.legend(fontsize="small")
    return _save(fig, output, formats)
