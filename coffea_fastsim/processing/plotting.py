"""Figures in the style of the reference study: distributions with a DL/RECO ratio panel,
and relative residuals of DL and RECO with their ratio, as PNG and PDF.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import hist
import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import mplhep
import numpy as np

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.histograms import RESIDUAL_PREFIX

__all__ = ["plot_all", "plot_comparison", "plot_histogram_file"]

STYLES = {
    "gen": {"color": "0.45", "linestyle": "--", "label": "GEN"},
    "reco": {"color": "tab:blue", "linestyle": "-", "label": "RECO (detector)"},
    "dl": {"color": "tab:red", "linestyle": "-", "label": "DL (surrogate)"},
}
FORMATS: tuple[str, ...] = ("png", "pdf")


def _normalized_ratio(
    numerator: np.ndarray, denominator: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ratio of two count arrays after normalizing each to unit sum, with its Poisson error."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (numerator / numerator.sum()) / (denominator / denominator.sum())
        error = ratio * np.sqrt(1.0 / numerator + 1.0 / denominator)
    return ratio, error


def plot_comparison(histogram: hist.Hist, samples: tuple[str, ...], output: Path) -> list[Path]:
    """Plot ``samples`` of a histogram with a ``source`` axis, unit-normalized, with DL/RECO ratio.

    Returns:
        The written files (one per format).
    """
    axis = histogram.axes[1]
    available = [s for s in samples if s in histogram.axes["source"] and histogram[s, :].sum() > 0]
    fig, (main, lower) = plt.subplots(
        2, 1, figsize=(8, 8), sharex=True, gridspec_kw={"height_ratios": (3, 1), "hspace": 0.05}
    )
    counts = {s: histogram[s, :].values() for s in available}
    for sample in available:
        total = counts[sample].sum()
        density = counts[sample] / total / axis.widths
        error = np.sqrt(counts[sample]) / total / axis.widths
        mplhep.histplot(density, axis.edges, yerr=error, ax=main, histtype="step", **STYLES[sample])
    main.set_ylabel("normalized density", fontsize="small")
    main.set_ylim(0, main.get_ylim()[1] * 1.3)
    main.legend(fontsize="x-small", ncols=len(available), loc="upper center")
    if "dl" in counts and "reco" in counts:
        ratio, ratio_error = _normalized_ratio(counts["dl"], counts["reco"])
        filled = (counts["dl"] > 0) & (counts["reco"] > 0)
        lower.errorbar(
            axis.centers[filled],
            ratio[filled],
            yerr=ratio_error[filled],
            fmt="o",
            markersize=3,
            color="black",
        )
    lower.axhline(1.0, color="0.5", linewidth=1)
    lower.set_ylim(0.5, 1.5)
    lower.set_ylabel("DL / RECO", fontsize="x-small")
    lower.set_xlabel(axis.label)
    output.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for extension in FORMATS:
        path = output.with_suffix(f".{extension}")
        fig.savefig(path, bbox_inches="tight")
        written.append(path)
    plt.close(fig)
    return written


def plot_all(
    histograms: Mapping[str, hist.Hist],
    output_dir: str | os.PathLike,
    analysis: AnalysisDefinition | None = None,
) -> list[Path]:
    """Distribution and residual figures of every observable in ``histograms``.

    Arguments:
        histograms: the histograms of a run (``make_histograms``).
        output_dir: where the figures go.
        analysis: the analysis of the run; its observables are drawn in its order, and a
            run of another analysis is refused. None: every observable histogram.

    Returns:
        The written files.
    """
    output_dir = Path(output_dir)
    names = [key for key in histograms if not key.startswith(RESIDUAL_PREFIX)]
    if analysis is not None:
        absent = [name for name in analysis.observable_names if name not in histograms]
        if absent:
            raise ValueError(
                f"the histograms are not of the analysis {analysis.name!r}: they lack {absent}"
            )
        names = list(analysis.observable_names)
    written: list[Path] = []
    with plt.style.context(mplhep.style.CMS):
        for name in names:
            if name in histograms:
                written += plot_comparison(
                    histograms[name], ("gen", "reco", "dl"), output_dir / name
                )
            residual = f"{RESIDUAL_PREFIX}{name}"
            if residual in histograms:
                written += plot_comparison(
                    histograms[residual], ("reco", "dl"), output_dir / residual
                )
    return written


def plot_histogram_file(
    path: str | os.PathLike,
    output_dir: str | os.PathLike,
    dataset: str | None = None,
    analysis: AnalysisDefinition | None = None,
) -> list[Path]:
    """:func:`plot_all` of one dataset of a ``histograms.coffea`` file written by a run.

    Arguments:
        path: the file (``coffea.util.save`` of the Runner's output).
        output_dir: directory of the figures.
        dataset: the dataset to plot; None: the first one.
        analysis: the run's analysis (see :func:`plot_all`); None: every observable.

    Raises:
        ValueError: the file holds no dataset, or not ``dataset`` (the message lists them).
    """
    from coffea.util import load

    try:
        output = load(path)
    except Exception as error:
        raise ValueError(f"{path}: not a readable histograms file ({error})") from error
    if not output:
        raise ValueError(f"{path} holds no dataset")
    dataset = dataset or next(iter(output))
    if dataset not in output:
        raise ValueError(f"dataset {dataset!r} not in {path}; it has {', '.join(output)}")
    return plot_all(output[dataset]["histograms"], output_dir, analysis)
