"""NanoAOD-like inputs whose Events is an RNTuple give the outputs of their TTree twin."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from coffea_fastsim.analysis.reading import (
    InputFileError,
    check_input_file,
    is_rntuple,
    read_features,
)
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.embedded import embedded_model, embedded_sample
from coffea_fastsim.processing.dataset import read_dataset
from coffea_fastsim.processing.processor import FastSimConfig, FastSimProcessor
from coffea_fastsim.processing.runner import make_fileset, run_processor

N_EVENTS = 3000


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> dict[str, object]:
    """The first events of the embedded sample, written by uproot as a TTree and as an
    RNTuple with the same NanoAOD branch names."""
    with uproot.open(embedded_sample()) as file:
        arrays = file["Events"].arrays(entry_stop=N_EVENTS)
    directory = tmp_path_factory.mktemp("twins")
    collections = {name.split("_")[0] for name in arrays.fields if "_" in name}
    jagged = {c for c in collections if f"n{c}" in arrays.fields}
    tree = {
        c: ak.zip({n.split("_", 1)[1]: arrays[n] for n in arrays.fields if n.startswith(f"{c}_")})
        for c in jagged
    }
    # uproot writes the counters nGenPart ... of the zipped collections itself.
    flat = [n for n in arrays.fields if n.split("_")[0] not in jagged and n[1:] not in jagged]
    tree.update({n: arrays[n] for n in flat})
    with uproot.recreate(directory / "ttree.root") as file:
        file.mktree("Events", {name: values.type.content for name, values in tree.items()})
        file["Events"].extend(tree)
    with uproot.recreate(directory / "rntuple.root") as file:
        file.mkrntuple("Events", {name: arrays[name] for name in arrays.fields})
    return {"ttree": directory / "ttree.root", "rntuple": directory / "rntuple.root"}


def test_the_twins_hold_a_ttree_and_an_rntuple(twins):
    for kind, path in twins.items():
        with uproot.open(path) as file:
            assert is_rntuple(file["Events"]) == (kind == "rntuple")
            assert file["Events"].num_entries == N_EVENTS


def test_features_are_the_same(twins):
    """What train and validate read (``read_features``) does not depend on the format."""
    ttree, rntuple = (read_features(twins[kind], WJETS) for kind in ("ttree", "rntuple"))
    assert len(ttree) > 500
    for name in ("run", "luminosity_block", "event", "gen", "reco", "reco_valid"):
        np.testing.assert_array_equal(getattr(rntuple, name), getattr(ttree, name), name)


def test_runner_outputs_are_the_same(twins, tmp_path):
    outputs = {}
    for kind, path in twins.items():
        directory = tmp_path / kind
        config = FastSimConfig(model=embedded_model(), seed=1, output_dir=directory)
        result = run_processor(
            make_fileset([path], "wjets"), FastSimProcessor(config), chunksize=700, status=False
        )
        files = result.output["wjets"]["dataset_files"]
        outputs[kind] = (result.output["wjets"], read_dataset(directory / "wjets", files=files))
    (ttree, ttree_dataset), (rntuple, rntuple_dataset) = outputs["ttree"], outputs["rntuple"]
    assert rntuple["cutflow"] == ttree["cutflow"]
    for name, histogram in ttree["histograms"].items():
        np.testing.assert_array_equal(
            rntuple["histograms"][name].view(flow=True), histogram.view(flow=True), name
        )
    assert ak.array_equal(rntuple_dataset, ttree_dataset)


def test_a_truncated_rntuple_is_refused(twins, tmp_path):
    data = twins["rntuple"].read_bytes()
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match=str(truncated)):
        check_input_file(truncated)


def test_pages_beyond_the_end_of_the_file_are_refused(twins, tmp_path):
    """A page list that points past the end (a file cut after its footer was copied)."""
    from coffea_fastsim.analysis.reading import _check_pages_inside

    with uproot.open(twins["rntuple"]) as file:
        ntuple = file["Events"]
        last = max(
            page.locator.offset + page.locator.num_bytes
            for cluster in ntuple.page_link_list
            for pages in cluster
            for page in pages.pages
        )
        _check_pages_inside(ntuple, twins["rntuple"], last)
        with pytest.raises(InputFileError, match=r"truncated: field \w+ has data beyond"):
            _check_pages_inside(ntuple, twins["rntuple"], last - 1)
