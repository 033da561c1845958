"""Shared fixtures: a small generated GEN+RECO sample, a model trained on it, real NanoAOD."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
REAL_NANOAOD = Path(
    os.environ.get("COFFEA_FASTSIM_REAL_NANOAOD", REPOSITORY.parent / "shared" / "real-nanoaod")
)


@pytest.fixture(scope="session")
def real_nanoaod() -> Path:
    """Directory with the real CMS NanoAOD files nano_dy.root and pfnano.root."""
    for name in ("nano_dy.root", "pfnano.root"):
        path = REAL_NANOAOD / name
        assert path.is_file(), (
            f"{path} is missing: set COFFEA_FASTSIM_REAL_NANOAOD to its directory"
        )
    return REAL_NANOAOD


@pytest.fixture(scope="session")
def wjets_sample(tmp_path_factory) -> Path:
    """600 Pythia8 W(->mu nu)+jet events with the CMS-card detector, GEN+RECO."""
    from coffea_fastsim.sim.generation import GenerationConfig, generate_sample

    path = tmp_path_factory.mktemp("sample") / "wjets.root"
    generate_sample(
        path, GenerationConfig(n_events=600, seed=11, events_per_job=300, progress=False)
    )
    return path


@pytest.fixture(scope="session")
def trained_model(wjets_sample, tmp_path_factory) -> Path:
    """A surrogate trained for a few epochs on ``wjets_sample`` (quality irrelevant)."""
    from coffea_fastsim.analysis.reading import feature_pairs
    from coffea_fastsim.surrogate.model_file import save_model
    from coffea_fastsim.surrogate.training import TrainingConfig, train_surrogate

    pairs = feature_pairs([wjets_sample])
    config = TrainingConfig(epochs=3, seed=5, progress=False)
    result = train_surrogate(pairs.gen, pairs.reco, config)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(result.model, path, result.metadata())
    return path
