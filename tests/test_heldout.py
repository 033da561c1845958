"""The held-out check after training, and the validate command line, on the embedded files."""

from __future__ import annotations

import shlex
from dataclasses import fields
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from coffea_fastsim.analysis.reading import FeaturePairs, feature_pairs, read_features
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.cli import build_parser
from coffea_fastsim.embedded import embedded_model, embedded_sample
from coffea_fastsim.surrogate.ensemble_training import train_ensemble
from coffea_fastsim.surrogate.model_file import load_model
from coffea_fastsim.surrogate.training import TrainingConfig
from coffea_fastsim.validation.heldout import heldout_agreement
from coffea_fastsim.validation.run import parse_formats, validation_command
from coffea_fastsim.validation.suite import ValidationConfig

FEATURES = WJETS.feature_names


@pytest.fixture(scope="module")
def pairs() -> FeaturePairs:
    return feature_pairs([embedded_sample()], WJETS)


def _permuted(pairs: FeaturePairs, order: np.ndarray) -> FeaturePairs:
    return FeaturePairs(*(getattr(pairs, field.name)[order] for field in fields(FeaturePairs)))


def test_pairs_carry_the_identities_of_their_events(pairs):
    features = read_features(embedded_sample(), WJETS)
    valid = features.reco_valid
    assert len(pairs) == valid.sum() > 1000
    np.testing.assert_array_equal(pairs.event, features.event[valid])
    np.testing.assert_array_equal(pairs.run, features.run[valid])
    np.testing.assert_array_equal(pairs.gen, features.gen[valid])


def test_heldout_table_does_not_depend_on_the_order_of_events(pairs):
    rows = np.arange(0, len(pairs), 3)
    table = heldout_agreement(pairs, WJETS, embedded_model(), rows, seed=4)
    order = np.random.default_rng(0).permutation(len(pairs))
    position = np.argsort(order)  # where each original event went
    shuffled = heldout_agreement(
        _permuted(pairs, order), WJETS, embedded_model(), position[rows], seed=4
    )
    assert shuffled == table
    assert all(0.0 < value < 1.0 for value in table.values())
    other_seed = heldout_agreement(pairs, WJETS, embedded_model(), rows, seed=5)
    assert other_seed != table


def test_an_empty_ensemble_is_refused_before_training(pairs, tmp_path):
    def check(path: Path, rows: np.ndarray, seed: int) -> dict[str, float]:
        raise AssertionError("no member may be trained")

    with pytest.raises(ValueError, match="at least 1 member"):
        train_ensemble(
            pairs.gen, pairs.reco, TrainingConfig(), tmp_path / "m.pt", check, FEATURES, 0
        )


@pytest.mark.slow
def test_each_member_stores_the_check_of_its_own_file(pairs, tmp_path):
    config = TrainingConfig(epochs=1, seed=2, progress=False)
    check = partial(heldout_agreement, pairs, WJETS)
    members = list(
        train_ensemble(pairs.gen, pairs.reco, config, tmp_path / "m.pt", check, FEATURES, 2)
    )
    assert [m.path.name for m in members] == ["m.0.pt", "m.1.pt"]
    for seed, member in enumerate(members, start=2):
        metadata = load_model(member.path).metadata
        assert metadata["training_config"]["seed"] == seed
        assert metadata["heldout_w1_over_sigma"] == member.heldout
        test_rows = member.result.split.test
        assert member.heldout == heldout_agreement(pairs, WJETS, member.path, test_rows, seed)


def test_formats_are_parsed():
    assert parse_formats("png, pdf") == ("png", "pdf")
    with pytest.raises(ValueError, match="no figure format"):
        parse_formats(" , ")


@pytest.mark.parametrize(("n_files", "draws"), [(1, 1), (2, 1), (1, 4)])
def test_the_report_command_line_gives_back_the_same_inputs(tmp_path, n_files, draws):
    tests = tuple(tmp_path / f"test file {i}.root" for i in range(n_files))
    twins = tuple(tmp_path / f"twin {i}.root" for i in range(n_files))
    config = ValidationConfig(
        test_sample=tests,
        model=tmp_path / "model.pt",
        reco_prime=twins,
        seed=3,
        n_bootstrap=7,
        noise_draws=draws,
    )
    assert config.test_samples == tests
    command = validation_command(config, tmp_path / "report.md", None, ("png", "svg"))
    words = shlex.split(command)
    assert words[:2] == ["coffea-fastsim", "validate"]
    args = build_parser().parse_args(words[1:])
    assert (tuple(args.test_sample), args.model, tuple(args.reco_prime)) == (
        tests,
        config.model,
        twins,
    )
    assert (args.ensemble, args.large_test, args.figures_dir) == (None, None, None)
    assert (args.seed, args.bootstrap, args.formats) == (3, 7, "png,svg")
    assert args.noise_draws == draws
    assert ("--noise-draws" in words) == (draws > 1)
    assert args.output == tmp_path / "report.md"
