"""The residual each figure shows, and its axis fitted to the RECO spread of the sample.

The report's numbers use the relative residual (x - x_GEN) / x_GEN of every observable on
the analysis's fixed residual binning (:mod:`coffea_fastsim.analysis.histograms`); the
figures read another residual where that one is meaningless, on a range fitted per
observable, and change no number:

- a positive scale in a linear unit (p_T, masses, MET, M_T, S_T) shows the relative
  residual (x - x_GEN) / x_GEN;
- every other observable (angles, rapidities, logarithms, signed components such as p_x or
  E_x^miss, whose x_GEN crosses 0) shows the absolute difference x - x_GEN in its unit;
  for azimuthal angles (names ending in ``phi``, histograms spanning the full circle)
  wrapped into [-pi, pi), and their range at most that.

The range is symmetric around 0: ``SPREAD_FACTOR`` times the largest |quantile| of the
central 95 % of the RECO residuals (about +-3 sigma for a Gaussian response), never narrower
than one bin of the observable's own histogram (expressed as a residual), so that a
detector that does not smear an observable (a spike of zeros) still gives an axis on which
DL's spread is seen. Values outside the range are counted in the outermost bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import hist
import numpy as np

from coffea_fastsim.analysis.definition import Observable
from coffea_fastsim.analysis.histograms import RESIDUAL_PREFIX, RESIDUAL_SAMPLES, relative_residual
from coffea_fastsim.analysis.table import ObservableTable

__all__ = [
    "CENTRAL_FRACTION",
    "RESIDUAL_CAPTION",
    "RESIDUAL_FIGURES",
    "SPREAD_FACTOR",
    "ResidualAxis",
    "fill_residual_axes",
    "fitted_half_width",
    "residual_axes",
    "residual_axis",
    "shown_residual",
]

#: Fraction of the RECO residuals whose quantiles set the range.
CENTRAL_FRACTION = 0.95
#: The half-width of the range over the largest |quantile| of that central fraction.
SPREAD_FACTOR = 1.5
#: What a residual figure shows, for its caption.
RESIDUAL_CAPTION = (
    "relative for positive scales, x - x_GEN for angles, logarithms and signed components; "
    "range fitted to the RECO spread, entries outside it in the edge bins"
)
#: The same, for the report's text.
RESIDUAL_FIGURES = (
    "The figures show, per observable, the residual that reads at a glance and change no "
    "number: (x - x_GEN)/x_GEN for a positive scale (p_T, masses, MET, M_T, S_T), the "
    "difference x - x_GEN in the observable's unit for angles (phi wrapped into [-pi, pi)), "
    "rapidities, logarithms and signed components (p_x, E_x^miss), whose x_GEN crosses 0. "
    f"Each axis is symmetric around 0, {SPREAD_FACTOR:g} times the largest |quantile| of the "
    f"central {100 * CENTRAL_FRACTION:g} % of the RECO residuals wide on each side, and at "
    "least one bin of the observable's own histogram; entries outside it are counted in the "
    "edge bins. Where one bin holds most of RECO (an observable the detector does not smear), "
    "the y axis is logarithmic."
)


def _is_relative(observable: Observable) -> bool:
    """Whether the relative residual means something: a positive scale in a linear unit."""
    return observable.low >= 0 and observable.unit != "" and "log" not in observable.unit


def _is_azimuthal(observable: Observable) -> bool:
    """An azimuthal angle: a ``phi`` whose histogram spans the full circle (not |Delta phi|)."""
    full_circle = observable.high - observable.low >= 2 * np.pi
    return observable.unit == "" and observable.name.endswith("phi") and full_circle


def shown_residual(observable: Observable, values: np.ndarray, gen: np.ndarray) -> np.ndarray:
    """The residual a figure shows of ``values`` against ``gen`` (both shape (n,)): relative
    for a positive scale, else the (wrapped, for an azimuthal angle) difference; NaN where
    undefined."""
    if _is_relative(observable):
        return relative_residual(values, gen)
    difference = np.asarray(values, dtype=np.float64) - gen
    if _is_azimuthal(observable):
        difference = (difference + np.pi) % (2 * np.pi) - np.pi
    return difference


def _symbol(observable: Observable) -> str:
    """The observable's label without its unit and its ``$`` delimiters, e.g. ``p_T^{\\mu}``."""
    return observable.label.split(" [")[0].strip().strip("$")


@dataclass(frozen=True)
class ResidualAxis:
    """The residual of one observable as a figure shows it.

    Arguments:
        observable: the observable; it chooses the residual (:func:`shown_residual`).
        bins: number of regular bins, odd so that 0 is a bin centre.
        half_width: the axis spans [-half_width, half_width].
    """

    observable: Observable
    bins: int
    half_width: float

    @property
    def key(self) -> str:
        """Histogram key, as the processor's residual histograms (``residual_NAME``)."""
        return f"{RESIDUAL_PREFIX}{self.observable.name}"

    @property
    def label(self) -> str:
        """Axis label, e.g. ``$(p_T^{\\mu} - {p_T^{\\mu}}_{GEN}) / {p_T^{\\mu}}_{GEN}$``."""
        symbol = _symbol(self.observable)
        gen = rf"{{{symbol}}}_{{\mathrm{{GEN}}}}"
        if _is_relative(self.observable):
            return rf"$({symbol} - {gen})\,/\,{gen}$"
        unit = self.observable.unit
        suffix = f" [{unit}]" if unit and "log" not in unit else ""
        wrapped = " (wrapped)" if _is_azimuthal(self.observable) else ""
        return rf"${symbol} - {gen}${suffix}{wrapped}"

    def histogram(self) -> hist.Hist:
        """An empty histogram with the ``source`` categories of the residual histograms."""
        return (
            hist.Hist.new.StrCat(list(RESIDUAL_SAMPLES), name="source", label="Source")
            .Reg(self.bins, -self.half_width, self.half_width, name=self.key, label=self.label)
            .Double()
        )

    def fill(self, histogram: hist.Hist, sample: str, values: np.ndarray, gen: np.ndarray) -> None:
        """Fill the finite residuals of ``sample``, those outside the range into its edge bins."""
        residual = shown_residual(self.observable, values, gen)
        residual = residual[np.isfinite(residual)]
        # The centres of the edge bins: robust against the rounding of the bin index.
        inside = self.half_width * (1.0 - 1.0 / self.bins)
        histogram.fill(source=sample, **{self.key: np.clip(residual, -inside, inside)})


def fitted_half_width(residuals: np.ndarray, floor: float) -> float:
    """``SPREAD_FACTOR`` x the largest |quantile| of the central ``CENTRAL_FRACTION`` of the
    finite ``residuals`` (shape (n,)), and at least ``floor`` (> 0)."""
    finite = residuals[np.isfinite(residuals)]
    if finite.size == 0:
        return floor
    tail = (1.0 - CENTRAL_FRACTION) / 2
    spread = np.abs(np.quantile(finite, [tail, 1.0 - tail])).max()
    return float(max(SPREAD_FACTOR * spread, floor))


def residual_axis(
    observable: Observable, reco: np.ndarray, gen: np.ndarray, bins: int
) -> ResidualAxis:
    """The axis of ``observable`` fitted to its RECO residuals.

    Arguments:
        observable: the observable (its unit, range and binning choose the residual and
            the floor of the range).
        reco, gen: the observable's RECO and GEN values of the same events, shape (n,).
        bins: number of bins; an even number is made odd (one more).
    """
    bin_width = (observable.high - observable.low) / observable.bins
    floor = bin_width
    if _is_relative(observable):
        finite_gen = np.abs(gen[np.isfinite(gen)])
        typical = float(np.median(finite_gen)) if finite_gen.size else 0.0
        floor = bin_width / max(typical, bin_width)
    half_width = fitted_half_width(shown_residual(observable, reco, gen), floor)
    if _is_azimuthal(observable):
        half_width = min(half_width, np.pi)
    return ResidualAxis(observable, bins | 1, half_width)


def residual_axes(gen: ObservableTable, reco: ObservableTable) -> dict[str, ResidualAxis]:
    """Per observable name, the axis fitted to the RECO residuals of these events."""
    bins = gen.analysis.residual_binning[0]
    return {
        o.name: residual_axis(o, reco[o.name], gen[o.name], bins) for o in gen.analysis.observables
    }


def fill_residual_axes(
    axes: dict[str, ResidualAxis],
    gen: ObservableTable,
    candidate: ObservableTable | None,
    reco: ObservableTable,
) -> dict[str, hist.Hist]:
    """Residual histograms on ``axes``, keyed ``residual_NAME``: the candidate in the "dl"
    category (empty when None), RECO in "reco"."""
    histograms = {}
    for name, axis in axes.items():
        histogram = axis.histogram()
        for sample, table in (("dl", candidate), ("reco", reco)):
            if table is not None:
                axis.fill(histogram, sample, table[name], gen[name])
        histograms[axis.key] = histogram
    return histograms
