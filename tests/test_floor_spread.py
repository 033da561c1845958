"""The floor measured with several re-simulations: the twins' names, the floors against
values known in closed form, the model on the same events as the report's DL, and the
section and summary the report gives."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from samples import copy_sample

from coffea_fastsim.analysis.reading import InputFileError
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.surrogate.ensemble import Ensemble
from coffea_fastsim.validation.floor_spread import (
    EXACT_FLOOR,
    FloorSpread,
    floor_spread,
    floor_spread_lines,
    floor_spread_summary,
    twin_path,
    twin_paths,
)
from coffea_fastsim.validation.noise_draws import w1_of_candidate
from coffea_fastsim.validation.samples import load_matched
from coffea_fastsim.validation.suite import ValidationConfig, run_validation

#: The twins' RECO jet pT is RECO's times these factors: a monotone map, whose W1 is known.
JET_SCALES = (1.01, 1.03)
#: Observables that depend on the jet momentum alone (scaled with its pT) or not on it.
SCALED = ("jet_pt", "jet_px", "jet_py", "jet_pz")
UNCHANGED = ("muon_pt", "muon_px", "jet_eta", "jet_phi", "jet_log_mass", "met")


def _scale_jet_pt(factor: float):
    def transform(content):
        jets = content["Jet"]
        return {**content, "Jet": ak.with_field(jets, jets.pt * np.float32(factor), "pt")}

    return transform


@pytest.fixture(scope="module")
def test_file(embedded_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded sample as a test file with two twins NAME.resim1/2.root whose RECO jet
    pT is scaled by ``JET_SCALES``."""
    target = tmp_path_factory.mktemp("twins") / "test.root"
    copy_sample(embedded_sample, target)
    for k, factor in enumerate(JET_SCALES, start=1):
        copy_sample(embedded_sample, twin_path(target, k), transform=_scale_jet_pt(factor))
    return target


@pytest.fixture(scope="module")
def spread(test_file: Path, embedded_model: Path) -> FloorSpread:
    return floor_spread([test_file], twin_paths([test_file], 2), embedded_model, 0, 1, WJETS)


@pytest.fixture(scope="module")
def matched(test_file: Path, embedded_model: Path):
    return load_matched(test_file, Ensemble(embedded_model, ()), 0, WJETS, twin_path(test_file, 1))


@pytest.mark.parametrize("name", ["test.root", "dir/w+jet.root", "sample.v2.root"])
@pytest.mark.parametrize("k", [1, 3])
def test_twins_are_named_as_the_generator_writes_them(name: str, k: int):
    from coffea_fastsim.sim.generation import resimulation_path

    assert twin_path(Path(name), k) == resimulation_path(Path(name), k)


def test_a_missing_twin_is_named(test_file: Path):
    with pytest.raises(InputFileError, match=r"test\.resim3\.root.*--resimulations 3"):
        twin_paths([test_file], 3)
    with pytest.raises(ValueError, match="at least 1"):
        twin_paths([test_file], 0)


@pytest.mark.parametrize("name", SCALED)
def test_floors_of_a_scaled_jet_are_known(spread: FloorSpread, matched, name: str):
    # W1 between x and c x over the same events is (c - 1) E|x|: the map is monotone.
    reco = matched.reco[name]
    expected = [(c - 1) * np.abs(reco).mean() / reco.std() for c in JET_SCALES]
    assert spread.n_events == len(matched)
    np.testing.assert_allclose(spread.observables[name], expected, rtol=2e-3)
    assert spread.twin_over_first("observables", 2)[name] == pytest.approx(3.0, rel=2e-3)
    assert spread.model_over_floor("observables", "mean")[name] == pytest.approx(
        spread.model_observables[name] / np.mean(expected), rel=2e-3
    )


@pytest.mark.parametrize("name", UNCHANGED)
def test_observables_the_twins_leave_alone_are_exact(spread: FloorSpread, name: str):
    assert np.all(spread.observables[name] < EXACT_FLOOR)
    assert name not in spread.counted
    assert name not in spread.model_over_floor("observables", "first")


@pytest.mark.parametrize("attribute", ["observables", "residuals"])
def test_the_model_is_the_reports_dl(spread: FloorSpread, matched, attribute: str):
    # Every event valid in RECO is valid in both twins: the same events, the same DL.
    observables, residuals = w1_of_candidate(matched.gen, matched.dl, matched.reco)
    reported = observables if attribute == "observables" else residuals
    model = spread.model_observables if attribute == "observables" else spread.model_residuals
    assert model == pytest.approx(reported, rel=1e-12)


def test_the_section_and_the_summary(spread: FloorSpread):
    first = spread.model_over_floor("observables", "first")
    above = sum(v > 1.5 for v in first.values())
    summary = floor_spread_summary(spread)
    assert summary.startswith("floor over 2 re-simulations")
    assert f"model / first floor: {above}/{len(spread.counted)}" in summary
    # Only the jet momentum and S_T change, and the second twin is about 3 times the first
    # floor in each: all above the limits.
    assert set(spread.counted) == {*SCALED, "st"}
    assert "re-simulation 2 / first floor (a perfect model): 5/5, " in summary
    text = "\n".join(floor_spread_lines(spread))
    assert "## 9. The floor's own spread" in text
    assert "| muon_pt | 0.0000 0.0000 | 0.0000 | exact | " in text
    row = next(line for line in text.splitlines() if line.startswith("| jet_pt |"))
    mean = spread.model_over_floor("observables", "mean")["jet_pt"]
    assert row.endswith(f"| {first['jet_pt']:.2f} | {mean:.2f} | 3.00 |")


def test_the_twin_index_is_checked(spread: FloorSpread):
    with pytest.raises(ValueError, match="k must be in 2"):
        spread.twin_over_first("observables", 1)


def test_twins_per_file_must_agree(test_file: Path, embedded_model: Path):
    with pytest.raises(ValueError, match="at least 2"):
        floor_spread([test_file], [[twin_path(test_file, 1)]], embedded_model, 0, 1, WJETS)


def test_the_configuration_takes_one_kind_of_floor(test_file: Path, embedded_model: Path):
    with pytest.raises(ValueError, match="not both"):
        ValidationConfig(
            test_sample=test_file,
            model=embedded_model,
            reco_prime=twin_path(test_file, 1),
            resimulations=2,
        )
    with pytest.raises(ValueError, match="0 or more"):
        ValidationConfig(test_sample=test_file, model=embedded_model, resimulations=-1)
    config = ValidationConfig(
        test_sample=(test_file, test_file), model=embedded_model, resimulations=2
    )
    assert config.floor_files == (twin_path(test_file, 1), twin_path(test_file, 1))


@pytest.mark.slow
def test_the_validation_reports_the_spread(test_file: Path, embedded_model: Path, tmp_path):
    from coffea_fastsim.validation.run import validate

    config = ValidationConfig(
        test_sample=test_file, model=embedded_model, resimulations=2, n_bootstrap=10
    )
    result, report = validate(config, tmp_path / "report.md", formats=("png",))
    assert result.spread is not None
    assert result.spread.n_events == len(result.sample)
    # RECO' of the tables is the first twin.
    jet_pt = result.floor.observables["jet_pt"].w1_over_sigma
    assert jet_pt == pytest.approx(result.spread.observables["jet_pt"][0], rel=1e-12)
    assert result.summary_lines[-1] == floor_spread_summary(result.spread)
    text = report.read_text()
    assert (
        f"- RECO' (same GEN events, independent detector seed): `{twin_path(test_file, 1)}`" in text
    )
    assert "## 9. The floor's own spread" in text
    command = next(line for line in text.splitlines() if line.startswith("coffea-fastsim"))
    assert command.endswith("--formats png")
    assert " --resimulations 2 " in command
    with pytest.raises(InputFileError, match="--resimulations 3"):
        run_validation(
            ValidationConfig(test_sample=test_file, model=embedded_model, resimulations=3)
        )
