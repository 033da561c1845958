"""Oversampling: K independent, reproducible DL replicas per GEN event, and honest errors."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch

from coffea_fastsim.analysis.reading import read_features
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.embedded import embedded_model, embedded_sample
from coffea_fastsim.processing.dataset import read_dataset
from coffea_fastsim.processing.processor import FastSimConfig, FastSimProcessor
from coffea_fastsim.processing.runner import make_fileset, run_processor
from coffea_fastsim.surrogate.inference import SurrogateEngine
from coffea_fastsim.validation.oversampling import measure_errors


def run(tmp_path, oversample: int, chunksize: int = 3000) -> tuple[dict, ak.Array]:
    directory = tmp_path / f"k{oversample}-{chunksize}"
    config = FastSimConfig(
        model=embedded_model(), seed=3, oversample=oversample, output_dir=directory
    )
    fileset = make_fileset([embedded_sample()], "wjets")
    result = run_processor(fileset, FastSimProcessor(config), chunksize=chunksize, status=False)
    output = result.output["wjets"]
    files = output["dataset_files"]
    return output, read_dataset(directory / "wjets", auxiliary=False, files=files)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("oversampling")
    return {k: run(tmp_path, k) for k in (1, 4)}


def by_identity(dataset: ak.Array) -> ak.Array:
    keys = [ak.to_numpy(dataset[n]) for n in ("replica", "event", "luminosityBlock", "run")]
    return dataset[np.lexsort(keys)]


def test_replica_zero_is_the_run_without_oversampling(runs):
    (_, single), (_, oversampled) = runs[1], runs[4]
    assert "replica" not in single.fields
    replicas = ak.to_numpy(oversampled["replica"])
    assert np.bincount(replicas).tolist() == [len(single)] * 4
    first = by_identity(oversampled[replicas == 0])
    single = by_identity(ak.with_field(single, np.zeros(len(single), np.uint32), "replica"))
    for name in WJETS.feature_names:
        assert np.array_equal(ak.to_numpy(first[name]), ak.to_numpy(single[name])), name


def test_replicas_are_independent(runs):
    _, oversampled = runs[4]
    replicas = ak.to_numpy(oversampled["replica"])
    for name in ("muon_px", "jet_py", "met_x"):
        values = [ak.to_numpy(by_identity(oversampled[replicas == r])[name]) for r in range(4)]
        assert not np.any(values[0] == values[1])
        # Same GEN event, so the replicas share their mean: the differences of disjoint
        # pairs cancel it, and have the same sign half of the time only if the noise is
        # independent (n = 2766: sigma 0.0095; the sign ignores the per-event width).
        same_sign = np.mean(np.sign(values[1] - values[0]) == np.sign(values[3] - values[2]))
        assert abs(same_sign - 0.5) < 0.04, name


def test_weights_and_cutflow(runs):
    output, dataset = runs[4]
    n_selected = output["cutflow"]["gen_selected"]
    assert output["cutflow"]["dl_events"] == 4 * n_selected == len(dataset)
    histogram = output["histograms"]["mt"]
    assert histogram["dl", :].sum(flow=True).value == n_selected
    assert histogram["gen", :].sum(flow=True).value == n_selected
    dl = histogram["dl", :].view(flow=True)
    # Each bin's variance lies between the independent (sum w^2) and the fully
    # correlated (sum w) cases.
    assert np.all(dl.variance >= dl.value / 4)
    assert np.all(dl.variance <= dl.value)
    assert np.any(dl.variance > 1.5 * dl.value / 4)


@pytest.mark.slow
def test_chunking_does_not_change_oversampled_histograms(runs, tmp_path):
    reference, _ = runs[4]
    output, _ = run(tmp_path, 4, chunksize=1100)
    for name, histogram in reference["histograms"].items():
        expected = histogram.view(flow=True)
        got = output["histograms"][name].view(flow=True)
        np.testing.assert_array_equal(got.value, expected.value, name)
        np.testing.assert_array_equal(got.variance, expected.variance, name)


def test_bad_oversample_is_named():
    with pytest.raises(ValueError, match="oversample must be a positive integer, got 0"):
        FastSimConfig(model=embedded_model(), oversample=0)
    with pytest.raises(TypeError, match="oversample must be an integer"):
        FastSimConfig(model=embedded_model(), oversample=2.0)


@pytest.fixture
def one_torch_thread():
    """Many small evaluations: one thread avoids torch's thread start-up on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("oversample", [4, 16])
@pytest.mark.usefixtures("one_torch_thread")
def test_errors_agree_with_the_spread_of_independent_samples(oversample):
    """Over 150 independent GEN samples, the spread of each DL bin content agrees with the
    stored error (pooled over the well-filled bins of two observables); the naive error of
    K weights 1/K per event, sum w^2, is clearly too small."""
    engine = SurrogateEngine(embedded_model(), seed=5)
    measured = measure_errors(
        WJETS, engine, read_features(embedded_sample(), WJETS), oversample, seed=1
    )
    filled = measured.mean > 5
    assert filled.sum() > 20
    # Relative error of the pooled ratio: about sqrt(2 / 149 / n_bins) ~ 2.5 %, bins correlated.
    assert abs(measured.spread[filled].sum() / measured.stored[filled].sum() - 1.0) < 0.12
    assert measured.spread[filled].sum() / measured.naive[filled].sum() > 1.5
