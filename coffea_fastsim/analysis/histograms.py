"""Histograms of the observables for GEN, DL and RECO, and of their relative residuals.

Every histogram has a ``source`` category axis and one regular axis whose name, label and
binning come from :mod:`coffea_fastsim.analysis.observables`. The processor fills them and the
plots and the validation read them: there is one binning per observable.
"""

from __future__ import annotations

from collections.abc import Mapping

import hist
import numpy as np

from coffea_fastsim.analysis.observables import OBSERVABLES, RESIDUAL_BINNING, Observable

__all__ = [
    "RESIDUAL_PREFIX",
    "RESIDUAL_SAMPLES",
    "SAMPLES",
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


def _observable_histogram(
    observable: Observable, samples: tuple[str, ...], kind: type[hist.Hist]
) -> hist.Hist:
    return (
        kind.new.StrCat(list(samples), name="source", label="Source")
        .Reg(
            observable.bins,
            observable.low,
            observable.high,
            name=observable.name,
            label=observable.label,
        )
        .Double()
    )


def _residual_histogram(observable: Observable, kind: type[hist.Hist]) -> hist.Hist:
    bins, low, high = RESIDUAL_BINNING
    # A relative residual has no unit: drop the observable's " [GeV]".
    symbol = observable.label.split(" [")[0]
    label = f"$(x - x_{{GEN}}) / x_{{GEN}}$, x = {symbol}"
    return (
        kind.new.StrCat(list(RESIDUAL_SAMPLES), name="source", label="Source")
        .Reg(bins, low, high, name=f"{RESIDUAL_PREFIX}{observable.name}", label=label)
        .Double()
    )


def make_histograms(kind: type[hist.Hist] = hist.Hist) -> dict[str, hist.Hist]:
    """Empty histograms: one per observable (``name``) and one per residual (``residual_name``).

    Arguments:
        kind: the histogram class, ``hist.Hist`` or a subclass such as ``hist.dask.Hist``.
    """
    histograms = {o.name: _observable_histogram(o, SAMPLES, kind) for o in OBSERVABLES}
    histograms.update(
        {f"{RESIDUAL_PREFIX}{o.name}": _residual_histogram(o, kind) for o in OBSERVABLES}
    )
    return histograms


def relative_residual(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(values - reference) / reference, elementwise; both shape (n,)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (values - reference) / reference


def fill_observables(
    histograms: Mapping[str, hist.Hist], sample: str, observables: Mapping[str, np.ndarray]
) -> None:
    """Fill the distribution histograms of ``sample`` with arrays of shape (n,) keyed by name.

    Non-finite values are not filled: they land in no bin (and are counted by the caller).
    """
    for name, values in observables.items():
        finite = np.isfinite(values)
        histograms[name].fill(source=sample, **{name: values[finite]})


def fill_residuals(
    histograms: Mapping[str, hist.Hist],
    sample: str,
    observables: Mapping[str, np.ndarray],
    gen_observables: Mapping[str, np.ndarray],
) -> None:
    """Fill the residual histograms of ``sample``; both mappings hold arrays of shape (n,)."""
    for name, values in observables.items():
        residual = relative_residual(values, gen_observables[name])
        finite = np.isfinite(residual)
        key = f"{RESIDUAL_PREFIX}{name}"
        histograms[key].fill(source=sample, **{key: residual[finite]})
