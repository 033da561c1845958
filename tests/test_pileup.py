"""The minimum-bias pool (cache, format) and the pileup overlay."""

from __future__ import annotations

import numpy as np
import pytest

from coffea_fastsim.sim.detector.pileup import (
    CMS_PILEUP,
    MinBiasPool,
    MinBiasPoolConfig,
    make_min_bias_pool,
    save_pool,
)


@pytest.fixture
def pool(tmp_path) -> MinBiasPool:
    """100 events of 1 to 3 particles, event i has particles with E = i + 1 GeV."""
    counts = np.arange(100) % 3 + 1
    energy = np.repeat(np.arange(100) + 1.0, counts)
    p4 = np.stack([energy, np.zeros_like(energy), np.zeros_like(energy), energy], axis=1)
    path = tmp_path / "pool.npz"
    save_pool(path, counts, p4, np.full(energy.size, 22), np.zeros(energy.size))
    return MinBiasPool(path)


def test_overlay_is_poisson_with_whole_rotated_events(pool):
    pileup = pool.overlay(np.random.default_rng(1), 4000, 20.0, CMS_PILEUP)
    assert pileup.n_interactions.mean() == pytest.approx(20.0, abs=4 * np.sqrt(20 / 4000))
    assert pileup.n_interactions.var() == pytest.approx(20.0, rel=0.1)
    # Rotations keep pT = E of each photon; particles of one interaction share its energy.
    np.testing.assert_allclose(np.hypot(pileup.px, pileup.py), pileup.energy, rtol=1e-6)
    np.testing.assert_array_equal(np.bincount(pileup.event) > 0, pileup.n_interactions > 0)


def test_vertices_follow_the_card(pool):
    z = CMS_PILEUP.vertex_z(np.random.default_rng(2), 100_000)
    assert np.abs(z).max() <= 0.25
    assert z.std() == pytest.approx(0.053, rel=0.02)


def test_pool_file_name_depends_on_every_setting(tmp_path):
    base = MinBiasPoolConfig(n_events=10)
    others = [MinBiasPoolConfig(n_events=11), MinBiasPoolConfig(n_events=10, seed=2)]
    others.append(MinBiasPoolConfig(n_events=10, abs_eta_max=5.0))
    assert len({c.path(tmp_path) for c in [base, *others]}) == 4
    assert base.path(tmp_path) == MinBiasPoolConfig(n_events=10).path(tmp_path)


def test_missing_pool_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.npz"):
        MinBiasPool(tmp_path / "nowhere.npz")


@pytest.mark.slow
def test_pool_is_generated_once_and_cached(tmp_path):
    config = MinBiasPoolConfig(n_events=30, events_per_job=30)
    path = make_min_bias_pool(config, n_workers=1, directory=tmp_path)
    stamp = path.stat().st_mtime_ns
    assert make_min_bias_pool(config, n_workers=1, directory=tmp_path) == path
    assert path.stat().st_mtime_ns == stamp
    pool = MinBiasPool(path)
    assert pool.n_events == 30
    assert not np.isin(np.abs(pool.pdg_id), (12, 14, 16)).any()
    eta = np.arcsinh(pool.p4[:, 2] / np.hypot(pool.p4[:, 0], pool.p4[:, 1]))
    assert np.abs(eta).max() < 5.5
    assert set(np.unique(pool.charge)) <= {-1.0, 0.0, 1.0}
