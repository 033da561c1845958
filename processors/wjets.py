"""The W(->mu nu)+jet processor: `FastSimProcessor` under the wjets analysis.

Its signal region (M_T > 50 GeV, jet pT > 40 GeV: yields and M_T per sample) comes from the
definition (`coffea_fastsim.analysis.wjets`); a processor subclass is where an analysis adds
what a definition cannot express, by overriding ``analyze``.
"""

from __future__ import annotations

from coffea_fastsim.processing.processor import FastSimConfig, FastSimProcessor

__all__ = ["WJetsProcessor"]


class WJetsProcessor(FastSimProcessor):
    """FastSimProcessor that refuses any analysis but the built-in wjets."""

    def __init__(self, config: FastSimConfig) -> None:
        name = config.analysis.name  # type: ignore[union-attr]
        if name != "wjets":
            raise ValueError(f"WJetsProcessor runs the analysis 'wjets', not {name!r}")
        super().__init__(config)
