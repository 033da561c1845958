"""The inference engine: chunking invariance, pickling, input checks, and the sampled spread."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.surrogate.coordinates import TargetCoordinates
from coffea_fastsim.surrogate.gaussian import GaussianSurrogate
from coffea_fastsim.surrogate.inference import (
    CPU_CHUNK_SIZE,
    CUDA_EVALUATION_BLOCK,
    DEVICE_BYTES_PER_EVENT,
    EVALUATION_BLOCK,
    FLOW_EVALUATION_BLOCK,
    MAX_CHUNK_SIZE,
    SurrogateEngine,
    _evaluate_blocks,
    _GaussianWeights,
    automatic_chunk_size,
    evaluation_block,
)
from coffea_fastsim.surrogate.model_file import ModelFormatError, save_model
from coffea_fastsim.surrogate.scaling import Standardization

N_EVENTS = 2500
PROVENANCE = {"sample_hash": "sha256:0", "training_config": {}, "best_epoch": 0}
# Standardized outputs of the constant-head model: mu_z = 0.5, q_z = -0.25, so sigma_z = 0.75.
MU_Z, Q_Z = 0.5, -0.25


def _model(constant_heads: bool) -> GaussianSurrogate:
    torch.manual_seed(3)
    model = GaussianSurrogate(
        Standardization(
            gen_mean=torch.linspace(-5.0, 5.0, 9),
            gen_std=torch.linspace(1.0, 50.0, 9),
            reco_mean=torch.linspace(5.0, -5.0, 9),
            reco_std=torch.linspace(2.0, 60.0, 9),
        )
    )
    if constant_heads:
        with torch.no_grad():
            for net, value in ((model.mean_net, MU_Z), (model.quantile_net, Q_Z)):
                net[-1].weight.zero_()
                net[-1].bias.fill_(value)
    return model.eval()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(
        _model(False),
        tmp_path_factory.mktemp("model") / "m.pt",
        PROVENANCE,
        feature_names=WJETS.feature_names,
    )


@pytest.fixture(scope="module")
def events() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {
        "gen_features": rng.normal(size=(N_EVENTS, 9)) * 40.0,
        "run": np.full(N_EVENTS, 1, np.uint32),
        "luminosity_block": rng.integers(1, 100, N_EVENTS).astype(np.uint32),
        "event": rng.permutation(10 * N_EVENTS)[:N_EVENTS].astype(np.uint64),
    }


@pytest.fixture(scope="module")
def reference(model_file: Path, events: dict[str, np.ndarray]) -> np.ndarray:
    return SurrogateEngine(model_file, device="cpu").predict(**events)


def _subset(events: dict[str, np.ndarray], rows: slice | np.ndarray) -> dict[str, np.ndarray]:
    return {key: value[rows] for key, value in events.items()}


@pytest.mark.parametrize(
    ("chunk_size", "n_rows"),
    [(1, 30), (7, 210), (1000, N_EVENTS), (EVALUATION_BLOCK + 1, N_EVENTS), (N_EVENTS, N_EVENTS)],
)
def test_output_does_not_depend_on_chunk_size(
    model_file: Path,
    events: dict[str, np.ndarray],
    reference: np.ndarray,
    chunk_size: int,
    n_rows: int,
) -> None:
    engine = SurrogateEngine(model_file, chunk_size=chunk_size, device="cpu")
    rows = slice(0, n_rows)
    np.testing.assert_array_equal(engine.predict(**_subset(events, rows)), reference[rows])


@pytest.mark.parametrize("shift", [1, 7, 1000])
def test_output_does_not_depend_on_position(
    model_file: Path, events: dict[str, np.ndarray], reference: np.ndarray, shift: int
) -> None:
    engine = SurrogateEngine(model_file, device="cpu")
    np.testing.assert_array_equal(
        engine.predict(**_subset(events, slice(shift, None))), reference[shift:]
    )
    order = np.random.default_rng(shift).permutation(N_EVENTS)
    np.testing.assert_array_equal(engine.predict(**_subset(events, order)), reference[order])


@pytest.mark.parametrize("chunk_size", [None, 333])
def test_a_replica_per_row_is_that_replica_alone(
    model_file: Path, events: dict[str, np.ndarray], chunk_size: int | None
) -> None:
    """Three draws of 1,500 events as one call on 4,500 rows (crossing chunks and evaluation
    blocks) give each row the output of a call with its replica alone."""
    engine = SurrogateEngine(model_file, chunk_size=chunk_size, device="cpu")
    some = _subset(events, slice(0, 1500))
    replicas = (0, 1, 5)
    rows = {key: np.concatenate([value] * len(replicas)) for key, value in some.items()}
    per_row = np.repeat(np.array(replicas), 1500)
    alone = [engine.predict(**some, replica=r) for r in replicas]
    np.testing.assert_array_equal(engine.predict(**rows, replica=per_row), np.concatenate(alone))
    assert not np.any(alone[0] == alone[1])


def test_replica_rows_are_checked(model_file: Path, events: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match=r"replica must be an integer or have shape \(20,\)"):
        SurrogateEngine(model_file).predict(**_subset(events, slice(0, 20)), replica=[0, 1])


def test_repeated_calls_agree(
    model_file: Path, events: dict[str, np.ndarray], reference: np.ndarray
) -> None:
    engine = SurrogateEngine(model_file, device="cpu")
    for _ in range(4):
        np.testing.assert_array_equal(engine.predict(**events), reference)


def test_output_follows_the_model(tmp_path: Path, events: dict[str, np.ndarray]) -> None:
    """With constant heads, x_DL ~ N(mu, sigma) with the de-standardized mu and sigma."""
    model = _model(True)
    engine = SurrogateEngine(
        save_model(model, tmp_path / "c.pt", PROVENANCE, feature_names=WJETS.feature_names),
        device="cpu",
    )
    sample = engine.predict(**events).astype(np.float64)
    mu = (MU_Z * model.reco_std + model.reco_mean).double().numpy()
    sigma = ((MU_Z - Q_Z) * model.reco_std).double().numpy()
    assert sample.dtype == np.float64
    np.testing.assert_allclose(sample.mean(axis=0), mu, atol=0.1 * sigma.max())
    np.testing.assert_allclose(sample.std(axis=0) / sigma, 1.0, atol=0.05)


def test_seed_changes_the_sample(
    model_file: Path, events: dict[str, np.ndarray], reference: np.ndarray
) -> None:
    other = SurrogateEngine(model_file, device="cpu", seed=1).predict(**events)
    assert not np.any(other == reference)


def test_engine_pickles_without_the_module(
    model_file: Path, events: dict[str, np.ndarray], reference: np.ndarray
) -> None:
    engine = SurrogateEngine(model_file, device="cpu")
    engine.predict(**_subset(events, slice(0, 10)))
    payload = pickle.dumps(engine)
    assert len(payload) < 1000
    restored = pickle.loads(payload)
    assert restored._loaded is None
    assert restored._device is None
    np.testing.assert_array_equal(restored.predict(**events), reference)
    assert engine._loaded is not None


def test_metadata_and_device(model_file: Path) -> None:
    engine = SurrogateEngine(model_file, device="cpu")
    assert engine.device == torch.device("cpu")
    assert engine.metadata["model_family"] == "gaussian"


def test_empty_input(model_file: Path) -> None:
    empty = np.array([], dtype=np.uint64)
    output = SurrogateEngine(model_file).predict(np.empty((0, 9)), empty, empty, empty)
    assert output.shape == (0, 9)
    assert output.dtype == np.float32


def test_non_finite_rows_are_refused(model_file: Path, events: dict[str, np.ndarray]) -> None:
    bad = _subset(events, slice(0, 20))
    bad["gen_features"] = bad["gen_features"].copy()
    bad["gen_features"][[1, 4], 2] = np.inf
    with pytest.raises(ValueError, match="gen_features has 2 of 20 rows"):
        SurrogateEngine(model_file).predict(**bad)


@pytest.mark.parametrize("name", ["run", "luminosity_block", "event"])
def test_identity_length_is_checked(
    model_file: Path, events: dict[str, np.ndarray], name: str
) -> None:
    bad = _subset(events, slice(0, 20))
    bad[name] = bad[name][:19]
    with pytest.raises(ValueError, match=rf"{name} must have shape \(20,\)"):
        SurrogateEngine(model_file).predict(**bad)


def test_missing_model_is_reported_on_first_use(
    tmp_path: Path, events: dict[str, np.ndarray]
) -> None:
    engine = SurrogateEngine(tmp_path / "absent.pt")
    with pytest.raises(ModelFormatError, match=r"absent\.pt: no such model file"):
        engine.predict(**_subset(events, slice(0, 5)))


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"chunk_size": 0}, ValueError, "chunk_size must be positive"),
        ({"chunk_size": 1.5}, TypeError, "chunk_size must be an integer"),
        ({"chunk_size": True}, TypeError, "chunk_size must be an integer"),
        ({"device": "gpu"}, ValueError, "device: device must be"),
        ({"device": "cuda:x"}, ValueError, "device: device must be"),
        ({"seed": -1}, ValueError, "seed must be in"),
    ],
)
def test_invalid_arguments(arguments: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        SurrogateEngine("m.pt", **arguments)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_refused() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        SurrogateEngine("m.pt", device="cuda")


def _block_inputs(n_rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x_gen = torch.randn(n_rows, 9, generator=generator) * 40.0
    return x_gen, torch.randn(n_rows, 9, generator=generator)


@pytest.mark.parametrize(
    ("hidden_width", "hidden_layers", "negative_slope"), [(100, 4, 0.05), (37, 2, 0.2)]
)
def test_buffered_gaussian_path_is_bitwise_the_module(
    tmp_path: Path, hidden_width: int, hidden_layers: int, negative_slope: float
) -> None:
    """The engine evaluates Gaussian models into reused buffers; the result must be the
    module's own output, bit for bit, for any width, depth and slope."""
    torch.manual_seed(11)
    model = GaussianSurrogate(
        Standardization(
            torch.zeros(9), torch.full((9,), 30.0), torch.ones(9), torch.full((9,), 25.0)
        ),
        hidden_width=hidden_width,
        hidden_layers=hidden_layers,
        negative_slope=negative_slope,
    )
    engine = SurrogateEngine(
        save_model(model.eval(), tmp_path / "g.pt", PROVENANCE, feature_names=WJETS.feature_names),
        device="cpu",
    )
    module = engine.loaded.module
    assert engine._gaussian_weights is not None
    x_gen, eps = _block_inputs(3 * EVALUATION_BLOCK + 17, seed=2)
    with torch.inference_mode():
        buffered = _evaluate_blocks(module, engine._gaussian_weights, x_gen, eps)
        plain = _evaluate_blocks(module, None, x_gen, eps)
        eager = model(x_gen[:EVALUATION_BLOCK], eps[:EVALUATION_BLOCK])
    assert torch.equal(buffered, plain)
    torch.testing.assert_close(buffered[:EVALUATION_BLOCK], eager, rtol=1e-6, atol=1e-4)


def test_buffered_detector_target_path_is_bitwise_the_module(tmp_path: Path) -> None:
    """A detector-target Gaussian (responses decoded into RECO-like features) is evaluated
    into reused buffers too, with the module's own context and decode: bit for bit the
    module's output."""
    torch.manual_seed(12)
    model = GaussianSurrogate(
        Standardization(
            gen_mean=torch.zeros(9),
            gen_std=torch.full((9,), 30.0),
            reco_mean=torch.zeros(9),
            reco_std=torch.tensor([0.05, 0.02, 0.01, 0.1, 0.05, 0.05, 0.2, 10.0, 8.0]),
            context_mean=torch.tensor([3.5, 4.0, 0.0, 0.0]),
            context_std=torch.tensor([0.6, 0.7, 1.2, 1.5]),
        ),
        TargetCoordinates(WJETS.feature_names, WJETS.responses),
    )
    engine = SurrogateEngine(
        save_model(model.eval(), tmp_path / "d.pt", PROVENANCE, feature_names=WJETS.feature_names),
        device="cpu",
    )
    module = engine.loaded.module  # loading reads the weights
    weights = engine._gaussian_weights
    assert weights is not None
    assert weights.detector is module
    x_gen, eps = _block_inputs(3 * EVALUATION_BLOCK + 17, seed=6)
    with torch.inference_mode():
        buffered = _evaluate_blocks(module, weights, x_gen, eps)
        plain = _evaluate_blocks(module, None, x_gen, eps)
        eager = model(x_gen[:EVALUATION_BLOCK], eps[:EVALUATION_BLOCK])
    assert torch.equal(buffered, plain)
    torch.testing.assert_close(buffered[:EVALUATION_BLOCK], eager, rtol=1e-5, atol=1e-3)


def test_unsupported_layers_fall_back_to_the_module(tmp_path: Path) -> None:
    """A head with a layer the buffered path does not know runs through the module."""
    model = _model(False)
    model.mean_net[1] = torch.nn.ReLU()
    engine = SurrogateEngine(
        save_model(model, tmp_path / "relu.pt", PROVENANCE, feature_names=WJETS.feature_names),
        device="cpu",
    )
    assert _GaussianWeights.read(engine.loaded.module) is None
    assert engine._gaussian_weights is None
    x_gen, eps = _block_inputs(EVALUATION_BLOCK, seed=4)
    with torch.inference_mode():
        got = _evaluate_blocks(engine.loaded.module, None, x_gen, eps)
        expected = model(x_gen, eps)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-4)


def test_evaluation_block_depends_on_the_device_and_family() -> None:
    assert evaluation_block(torch.device("cpu")) == EVALUATION_BLOCK == 1024
    assert evaluation_block(torch.device("cpu"), "flow") == FLOW_EVALUATION_BLOCK == 4096
    assert evaluation_block(torch.device("cuda", 0)) == CUDA_EVALUATION_BLOCK == 65536
    assert evaluation_block(torch.device("cuda", 0), "flow") == CUDA_EVALUATION_BLOCK


@pytest.mark.parametrize(
    ("free_bytes", "block_bytes", "expected"),
    [
        # 80 GB free: half is 40 GB, far more than the cap.
        (80 * 10**9, 0, MAX_CHUNK_SIZE),
        # 1 GiB free, 100 MiB of activations: (512 - 100) MiB / 1024 B = 421,888 events,
        # rounded down to 6 blocks of 65536.
        (2**30, 100 * 2**20, 6 * 65536),
        # Almost nothing free: never below one block.
        (10**6, 0, 65536),
    ],
)
def test_automatic_chunk_size(free_bytes: int, block_bytes: int, expected: int) -> None:
    assert DEVICE_BYTES_PER_EVENT == 1024
    assert automatic_chunk_size(free_bytes, CUDA_EVALUATION_BLOCK, block_bytes) == expected


def test_chunk_size_is_resolved_from_the_device(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default chunk: CPU_CHUNK_SIZE on the CPU; on CUDA, from the free memory that torch
    reports (the device is simulated: only the choice of the size is exercised)."""
    engine = SurrogateEngine(model_file, device="cpu")
    assert engine.resolved_chunk_size() == CPU_CHUNK_SIZE == 65536
    assert SurrogateEngine(model_file, chunk_size=5000).resolved_chunk_size() == 5000

    assert engine.loaded.module is not None  # reads the weights, as the first predict does
    weights = engine._gaussian_weights
    assert weights is not None
    # 2 heads x (4 x 100 + 9) activations + GEN and width buffers, float32, per row.
    assert weights.activation_bytes(1) == 4 * (2 * (4 * 100 + 9) + 2 * 9)
    requested = []

    def mem_get_info(device):
        requested.append(device)
        return 3 * 2**30, 80 * 2**30

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    engine._device = torch.device("cuda", 0)
    expected = automatic_chunk_size(
        3 * 2**30, CUDA_EVALUATION_BLOCK, weights.activation_bytes(CUDA_EVALUATION_BLOCK)
    )
    # (1.5 GiB - 65536 x 3344 B) / 1024 B = 1,358,848 events: 20 blocks.
    assert engine.resolved_chunk_size() == expected == 20 * 65536
    assert requested == [torch.device("cuda", 0)]
