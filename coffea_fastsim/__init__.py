"""coffea-fastsim: analysis-specific deep-learning fast simulation for coffea.

A neural transfer function, trained on a fraction of events that went through a full
detector simulation, maps generator-level (GEN) analysis features to reconstructed-like
(RECO) features for all other GEN events.

The public API is imported lazily, so that ``coffea-fastsim --help`` starts fast:

- :class:`FastSimProcessor`, :class:`FastSimConfig`: the coffea processor;
- :class:`SurrogateEngine`: chunked, per-event seeded inference;
- :class:`AnalysisDefinition`, :func:`resolve_analysis`, :func:`build_features`: analyses as
  definitions (built-ins by name, a user's own from ``path/to/file.py:NAME``);
- :func:`run_processor`, :func:`make_fileset`: coffea's Runner with our defaults;
- :func:`train_surrogate`, :func:`save_model`, :func:`load_model`: training and model files;
- :func:`generate_sample`, :class:`GenerationConfig`: the reference simulation;
- :func:`read_dataset`: the DL dataset;
- :func:`dl_features`, :func:`fill_histograms`: the same inside a dask-awkward graph;
- :func:`write_root_histograms`: the histograms as TH1D for ROOT-based fits.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "AnalysisDefinition": "coffea_fastsim.analysis.definition",
    "FastSimConfig": "coffea_fastsim.processing.processor",
    "FastSimProcessor": "coffea_fastsim.processing.processor",
    "GenerationConfig": "coffea_fastsim.sim.generation",
    "SurrogateEngine": "coffea_fastsim.surrogate.inference",
    "build_features": "coffea_fastsim.analysis.features",
    "dl_features": "coffea_fastsim.processing.columnar",
    "fill_histograms": "coffea_fastsim.processing.columnar",
    "generate_sample": "coffea_fastsim.sim.generation",
    "load_model": "coffea_fastsim.surrogate.model_file",
    "make_fileset": "coffea_fastsim.processing.runner",
    "read_dataset": "coffea_fastsim.processing.dataset",
    "resolve_analysis": "coffea_fastsim.analysis.registry",
    "run_processor": "coffea_fastsim.processing.runner",
    "save_model": "coffea_fastsim.surrogate.model_file",
    "train_surrogate": "coffea_fastsim.surrogate.training",
    "write_root_histograms": "coffea_fastsim.processing.root_export",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    message = f"module 'coffea_fastsim' has no attribute {name!r}"
    raise AttributeError(message)
