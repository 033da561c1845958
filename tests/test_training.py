"""Training: splits, input checks, determinism, best-epoch selection, and what the heads learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.surrogate.gaussian import GAMMA
from coffea_fastsim.surrogate.training import (
    TrainingConfig,
    TrainingResult,
    evaluate_loss,
    split_indices,
    train_surrogate,
)

N_FEATURES = 9
FAST = {"progress": False, "device": "cpu"}
# Quantiles of the unit exponential distribution: median and the gamma quantile.
EXP_MEDIAN = np.log(2.0)
EXP_GAMMA_QUANTILE = -np.log(1.0 - GAMMA)


def _width(x: np.ndarray) -> np.ndarray:
    return 0.1 + 0.15 * x


def _toy_sample(n_events: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One scalar x ~ U(0, 2) copied into the 9 GEN features; RECO = x + width(x) * noise,
    Gaussian noise for features 0-4 and unit exponential noise for features 5-8."""
    rng = np.random.default_rng(seed)
    gen = np.repeat(rng.uniform(0.0, 2.0, size=(n_events, 1)), N_FEATURES, axis=1)
    noise = np.concatenate(
        [rng.normal(size=(n_events, 5)), rng.exponential(size=(n_events, 4))], axis=1
    )
    return gen, gen + _width(gen) * noise


@pytest.fixture(scope="module")
def small_sample() -> tuple[np.ndarray, np.ndarray]:
    return _toy_sample(1000, seed=1)


@pytest.fixture(scope="module")
def learned() -> TrainingResult:
    gen, reco = _toy_sample(20_000, seed=0)
    config = TrainingConfig(epochs=10, learning_rate=3e-3, test_fraction=0.0, **FAST)
    return train_surrogate(gen, reco, config)


def test_split_sizes_are_the_papers() -> None:
    split = split_indices(1000, test_fraction=0.2, validation_fraction=0.3, seed=4)
    assert (len(split.train), len(split.validation), len(split.test)) == (560, 240, 200)
    everything = np.concatenate([split.train, split.validation, split.test])
    np.testing.assert_array_equal(np.sort(everything), np.arange(1000))
    other = split_indices(1000, test_fraction=0.2, validation_fraction=0.3, seed=5)
    assert not np.array_equal(split.test, other.test)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("learning_rate", 0.0),
        ("gamma", 1.0),
        ("patience", 0),
        ("test_fraction", 1.0),
        ("validation_fraction", 0.0),
        ("threads", 0),
        ("seed", -1),
    ],
)
def test_config_rejects_invalid_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        TrainingConfig(**{field: value})


def test_input_with_nan_is_refused(small_sample: tuple[np.ndarray, np.ndarray]) -> None:
    gen, reco = small_sample
    reco = reco.copy()
    reco[[3, 10, 11], 7] = np.nan
    with pytest.raises(ValueError, match=r"reco_features has 3 of 1000 rows.*met_x: 3"):
        train_surrogate(gen, reco, TrainingConfig(epochs=1, **FAST), WJETS.feature_names)


@pytest.mark.parametrize(
    ("n_gen", "n_reco", "n_columns", "message"),
    [
        (100, 99, 9, "gen_features has 100 events, reco_features 99"),
        (100, 100, 8, r"must have shape \(n_events, 9\)"),
        (3, 3, 9, "too few events"),
    ],
)
def test_input_shapes_are_checked(n_gen: int, n_reco: int, n_columns: int, message: str) -> None:
    rng = np.random.default_rng(0)
    gen, reco = rng.normal(size=(n_gen, n_columns)), rng.normal(size=(n_reco, n_columns))
    with pytest.raises(ValueError, match=message):
        train_surrogate(gen, reco, TrainingConfig(epochs=1, **FAST), WJETS.feature_names)


def test_constant_feature_is_refused(small_sample: tuple[np.ndarray, np.ndarray]) -> None:
    gen, reco = small_sample
    gen = gen.copy()
    gen[:, 6] = 1.0
    with pytest.raises(ValueError, match=r"GEN features \['jet_log_mass'\] are constant"):
        train_surrogate(gen, reco, TrainingConfig(epochs=1, **FAST), WJETS.feature_names)


@pytest.mark.slow
def test_training_is_deterministic(small_sample: tuple[np.ndarray, np.ndarray]) -> None:
    config = TrainingConfig(epochs=2, seed=11, **FAST)
    first, second = (train_surrogate(*small_sample, config) for _ in range(2))
    assert first.history == second.history
    for (name, a), b in zip(
        first.model.state_dict().items(), second.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    other_seed = train_surrogate(*small_sample, TrainingConfig(epochs=2, seed=12, **FAST))
    assert other_seed.history != first.history


@pytest.fixture(scope="module")
def unlearnable_sample() -> tuple[np.ndarray, np.ndarray]:
    """RECO independent of GEN: the validation loss rises after a few epochs (overfitting)."""
    rng = np.random.default_rng(2)
    return rng.normal(size=(300, N_FEATURES)), rng.normal(size=(300, N_FEATURES))


@pytest.mark.slow
def test_best_epoch_parameters_are_returned(
    unlearnable_sample: tuple[np.ndarray, np.ndarray],
) -> None:
    gen, reco = unlearnable_sample
    result = train_surrogate(gen, reco, TrainingConfig(epochs=8, learning_rate=0.01, **FAST))
    validation = result.history.validation_loss
    assert len(validation) == len(result.history.train_loss) == 8
    assert result.best_epoch == int(np.argmin(validation))
    assert result.best_epoch < 7
    index = result.split.validation
    assert evaluate_loss(result.model, gen[index], reco[index]) == min(validation)


@pytest.mark.slow
def test_patience_stops_early(unlearnable_sample: tuple[np.ndarray, np.ndarray]) -> None:
    config = TrainingConfig(epochs=50, learning_rate=0.01, patience=3, **FAST)
    result = train_surrogate(*unlearnable_sample, config)
    epochs_run = len(result.history.validation_loss)
    assert epochs_run < 50
    assert epochs_run == result.best_epoch + 4


@pytest.mark.slow
def test_metadata_describes_the_run(small_sample: tuple[np.ndarray, np.ndarray]) -> None:
    result = train_surrogate(*small_sample, TrainingConfig(epochs=1, **FAST))
    metadata = result.metadata()
    assert metadata["training_config"]["batch_size"] == 128
    assert metadata["n_events"] == {"train": 560, "validation": 240, "test": 200}
    assert metadata["sample_hash"].startswith("sha256:")
    assert metadata["best_epoch"] == 0


@pytest.mark.slow
def test_epoch_times_are_recorded(small_sample: tuple[np.ndarray, np.ndarray]) -> None:
    result = train_surrogate(*small_sample, TrainingConfig(epochs=3, **FAST))
    seconds = result.history.seconds
    assert len(seconds) == 3
    assert 0 < seconds[0] < seconds[1] < seconds[2] <= result.seconds
    assert result.metadata()["seconds_to_best_epoch"] == seconds[result.best_epoch]


def _heads_on_grid(result: TrainingResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    grid = np.repeat(np.linspace(0.2, 1.8, 200)[:, None], N_FEATURES, axis=1)
    with torch.no_grad():
        mu, sigma = result.model.mean_and_width(torch.as_tensor(grid, dtype=torch.float32))
    return grid, mu.double().numpy(), sigma.double().numpy()


@pytest.mark.slow
def test_width_head_learns_one_sigma(learned: TrainingResult) -> None:
    grid, _, sigma = _heads_on_grid(learned)
    gaussian = np.median(np.abs(sigma[:, :5] / _width(grid[:, :5]) - 1), axis=0)
    assert gaussian.max() < 0.1
    # Exponential noise: sigma = q - mu is the distance from the median to the gamma quantile.
    expected = _width(grid[:, 5:]) * (EXP_GAMMA_QUANTILE - EXP_MEDIAN)
    assert np.median(np.abs(sigma[:, 5:] / expected - 1), axis=0).max() < 0.1


@pytest.mark.slow
def test_mean_head_learns_the_median(learned: TrainingResult) -> None:
    grid, mu, _ = _heads_on_grid(learned)
    width = _width(grid)
    gaussian = np.median(np.abs(mu[:, :5] - grid[:, :5]) / width[:, :5], axis=0)
    assert gaussian.max() < 0.1
    # For exponential noise the median (x + 0.69 width) and the mean (x + width) differ.
    median = np.median(np.abs(mu[:, 5:] - grid[:, 5:] - EXP_MEDIAN * width[:, 5:]) / width[:, 5:])
    assert median < 0.1
