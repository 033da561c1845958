"""Ensemble files and the bin-by-bin band."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from coffea_fastsim.analysis.reading import read_features
from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.surrogate.ensemble import ensemble_band, member_path, resolve_ensemble
from coffea_fastsim.validation.comparison import compare
from coffea_fastsim.validation.samples import predict_members


def test_member_path():
    assert member_path("out/model.pt", 3).as_posix() == "out/model.3.pt"


def test_resolve_ensemble(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        resolve_ensemble(tmp_path / "model.pt")
    members = [member_path(tmp_path / "model.pt", k) for k in (0, 1, 10, 2)]
    for path in members:
        path.touch()
    (tmp_path / "model.x.pt").touch()
    stem = resolve_ensemble(tmp_path / "model.pt")
    assert [p.name for p in stem.members] == [
        "model.0.pt",
        "model.1.pt",
        "model.2.pt",
        "model.10.pt",
    ]
    assert stem.nominal.name == "model.0.pt"
    (tmp_path / "model.pt").touch()
    nominal = resolve_ensemble(tmp_path / "model.pt")
    assert nominal.nominal.name == "model.pt"
    assert nominal.members == stem.members
    single = resolve_ensemble(tmp_path / "model.x.pt")
    assert single.members == (single.nominal,)
    directory = resolve_ensemble(tmp_path)
    assert directory.nominal == directory.members[0]
    assert len(directory.members) == 6


@pytest.mark.parametrize("n_members", [1, 2, 5])
def test_band_of_identical_members_is_zero(n_members):
    counts = np.tile([[4.0, 10.0, 0.0, 6.0]], (n_members, 1))
    assert np.array_equal(ensemble_band(counts), np.zeros(4))


def test_band_is_the_spread_of_normalized_bins():
    counts = np.array([[1.0, 3.0], [3.0, 1.0]])
    expected = np.std([[0.25, 0.75], [0.75, 0.25]], axis=0, ddof=1)
    assert np.allclose(ensemble_band(counts), expected)
    with pytest.raises(ValueError, match="n_members"):
        ensemble_band(np.ones(3))


@pytest.mark.slow
def test_band_of_an_ensemble_of_identical_models_is_zero(trained_model, wjets_sample, tmp_path):
    copies = [tmp_path / f"copy{k}.pt" for k in range(3)]
    for path in copies:
        shutil.copy(trained_model, path)
    features = read_features(wjets_sample, WJETS)
    rows = np.flatnonzero(features.reco_valid)
    dl = predict_members(tuple(copies), features, rows, 4, WJETS)
    gen, reco = (
        ObservableTable.of(features.gen[rows], WJETS),
        ObservableTable.of(features.reco[rows], WJETS),
    )
    members = [ObservableTable.of(member, WJETS) for member in dl]
    comparison = compare(gen, members[0], reco, members)
    assert all(not band.any() for band in comparison.band.values())
    different = [members[0], ObservableTable.of(dl[0] * 1.05, WJETS)]
    assert compare(gen, members[0], reco, different).band["muon_pt"].any()
