"""Histograms to ROOT: one TH1D (TH2D for two axes) per histogram, dataset and source.

ROOT-based fits (e.g. combine) read TH1 histograms from ROOT files. Each histogram of a run
is split along its ``source`` axis (gen, dl, reco) and written with uproot as
``<dataset>/<histogram>__<source>``, e.g. ``wjets/muon_pt__dl`` or
``wjets/residual_muon_pt__reco``, with its under- and overflow bins, its bin contents (sums
of weights) and their variances (``fSumw2``). Histograms filled with unit weights have
variance = content; oversampled ones carry the variances that account for replicas of one
GEN event (see ``analysis.histograms``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hist
import uproot

__all__ = ["SOURCE_AXIS", "root_histograms", "root_name", "write_root_histograms"]

#: The category axis that every histogram of a run has.
SOURCE_AXIS = "source"


def root_name(dataset: str, histogram: str, source: str) -> str:
    """The path of one histogram in the ROOT file: ``<dataset>/<histogram>__<source>``."""
    return f"{dataset}/{histogram}__{source}"


def _with_variances(histogram: hist.Hist) -> hist.Hist:
    """``histogram`` with Weight storage: contents and variances, flow bins included."""
    weighted = hist.Hist(*histogram.axes, storage=hist.storage.Weight(), label=histogram.label)
    view = weighted.view(flow=True)
    view.value = histogram.values(flow=True)
    variances = histogram.variances(flow=True)
    view.variance = histogram.values(flow=True) if variances is None else variances
    return weighted


def root_histograms(output: Mapping[str, Mapping[str, Any]]) -> dict[str, hist.Hist]:
    """Every histogram of a run's output, split by source and keyed by its ROOT path.

    Arguments:
        output: ``{dataset: {"histograms": {name: hist.Hist with a "source" axis}}}``, the
            output of ``FastSimProcessor`` under a Runner (``histograms.coffea``).

    Returns:
        ``{root_name(dataset, name, source): hist.Hist}`` with Weight storage, one or two axes.
    """
    histograms = {}
    for dataset, dataset_output in output.items():
        for name, histogram in dataset_output["histograms"].items():
            if SOURCE_AXIS not in histogram.axes.name:
                raise ValueError(f"histogram {dataset}/{name} has no '{SOURCE_AXIS}' axis")
            if histogram.ndim - 1 not in (1, 2):
                raise ValueError(
                    f"histogram {dataset}/{name} has {histogram.ndim - 1} axes besides "
                    f"'{SOURCE_AXIS}': ROOT export writes TH1D and TH2D only"
                )
            for source in histogram.axes[SOURCE_AXIS]:
                one = histogram[{SOURCE_AXIS: source}]
                histograms[root_name(dataset, name, source)] = _with_variances(one)
    return histograms


def write_root_histograms(output: Mapping[str, Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Write :func:`root_histograms` of ``output`` to the ROOT file ``path``, atomically.

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix != ".root":
        raise ValueError(f"ROOT histogram file must end in .root, got {path}")
    histograms = root_histograms(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with uproot.recreate(temporary) as file:
        for name, histogram in histograms.items():
            file[name] = histogram
    temporary.replace(path)
    return path
