"""The W(->mu nu)+jet analysis processor of the demo.

It is a :class:`~coffea_fastsim.processing.processor.FastSimProcessor` (GEN/DL/RECO histograms
and the DL dataset) plus what an analysis adds on top: a W signal region, its event yields per
sample, and the transverse-mass spectrum in it. The yields of DL and RECO are what an
analyst compares to judge the surrogate for this analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import hist
import numpy as np

from coffea_fastsim.analysis.histograms import SAMPLES
from coffea_fastsim.analysis.observables import OBSERVABLES
from coffea_fastsim.processing.processor import FastSimConfig, FastSimProcessor

__all__ = ["SignalRegion", "WJetsProcessor"]

_MT = next(o for o in OBSERVABLES if o.name == "mt")


@dataclass(frozen=True)
class SignalRegion:
    """W signal-region cuts (GeV): transverse mass and jet pT."""

    mt_min: float = 50.0
    jet_pt_min: float = 40.0


class WJetsProcessor(FastSimProcessor):
    """FastSimProcessor with the W+jet signal region: yields and M_T per sample."""

    def __init__(self, config: FastSimConfig, signal_region: SignalRegion | None = None) -> None:
        super().__init__(config)
        self.signal_region = signal_region or SignalRegion()

    def analyze(self, observables: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
        mt_hist = (
            hist.Hist.new.StrCat(list(SAMPLES), name="source", label="Source")
            .Reg(_MT.bins, _MT.low, _MT.high, name="mt", label=f"{_MT.label}, signal region")
            .Double()
        )
        yields = {}
        for sample, values in observables.items():
            in_region = (values["mt"] > self.signal_region.mt_min) & (
                values["jet_pt"] > self.signal_region.jet_pt_min
            )
            yields[sample] = int(in_region.sum())
            mt_hist.fill(source=sample, mt=values["mt"][in_region])
        return {"signal_region_yields": yields, "signal_region_mt": mt_hist}
