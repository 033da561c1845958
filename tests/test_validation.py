"""The validation suite: event matching, comparisons, double ratios and the report."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from coffea_fastsim import cli
from coffea_fastsim.analysis.features import EventFeatures
from coffea_fastsim.analysis.reading import InputFileError, open_events
from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.processing.processor import FastSimConfig, FastSimProcessor
from coffea_fastsim.validation.comparison import compare, double_ratio, fill
from coffea_fastsim.validation.samples import match_reco_prime
from coffea_fastsim.validation.suite import ValidationConfig, run_validation

OBSERVABLE_NAMES = WJETS.observable_names

EMBEDDED_SEED = 2002  # run number (generation seed) of data/wjets_sample.root


def _features(event: list[int], valid: list[bool], seed: int) -> EventFeatures:
    rng = np.random.default_rng(seed)
    n = len(event)
    gen = np.array(event, dtype=float)[:, None] * np.ones((n, 9))
    reco = gen + rng.normal(size=gen.shape)
    return EventFeatures(
        run=np.ones(n, dtype=np.uint64),
        luminosity_block=np.ones(n, dtype=np.uint64),
        event=np.array(event, dtype=np.uint64),
        gen=gen,
        reco=reco,
        reco_valid=np.array(valid),
        n_input=n,
    )


def test_reco_prime_is_matched_by_event_id():
    features = _features([1, 2, 3, 4, 5], [True, True, False, True, True], seed=0)
    prime = _features([5, 4, 3, 9, 1], [True, False, True, True, True], seed=1)
    rows, prime_rows = match_reco_prime(features, prime)
    assert features.event[rows].tolist() == [1, 5]
    assert prime.event[prime_rows].tolist() == [1, 5]


def test_reco_prime_with_other_gen_is_refused():
    features = _features([1, 2, 3], [True] * 3, seed=0)
    prime = _features([1, 2, 3], [True] * 3, seed=1)
    prime = replace(prime, gen=prime.gen + 1.0)
    with pytest.raises(InputFileError, match="GEN features of matched events differ"):
        match_reco_prime(features, prime, "twin.root")
    with pytest.raises(InputFileError, match="no event"):
        match_reco_prime(features, _features([7, 8], [True] * 2, seed=2))


@pytest.fixture(scope="module")
def toy_events() -> tuple[ObservableTable, ObservableTable]:
    rng = np.random.default_rng(5)
    gen = rng.normal(size=(3000, 9)) * 40.0
    gen[:, 6] = rng.normal(2.0, 0.5, 3000)
    return ObservableTable.of(gen, WJETS), ObservableTable.of(
        gen + rng.normal(size=gen.shape) * 3.0, WJETS
    )


def test_a_sample_compared_with_itself_agrees_exactly(toy_events):
    gen, reco = toy_events
    comparison = compare(gen, reco, reco)
    for name in OBSERVABLE_NAMES:
        for table in (comparison.observables, comparison.residuals):
            assert table[name].w1_over_sigma == 0.0
            assert table[name].ks == 0.0
            assert table[name].chi2 == 0.0
        assert not comparison.band[name].any()


def test_double_ratio_of_equal_samples_is_flat(toy_events):
    gen, reco = toy_events
    histograms = fill(gen, ObservableTable.of(reco.features * 1.01, WJETS), reco)
    ratio, error, chi2, ndf = double_ratio(histograms, histograms, "muon_pt")
    filled = np.isfinite(ratio)
    assert np.allclose(ratio[filled], 1.0)
    assert (error[filled] > 0).all()
    assert chi2 == pytest.approx(0.0)
    assert ndf == filled.sum() - 1


@pytest.mark.slow
def test_histograms_are_those_of_the_processor(trained_model, wjets_sample):
    """RECO is filled into the processor's histograms exactly as the processor does."""
    result = run_validation(ValidationConfig(wjets_sample, trained_model, n_bootstrap=5))
    processed = FastSimProcessor(FastSimConfig(model=trained_model)).process(
        open_events(wjets_sample)
    )
    histograms = next(iter(processed.values()))["histograms"]
    assert set(histograms) == set(result.model.histograms)
    for key, histogram in histograms.items():
        assert list(histogram.axes["source"]) == list(result.model.histograms[key].axes["source"])
        assert np.array_equal(
            histogram["reco", :].values(), result.model.histograms[key]["reco", :].values()
        )


@pytest.fixture(scope="module")
def embedded_twin(tmp_path_factory):
    """RECO' of the first 1000 events of the embedded sample: same seed, new detector seed."""
    from coffea_fastsim.sim.generation import GenerationConfig, generate_sample

    path = tmp_path_factory.mktemp("twin") / "twin.root"
    config = GenerationConfig(
        n_events=1000, seed=EMBEDDED_SEED, detector_seed=7, n_workers=1, progress=False
    )
    generate_sample(path, config)
    return path


@pytest.mark.slow
def test_report_on_the_embedded_sample_and_model(embedded_twin, trained_model, tmp_path, capsys):
    from coffea_fastsim.embedded import embedded_model, embedded_sample

    ensemble = tmp_path / "ensemble"
    ensemble.mkdir()
    shutil.copy(embedded_model(), ensemble / "a.pt")
    shutil.copy(trained_model, ensemble / "b.pt")
    report = tmp_path / "validation.md"
    status = cli.main(
        [
            "validate",
            str(embedded_sample()),
            "--model",
            str(embedded_model()),
            "--ensemble",
            str(ensemble),
            "--reco-prime",
            str(embedded_twin),
            "--large-test",
            str(embedded_twin),
            "-o",
            str(report),
            "--bootstrap",
            "20",
            "--formats",
            "png",
            "--noise-draws",
            "2",
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "model (DL vs RECO): median W1/sigma" in printed
    assert "floor (RECO' vs RECO)" in printed
    assert "model over 2 noise draws: mean W1/sigma worst" in printed
    assert "RECO' shares RECO's response beyond the GEN features (a perfect model" in printed
    text = report.read_text()
    for section in (
        "## Summary",
        "## 1.",
        "## 2.",
        "## 3.",
        "## 4.",
        "## 5.",
        "## 6.",
        "## 7.",
        "## 8.",
        "## Closing note",
    ):
        assert section in text
    # The reference detector measures the muon's direction exactly, its jets' not.
    assert "| muon delta eta | exact | exact | exact | exact |" in text
    assert "| jet log(pT ratio) | 0." in text
    figures = sorted(p.name for p in (tmp_path / "figures" / "validation").iterdir())
    for number in range(3, 13):
        assert any(name.startswith(f"fig{number:02d}_") for name in figures)
    assert all(name.endswith(".png") for name in figures)
    assert "coffea-fastsim validate" in text
