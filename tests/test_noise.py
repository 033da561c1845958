"""Per-event noise: normal, independent, and a function of the event identity only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coffea_fastsim.surrogate.noise import event_noise, event_noise_tensor

UINT64_MAX = np.iinfo(np.uint64).max


def _ids(n: int, first_event: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    event = np.arange(first_event, first_event + n, dtype=np.uint64)
    return np.full(n, 1, np.uint32), (event // 1000).astype(np.uint32), event


@pytest.fixture(scope="module")
def draws() -> np.ndarray:
    """111,112 events x 9 features: about 1e6 draws."""
    return event_noise(0, *_ids(111_112))


def test_known_values() -> None:
    """The seeding rule is part of the file format: a change would alter every sample."""
    noise = event_noise(0, np.array([1]), np.array([1]), np.array([1]))
    expected = [-0.11940234, 0.6984075, -0.7741866, 0.4829238, -1.3101186]
    np.testing.assert_allclose(noise[0, :5], expected, rtol=1e-6)
    edge = event_noise(
        12345, np.array([UINT64_MAX]), np.array([0]), np.array([2**63], np.uint64), 3
    )
    np.testing.assert_allclose(edge[0], [0.87996435, 0.68608475, -0.8019396], rtol=1e-6)


def test_standard_normal(draws: np.ndarray) -> None:
    stats = pytest.importorskip("scipy.stats")
    values = draws.ravel().astype(np.float64)
    n = len(values)
    assert draws.dtype == np.float32
    assert abs(values.mean()) < 5 / np.sqrt(n)
    assert abs(values.std() - 1) < 5 / np.sqrt(2 * n)
    assert stats.kstest(values, "norm").pvalue > 1e-3
    assert abs(stats.skew(values)) < 5 * np.sqrt(6 / n)
    assert abs(stats.kurtosis(values)) < 5 * np.sqrt(24 / n)


def test_features_and_neighbours_uncorrelated(draws: np.ndarray) -> None:
    n = len(draws)
    between_features = np.corrcoef(draws.T) - np.eye(draws.shape[1])
    assert np.abs(between_features).max() < 5 / np.sqrt(n)
    between_events = np.corrcoef(draws[:-1].ravel(), draws[1:].ravel())[0, 1]
    assert abs(between_events) < 5 / np.sqrt(draws.size)


@pytest.mark.parametrize("n_features", [1, 2, 9, 10])
def test_columns_are_standard_normal(n_features: int) -> None:
    noise = event_noise(3, *_ids(50_000), n_features=n_features)
    assert noise.shape == (50_000, n_features)
    np.testing.assert_allclose(noise.mean(axis=0), 0, atol=5 / np.sqrt(50_000))
    np.testing.assert_allclose(noise.std(axis=0), 1, atol=5 / np.sqrt(100_000))


@pytest.mark.parametrize("chunk_size", [1, 7, 1000, 8192, 8193, 10_000])
def test_chunk_invariance(chunk_size: int) -> None:
    run, lumi, event = _ids(10_000)
    full = event_noise(7, run, lumi, event)
    chunked = np.concatenate(
        [
            event_noise(
                7, run[i : i + chunk_size], lumi[i : i + chunk_size], event[i : i + chunk_size]
            )
            for i in range(0, len(run), chunk_size)
        ]
    )
    np.testing.assert_array_equal(chunked, full)


def test_order_invariance() -> None:
    run, lumi, event = _ids(20_000)
    order = np.random.default_rng(0).permutation(len(run))
    np.testing.assert_array_equal(
        event_noise(7, run[order], lumi[order], event[order]),
        event_noise(7, run, lumi, event)[order],
    )


def test_seeds_give_independent_noise() -> None:
    ids = _ids(100_000)
    first, second = event_noise(0, *ids), event_noise(1, *ids)
    assert not np.any(first == second)
    correlation = np.corrcoef(first.ravel(), second.ravel())[0, 1]
    assert abs(correlation) < 5 / np.sqrt(first.size)


@pytest.mark.parametrize(
    ("run", "lumi", "event"), [(1, 2, 3), (3, 2, 1), (2, 1, 3), (1, 3, 2), (1, 2, 4), (2, 2, 3)]
)
def test_each_identity_field_matters(run: int, lumi: int, event: int) -> None:
    reference = event_noise(0, np.array([1]), np.array([2]), np.array([3]))
    noise = event_noise(0, np.array([run]), np.array([lumi]), np.array([event]))
    assert np.array_equal(noise, reference) == ((run, lumi, event) == (1, 2, 3))


@pytest.mark.parametrize("seed", [0, 1, UINT64_MAX])
def test_edge_identities(seed: int) -> None:
    values = np.array([0, 1, UINT64_MAX, UINT64_MAX - 1], dtype=np.uint64)
    run, lumi, event = (a.ravel() for a in np.meshgrid(values, values, values))
    noise = event_noise(seed, run, lumi, event)
    assert np.isfinite(noise).all()
    assert len(np.unique(noise[:, 0])) == len(run)


def test_empty_input() -> None:
    empty = np.array([], dtype=np.uint64)
    assert event_noise(0, empty, empty, empty).shape == (0, 9)


def test_signed_and_unsigned_ids_agree() -> None:
    run, lumi, event = _ids(100)
    signed = event_noise(0, run.astype(np.int64), lumi.astype(np.int32), event.astype(np.int64))
    np.testing.assert_array_equal(signed, event_noise(0, run, lumi, event))


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ((-1, [1], [1], [1]), ValueError, "seed"),
        ((2**64, [1], [1], [1]), ValueError, "seed"),
        ((1.5, [1], [1], [1]), TypeError, "seed"),
        ((0, [-1], [1], [1]), ValueError, "run has 1 negative"),
        ((0, [1], [1.0], [1]), TypeError, "luminosity_block must have an integer dtype"),
        ((0, [1, 2], [1], [1]), ValueError, "luminosity_block has 1 entries"),
        ((0, [1], [1], [[1]]), ValueError, "event must be one-dimensional"),
    ],
)
def test_invalid_input(arguments: tuple, error: type[Exception], message: str) -> None:
    seed, *ids = arguments
    with pytest.raises(error, match=message):
        event_noise(seed, *(np.array(a) for a in ids))


def test_invalid_feature_count() -> None:
    with pytest.raises(ValueError, match="n_features"):
        event_noise(0, *_ids(3), n_features=0)


@pytest.mark.parametrize("seed", [0, 7, 2**64 - 1])
@pytest.mark.parametrize("n_features", [1, 9, 10])
def test_torch_noise_is_the_same_noise(seed: int, n_features: int) -> None:
    """The device version (run here on the CPU) hashes the identities to the same words:
    every value equals numpy's up to the last bits of log, sin and cos."""
    rng = np.random.default_rng(seed % 1000)
    n = 20_000
    run = rng.integers(0, 2**32, n, dtype=np.uint64)
    lumi = rng.integers(0, 2**32, n, dtype=np.uint64)
    event = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    expected = event_noise(seed, run, lumi, event, n_features)
    got = event_noise_tensor(seed, run, lumi, event, n_features, device="cpu")
    assert got.dtype == torch.float32
    assert got.shape == (n, n_features)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert (got.numpy() == expected).mean() > 0.5


def test_torch_noise_checks_its_arguments() -> None:
    ids = np.arange(3, dtype=np.uint64)
    with pytest.raises(ValueError, match="seed must be in"):
        event_noise_tensor(-1, ids, ids, ids)
    with pytest.raises(ValueError, match="negative entries"):
        event_noise_tensor(0, ids, np.array([1, -1, 2]), ids)
