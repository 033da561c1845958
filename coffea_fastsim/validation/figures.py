"""Figures of the fidelity suite, in the layout of the reference study's Figs. 3-12.

Each figure is a grid with one panel per observable: the distributions (unit-normalized)
over a ratio panel, the 2D DL-vs-RECO histograms, the double ratios; plus the correlation
difference matrices, the classifier ROC curves and the W1/sigma overview. PNG and PDF, in
the mplhep style of the processor's plots (:mod:`coffea_fastsim.processing.plotting`), with
its colours; the residual panels use the axes of :mod:`coffea_fastsim.validation.residuals`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ParamSpec

import hist
import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import mplhep
import numpy as np
from matplotlib.ticker import LogLocator, MaxNLocator

from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.processing.plotting import FORMATS, STYLES
from coffea_fastsim.validation.classifier import ClassifierResult
from coffea_fastsim.validation.comparison import ComparisonSet, ScalingResult

__all__ = [
    "LABELS",
    "plot_classifier",
    "plot_correlation_difference",
    "plot_distributions",
    "plot_dl_vs_reco",
    "plot_double_ratios",
    "plot_w1_overview",
]

#: RECO of the same events with a new detector seed.
PRIME = "RECO$'$"
#: Legend entries of the samples.
LABELS = {"gen": "GEN", "reco": "RECO", "dl": "DL", "prime": f"{PRIME} (resimulation)"}
#: Line style per sample: the processor's, with the legend entries above.
LINES = {
    **{sample: {**style, "label": LABELS[sample]} for sample, style in STYLES.items()},
    "prime": {"color": "tab:green", "linestyle": ":", "label": LABELS["prime"]},
}
#: The processor's mplhep style, with a font size for grids of small panels.
RC = {"font.size": 15, "xaxis.labellocation": "center", "yaxis.labellocation": "center"}
#: Width of a grid panel, inches.
PANEL_INCHES = 5.2
#: Margins of a grid (top: title and legend), inches.
GRID_MARGINS = (1.3, 0.3, 0.9, 1.1)
#: A panel whose largest RECO bin holds more than this fraction has a logarithmic y axis.
SPIKE_FRACTION = 0.5

P = ParamSpec("P")


def _styled(plot: Callable[P, list[Path]]) -> Callable[P, list[Path]]:
    """Draw ``plot`` in the processor's mplhep style."""

    @functools.wraps(plot)
    def styled(*args: P.args, **kwargs: P.kwargs) -> list[Path]:
        with plt.style.context([mplhep.style.CMS, RC]):
            return plot(*args, **kwargs)

    return styled


def _save(fig: plt.Figure, output: Path, formats: Sequence[str], tight: bool = True) -> list[Path]:
    """Write ``fig`` in each format; ``tight`` fits the page to the drawing (a grid has its
    margins already, and fitting costs a second drawing)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for extension in formats:
        path = output.with_suffix(f".{extension}")
        fig.savefig(path, dpi=72, bbox_inches="tight" if tight else None)
        written.append(path)
    plt.close(fig)
    return written


def _grid(n_panels: int, ratio_panels: bool) -> tuple[plt.Figure, list, list]:
    """A figure with one cell per panel; with ``ratio_panels`` each cell is split 3:1."""
    n_columns = 3 if n_panels <= 9 else 4
    n_rows = -(-n_panels // n_columns)
    height = PANEL_INCHES * (1.2 if ratio_panels else 1.0)
    width, height = PANEL_INCHES * n_columns, height * n_rows + GRID_MARGINS[0] + GRID_MARGINS[2]
    fig = plt.figure(figsize=(width, height))
    top, right, bottom, left = GRID_MARGINS
    cells = fig.add_gridspec(
        n_rows,
        n_columns,
        hspace=0.32,
        wspace=0.38,
        top=1 - top / height,
        right=1 - right / width,
        bottom=bottom / height,
        left=left / width,
    )
    mains, lowers = [], []
    for index in range(n_panels):
        cell = cells[divmod(index, n_columns)]
        if ratio_panels:
            inner = cell.subgridspec(2, 1, height_ratios=(3, 1), hspace=0.06)
            main = fig.add_subplot(inner[0])
            lower = fig.add_subplot(inner[1], sharex=main)
            main.tick_params(labelbottom=False)
            # The main panel's lowest y tick label would touch the ratio panel's highest.
            main.yaxis.set_major_locator(MaxNLocator(nbins=5, prune="lower"))
            lowers.append(lower)
        else:
            main = fig.add_subplot(cell)
        main.xaxis.set_major_locator(MaxNLocator(nbins=5))
        mains.append(main)
    return fig, mains, lowers


def _title(fig: plt.Figure, title: str, legend_from: plt.Axes | None = None) -> None:
    """The figure's title above the grid, and below it (where panel titles would be) the
    legend of ``legend_from``'s curves, which is that of every panel."""
    inch = 1.0 / fig.get_figheight()
    top = 1.0 - GRID_MARGINS[0] * inch
    if legend_from is not None:
        handles, labels = legend_from.get_legend_handles_labels()
        anchor = (0.5, top + 0.1 * inch)
        fig.legend(handles, labels, loc="lower center", bbox_to_anchor=anchor, ncols=len(labels))
    fig.suptitle(title, y=top + 0.75 * inch, va="bottom")


def _finite_or_nan(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, np.nan)


def _fractions(histogram: hist.Hist, sample: str) -> tuple[np.ndarray, np.ndarray]:
    counts = histogram[sample, :].values()
    total = max(counts.sum(), 1.0)
    return counts / total, np.sqrt(counts) / total


def _panel(
    main: plt.Axes,
    lower: plt.Axes,
    model: ComparisonSet,
    floor: ComparisonSet | None,
    key: str,
) -> None:
    """One distribution panel over its ratio panel (see :func:`plot_distributions`)."""
    histogram = model.figure_histograms[key]
    axis = histogram.axes[1]
    edges, centers = axis.edges, axis.centers
    reco, reco_error = _fractions(histogram, "reco")
    dl, dl_error = _fractions(histogram, "dl")
    band = model.figure_band[key]
    total_error = np.hypot(dl_error, band)
    if "gen" in histogram.axes["source"] and histogram["gen", :].sum() > 0:
        mplhep.histplot(_fractions(histogram, "gen")[0], edges, ax=main, **LINES["gen"])
    mplhep.histplot(reco, edges, ax=main, **LINES["reco"])
    mplhep.histplot(dl, edges, yerr=total_error, ax=main, **LINES["dl"])
    main.fill_between(
        edges,
        np.append(dl - band, 0),
        np.append(dl + band, 0),
        step="post",
        color=LINES["dl"]["color"],
        alpha=0.25,
        linewidth=0,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = _finite_or_nan(dl / reco)
        ratio_error = _finite_or_nan(
            ratio * np.sqrt((total_error / dl) ** 2 + (reco_error / reco) ** 2)
        )
        lower.errorbar(centers, ratio, yerr=ratio_error, fmt="o", markersize=3, color="black")
        if floor is not None:
            prime_histogram = floor.figure_histograms[key]
            if not np.array_equal(prime_histogram.axes[1].edges, edges):
                raise ValueError(f"{key}: the RECO' comparison has other bins than the model's")
            prime, _ = _fractions(prime_histogram, "dl")
            mplhep.histplot(prime, edges, ax=main, **LINES["prime"])
            lower.stairs(_finite_or_nan(prime / reco), edges, color=LINES["prime"]["color"])
    if reco.max() > SPIKE_FRACTION:
        # A spike (an observable the detector does not smear): DL is seen against it on a
        # logarithmic axis down to one event.
        main.set_yscale("log")
        main.set_ylim(0.5 / max(histogram["reco", :].sum(), 1.0), 2.0)
        main.yaxis.set_major_locator(LogLocator(numticks=5))
    else:
        main.set_ylim(0, None)
    main.set_ylabel("fraction of events")
    lower.axhline(1.0, color="0.5", linewidth=1)
    lower.set_ylim(0.5, 1.5)
    lower.set_yticks([0.75, 1.0, 1.25])
    lower.set_ylabel("/ RECO")
    lower.set_xlabel(axis.label)


@_styled
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
    Residual keys are drawn on their fitted axes (``figure_histograms``).

    Arguments:
        model: DL vs RECO histograms (keys of ``make_histograms``).
        floor: RECO' vs RECO (RECO' in the "dl" category), or None.
        keys: histogram keys, one panel each.
        output: file path without extension.
        title: figure title.
    """
    fig, mains, lowers = _grid(len(keys), ratio_panels=True)
    for key, main, lower in zip(keys, mains, lowers, strict=True):
        _panel(main, lower, model, floor, key)
    _title(fig, title, legend_from=mains[0])
    return _save(fig, output, formats, tight=False)


@_styled
def plot_double_ratios(
    scaling: ScalingResult, keys: Sequence[str], output: Path, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """(DL/RECO)_large / (DL/RECO)_small per bin, with the flatness chi2/ndf in each panel."""
    fig, mains, _ = _grid(len(keys), ratio_panels=False)
    for key, main in zip(keys, mains, strict=True):
        axis = scaling.comparison.histograms[key].axes[1]
        ratio, error, chi2, ndf = scaling.double_ratios[key]
        main.errorbar(axis.centers, ratio, yerr=error, fmt="o", markersize=3, color="black")
        main.axhline(1.0, color="0.5", linewidth=1)
        main.set_ylim(0.0, 2.0)
        main.set_xlabel(axis.label)
        main.set_ylabel("double ratio")
        main.set_title(rf"flatness $\chi^2$/ndf = {chi2:.1f}/{ndf}", fontsize="medium")
    _title(fig, "Double ratio (DL/RECO, large sample) / (DL/RECO, test sample)")
    return _save(fig, output, formats, tight=False)


@_styled
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
        axis = model.histograms[name].axes[1]
        edges = axis.edges
        counts, _, _ = np.histogram2d(reco[name], dl[name], bins=(edges, edges))
        main.pcolormesh(edges, edges, counts.T, norm=mpl.colors.LogNorm(vmin=1), cmap="viridis")
        main.plot(edges[[0, -1]], edges[[0, -1]], color="0.3", linewidth=1, linestyle="--")
        main.yaxis.set_major_locator(MaxNLocator(nbins=5))
        main.set_xlabel(f"{LABELS['reco']} {axis.label}")
        main.set_ylabel(f"{LABELS['dl']} {axis.label}")
    _title(fig, title)
    return _save(fig, output, formats, tight=False)


@_styled
def plot_correlation_difference(
    correlations: dict[str, np.ndarray],
    names: Sequence[str],
    output: Path,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Correlation matrices: DL - RECO and, when present, RECO' - RECO; `names` label the
    rows and columns."""
    panels = [(f"{LABELS['dl']} - {LABELS['reco']}", correlations["dl"] - correlations["reco"])]
    if "reco_prime" in correlations:
        panels.append((f"{PRIME} - RECO", correlations["reco_prime"] - correlations["reco"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(10 * len(panels), 9), squeeze=False)
    limit = max(0.05, max(np.nanmax(np.abs(d)) for _, d in panels))
    ticks = np.arange(len(names))
    for ax, (title, difference) in zip(axes[0], panels, strict=True):
        image = ax.imshow(difference, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_xticks(ticks, names, rotation=90, fontsize="x-small")
        ax.set_yticks(ticks, names, fontsize="x-small")
        ax.minorticks_off()
        ax.set_title(f"{title} (max |diff| {np.nanmax(np.abs(difference)):.3f})")
        fig.colorbar(image, ax=ax, shrink=0.8, label="difference of Pearson correlation")
    return _save(fig, output, formats)


@_styled
def plot_classifier(
    model: ClassifierResult,
    floor: ClassifierResult | None,
    output: Path,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """ROC curves of the classifier two-sample tests (diagonal: indistinguishable)."""
    fig, ax = plt.subplots(figsize=(8, 8))
    curves = [(model, LINES["dl"]["color"], f"{LABELS['dl']} vs RECO")]
    if floor is not None:
        curves.append((floor, LINES["prime"]["color"], f"{PRIME} vs RECO"))
    for result, color, label in curves:
        ax.plot(
            result.false_positive_rate,
            result.true_positive_rate,
            color=color,
            label=f"{label}, AUC {result.auc:.3f} $\\pm$ {result.auc_error:.3f}",
        )
    ax.plot([0, 1], [0, 1], color="0.5", linestyle="--", linewidth=1)
    ax.set_xlabel("false positive rate (RECO called DL)")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right")
    ax.set_title(r"Classifier two-sample test of $p(\mathrm{output}\,|\,\mathrm{GEN})$")
    return _save(fig, output, formats)


@_styled
def plot_w1_overview(
    model: ComparisonSet,
    floor: ComparisonSet | None,
    output: Path,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """W1/sigma per observable and per residual, DL vs RECO next to the RECO' floor."""
    fig, axes = plt.subplots(1, 2, figsize=(20, 8), sharey=False)
    names = list(model.observables)
    positions = np.arange(len(names))
    bars = [(model, -0.2, LINES["dl"]["color"], f"{LABELS['dl']} vs RECO")]
    if floor is not None:
        bars.append((floor, 0.2, LINES["prime"]["color"], f"{PRIME} vs RECO (floor)"))
    for ax, attribute, title in zip(
        axes, ("observables", "residuals"), ("distributions", "relative residuals"), strict=True
    ):
        for comparison, offset, color, label in bars:
            values = [getattr(comparison, attribute)[n].w1_over_sigma for n in names]
            ax.bar(positions + offset, values, width=0.4, color=color, label=label)
        ax.set_xticks(positions, names, rotation=90, fontsize="small")
        ax.tick_params(axis="x", which="minor", bottom=False, top=False)
        ax.set_ylabel(r"$W_1$ / std(RECO)")
        ax.set_title(title)
        ax.legend()
    return _save(fig, output, formats)
