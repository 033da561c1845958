"""Analyses as definitions: the built-ins, a user's file, bad definitions, model records."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from test_features import as_events, event, jet, particle

from coffea_fastsim import cli
from coffea_fastsim.analysis.definition import DefinitionError, Observable
from coffea_fastsim.analysis.features import build_features
from coffea_fastsim.analysis.reading import sample_process
from coffea_fastsim.analysis.registry import (
    AnalysisMismatchError,
    builtin_analyses,
    check_model_analysis,
    resolve_analysis,
)
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.analysis.zmumu import ZMUMU
from coffea_fastsim.embedded import embedded_model, embedded_sample
from coffea_fastsim.processing.processor import FastSimConfig, FastSimProcessor

REPOSITORY = Path(__file__).resolve().parents[1]
WORKED_EXAMPLE = REPOSITORY / "docs" / "examples" / "wmunu_nojet.py"
MU_PLUS, MU_MINUS = -13, 13


def test_builtins_are_listed_by_the_cli(capsys):
    assert set(builtin_analyses()) == {"wjets", "zmumu"}
    assert cli.main(["analyses"]) == 0
    out = capsys.readouterr().out
    assert "wjets:" in out
    assert "zmumu:" in out
    assert "features (9): muon_px" in out
    assert "features (12): muon1_px" in out
    # the names --flow-order takes
    assert "responses (4): muon (momentum), jet (momentum), jet_mass (difference), met" in out


def test_a_user_file_is_loaded_by_path():
    definition = resolve_analysis(f"{WORKED_EXAMPLE}:WMUNU")
    assert definition.name == "wmunu_nojet"
    assert definition.feature_names == ("muon_px", "muon_py", "muon_pz", "met_x", "met_y")
    assert resolve_analysis(f"{WORKED_EXAMPLE}:WMUNU") is definition


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ttbar", "neither a built-in"),
        ("missing/file.py:X", "analysis file not found"),
        (
            f"{WORKED_EXAMPLE}:NOPE",
            r"no AnalysisDefinition called 'NOPE' \(definitions there: \['WMUNU'\]",
        ),
    ],
)
def test_unknown_analyses_are_refused_by_name(spec, message):
    with pytest.raises(DefinitionError, match=message):
        resolve_analysis(spec)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"features": (Observable("x", "x", 0, 0.0, 1.0),)}, r"features\['x'\].bins: no binning"),
        ({"auxiliary": (Observable("y", "y", 10, 1.0, 1.0),)}, r"auxiliary\['y'\].low/high"),
        ({"objects": ()}, "objects: an analysis selects at least one"),
    ],
)
def test_bad_definitions_name_the_definition_and_the_field(change, field):
    with pytest.raises(DefinitionError, match=rf"analysis 'wjets', field {field}"):
        dataclasses.replace(WJETS, **change)


def test_an_object_must_refer_to_earlier_objects():
    jet_first = (WJETS.objects[1], WJETS.objects[0])
    with pytest.raises(DefinitionError, match=r"objects\['jet'\].away_from: 'muon'"):
        dataclasses.replace(WJETS, objects=jet_first)


def test_the_hash_follows_the_definition():
    assert WJETS.hash != ZMUMU.hash
    looser = dataclasses.replace(WJETS.objects[0], pt_min=20.0)
    assert dataclasses.replace(WJETS, objects=(looser, WJETS.objects[1])).hash != WJETS.hash


def test_a_feature_function_of_the_wrong_width_is_refused():
    narrow = dataclasses.replace(WJETS, compute_features=lambda objects: np.zeros((1, 3)))
    record = event([particle(40.0, 0.0, 0.0)], [jet(50.0, 1.0, 1.5, 10.0)], (10.0, 0.0))
    with pytest.raises(DefinitionError, match=r"compute_features: returned shape \(1, 3\)"):
        build_features(as_events(record), narrow)


def test_a_collection_missing_from_the_input_names_the_analysis():
    record = event([particle(40.0, 0.0, 0.0)], [jet(50.0, 1.0, 1.5, 10.0)], (10.0, 0.0))
    del record["GenJet"]
    with pytest.raises(KeyError, match="analysis 'zmumu': GenJet"):
        build_features(as_events(record, drop=("GenJet",)), ZMUMU)


def _z_event(second_charge: int, number: int = 1) -> dict:
    """Two 45 GeV muons back to back in phi at eta 0 (m = 90 GeV) and a jet away from both."""
    muons = [
        particle(45.0, 0.0, 0.0, mass=0.0, pdg_id=MU_MINUS),
        particle(45.0, 0.0, math.pi, mass=0.0, pdg_id=second_charge),
        particle(30.0, 0.5, 1.0, mass=0.0, pdg_id=MU_PLUS, flags=0),  # not prompt
    ]
    return event(
        muons,
        [jet(60.0, 1.0, math.pi / 2, 8.0)],
        (5.0, 0.0),
        muon=[(45.0, 0.0, 0.0, 0.0), (44.0, 0.0, math.pi, 0.0)],
        reco_jet=[(55.0, 1.0, math.pi / 2, 7.0)],
        number=number,
    )


def test_zmumu_selects_two_opposite_charge_prompt_muons_and_a_jet():
    features = build_features(as_events(_z_event(MU_PLUS), _z_event(MU_MINUS, 2)), ZMUMU)
    assert features.event.tolist() == [1]
    assert features.gen[0, :6] == pytest.approx([45.0, 0.0, 0.0, -45.0, 0.0, 0.0], abs=1e-5)
    observables = ZMUMU.observables_of(features.gen)
    # Massless 45 GeV muons back to back: m = 90 GeV, the pair at rest in the transverse plane.
    assert observables["mumu_mass"][0] == pytest.approx(90.0, rel=1e-5)
    assert observables["mumu_pt"][0] == pytest.approx(0.0, abs=1e-4)
    assert observables["mumu_rapidity"][0] == pytest.approx(0.0, abs=1e-6)
    assert observables["met"][0] == pytest.approx(5.0, rel=1e-6)
    assert features.reco_valid.tolist() == [True]
    assert features.reco[0, 3] == pytest.approx(-44.0, rel=1e-6)


def test_the_embedded_samples_know_their_process():
    assert sample_process(embedded_sample("wjets")) == "W+jet"
    assert sample_process(embedded_sample("zmumu")) == "Z/gamma*+jet"


def test_a_model_is_refused_under_another_analysis():
    with pytest.raises(
        AnalysisMismatchError, match=r"trained for the analysis 'wjets'.*not for 'zmumu'"
    ):
        FastSimProcessor(FastSimConfig(model=embedded_model("wjets"), analysis="zmumu"))


def test_a_model_without_a_record_counts_as_wjets():
    metadata = {"input_features": list(WJETS.feature_names)}
    check_model_analysis(metadata, WJETS, "old.pt")
    with pytest.raises(AnalysisMismatchError, match=r"'wjets'.*not for 'zmumu'"):
        check_model_analysis(metadata, ZMUMU, "old.pt")


def test_features_that_differ_from_the_model_are_named():
    metadata = {"analysis": WJETS.record, "input_features": ["muon_px"]}
    with pytest.raises(AnalysisMismatchError, match="field features: 9 features"):
        check_model_analysis(metadata, WJETS, "narrow.pt")


@pytest.mark.slow
def test_zmumu_runs_the_same_under_every_executor(tmp_path):
    from coffea_fastsim.processing.runner import make_fileset, run_processor

    def histograms(executor: str) -> dict:
        config = FastSimConfig(model=embedded_model("zmumu"), analysis="zmumu", seed=1, threads=1)
        result = run_processor(
            make_fileset([embedded_sample("zmumu")], "zmumu", "zmumu"),
            FastSimProcessor(config),
            executor=executor,
            workers=2,
            chunksize=3000,
            status=False,
        )
        output = result.output["zmumu"]
        assert output["z_peak_yields"]["gen"] > 0
        return {name: h.view(flow=True).copy() for name, h in output["histograms"].items()}

    reference = histograms("iterative")
    assert set(reference) >= {"mumu_mass", "residual_mumu_pt", "met_x"}
    for executor in ("futures", "dask"):
        other = histograms(executor)
        for name, values in reference.items():
            np.testing.assert_array_equal(other[name], values, err_msg=f"{executor} {name}")


@pytest.mark.slow
def test_the_w_model_on_the_z_sample_is_reported_as_an_untrained_process(tmp_path):
    from coffea_fastsim.validation.run import validate
    from coffea_fastsim.validation.suite import ValidationConfig

    config = ValidationConfig(
        embedded_sample("zmumu"), embedded_model("wjets"), analysis="wjets", n_bootstrap=5
    )
    result, report = validate(config, tmp_path / "report.md", formats=("png",))
    assert result.sample_process == "Z/gamma*+jet"
    assert result.training_process == "W+jet"
    assert result.untrained_process
    assert "the model runs on a process it was not trained on" in report.read_text()
