"""Histogram definitions, filling, and the atomic DL dataset writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coffea_fastsim.analysis.histograms import (
    RESIDUAL_PREFIX,
    RESIDUAL_RESOLUTION,
    SAMPLES,
    fill_grouped,
    fill_observables,
    fill_residuals,
    make_histograms,
    relative_residual,
)
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.processing.dataset import chunk_file_name, read_dataset, write_chunk

OBSERVABLE_NAMES = WJETS.observable_names


def test_one_histogram_per_observable_and_residual():
    histograms = make_histograms(WJETS)
    assert set(histograms) == set(OBSERVABLE_NAMES) | {
        f"{RESIDUAL_PREFIX}{n}" for n in OBSERVABLE_NAMES
    }
    for name in OBSERVABLE_NAMES:
        assert list(histograms[name].axes["source"]) == list(SAMPLES)
        assert histograms[name].axes[1].name == name


def test_non_finite_values_are_not_filled():
    histograms = make_histograms(WJETS)
    fill_observables(histograms, "dl", {"muon_pt": np.array([30.0, np.nan, np.inf, 50.0])})
    assert histograms["muon_pt"]["dl", :].sum(flow=True) == 2
    assert histograms["muon_pt"]["gen", :].sum(flow=True) == 0


@pytest.mark.parametrize(
    ("value", "reference", "expected"),
    [
        (110.0, 100.0, 0.1),
        (-0.5, -1.0, -0.5),
        (1.00001, 1.0, 1e-5),  # a response of 1e-5 is kept
        (1e-3 + 9e-7, 1e-3, 0.0),  # below the resolution: rounding, not a response
    ],
)
def test_relative_residual(value, reference, expected):
    assert relative_residual(np.array([value]), np.array([reference]))[0] == pytest.approx(expected)


def test_residuals_are_filled_in_the_right_bin():
    histograms = make_histograms(WJETS)
    fill_residuals(histograms, "reco", {"met": np.array([110.0])}, {"met": np.array([100.0])})
    h = histograms[f"{RESIDUAL_PREFIX}met"]["reco", :]
    assert h.values()[h.axes[0].index(0.1)] == 1


def test_dataset_chunks_are_written_atomically_and_read_back(tmp_path):
    name_a = chunk_file_name("1234-abcd", 0, 10)
    name_b = chunk_file_name("1234-abcd", 10, 20)
    write_chunk(tmp_path, name_b, {"event": np.array([11, 12], dtype=np.uint64), "x": np.ones(2)})
    write_chunk(tmp_path, name_a, {"event": np.array([1], dtype=np.uint64), "x": np.zeros(1)})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name_a, name_b])
    data = read_dataset(tmp_path, files=[tmp_path / name_b, tmp_path / name_a])
    assert data["event"].tolist() == [1, 11, 12]


def test_interrupted_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    name = chunk_file_name("file", 0, 2)
    write_chunk(tmp_path, name, {"event": np.array([1, 2], dtype=np.uint64)})

    def write_half_then_fail(array, path, **kwargs):
        with Path(path).open("wb") as partial:
            partial.write(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr("coffea_fastsim.processing.dataset.ak.to_parquet", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_chunk(tmp_path, name, {"event": np.array([7, 8, 9], dtype=np.uint64)})
    assert [p.name for p in tmp_path.iterdir()] == [name]
    monkeypatch.undo()
    assert read_dataset(tmp_path, files=[tmp_path / name])["event"].tolist() == [1, 2]


def test_reading_an_empty_dataset_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no DL dataset files"):
        read_dataset(tmp_path, files=[])


def test_grouped_fill_sums_each_group_per_bin_before_squaring():
    histogram = make_histograms(WJETS, weighted=True)["muon_pt"]  # 60 bins of 10/3 GeV on [0, 200]
    values = np.array([10.0, 11.0, 50.0, 10.0, 70.0, 250.0, 260.0, np.nan])
    groups = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    fill_grouped(histogram, "dl", "muon_pt", values, groups, weight=0.5)
    view = histogram["dl", :].view(flow=True)
    # Bin [10, 13.3): group 0 twice (1.0), group 1 once (0.5): variance 1.0^2 + 0.5^2.
    assert (view.value[4], view.variance[4]) == (1.5, 1.25)
    assert (view.value[16], view.variance[16]) == (0.5, 0.25)  # 50 GeV, group 0
    assert (view.value[22], view.variance[22]) == (0.5, 0.25)  # 70 GeV, group 1
    assert (view.value[-1], view.variance[-1]) == (1.0, 1.0)  # overflow, group 2 twice
    assert view.value.sum() == 3.5  # the NaN is not filled


@pytest.mark.parametrize("replicas", [1, 4, 16])
def test_grouped_variance_matches_the_spread_of_independent_samples(replicas):
    """Toy: GEN values x ~ N(40, 15), K replicas x + N(0, 5) each with weight 1/K. Over 400
    independent samples of Poisson(500) GEN events (the convention of histogram errors: the
    sample size fluctuates), the spread of each bin content agrees with the mean stored
    error; the naive sum of squared weights underestimates it for K > 1."""
    rng = np.random.default_rng(replicas)
    n_samples = 400
    empty = make_histograms(WJETS, weighted=True)["muon_pt"]
    contents, variances, naive = [], [], []
    for _ in range(n_samples):
        n_events = rng.poisson(500)
        gen = rng.normal(40.0, 15.0, n_events)
        dl = np.repeat(gen, replicas) + rng.normal(0.0, 5.0, n_events * replicas)
        groups = np.repeat(np.arange(n_events), replicas)
        histogram = empty.copy()
        fill_grouped(histogram, "dl", "muon_pt", dl, groups, weight=1.0 / replicas)
        view = histogram["dl", 6:18].view()  # 20 ... 60 GeV, 12 well-filled bins
        contents.append(view.value)
        variances.append(view.variance)
        naive.append(np.full(len(view), 1.0 / replicas) * view.value)
    spread = np.var(contents, axis=0, ddof=1)
    ratio = spread.sum() / np.mean(variances, axis=0).sum()
    # The ratio of variances has a relative error of about sqrt(2 / 400) / sqrt(12 bins).
    assert abs(ratio - 1.0) < 0.1
    naive_ratio = spread.sum() / np.mean(naive, axis=0).sum()
    if replicas > 1:
        assert naive_ratio > 1.5


def _run_folder(tmp_path: Path, rows: int, complete: bool = True) -> Path:
    """A run folder whose manifest lists one chunk file of ``rows`` rows."""
    directory = tmp_path / "dataset" / "events"
    listed = write_chunk(directory, chunk_file_name("f", 0, 2), {"event": np.arange(2)})
    write_chunk(directory, chunk_file_name("f", 0, 1), {"event": np.arange(5)})  # stale
    record = {"dataset_files": [str(listed)], "dataset_rows": rows}
    manifest = {"complete": complete, "datasets": {"events": record}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_only_the_files_the_manifest_lists_are_read(tmp_path):
    assert read_dataset(_run_folder(tmp_path, rows=2))["event"].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("rows", "complete", "message"),
    [(3, True, "hold 2 rows, the manifest says 3"), (2, False, "not complete")],
)
def test_a_dataset_that_does_not_add_up_is_refused(rows, complete, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        read_dataset(_run_folder(tmp_path, rows, complete))


def test_a_dataset_without_its_manifest_is_refused(tmp_path):
    write_chunk(tmp_path / "dataset" / "events", "a.parquet", {"event": np.arange(2)})
    with pytest.raises(FileNotFoundError, match="no manifest"):
        read_dataset(tmp_path / "dataset" / "events")


def test_float32_rounding_of_an_exact_direction_is_no_residual():
    """A detector that measures the muon direction exactly: RECO and DL store it in float32
    through other arithmetic (pT, eta, phi against px, py, pz); their residual is zero."""
    rng = np.random.default_rng(2)
    eta = rng.uniform(-2.4, 2.4, 1000)
    pt = rng.uniform(20.0, 200.0, 1000).astype(np.float32).astype(np.float64)
    pz = (pt * np.sinh(eta)).astype(np.float32).astype(np.float64)
    rounded_eta = np.arcsinh(pz / pt)
    assert np.abs(rounded_eta - eta).max() > 0
    np.testing.assert_array_equal(relative_residual(rounded_eta, eta), 0.0)
    assert RESIDUAL_RESOLUTION < 1e-5
