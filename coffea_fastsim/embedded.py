"""Paths of the embedded GEN+RECO samples and surrogate models (the ``data/`` directory),
one pair per built-in analysis: ``data/NAME_sample.root`` and ``data/NAME_model.pt``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_PROCESSORS", "embedded_model", "embedded_sample"]

# An installed wheel carries data/ inside the package; a source checkout has it at the top level.
_CANDIDATES = (Path(__file__).parent / "_data", Path(__file__).parent.parent / "data")

#: The example processor (``module:Class``) that ``demo`` runs for a built-in analysis; an
#: analysis without one runs the default `FastSimProcessor`.
DEMO_PROCESSORS = {"wjets": "processors.wjets:WJetsProcessor"}


def _find(name: str) -> Path:
    for directory in _CANDIDATES:
        path = directory / name
        if path.is_file():
            return path
    searched = ", ".join(str(d) for d in _CANDIDATES)
    raise FileNotFoundError(f"embedded file {name} not found (searched {searched})")


def embedded_sample(analysis: str = "wjets") -> Path:
    """The embedded GEN+RECO NanoAOD-like sample of the built-in `analysis`."""
    return _find(f"{analysis}_sample.root")


def embedded_model(analysis: str = "wjets") -> Path:
    """The embedded surrogate of the built-in `analysis`, trained on a larger sample of the
    same simulation."""
    return _find(f"{analysis}_model.pt")
