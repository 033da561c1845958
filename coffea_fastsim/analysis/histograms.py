"""Histograms of the observables for GEN, DL and RECO, and of their relative residuals.

Every histogram has a ``source`` category axis and one regular axis whose name, label and
binning come from the analysis definition (`coffea_fastsim.analysis.definition`). The
processor fills them and the plots and the validation read them: there is one binning per
observable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hist
import numpy as np

from coffea_fastsim.analysis.definition import AnalysisDefinition, Observable

__all__ = [
    "RESIDUAL_PREFIX",
    "RESIDUAL_RESOLUTION",
    "RESIDUAL_SAMPLES",
    "SAMPLES",
    "fill_grouped",
    "fill_observables",
    "fill_residuals",
    "make_histograms",
    "relative_residual",
]

#: Categories of the distribution histograms.
SAMPLES: tuple[str, ...] = ("gen", "dl", "reco")
#: Categories of the residual histograms: (x - x_GEN) / x_GEN of these samples.
RESIDUAL_SAMPLES: tuple[str, ...] = ("dl", "reco")
#: Key prefix of the residual histograms, e.g. ``residual_muon_pt``.
RESIDUAL_PREFIX = "residual_"


def _with_storage(axes: Any, weighted: bool) -> hist.Hist:
    """The histogram of the axes built with ``kind.new``: Weight or Double storage."""
    return axes.Weight() if weighted else axes.Double()


def _observable_histogram(
    observable: Observable, samples: tuple[str, ...], kind: type[hist.Hist], weighted: bool
) -> hist.Hist:
    axes = kind.new.StrCat(list(samples), name="source", label="Source").Reg(
        observable.bins,
        observable.low,
        observable.high,
        name=observable.name,
        label=observable.label,
    )
    return _with_storage(axes, weighted)


def _residual_histogram(
    observable: Observable,
    binning: tuple[int, float, float],
    kind: type[hist.Hist],
    weighted: bool,
) -> hist.Hist:
    bins, low, high = binning
    # A relative residual has no unit: drop the observable's " [GeV]".
    symbol = observable.label.split(" [")[0]
    label = f"$(x - x_{{GEN}}) / x_{{GEN}}$, x = {symbol}"
    axes = kind.new.StrCat(list(RESIDUAL_SAMPLES), name="source", label="Source").Reg(
        bins, low, high, name=f"{RESIDUAL_PREFIX}{observable.name}", label=label
    )
    return _with_storage(axes, weighted)


def make_histograms(
    analysis: AnalysisDefinition, kind: type[hist.Hist] = hist.Hist, weighted: bool = False
) -> dict[str, hist.Hist]:
    """Empty histograms of `analysis`: one per observable (``name``) and one per residual
    (``residual_name``).

    Arguments:
        analysis: the analysis definition (its observables and residual binning).
        kind: the histogram class, ``hist.Hist`` or a subclass such as ``hist.dask.Hist``.
        weighted: Weight storage (sums of weights and of their squares, for weighted or
            grouped fills); False: Double storage (counts).
    """
    observables = analysis.observables
    binning = analysis.residual_binning
    histograms = {o.name: _observable_histogram(o, SAMPLES, kind, weighted) for o in observables}
    histograms.update(
        {
            f"{RESIDUAL_PREFIX}{o.name}": _residual_histogram(o, binning, kind, weighted)
            for o in observables
        }
    )
    return histograms


#: Differences this small (relative to |x_GEN| + 1 in the observable's unit) are float32
#: rounding, about 16 units in its last place, not a detector response.
RESIDUAL_RESOLUTION = 1e-6


def relative_residual(values: Any, reference: Any) -> Any:
    """(values - reference) / reference, elementwise; both shape (n,), the observable's unit.

    0 where |values - reference| <= RESIDUAL_RESOLUTION * (|reference| + 1). Files store
    float32 (relative rounding 6e-8): where the detector measures a quantity exactly (the
    muon direction of the reference detector), RECO - GEN, DL - GEN and RECO' - GEN are
    rounding alone, each from its own arithmetic, and no response. Arithmetic only, so that
    numpy, awkward and dask-awkward arrays all work.
    """
    difference = values - reference
    kept = abs(difference) > RESIDUAL_RESOLUTION * (abs(reference) + 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return difference * kept / reference


def fill_grouped(
    histogram: hist.Hist,
    sample: str,
    name: str,
    values: np.ndarray,
    groups: np.ndarray,
    weight: float,
) -> None:
    """Fill ``values``, each with ``weight``, summing the weights of a group per bin first.

    The entries of one group (the replicas of one GEN event) are not independent; filling
    each (group, bin) once with the sum of its weights makes the Weight storage's variance
    sum_groups (sum of the group's weights in the bin)^2, the variance of a sum of
    independent groups, while the contents stay the sums of all weights.

    Arguments:
        histogram: Weight storage, with a ``source`` axis and the axis ``name``.
        sample: the ``source`` category.
        name: the axis that ``values`` fill.
        values: shape (n,); non-finite values are not filled.
        groups: the group of each value, integers, shape (n,).
        weight: the weight of each value.
    """
    finite = np.isfinite(values)
    values, groups = values[finite], np.asarray(groups)[finite]
    axis = histogram.axes[name]
    # Flow bins included: index -1 (underflow) ... size (overflow).
    bins = np.asarray(axis.index(values), dtype=np.int64) + 1
    keys = groups.astype(np.int64) * (axis.size + 2) + bins
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    histogram.fill(source=sample, **{name: values[first]}, weight=counts * weight)


def fill_observables(
    histograms: Mapping[str, hist.Hist],
    sample: str,
    observables: Mapping[str, np.ndarray],
    groups: np.ndarray | None = None,
    weight: float = 1.0,
) -> None:
    """Fill the distribution histograms of ``sample`` with arrays of shape (n,) keyed by name.

    Non-finite values are not filled: they land in no bin (and are counted by the caller).
    With ``groups``, the values of a group are correlated replicas filled with ``weight``
    each (:func:`fill_grouped`, Weight storage); without, each value counts once.
    """
    for name, values in observables.items():
        if groups is not None:
            fill_grouped(histograms[name], sample, name, values, groups, weight)
            continue
        finite = np.isfinite(values)
        histograms[name].fill(source=sample, **{name: values[finite]})


def fill_residuals(
    histograms: Mapping[str, hist.Hist],
    sample: str,
    observables: Mapping[str, np.ndarray],
    gen_observables: Mapping[str, np.ndarray],
    groups: np.ndarray | None = None,
    weight: float = 1.0,
) -> None:
    """Fill the residual histograms of ``sample``; both mappings hold arrays of shape (n,);
    ``groups`` and ``weight`` as for :func:`fill_observables`."""
    for name, values in observables.items():
        residual = relative_residual(values, gen_observables[name])
        key = f"{RESIDUAL_PREFIX}{name}"
        if groups is not None:
            fill_grouped(histograms[key], sample, key, residual, groups, weight)
            continue
        finite = np.isfinite(residual)
        histograms[key].fill(source=sample, **{key: residual[finite]})
