"""Shared fixtures: the embedded sample and model, the real NanoAOD files of tests/data, and,
for slow tests only, a freshly generated sample and a model trained on it.

Nothing here reads outside the repository: the minimum-bias pools that generation caches go
to a temporary directory, not to the user's cache.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from samples import copy_sample, first_events

from coffea_fastsim.embedded import embedded_model as _embedded_model
from coffea_fastsim.embedded import embedded_sample as _embedded_sample

TEST_DATA = Path(__file__).resolve().parent / "data"
REAL_NANOAOD_FILES = ("nano_dy.root", "pfnano.root")
#: Events of the embedded sample that the fast tests run on.
N_EMBEDDED_EVENTS = 600
#: Fixtures that run Pythia8, train a network or export one with torch.export (seconds each);
#: a test that uses one must be marked slow.
SLOW_FIXTURES = frozenset({"wjets_sample", "trained_model", "flow_file"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = [
        f"{item.nodeid} uses {sorted(SLOW_FIXTURES.intersection(item.fixturenames))}"
        for item in items
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("slow") is None
    ]
    if unmarked:
        lines = "\n  ".join(unmarked)
        message = f"tests that generate, train or export must be marked slow:\n  {lines}"
        raise pytest.UsageError(message)


@pytest.fixture(scope="session", autouse=True)
def _private_pool_cache(tmp_path_factory: pytest.TempPathFactory):
    """Minimum-bias pools are generated into a temporary directory for the session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COFFEA_FASTSIM_CACHE", str(tmp_path_factory.mktemp("pool-cache")))
        yield


@pytest.fixture(autouse=True)
def _sigint_handler_kept():
    """No test may leave the Ctrl-C handler of the test process changed (an ignored SIGINT
    is inherited by every child process started later, which then cannot be interrupted)."""
    before = signal.getsignal(signal.SIGINT)
    yield
    assert signal.getsignal(signal.SIGINT) is before, "the test changed the SIGINT handler"


@pytest.fixture(scope="session")
def real_nanoaod() -> Path:
    """Directory with the real CMS NanoAOD files nano_dy.root and pfnano.root (README there)."""
    for name in REAL_NANOAOD_FILES:
        assert (TEST_DATA / name).is_file(), f"{TEST_DATA / name} is missing from the repository"
    return TEST_DATA


@pytest.fixture(scope="session")
def embedded_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 600 events of the embedded GEN+RECO sample (data/wjets_sample.root)."""
    target = tmp_path_factory.mktemp("embedded") / "wjets.root"
    return copy_sample(_embedded_sample(), target, transform=first_events(N_EMBEDDED_EVENTS))


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The embedded Gaussian surrogate (data/wjets_model.pt)."""
    return _embedded_model()


@pytest.fixture(scope="session")
def wjets_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 Pythia8 W(->mu nu)+jet events with the CMS-card detector, GEN+RECO (slow)."""
    from coffea_fastsim.sim.generation import GenerationConfig, generate_sample

    path = tmp_path_factory.mktemp("sample") / "wjets.root"
    generate_sample(
        path, GenerationConfig(n_events=600, seed=11, events_per_job=300, progress=False)
    )
    return path


@pytest.fixture(scope="session")
def trained_model(wjets_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A surrogate trained for a few epochs on ``wjets_sample`` (quality irrelevant; slow)."""
    from coffea_fastsim.analysis.reading import feature_pairs
    from coffea_fastsim.analysis.wjets import WJETS
    from coffea_fastsim.surrogate.model_file import save_model
    from coffea_fastsim.surrogate.training import TrainingConfig, train_surrogate

    pairs = feature_pairs([wjets_sample], WJETS)
    config = TrainingConfig(epochs=3, seed=5, progress=False)
    result = train_surrogate(pairs.gen, pairs.reco, config, WJETS.feature_names)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    metadata = {**result.metadata(), "analysis": WJETS.record}
    save_model(result.model, path, metadata, feature_names=WJETS.feature_names)
    return path
