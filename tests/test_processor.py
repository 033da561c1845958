"""FastSimProcessor under coffea's Runner: executors, chunking, real NanoAOD, outputs."""

from __future__ import annotations

import os
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from coffea_fastsim.analysis.reading import read_features
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.processing.dataset import read_dataset
from coffea_fastsim.processing.processor import FastSimConfig, FastSimProcessor
from coffea_fastsim.processing.runner import WORKER_ENVIRONMENT, make_fileset, run_processor
from coffea_fastsim.surrogate.inference import SurrogateEngine
from processors.wjets import WJetsProcessor

OBSERVABLE_NAMES = WJETS.observable_names


def run(
    sample, model, tmp_path, executor="iterative", chunksize=250, processor_class=FastSimProcessor
):
    config = FastSimConfig(model=model, chunk_size=64, seed=3, output_dir=tmp_path / "dataset")
    result = run_processor(
        make_fileset([sample], "wjets"),
        processor_class(config),
        executor=executor,
        workers=2,
        chunksize=chunksize,
        status=False,
    )
    return result.output["wjets"]


def histogram_contents(result):
    return {name: h.view(flow=True).copy() for name, h in result["histograms"].items()}


@pytest.fixture(scope="module")
def reference(embedded_sample, embedded_model, tmp_path_factory):
    """The iterative run with one chunk per 250 events."""
    return run(embedded_sample, embedded_model, tmp_path_factory.mktemp("reference"))


def assert_same_histograms(result, reference):
    contents, expected = histogram_contents(result), histogram_contents(reference)
    assert contents.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(contents[name], expected[name], err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["futures", "dask"])
def test_executors_give_identical_histograms(
    executor, embedded_sample, embedded_model, reference, tmp_path
):
    result = run(embedded_sample, embedded_model, tmp_path, executor=executor)
    assert_same_histograms(result, reference)
    assert result["cutflow"] == reference["cutflow"]


def _worker_environment() -> dict[str, str | None]:
    names = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    return {name: os.environ.get(name) for name in names}


@pytest.mark.slow
def test_the_local_cluster_workers_get_the_worker_environment(monkeypatch):
    """A run's LocalCluster gives its workers glibc's largest mmap threshold next to dask's
    trim threshold; a value in the user's dask configuration wins."""
    import dask

    from coffea_fastsim.processing.runner import _dask_client

    # dask's nanny lets the parent's environment override its configuration, and leaves
    # what it spawned with there: start each cluster from a parent without the variable
    # (set first, so that the test's end restores the parent's environment as it was).
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "0")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    with _dask_client(1, None) as client:
        (seen,) = client.run(_worker_environment).values()
    # 32 MiB, the largest that glibc takes on 64-bit systems
    assert seen == {**WORKER_ENVIRONMENT, "MALLOC_TRIM_THRESHOLD_": "65536"}
    assert seen["MALLOC_MMAP_THRESHOLD_"] == str(32 * 2**20)
    user = {"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": "1048576"}
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    with dask.config.set(user), _dask_client(1, None) as client:
        (seen,) = client.run(_worker_environment).values()
    assert seen["MALLOC_MMAP_THRESHOLD_"] == "1048576"


@pytest.mark.parametrize("chunksize", [97, 600])
def test_runner_chunking_does_not_change_results(
    chunksize, embedded_sample, embedded_model, reference, tmp_path
):
    result = run(embedded_sample, embedded_model, tmp_path, chunksize=chunksize)
    assert_same_histograms(result, reference)
    dataset = read_dataset(tmp_path / "dataset" / "wjets", files=result["dataset_files"])
    expected = read_dataset(tmp_path, files=reference["dataset_files"])
    for field in ("event", *OBSERVABLE_NAMES):
        np.testing.assert_array_equal(
            dataset[field].to_numpy(), expected[field].to_numpy(), err_msg=field
        )


def test_outputs_match_the_input(embedded_sample, embedded_model, reference):
    features = read_features(embedded_sample, WJETS)
    assert reference["cutflow"] == {
        "input": features.n_input,
        "gen_nonfinite": 0,
        "gen_selected": len(features),
        "reco_matched": int(features.reco_valid.sum()),
        "dl_events": len(features),
        "dl_nonfinite": 0,
    }
    assert reference["files"] == {
        str(embedded_sample): {"entries": features.n_input, "gen_selected": len(features)}
    }
    histograms = reference["histograms"]
    for name in OBSERVABLE_NAMES:
        # Every selected event is filled unless its value falls outside the finite range.
        assert histograms[name]["gen", :].sum(flow=True) == len(features)
        assert histograms[name]["dl", :].sum(flow=True) == len(features)
        assert histograms[name]["reco", :].sum(flow=True) == features.reco_valid.sum()
    gen = WJETS.observables_of(features.gen)
    counts = histograms["muon_pt"]["gen", :]
    expected, _ = np.histogram(gen["muon_pt"], bins=counts.axes[0].edges)
    np.testing.assert_array_equal(counts.values(), expected)


def test_dataset_holds_the_engine_output(embedded_sample, embedded_model, reference):
    dataset = read_dataset(
        Path(reference["dataset_files"][0]).parent, files=reference["dataset_files"]
    )
    features = read_features(embedded_sample, WJETS)
    order = np.argsort(features.event)
    assert dataset["event"].to_numpy().tolist() == features.event[order].tolist()
    engine = SurrogateEngine(embedded_model, seed=3)
    dl = engine.predict(features.gen, features.run, features.luminosity_block, features.event)[
        order
    ]
    for i, name in enumerate(("muon_px", "muon_py", "muon_pz")):
        np.testing.assert_array_equal(dataset[name].to_numpy(), dl[:, i])
    assert set(ak.fields(dataset)) == {"run", "luminosityBlock", "event", *OBSERVABLE_NAMES}


@pytest.mark.parametrize(("name", "n_selected"), [("nano_dy.root", 5), ("pfnano.root", 0)])
def test_real_nanoaod(name, n_selected, real_nanoaod, embedded_model, tmp_path):
    result = run(real_nanoaod / name, embedded_model, tmp_path, processor_class=WJetsProcessor)
    assert result["cutflow"]["gen_selected"] == n_selected
    assert result["histograms"]["jet_pt"]["dl", :].sum(flow=True) == n_selected
    assert len(result["dataset_files"]) == 1
    files = result["dataset_files"]
    assert len(read_dataset(tmp_path / "dataset" / "wjets", files=files)) == n_selected


def test_wjets_processor_adds_the_signal_region(embedded_sample, embedded_model, tmp_path):
    result = run(embedded_sample, embedded_model, tmp_path, processor_class=WJetsProcessor)
    features = read_features(embedded_sample, WJETS)
    gen = WJETS.observables_of(features.gen)
    expected = int(((gen["mt"] > 50.0) & (gen["jet_pt"] > 40.0)).sum())
    assert result["signal_region_yields"]["gen"] == expected
    assert result["signal_region_mt"]["gen", :].sum(flow=True) == expected
