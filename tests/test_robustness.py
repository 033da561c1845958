"""A run's outputs are exactly its inputs' events, or it says why not.

One test (or more) per misuse that once gave wrong outputs with exit status 0: reruns into
the same folder, the same file twice, truncated copies, repeated event identities,
interrupts and kills, unusable output folders, every input bad, non-finite models. Each
runs the command line on the embedded sample (8000 events) and model.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import uproot
from coffea.util import load
from samples import copy_sample

from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.cli import main
from coffea_fastsim.embedded import embedded_model, embedded_sample
from coffea_fastsim.processing.dataset import read_dataset
from coffea_fastsim.processing.runner import _worker_initializer

SELECTED = 2766  # GEN-selected events of the embedded sample
REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    """The embedded sample and model copied in as a new user would."""
    sample, model = tmp_path / "wjets_sample.root", tmp_path / "wjets_model.pt"
    shutil.copy(embedded_sample(), sample)
    shutil.copy(embedded_model(), model)
    return sample, model


def run(sample_or_samples, model: Path, output: Path, *options: str) -> int:
    samples = sample_or_samples if isinstance(sample_or_samples, list) else [sample_or_samples]
    argv = ["run", *map(str, samples), "--model", str(model), "-o", str(output)]
    return main([*argv, "--executor", "iterative", *options])


def dataset_bytes(output: Path) -> dict[str, bytes]:
    manifest = json.loads((output / "manifest.json").read_text())
    files = manifest["datasets"]["events"]["dataset_files"]
    return {Path(name).name: Path(name).read_bytes() for name in files}


# 1. Reruns with another configuration -------------------------------------------------


def test_rerun_with_another_seed_is_refused_or_replaces_everything(inputs, tmp_path, capsys):
    sample, model = inputs
    out = tmp_path / "X"
    assert run(sample, model, out, "--seed", "0") == 0
    seed0 = dataset_bytes(out)
    assert run(sample, model, out, "--seed", "1") == 2
    error = capsys.readouterr().err
    assert str(out) in error
    assert "seed" in error
    assert "--replace" in error
    assert run(sample, model, out, "--seed", "1", "--replace") == 0
    assert dataset_bytes(out) != seed0
    assert run(sample, model, out, "--seed", "0", "--replace") == 0
    assert dataset_bytes(out) == seed0
    assert json.loads((out / "manifest.json").read_text())["seed"] == 0


# 2. Reruns with another chunking, or a failing rerun --------------------------------------


def test_rerun_with_another_chunk_size_reads_back_each_event_once(inputs, tmp_path):
    sample, model = inputs
    out = tmp_path / "S"
    assert run(sample, model, out) == 0
    assert run(sample, model, out, "--chunksize", "3000") == 0
    assert len(read_dataset(out / "dataset" / "events")) == SELECTED
    assert len(list((out / "dataset" / "events").glob("*.parquet"))) == 3


def test_failed_rerun_leaves_nothing_that_looks_complete(inputs, tmp_path, monkeypatch):
    sample, model = inputs
    out = tmp_path / "S"
    assert run(sample, model, out) == 0

    def fail(*args, **kwargs):
        raise RuntimeError("writer failed")

    monkeypatch.setattr("coffea_fastsim.processing.processor.write_chunk", fail)
    assert run(sample, model, out, "--no-resume") == 2
    assert not (out / "manifest.json").exists()
    with pytest.raises(FileNotFoundError, match="manifest"):
        read_dataset(out / "dataset" / "events")


# 3. The same file twice -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["same path", "copy"])
def test_the_same_file_twice_is_refused_naming_both(how, inputs, tmp_path, capsys):
    sample, model = inputs
    second = sample if how == "same path" else shutil.copy(sample, tmp_path / "other.root")
    assert run([sample, second], model, tmp_path / "out") == 2
    error = capsys.readouterr().err
    assert str(sample) in error
    assert str(second) in error
    assert not (tmp_path / "out" / "histograms.coffea").exists()


# 4. A truncated copy next to the good file ------------------------------------------------


def test_truncated_copy_is_never_counted_as_the_good_file(inputs, tmp_path):
    sample, model = inputs
    truncated = tmp_path / "trunc.root"
    truncated.write_bytes(sample.read_bytes()[:1_100_000])
    out = tmp_path / "out"
    for _ in range(2):  # the rerun resumes from checkpoints: still counted once
        assert run([sample, truncated], model, out, "--skip-bad-files") == 1
        assert load(out / "histograms.coffea")["events"]["cutflow"]["input"] == 8000
    manifest = json.loads((out / "manifest.json").read_text())
    status = {Path(f["path"]).name: f["status"] for f in manifest["datasets"]["events"]["files"]}
    assert status == {sample.name: "complete", "trunc.root": "unreadable"}


def test_checkpoints_are_keyed_by_content_not_by_uuid(inputs, tmp_path):
    from coffea_fastsim.processing.checkpoint import ChunkCheckpointer
    from coffea_fastsim.processing.processor import FastSimConfig, FastSimProcessor

    sample, model = inputs
    truncated = tmp_path / "trunc.root"
    truncated.write_bytes(sample.read_bytes()[:1_100_000])
    checkpointer = ChunkCheckpointer(tmp_path / "checkpoints")
    processor = FastSimProcessor(FastSimConfig(model=model))
    with uproot.open(sample) as file:
        uuid = str(file.file.uuid)
    paths = {
        checkpointer.path(
            {"dataset": "d", "filename": str(path), "fileuuid": uuid, "entrystart": 0,
             "entrystop": 100},
            processor,
        )
        for path in (sample, truncated)
    }  # fmt: skip
    assert len(paths) == 2


# 5. Repeated event identities -------------------------------------------------------------


def test_repeated_identities_get_independent_noise_and_a_warning(inputs, tmp_path, capsys):
    sample, model = inputs

    def same_identity(content):
        for name in ("run", "luminosityBlock", "event"):
            content[name] = np.ones_like(content[name])
        return content

    repeated = copy_sample(sample, tmp_path / "repeated.root", same_identity)
    spreads = []
    for name, path in (("unique", sample), ("repeated", repeated)):
        assert run(path, model, tmp_path / name) == 0
        histogram = load(tmp_path / name / "histograms.coffea")["events"]["histograms"]
        residual = histogram["residual_muon_px"]["dl", :]
        centers, counts = residual.axes[0].centers, residual.values()
        mean = np.average(centers, weights=counts)
        spreads.append(np.sqrt(np.average((centers - mean) ** 2, weights=counts)))
    assert spreads[1] == pytest.approx(spreads[0], rel=0.05)
    manifest = json.loads((tmp_path / "repeated" / "manifest.json").read_text())
    assert manifest["datasets"]["events"]["identity_repeats"] == SELECTED - 1
    assert "repeat the (run, luminosityBlock, event)" in capsys.readouterr().out


# 6, 7. Interrupts and kills --------------------------------------------------------------


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(inputs: tuple[Path, Path], out: Path, executor: str = "futures") -> subprocess.Popen:
    sample, model = inputs
    argv = [sys.executable, "-m", "coffea_fastsim.cli", "run", str(sample), "--model",
            str(model), "-o", str(out), "--executor", executor, "--workers", "2",
            "--chunksize", "100"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
        # As from a terminal: an ignored SIGINT left in this process would be inherited.
        preexec_fn=_default_sigint,
    )  # fmt: skip


def _wait_for_checkpoints(out: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not any((out / "checkpoints").rglob("*.coffea")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no chunk finished"
        time.sleep(0.2)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("executor", ["futures", "dask"])
def test_ctrl_c_stops_within_seconds_and_keeps_finished_chunks(executor, inputs, tmp_path):
    out = tmp_path / "out"
    process = _start(inputs, out, executor)
    _wait_for_checkpoints(out, process)
    workers = _children(process.pid)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    start = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - start < 10
    assert process.returncode == 130
    lines = [line for line in stderr.splitlines() if "interrupted" in line]
    assert lines == ["coffea-fastsim run: interrupted; rerun it to resume"]
    assert "Traceback" not in stderr
    assert any((out / "checkpoints").rglob("*.coffea"))
    assert not (out / "manifest.json").exists()
    time.sleep(2)
    assert not [pid for pid in workers if _alive(pid)]


def test_a_futures_run_leaves_the_ctrl_c_handler_of_the_main_process(inputs, tmp_path):
    sample, model = inputs
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        argv = ["run", str(sample), "--model", str(model), "-o", str(tmp_path / "out")]
        assert main([*argv, "--executor", "futures", "--workers", "1"]) == 0
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        _worker_initializer(os.getpid())  # as if the pool ran it in this process
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_the_main_process_is_killed(inputs, tmp_path):
    out = tmp_path / "out"
    process = _start(inputs, out)
    _wait_for_checkpoints(out, process)
    workers = _children(process.pid)
    assert workers
    process.kill()
    process.communicate()
    deadline = time.monotonic() + 10
    while [pid for pid in workers if _alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if _alive(pid)]


# 8. Output folder checked first; disk full -----------------------------------------------


@pytest.mark.parametrize("kind", ["a file", "under a file"])
def test_unusable_output_folder_is_named_before_any_chunk(kind, inputs, tmp_path, capsys):
    sample, model = inputs
    existing = tmp_path / "existing"
    existing.write_text("not a folder")
    out = existing if kind == "a file" else existing / "out"
    assert run(sample, model, out) == 2
    captured = capsys.readouterr()
    assert f"output folder {out}" in captured.err
    assert "Processing" not in captured.err + captured.out


def test_disk_full_says_so_and_leaves_nothing_complete(inputs, tmp_path, monkeypatch, capsys):
    sample, model = inputs

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.parquet"))

    monkeypatch.setattr("coffea_fastsim.processing.processor.write_chunk", full)
    out = tmp_path / "out"
    assert run(sample, model, out) == 2
    assert "disk full while writing the outputs in " + str(out) in capsys.readouterr().err
    assert not (out / "manifest.json").exists()


# 9. Every input bad ----------------------------------------------------------------------


def test_every_input_bad_gives_a_manifest_and_exit_1(inputs, tmp_path):
    sample, model = inputs
    bad = [tmp_path / "a.root", tmp_path / "b.root"]
    bad[0].write_bytes(b"not ROOT at all")
    bad[1].write_bytes(sample.read_bytes()[:20_000])
    out = tmp_path / "out"
    assert run(bad, model, out, "--skip-bad-files") == 1
    manifest = json.loads((out / "manifest.json").read_text())
    files = manifest["datasets"]["events"]["files"]
    assert [f["status"] for f in files] == ["unreadable", "unreadable"]
    assert manifest["complete"] is False


# 10. Dataset name ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", ""])
def test_dataset_name_must_be_a_plain_name(name, inputs, tmp_path, capsys):
    sample, model = inputs
    work = tmp_path / "deep" / "er"
    assert run(sample, model, work / "out", "--dataset", name) == 2
    assert "plain name" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.parquet"))


# 11. Non-finite models, networks that disagree with their metadata -----------------------


def _gaussian(tmp_path: Path, name: str, change) -> Path:
    from coffea_fastsim.surrogate.gaussian import GaussianSurrogate
    from coffea_fastsim.surrogate.model_file import save_model
    from coffea_fastsim.surrogate.scaling import Standardization

    ones = torch.ones(9)
    model = GaussianSurrogate(Standardization(ones * 0, ones, ones * 0, ones)).eval()
    change(model)
    provenance = {"sample_hash": "sha256:0", "training_config": {}, "best_epoch": 0}
    return save_model(model, tmp_path / name, provenance, feature_names=WJETS.feature_names)


def _nan_weights(model) -> None:
    with torch.no_grad():
        model.mean_net[-1].bias.fill_(float("nan"))


def test_non_finite_model_output_fails_unless_allowed(inputs, tmp_path, capsys):
    sample, _ = inputs
    model = _gaussian(tmp_path, "nan.pt", _nan_weights)
    assert run(sample, model, tmp_path / "out") == 2
    assert "--allow-nonfinite" in capsys.readouterr().err
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert run(sample, model, tmp_path / "out", "--allow-nonfinite", "--replace") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["allow_nonfinite"] is True
    assert manifest["datasets"]["events"]["cutflow"]["dl_nonfinite"] == SELECTED


def test_network_that_disagrees_with_its_metadata_is_refused_at_load(tmp_path):
    from coffea_fastsim.surrogate.gaussian import regression_mlp
    from coffea_fastsim.surrogate.model_file import ModelFormatError, load_model

    def eight_inputs(model) -> None:
        model.mean_net = regression_mlp(8, 100, 4, 0.05)

    path = _gaussian(tmp_path, "eight.pt", eight_inputs)
    with pytest.raises(ModelFormatError, match="the network fails on the 9 input features"):
        load_model(path)


# Small ones -------------------------------------------------------------------------------


def test_progress_bars_go_to_stderr(inputs, tmp_path, capsys):
    sample, model = inputs
    assert run(sample, model, tmp_path / "out") == 0
    captured = capsys.readouterr()
    assert "Processing" not in captured.out
    assert "events read" in captured.out


def test_help_shows_defaults_and_unknown_options_give_the_subcommand_usage(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "coffea executor (default: futures)" in text
    assert "(default: 2)" in text
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "x.root", "--model", "m.pt", "-o", "o", "--bogus"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "usage: coffea-fastsim run" in error
    assert "--bogus" in error


def test_plot_of_an_unreadable_file_names_it(tmp_path, capsys):
    garbage = tmp_path / "garbage.coffea"
    garbage.write_bytes(b"garbage")
    assert main(["plot", str(garbage), "-o", str(tmp_path / "plots")]) == 2
    assert str(garbage) in capsys.readouterr().err
