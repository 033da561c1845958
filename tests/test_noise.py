"""Per-event noise: normal, independent, and a function of the event key only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coffea_fastsim.surrogate.noise import event_noise, event_noise_tensor

UINT64_MAX = np.iinfo(np.uint64).max
MASK = 2**64 - 1


def _gen(n: int, n_columns: int = 9, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(50, 20, (n, n_columns)).astype(np.float32)


def _ids(n: int, first_event: int = 0) -> tuple[np.ndarray, ...]:
    """Identities and GEN features of n events."""
    event = np.arange(first_event, first_event + n, dtype=np.uint64)
    return np.full(n, 1, np.uint32), (event // 1000).astype(np.uint32), event, _gen(n)


def _mix(x: int) -> int:
    x ^= x >> 30
    x = x * 0xBF58476D1CE4E5B9 & MASK
    x ^= x >> 27
    x = x * 0x94D049BB133111EB & MASK
    return x ^ (x >> 31)


def _reference_noise(seed, run, lumi, event, gen, n_features, replica=0) -> list[float]:
    """The module docstring's recipe, in plain Python integers and math, for one event."""
    key = _mix(_mix(_mix(_mix(seed) ^ run) ^ lumi) ^ event)
    words = [int(b) for b in np.asarray(gen, dtype=np.float32).view(np.uint32)]
    words += [0] * (len(words) % 2)
    for low, high in zip(words[0::2], words[1::2], strict=True):
        key = _mix(key ^ (low | high << 32))
    if replica:
        key = _mix((key + replica * 0x9E3779B97F4A7C15) & MASK)
    pairs = (n_features + 1) // 2
    stream = [_mix((key + (j + 1) * 0x9E3779B97F4A7C15) & MASK) for j in range(2 * pairs)]
    radius = [math.sqrt(-2 * math.log(((w >> 11) + 0.5) * 2.0**-53)) for w in stream[:pairs]]
    angle = [2 * math.pi * ((w >> 40) + 0.5) * 2.0**-24 for w in stream[pairs:]]
    cosines = [r * math.cos(a) for r, a in zip(radius, angle, strict=True)]
    sines = [r * math.sin(a) for r, a in zip(radius, angle, strict=True)]
    return (cosines + sines)[:n_features]


@pytest.fixture(scope="module")
def draws() -> np.ndarray:
    """111,112 events x 9 features: about 1e6 draws."""
    return event_noise(0, *_ids(111_112))


@pytest.mark.parametrize(
    ("seed", "run", "lumi", "event", "n_features", "replica"),
    [
        (0, 1, 1, 1, 9, 0),
        (12345, UINT64_MAX, 0, 2**63, 3, 0),
        (7, 1, 2, 3, 9, 1),
        (7, 1, 2, 3, 10, 2**64 - 1),
    ],
)
def test_matches_the_documented_recipe(seed, run, lumi, event, n_features, replica) -> None:
    """The key is part of the file format: a change would alter every sample."""
    gen = _gen(1, seed=seed % 97)
    noise = event_noise(
        seed,
        np.array([run], np.uint64),
        np.array([lumi], np.uint64),
        np.array([event], np.uint64),
        gen,
        n_features,
        replica=replica,
    )
    expected = _reference_noise(seed, run, lumi, event, gen[0], n_features, replica)
    np.testing.assert_allclose(noise[0], expected, rtol=1e-5, atol=1e-6)


def test_repeated_identities_get_independent_noise() -> None:
    """Events that share (run, lumi, event), e.g. job files that restart the event number,
    differ in their GEN features and get independent noise."""
    n = 50_000
    same = np.ones(n, np.uint64)
    noise = event_noise(0, same, same, same, _gen(n))
    assert len(np.unique(noise, axis=0)) == n
    np.testing.assert_allclose(noise.std(axis=0), 1, atol=5 / np.sqrt(2 * n))
    assert abs(np.corrcoef(noise[:-1, 0], noise[1:, 0])[0, 1]) < 5 / np.sqrt(n)


@pytest.mark.parametrize("column", range(9))
def test_every_gen_bit_pattern_matters(column: int) -> None:
    run, lumi, event, gen = _ids(1)
    changed = gen.copy()
    changed[0, column] = np.nextafter(changed[0, column], np.float32(np.inf))
    first = event_noise(0, run, lumi, event, gen)
    assert not np.any(first == event_noise(0, run, lumi, event, changed))


def test_replicas_are_independent_and_replica_zero_is_nominal() -> None:
    ids = _ids(50_000)
    nominal = event_noise(3, *ids)
    np.testing.assert_array_equal(event_noise(3, *ids, replica=0), nominal)
    first, second = event_noise(3, *ids, replica=1), event_noise(3, *ids, replica=2)
    for other in (first, second):
        assert not np.any(other == nominal)
        assert abs(np.corrcoef(other.ravel(), nominal.ravel())[0, 1]) < 5 / np.sqrt(nominal.size)
    assert not np.any(first == second)


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


@pytest.mark.parametrize("chunk_size", [3, 7, 1000, 8192, 8193, 10_000])
def test_chunk_invariance(chunk_size: int) -> None:
    ids = _ids(10_000)
    full = event_noise(7, *ids)
    chunked = np.concatenate(
        [
            event_noise(7, *(a[i : i + chunk_size] for a in ids))
            for i in range(0, len(ids[0]), chunk_size)
        ]
    )
    np.testing.assert_array_equal(chunked, full)


def test_order_invariance() -> None:
    ids = _ids(20_000)
    order = np.random.default_rng(0).permutation(len(ids[0]))
    np.testing.assert_array_equal(
        event_noise(7, *(a[order] for a in ids)), event_noise(7, *ids)[order]
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
    gen = _gen(1)
    reference = event_noise(0, np.array([1]), np.array([2]), np.array([3]), gen)
    noise = event_noise(0, np.array([run]), np.array([lumi]), np.array([event]), gen)
    assert np.array_equal(noise, reference) == ((run, lumi, event) == (1, 2, 3))


@pytest.mark.parametrize("seed", [0, 1, UINT64_MAX])
def test_edge_identities(seed: int) -> None:
    values = np.array([0, 1, UINT64_MAX, UINT64_MAX - 1], dtype=np.uint64)
    run, lumi, event = (a.ravel() for a in np.meshgrid(values, values, values))
    noise = event_noise(seed, run, lumi, event, np.zeros((len(run), 9), np.float32))
    assert np.isfinite(noise).all()
    assert len(np.unique(noise[:, 0])) == len(run)


def test_empty_input() -> None:
    empty = np.array([], dtype=np.uint64)
    assert event_noise(0, empty, empty, empty, np.empty((0, 9))).shape == (0, 9)


def test_signed_and_unsigned_ids_agree() -> None:
    run, lumi, event, gen = _ids(100)
    signed = (run.astype(np.int64), lumi.astype(np.int32), event.astype(np.int64))
    np.testing.assert_array_equal(
        event_noise(0, *signed, gen), event_noise(0, run, lumi, event, gen)
    )


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
        event_noise(seed, *(np.array(a) for a in ids), _gen(1))


@pytest.mark.parametrize("shape", [(2, 9), (1,), (1, 2, 9)])
def test_gen_features_of_another_shape_are_refused(shape: tuple[int, ...]) -> None:
    ids = np.array([1], np.uint64)
    with pytest.raises(ValueError, match="gen_features must have shape"):
        event_noise(0, ids, ids, ids, np.zeros(shape, np.float32))


REPLICAS = (0, 1, 7, 2**64 - 1)


@pytest.mark.parametrize("device_version", [False, True])
def test_a_replica_per_row_is_that_replica_alone(device_version: bool) -> None:
    """K draws of n events as one call on K * n rows (a replica index per row, crossing the
    8192-event hash block) give each row the noise of a call with its replica alone."""
    n = 3000
    run, lumi, event, gen = _ids(n)
    rows = tuple(np.tile(column, len(REPLICAS)) for column in (run, lumi, event))
    rows_gen = np.tile(gen, (len(REPLICAS), 1))
    per_row = np.repeat(np.array(REPLICAS, dtype=np.uint64), n)
    if device_version:
        got = event_noise_tensor(5, *rows, torch.from_numpy(rows_gen), replica=per_row).numpy()
        alone = [
            event_noise_tensor(5, run, lumi, event, torch.from_numpy(gen), replica=r).numpy()
            for r in REPLICAS
        ]
    else:
        got = event_noise(5, *rows, rows_gen, replica=per_row)
        alone = [event_noise(5, run, lumi, event, gen, replica=r) for r in REPLICAS]
    np.testing.assert_array_equal(got, np.concatenate(alone))
    assert not np.any(got[:n] == got[n : 2 * n])


@pytest.mark.parametrize(
    ("replica", "message"),
    [
        (np.array([0, 1]), r"shape \(3,\)"),
        (np.array([0.0, 1.0, 2.0]), "integer dtype"),
        (np.array([0, -1, 2]), "1 negative entries"),
    ],
)
def test_invalid_replica_array(replica: np.ndarray, message: str) -> None:
    run, lumi, event, gen = _ids(3)
    with pytest.raises((ValueError, TypeError), match=message):
        event_noise(0, run, lumi, event, gen, replica=replica)
    with pytest.raises((ValueError, TypeError), match=message):
        event_noise_tensor(0, run, lumi, event, torch.from_numpy(gen), replica=replica)


@pytest.mark.parametrize("replica", [-1, 2**64, 1.0])
def test_invalid_replica(replica) -> None:
    with pytest.raises((ValueError, TypeError), match="replica"):
        event_noise(0, *_ids(2), replica=replica)


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
    gen = _gen(n, seed=seed % 1000)
    gen[:10] = [np.inf, -np.inf, -0.0, 0.0, 1e-45, -1e38, 3.0, 7.0, 9.0][:9]  # edge patterns
    expected = event_noise(seed, run, lumi, event, gen, n_features, replica=seed % 5)
    got = event_noise_tensor(
        seed, run, lumi, event, torch.from_numpy(gen), n_features, replica=seed % 5
    )
    assert got.dtype == torch.float32
    assert got.shape == (n, n_features)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert (got.numpy() == expected).mean() > 0.5


def test_torch_noise_checks_its_arguments() -> None:
    ids = np.arange(3, dtype=np.uint64)
    gen = torch.zeros((3, 9))
    with pytest.raises(ValueError, match="seed must be in"):
        event_noise_tensor(-1, ids, ids, ids, gen)
    with pytest.raises(ValueError, match="negative entries"):
        event_noise_tensor(0, ids, np.array([1, -1, 2]), ids, gen)
    with pytest.raises(ValueError, match="gen_features must have shape"):
        event_noise_tensor(0, ids, ids, ids, gen[:2])
