"""The coffea-fastsim command line, end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from coffea.util import load

from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.cli import COMMANDS, main
from coffea_fastsim.processing.dataset import read_dataset
from coffea_fastsim.surrogate.model_file import load_model

OBSERVABLE_NAMES = WJETS.observable_names


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert len(capsys.readouterr().out.splitlines()) > 5


def test_console_script_is_installed():
    completed = subprocess.run(
        [sys.executable, "-m", "coffea_fastsim.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "coffea-fastsim" in completed.stdout


@pytest.mark.slow
def test_generate_train_run_plot(tmp_path, capsys):
    sample = tmp_path / "sample.root"
    assert main(["generate", str(sample), "-n", "400", "--seed", "21", "--workers", "2"]) == 0
    model = tmp_path / "model.pt"
    assert main(["train", str(sample), "-o", str(model), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "held-out agreement" in out
    metadata = load_model(model).metadata
    assert set(metadata["heldout_w1_over_sigma"]) == set(OBSERVABLE_NAMES)
    assert metadata["sources"] == [str(sample)]

    results = tmp_path / "results"
    args = [
        "run",
        str(sample),
        "--model",
        str(model),
        "-o",
        str(results),
        "--executor",
        "iterative",
    ]
    assert main(args) == 0
    output = load(results / "histograms.coffea")
    cutflow = output["events"]["cutflow"]
    assert cutflow["input"] == 400
    assert len(read_dataset(results / "dataset" / "events")) == cutflow["gen_selected"]

    plots = tmp_path / "plots"
    assert main(["plot", str(results / "histograms.coffea"), "-o", str(plots)]) == 0
    for name in OBSERVABLE_NAMES:
        for stem in (name, f"residual_{name}"):
            assert (plots / f"{stem}.png").stat().st_size > 0
            assert (plots / f"{stem}.pdf").stat().st_size > 0


@pytest.mark.slow
def test_demo_writes_histograms_plots_and_dataset(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--executor", "iterative"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "histograms.coffea") in out
    # The demo names the W+jet example processor explicitly; the run records it.
    run_record = json.loads((tmp_path / "run.json").read_text())
    assert "processors.wjets:WJetsProcessor" in json.dumps(run_record)
    result = load(tmp_path / "histograms.coffea")["wjets"]
    for name in OBSERVABLE_NAMES:
        h = result["histograms"][name]
        for source in ("gen", "dl", "reco"):
            assert h[source, :].sum(flow=True) > 0, (name, source)
    assert len(list((tmp_path / "plots").glob("*.png"))) == 2 * len(OBSERVABLE_NAMES)
    assert len(read_dataset(tmp_path / "dataset" / "wjets")) == result["cutflow"]["gen_selected"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "missing.root", "--model", "m.pt", "-o", "out"], "missing.root"),
        (["plot", "missing.coffea", "-o", "out"], "missing.coffea"),
        (["train", "missing.root", "-o", "m.pt"], "missing.root"),
    ],
)
def test_bad_input_gives_a_clear_error(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
