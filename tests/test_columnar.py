"""The dask-awkward mode: the same DL values and histograms as the coffea Runner."""

from __future__ import annotations

import pickle

import awkward as ak
import dask
import dask_awkward as dak
import numpy as np
import pytest
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_fastsim.analysis.features import ID_FIELDS, gen_fields
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.embedded import embedded_model, embedded_sample
from coffea_fastsim.processing import columnar
from coffea_fastsim.processing.dataset import read_dataset
from coffea_fastsim.processing.processor import FastSimConfig, FastSimProcessor
from coffea_fastsim.processing.runner import make_fileset, run_processor

SEED = 3


@pytest.fixture(scope="module")
def config() -> FastSimConfig:
    return FastSimConfig(model=embedded_model(), seed=SEED)


@pytest.fixture(scope="module")
def runner_output(tmp_path_factory):
    """The Runner on the embedded sample, in chunks of 3000 events, with its DL dataset."""
    directory = tmp_path_factory.mktemp("runner") / "dataset"
    config = FastSimConfig(model=embedded_model(), seed=SEED, output_dir=directory)
    fileset = make_fileset([embedded_sample()], "wjets")
    result = run_processor(fileset, FastSimProcessor(config), chunksize=3000, status=False)
    output = result.output["wjets"]
    files = output["dataset_files"]
    return output, read_dataset(directory / "wjets", auxiliary=False, files=files)


@pytest.fixture(scope="module")
def dask_events():
    """The embedded sample as NanoEvents in dask mode, in 3 partitions (not the Runner's)."""
    steps = [[0, 1500], [1500, 4100], [4100, 8000]]
    return NanoEventsFactory.from_root(
        {str(embedded_sample()): {"object_path": "Events", "steps": steps}},
        schemaclass=NanoAODSchema,
        mode="dask",
    ).events()


def sorted_by_identity(array: ak.Array) -> ak.Array:
    order = np.lexsort([ak.to_numpy(array[name]) for name in reversed(ID_FIELDS)])
    return array[order]


def test_dl_features_equal_the_runner_bitwise(dask_events, config, runner_output):
    _, dataset = runner_output
    dl = sorted_by_identity(columnar.dl_features(dask_events, config).compute())
    expected = sorted_by_identity(dataset)
    assert len(dl) == len(expected) > 2000
    for name in ID_FIELDS:
        np.testing.assert_array_equal(ak.to_numpy(dl[name]), ak.to_numpy(expected[name]))
    for name in WJETS.feature_names:
        values = ak.to_numpy(dl[name])
        assert values.dtype == np.float32
        assert np.array_equal(values, ak.to_numpy(expected[name])), name


def test_histograms_equal_the_runners(dask_events, config, runner_output):
    output, _ = runner_output
    (computed,) = dask.compute(columnar.fill_histograms(dask_events, config))
    assert computed["histograms"].keys() == output["histograms"].keys()
    for name, histogram in output["histograms"].items():
        np.testing.assert_array_equal(
            computed["histograms"][name].values(flow=True), histogram.values(flow=True), name
        )
    for key, value in computed["cutflow"].items():
        assert value == output["cutflow"][key], key


def test_dl_features_read_only_the_gen_branches(dask_events, config):
    dl = columnar.dl_features(dask_events, config)
    (read,) = dak.necessary_columns(dl).values()
    gen = {f"{c}_{f}" for c, fields in gen_fields(WJETS).items() for f in fields}
    counters = {f"n{c}" for c in ("GenPart", "GenJet")}
    assert set(read) == gen | set(ID_FIELDS) | counters


def test_the_graph_holds_no_model(config):
    function = columnar._PartitionSimulation(config, ("dl",))
    columnar._engine(config)  # loaded in this process ...
    # ... but not in what the graph ships: the configuration and its analysis definition.
    assert len(pickle.dumps(function)) < 5000


def test_the_model_is_loaded_once_per_process(config):
    assert columnar._engine(config) is columnar._engine(config)


def test_eager_events_are_refused(config):
    events = NanoEventsFactory.from_root(
        {str(embedded_sample()): "Events"}, schemaclass=NanoAODSchema, mode="eager", entry_stop=10
    ).events()
    with pytest.raises(TypeError, match=r"dask_awkward\.Array"):
        columnar.dl_features(events, config)
