"""The worked example of docs/analyses.md, end to end, from its file outside the package."""

from __future__ import annotations

from pathlib import Path

import pytest
from coffea.util import load

from coffea_fastsim import cli
from coffea_fastsim.surrogate.model_file import load_model

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "wmunu_nojet.py"
ANALYSIS = f"{EXAMPLE}:WMUNU"
FEATURES = ["muon_px", "muon_py", "muon_pz", "met_x", "met_y"]


@pytest.mark.slow
def test_the_worked_example_runs_end_to_end(tmp_path, capsys):
    sample = tmp_path / "wmunu.root"
    generate = ["generate", str(sample), "-n", "800", "--seed", "31", "--workers", "1"]
    assert cli.main([*generate, "--resimulations", "1"]) == 0
    model = tmp_path / "wmunu.pt"
    train = ["train", str(sample), "--analysis", ANALYSIS, "-o", str(model), "--epochs", "3"]
    assert cli.main(train) == 0
    with_model = ["--analysis", ANALYSIS, "--model", str(model)]
    run = ["run", str(sample), *with_model, "-o", str(tmp_path / "run"), "--executor", "iterative"]
    assert cli.main([*run, "--dataset", "wmunu"]) == 0
    report = tmp_path / "report.md"
    validate = ["validate", str(sample), *with_model, "-o", str(report), "--bootstrap", "5"]
    prime = ["--reco-prime", str(sample.with_name("wmunu.resim1.root")), "--formats", "png"]
    assert cli.main([*validate, *prime]) == 0
    plots = tmp_path / "plots"
    plot = ["plot", str(tmp_path / "run" / "histograms.coffea"), "-o", str(plots)]
    assert cli.main([*plot, "--analysis", ANALYSIS]) == 0
    out = capsys.readouterr().out

    metadata = load_model(model).metadata
    assert metadata["analysis"]["name"] == "wmunu_nojet"
    assert metadata["input_features"] == FEATURES
    output = load(tmp_path / "run" / "histograms.coffea")["wmunu"]
    assert set(output["histograms"]) >= {"mt", "residual_met_x", "muon_eta"}
    assert output["signal_region_yields"]["gen"] > 0
    assert "model (DL vs RECO)" in out
    assert "floor (RECO' vs RECO)" in out
    text = report.read_text()
    assert "analysis: `wmunu_nojet`" in text
    assert "W+jet, model trained on W+jet" in text
    assert len(list(plots.glob("*.png"))) == 2 * 10
