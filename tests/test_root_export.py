"""ROOT export: every histogram as TH1D, read back by uproot with its contents and errors."""

from __future__ import annotations

import hist
import numpy as np
import pytest
import uproot

from coffea_fastsim.analysis.histograms import RESIDUAL_SAMPLES, SAMPLES, make_histograms
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.cli import main
from coffea_fastsim.embedded import embedded_model, embedded_sample
from coffea_fastsim.processing.root_export import root_name, write_root_histograms


@pytest.fixture
def output() -> dict:
    """Two datasets; one histogram filled with weights so that variance != content."""
    rng = np.random.default_rng(7)
    datasets = {}
    for dataset in ("wjets", "other"):
        histograms = make_histograms(WJETS)
        histograms["muon_pt"].fill(source="dl", muon_pt=rng.normal(40, 30, 500))
        histograms["residual_mt"].fill(source="reco", residual_mt=rng.normal(0, 0.5, 300))
        weighted = hist.Hist.new.StrCat(["dl"], name="source").Reg(10, 0, 1, name="x").Weight()
        weighted.fill(source="dl", x=rng.uniform(-0.1, 1.1, 200), weight=rng.uniform(0, 2, 200))
        histograms["weighted"] = weighted
        datasets[dataset] = {"histograms": histograms}
    return datasets


def test_every_histogram_reads_back_equal(output, tmp_path):
    path = write_root_histograms(output, tmp_path / "histograms.root")
    with uproot.open(path) as file:
        names = set(file.keys(cycle=False, recursive=True)) - {"wjets", "other"}
        assert len(names) == 2 * (20 * len(SAMPLES) + 20 * len(RESIDUAL_SAMPLES) + 1)
        for dataset, dataset_output in output.items():
            for name, histogram in dataset_output["histograms"].items():
                for source in histogram.axes["source"]:
                    expected = histogram[{"source": source}]
                    written = file[root_name(dataset, name, source)]
                    assert written.classname == "TH1D"
                    np.testing.assert_array_equal(
                        written.values(flow=True), expected.values(flow=True)
                    )
                    axis = expected.axes[0]
                    assert (written.axis().member("fNbins"), written.axis().member("fXmin")) == (
                        axis.size,
                        axis.edges[0],
                    )
                    assert written.axis().member("fXmax") == axis.edges[-1]
                    variances = expected.variances(flow=True)
                    np.testing.assert_allclose(written.variances(flow=True), variances, rtol=1e-15)
        weighted = file["wjets/weighted__dl"]
        assert not np.allclose(weighted.variances(), weighted.values())
        assert file["wjets/muon_pt__dl"].values().sum() > 400


def test_two_dimensional_histograms_become_th2d(tmp_path):
    h = hist.Hist.new.StrCat(["dl"], name="source").Reg(4, 0, 4, name="a").Reg(3, 0, 3, name="b")
    h = h.Double().fill(source="dl", a=[0.5, 1.5, 1.5], b=[0.5, 2.5, 2.5])
    path = write_root_histograms({"d": {"histograms": {"ab": h}}}, tmp_path / "h.root")
    with uproot.open(path) as file:
        assert file["d/ab__dl"].classname == "TH2D"
        np.testing.assert_array_equal(file["d/ab__dl"].values(), h["dl", :, :].values())


def test_a_histogram_without_source_axis_is_named(tmp_path):
    h = hist.Hist.new.Reg(4, 0, 4, name="a").Double()
    with pytest.raises(ValueError, match="d/a has no 'source' axis"):
        write_root_histograms({"d": {"histograms": {"a": h}}}, tmp_path / "h.root")


def test_run_writes_the_root_file(tmp_path, capsys):
    root = tmp_path / "fit" / "histograms.root"
    status = main(
        [
            "run",
            str(embedded_sample()),
            "--model",
            str(embedded_model()),
            "-o",
            str(tmp_path / "out"),
            "--executor",
            "iterative",
            "--no-dataset",
            "--root",
            str(root),
        ]
    )
    assert status == 0
    assert f"ROOT histograms: {root}" in capsys.readouterr().out
    with uproot.open(root) as file:
        assert file["events/mt__dl"].values().sum() > 2000
