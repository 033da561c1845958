"""Faults injected on purpose: bad inputs, crashed workers, interrupted runs, device errors.

Each test checks that the tool either gives a clear error naming the file, branch or
argument, or completes with the same result as an undisturbed run and reports what happened.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import awkward as ak
import cloudpickle
import numpy as np
import pytest
import torch
import uproot
from samples import copy_sample

from coffea_fastsim.analysis.reading import InputFileError, read_features
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.cli import main
from coffea_fastsim.processing.dataset import read_dataset
from coffea_fastsim.processing.manifest import build_manifest, manifest_notes, manifest_problems
from coffea_fastsim.processing.processor import FastSimConfig, FastSimProcessor
from coffea_fastsim.processing.runner import make_fileset, run_processor
from coffea_fastsim.surrogate import inference
from coffea_fastsim.surrogate.inference import SurrogateEngine

# Workers unpickle the fault-injecting processors below by value, not by module name.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def config(embedded_model, tmp_path):
    return FastSimConfig(model=embedded_model, seed=3, output_dir=tmp_path / "dataset")


def run(sample, config, **options):
    return run_processor(
        {"wjets": [str(sample)]}, FastSimProcessor(config), status=False, chunksize=200, **options
    )


# 1. Bad input catalogue ----------------------------------------------------------------


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputFileError, match=r"not found: .*absent\.root"):
        make_fileset([tmp_path / "absent.root"])


@pytest.mark.parametrize("fraction", [0.2, 0.6, 0.95])
def test_truncated_file_is_named(fraction, embedded_sample, tmp_path):
    data = embedded_sample.read_bytes()
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(InputFileError, match=r"truncated\.root"):
        make_fileset([truncated])


def test_corrupted_file_is_named(tmp_path):
    corrupted = tmp_path / "corrupted.root"
    corrupted.write_bytes(np.random.default_rng(1).bytes(10_000))
    with pytest.raises(InputFileError, match=r"corrupted\.root is not a readable ROOT file"):
        make_fileset([corrupted])


def test_file_without_events_tree_lists_its_keys(tmp_path):
    path = tmp_path / "other.root"
    with uproot.recreate(path) as file:
        file["Runs"] = {"run": np.array([1], dtype=np.uint32)}
    with pytest.raises(InputFileError, match=r"no 'Events' tree \(keys: Runs"):
        make_fileset([path])


def test_missing_gen_branches_are_named(embedded_sample, tmp_path):
    path = copy_sample(embedded_sample, tmp_path / "nojets.root", drop=("GenJet",))
    with pytest.raises(InputFileError, match=r"nojets\.root lacks GEN branches.*GenJet_pt"):
        make_fileset([path])


def test_empty_file_gives_empty_outputs(embedded_sample, config, tmp_path):
    def no_events(content):
        return {name: value[:0] for name, value in content.items()}

    path = copy_sample(embedded_sample, tmp_path / "empty.root", transform=no_events)
    result = run(make_fileset([path])["events"][0], config)
    manifest = build_manifest({"wjets": [str(path)]}, result.output, {}, seed=3)
    assert manifest_problems(manifest) == []
    assert manifest["datasets"]["wjets"]["files"][0]["entries_in_file"] == 0


def test_non_finite_inputs_are_counted_and_never_filled(embedded_sample, config, tmp_path):
    features = read_features(embedded_sample, WJETS)
    selected_event = int(features.event[0])

    def poison(content):
        content["GenMET_pt"] = np.where(
            content["event"] == selected_event, np.nan, content["GenMET_pt"]
        )
        content["GenMET_phi"] = np.where(
            content["event"] == selected_event + 1, np.inf, content["GenMET_phi"]
        ).astype(np.float32)
        content["GenMET_pt"] = content["GenMET_pt"].astype(np.float32)
        return content

    path = copy_sample(embedded_sample, tmp_path / "poisoned.root", transform=poison)
    result = run(path, config).output["wjets"]
    poisoned = read_features(path, WJETS)
    assert result["cutflow"]["gen_nonfinite"] == 2
    assert result["cutflow"]["gen_selected"] == len(poisoned)
    assert len(poisoned) in (len(features) - 1, len(features) - 2)
    for histogram in result["histograms"].values():
        assert np.isfinite(histogram.values(flow=True)).all()
    dataset = read_dataset(tmp_path / "dataset" / "wjets", files=result["dataset_files"])
    assert selected_event not in dataset["event"].to_numpy()
    assert all(np.isfinite(dataset[name].to_numpy()).all() for name in ak.fields(dataset))
    manifest = build_manifest({"wjets": [str(path)]}, {"wjets": result}, {}, seed=3)
    assert any("2 events excluded" in note for note in manifest_notes(manifest))


def test_model_that_is_not_a_model_is_refused(tmp_path):
    fake = tmp_path / "model.pt"
    fake.write_text("not a model")
    with pytest.raises(ValueError, match=r"model\.pt"):
        FastSimProcessor(FastSimConfig(model=fake))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunk_size": 0}, "chunk_size must be positive"),
        ({"chunk_size": -5}, "chunk_size must be positive"),
        ({"device": "tpu"}, "device"),
        ({"threads": 0}, "threads must be a positive integer"),
    ],
)
def test_bad_arguments_are_named(options, message, embedded_model):
    with pytest.raises(ValueError, match=message):
        FastSimProcessor(FastSimConfig(model=embedded_model, **options))


# 2. Determinism across executors, worker counts and reruns ---------------------------------


@pytest.mark.slow
def test_dataset_is_identical_across_executors_and_workers(
    embedded_sample, embedded_model, tmp_path
):
    datasets = []
    for index, (executor, workers) in enumerate(
        [("iterative", 1), ("futures", 1), ("futures", 2), ("iterative", 1)]
    ):
        output_dir = tmp_path / f"run{index}"
        config = FastSimConfig(model=embedded_model, seed=3, output_dir=output_dir, threads=1)
        run(embedded_sample, config, executor=executor, workers=workers)
        datasets.append({p.name: p.read_bytes() for p in (output_dir / "wjets").iterdir()})
    assert all(dataset == datasets[0] for dataset in datasets[1:])


# 3. A dask worker killed in the middle of a run -------------------------------------------


class DyingOnceProcessor(FastSimProcessor):
    """Kills its worker process the first time it sees the first chunk."""

    def __init__(self, config: FastSimConfig, marker: Path) -> None:
        super().__init__(config)
        self.marker = marker

    def process(self, events):
        if events.metadata["entrystart"] == 0 and not self.marker.exists():
            self.marker.touch()
            os._exit(1)
        return super().process(events)


@pytest.mark.slow
def test_killed_dask_worker_is_retried_and_reported(embedded_sample, embedded_model, tmp_path):
    reference = run(embedded_sample, FastSimConfig(model=embedded_model, seed=3)).output["wjets"]
    marker = tmp_path / "killed"
    processor_instance = DyingOnceProcessor(FastSimConfig(model=embedded_model, seed=3), marker)
    result = run_processor(
        {"wjets": [str(embedded_sample)]},
        processor_instance,
        executor="dask",
        workers=2,
        chunksize=200,
        status=False,
    )
    assert marker.exists()
    assert len(result.lost_workers) == 1
    output = result.output["wjets"]
    assert output["cutflow"] == reference["cutflow"]
    for name, histogram in reference["histograms"].items():
        np.testing.assert_array_equal(output["histograms"][name].values(), histogram.values())


# 4. Nothing lost: resume after an interruption, and the manifest -----------------------------


class FailingProcessor(FastSimProcessor):
    """Fails on the chunk starting at ``fail_at`` while ``log_dir/interrupt`` exists (all
    retries too), as a run killed there would; logs every chunk it computes."""

    def __init__(self, config: FastSimConfig, log_dir: Path, fail_at: int) -> None:
        super().__init__(config)
        self.log_dir = log_dir
        self.fail_at = fail_at

    def process(self, events):
        start = events.metadata["entrystart"]
        if start == self.fail_at and (self.log_dir / "interrupt").exists():
            raise RuntimeError("interrupted")
        (self.log_dir / f"computed-{start}-{len(list(self.log_dir.iterdir()))}").touch()
        return super().process(events)


def test_interrupted_run_resumes_only_missing_chunks(embedded_sample, embedded_model, tmp_path):
    reference = run(embedded_sample, FastSimConfig(model=embedded_model, seed=3)).output["wjets"]
    logs = tmp_path / "logs"
    logs.mkdir()
    config = FastSimConfig(model=embedded_model, seed=3, output_dir=tmp_path / "dataset")
    options = {"checkpoint_dir": tmp_path / "checkpoints"}
    processor_instance = FailingProcessor(config, logs, fail_at=400)
    (logs / "interrupt").touch()
    with pytest.raises(Exception, match="interrupted"):
        run_processor(
            {"wjets": [str(embedded_sample)]},
            processor_instance,
            status=False,
            chunksize=200,
            **options,
        )
    first = sorted(p.name.split("-")[1] for p in logs.glob("computed-*"))
    assert first == ["0", "200"]
    (logs / "interrupt").unlink()
    result = run_processor(
        {"wjets": [str(embedded_sample)]},
        processor_instance,
        status=False,
        chunksize=200,
        **options,
    ).output["wjets"]
    computed = sorted(int(p.name.split("-")[1]) for p in logs.glob("computed-*"))
    assert computed == [0, 200, 400]  # chunks 0 and 200 came from their checkpoints
    assert result["cutflow"] == reference["cutflow"]
    for name, histogram in reference["histograms"].items():
        np.testing.assert_array_equal(result["histograms"][name].values(), histogram.values())
    dataset = read_dataset(tmp_path / "dataset" / "wjets", files=result["dataset_files"])
    assert len(dataset) == reference["cutflow"]["gen_selected"]


def test_checkpoint_without_its_dataset_file_is_recomputed(
    embedded_sample, embedded_model, tmp_path
):
    config = FastSimConfig(model=embedded_model, seed=3, output_dir=tmp_path / "dataset")
    options = {"checkpoint_dir": tmp_path / "checkpoints"}
    first = run(embedded_sample, config, **options).output["wjets"]
    lost = Path(first["dataset_files"][1])
    lost.unlink()
    second = run(embedded_sample, config, **options).output["wjets"]
    assert lost.is_file()
    assert second["cutflow"] == first["cutflow"]


def test_skipped_bad_file_is_in_the_manifest_and_fails_the_cli(
    embedded_sample, embedded_model, tmp_path
):
    bad = tmp_path / "bad.root"
    bad.write_bytes(embedded_sample.read_bytes()[:20_000])
    out = tmp_path / "out"
    argv = [
        "run", str(embedded_sample), str(bad), "--model", str(embedded_model), "-o", str(out),
        "--executor", "iterative", "--chunksize", "200", "--skip-bad-files",
    ]  # fmt: skip
    assert main(argv) == 1
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    files = {Path(f["path"]).name: f for f in manifest["datasets"]["events"]["files"]}
    assert files["bad.root"]["status"] in ("unreadable", "skipped")
    assert files[embedded_sample.name]["status"] == "complete"
    assert manifest["datasets"]["events"]["dataset_rows_match_selected"] is True


# 5. Device faults -------------------------------------------------------------------------


def test_out_of_memory_halves_the_chunk_and_gives_the_same_output(embedded_model, monkeypatch):
    rows = SurrogateEngine(embedded_model).evaluation_rows
    n_events = 5 * rows
    features = read_features_like(np.random.default_rng(0), n_events)
    ids = np.arange(n_events, dtype=np.uint64)
    engine = SurrogateEngine(embedded_model, chunk_size=4 * rows, seed=1)
    expected = engine.predict(features, ids, ids, ids)
    evaluate = inference._evaluate_blocks
    sizes = []

    def small_device(module, weights, x_gen, eps, rows):
        sizes.append(len(x_gen))
        if len(x_gen) > 1.5 * rows:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return evaluate(module, weights, x_gen, eps, rows)

    monkeypatch.setattr(inference, "_evaluate_blocks", small_device)
    np.testing.assert_array_equal(engine.predict(features, ids, ids, ids), expected)
    assert sizes[:3] == [4 * rows, 2 * rows, rows]


def test_out_of_memory_below_the_floor_fails_clearly(embedded_model, monkeypatch):
    def no_memory(module, weights, x_gen, eps, rows):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(inference, "_evaluate_blocks", no_memory)
    rows = SurrogateEngine(embedded_model).evaluation_rows
    engine = SurrogateEngine(embedded_model, chunk_size=8 * rows)
    ids = np.arange(10, dtype=np.uint64)
    with pytest.raises(RuntimeError, match=f"chunks of {rows} events"):
        engine.predict(read_features_like(np.random.default_rng(1), 10), ids, ids, ids)


def test_auto_device_falls_back_to_cpu_without_cuda(embedded_model):
    engine = SurrogateEngine(embedded_model, device="auto")
    assert engine.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def read_features_like(rng: np.random.Generator, n: int) -> np.ndarray:
    """Plausible GEN feature vectors (GeV), shape (n, 9)."""
    values = rng.normal(0.0, 40.0, size=(n, 9))
    values[:, 6] = rng.uniform(1.0, 3.0, size=n)
    return values
