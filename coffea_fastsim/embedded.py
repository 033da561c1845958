"""Paths of the embedded GEN+RECO sample and surrogate model (the ``data/`` directory)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["EMBEDDED_MODEL", "EMBEDDED_SAMPLE", "embedded_model", "embedded_sample"]

EMBEDDED_SAMPLE = "wjets_sample.root"
EMBEDDED_MODEL = "wjets_model.pt"

# An installed wheel carries data/ inside the package; a source checkout has it at the top level.
_CANDIDATES = (Path(__file__).parent / "_data", Path(__file__).parent.parent / "data")


def _find(name: str) -> Path:
    for directory in _CANDIDATES:
        path = directory / name
        if path.is_file():
            return path
    searched = ", ".join(str(d) for d in _CANDIDATES)
    raise FileNotFoundError(f"embedded file {name} not found (searched {searched})")


def embedded_sample() -> Path:
    """The embedded W+jet GEN+RECO NanoAOD-like sample."""
    return _find(EMBEDDED_SAMPLE)


def embedded_model() -> Path:
    """The embedded surrogate model, trained on a larger sample of the same simulation."""
    return _find(EMBEDDED_MODEL)
