"""The coffea-facing entry point: ``from coffea_fastsim.processor import FastSimProcessor``.

The processor lives in :mod:`coffea_fastsim.processing.processor`; this module keeps the short
import path that analysis code uses.
"""

from coffea_fastsim.processing.processor import FastSimConfig, FastSimProcessor

__all__ = ["FastSimConfig", "FastSimProcessor"]
