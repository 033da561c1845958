"""coffea-fastsim: analysis-specific deep-learning fast simulation for coffea.

A neural transfer function, trained on a fraction of events that went through a full
detector simulation, maps generator-level (GEN) analysis features to reconstructed-like
(RECO) features for all other GEN events.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
