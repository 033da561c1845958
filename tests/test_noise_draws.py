"""W1/sigma over draws of the DL noise: the first draw is the report's, each other draw is
the DL that ``--seed`` gives, and the table reads the draws against the floor."""

from __future__ import annotations

import numpy as np
import pytest

from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.embedded import embedded_model, embedded_sample
from coffea_fastsim.surrogate.ensemble import Ensemble
from coffea_fastsim.validation.comparison import compare
from coffea_fastsim.validation.noise_draws import (
    NoiseDraws,
    noise_draw_lines,
    noise_draw_summary,
    noise_draws,
)
from coffea_fastsim.validation.samples import load_matched
from coffea_fastsim.validation.suite import ValidationConfig

SEED = 3


def _matched(seed: int):
    return load_matched(embedded_sample(), Ensemble(embedded_model(), ()), seed, WJETS)


@pytest.fixture(scope="module")
def matched():
    return _matched(SEED)


@pytest.fixture(scope="module")
def draws(matched) -> NoiseDraws:
    return noise_draws(embedded_model(), matched, SEED, 3)


def _w1(comparison, attribute: str) -> dict[str, float]:
    return {name: a.w1_over_sigma for name, a in getattr(comparison, attribute).items()}


@pytest.mark.parametrize("attribute", ["observables", "residuals"])
def test_the_first_draw_is_the_reports(matched, draws, attribute):
    reported = _w1(compare(matched.gen, matched.dl, matched.reco), attribute)
    assert draws.seeds == (SEED, SEED + 1, SEED + 2)
    assert {name: values[0] for name, values in getattr(draws, attribute).items()} == reported


def test_each_draw_is_the_dl_of_its_seed(draws):
    other = _matched(SEED + 2)
    reported = _w1(compare(other.gen, other.dl, other.reco), "observables")
    assert {name: values[2] for name, values in draws.observables.items()} == reported


def test_the_draws_are_independent(draws):
    # The detector smears the jet pT: every draw of the noise gives another W1.
    assert len(set(draws.observables["jet_pt"])) == 3
    # The embedded surrogate gives the muon direction exactly, as the detector: no noise.
    assert np.all(draws.residuals["muon_eta"] == 0.0)


def test_too_few_draws_are_refused(matched, tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        noise_draws(embedded_model(), matched, SEED, 0)
    with pytest.raises(ValueError, match="noise_draws must be at least 1"):
        ValidationConfig(test_sample=tmp_path / "t.root", model=tmp_path / "m.pt", noise_draws=0)


def test_the_table_reads_the_draws_against_the_floor(matched):
    names = WJETS.observable_names
    draws = NoiseDraws(
        seeds=(5, 6),
        observables={name: np.array([0.01, 0.03]) for name in names},
        residuals={name: np.array([0.02, 0.02]) for name in names},
    )
    without_floor = noise_draw_lines(draws, None)
    assert "seeds 5-6" in " ".join(without_floor)
    rows = [line for line in without_floor if line.startswith("| muon_px |")]
    assert rows == ["| muon_px | 0.0200 (0.0100-0.0300) | - | 0.0200 (0.0200-0.0200) | - |"]
    # A floor that is the DL of the matched sample itself: ratio = draw / floor.
    floor = compare(matched.gen, matched.dl, matched.reco)
    jet_floor = floor.observables["jet_pt"].w1_over_sigma
    with_floor = noise_draw_lines(draws, floor)
    row = next(line for line in with_floor if line.startswith("| jet_pt |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    expected = f"{0.02 / jet_floor:.2f} ({0.01 / jet_floor:.2f}-{0.03 / jet_floor:.2f})"
    assert cells[2] == expected
    assert sum(line.startswith("| ") for line in with_floor) == len(names) + 1


def test_the_summary_line_names_the_worst_mean_and_multiple(matched):
    names = WJETS.observable_names
    observables = {name: np.array([0.001, 0.003]) for name in names}
    observables["jet_pt"] = np.array([0.02, 0.04])
    residuals = {name: np.array([0.01, 0.01]) for name in names}
    residuals["met"] = np.array([0.05, 0.07])
    draws = NoiseDraws(seeds=(0, 1), observables=observables, residuals=residuals)
    assert noise_draw_summary(draws, None) == (
        "model over 2 noise draws: mean W1/sigma worst 0.0300 (jet_pt)"
    )
    floor = compare(matched.gen, matched.dl, matched.reco)
    line = noise_draw_summary(draws, floor)
    ratios = {
        name: observables[name].mean() / floor.observables[name].w1_over_sigma
        for name in names
        if floor.observables[name].w1_over_sigma > 0
    }
    worst = max(ratios, key=ratios.__getitem__)
    assert f"/ floor: worst {ratios[worst]:.2f} ({worst})" in line
    residual_ratios = {
        name: residuals[name].mean() / floor.residuals[name].w1_over_sigma
        for name in names
        if floor.residuals[name].w1_over_sigma > 0
    }
    worst = max(residual_ratios, key=residual_ratios.__getitem__)
    assert line.endswith(f"residuals worst {residual_ratios[worst]:.2f} ({worst})")
