"""The flow surrogate: invertibility, log-det, learning, file format, engine, processor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from zuko.transforms import MonotonicRQSTransform
from zuko.utils import unpack

from coffea_fastsim.analysis.reading import read_features
from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.cli import main
from coffea_fastsim.processing.processor import FastSimConfig, FastSimProcessor
from coffea_fastsim.processing.runner import make_fileset, run_processor
from coffea_fastsim.surrogate import flow_sampling
from coffea_fastsim.surrogate.ensemble import member_path, resolve_ensemble
from coffea_fastsim.surrogate.flow import FlowConfig, FlowSurrogate
from coffea_fastsim.surrogate.inference import (
    EVALUATION_BLOCK,
    FLOW_EVALUATION_BLOCK,
    SurrogateEngine,
)
from coffea_fastsim.surrogate.model_file import load_model, save_model
from coffea_fastsim.surrogate.scaling import Standardization
from coffea_fastsim.surrogate.training import DEFAULT_LEARNING_RATE, TrainingConfig, train_surrogate
from coffea_fastsim.validation.comparison import compare
from coffea_fastsim.validation.samples import predict_members

PROVENANCE = {"sample_hash": "sha256:0", "training_config": {"seed": 0}, "best_epoch": 0}
N_FEATURES = len(WJETS.features)


def _flow(config: FlowConfig | None = None) -> FlowSurrogate:
    torch.manual_seed(4)
    return FlowSurrogate(
        Standardization(
            gen_mean=torch.linspace(-5.0, 5.0, N_FEATURES),
            gen_std=torch.linspace(1.0, 50.0, N_FEATURES),
            reco_mean=torch.linspace(5.0, -5.0, N_FEATURES),
            reco_std=torch.linspace(2.0, 60.0, N_FEATURES),
        ),
        config=config,
    ).eval()


@pytest.fixture(scope="module")
def flow_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("flow") / "flow.pt"
    return save_model(_flow(), path, PROVENANCE, feature_names=WJETS.feature_names)


def _gen(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, N_FEATURES, generator=generator) * 20.0 + 3.0


@pytest.mark.parametrize(
    "config",
    [FlowConfig(), FlowConfig(passes=2), FlowConfig(transform="spline", bins=4)],
    ids=["affine", "affine-coupling", "spline"],
)
def test_sampling_inverts_the_density_direction(config: FlowConfig) -> None:
    model = _flow(config)
    x_gen = _gen(64)
    z_gen = model.standardize_gen(x_gen)
    eps = torch.randn(64, N_FEATURES, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        transform = model.flow(z_gen).transform
        response = transform.inv(eps)
        torch.testing.assert_close(transform(response), eps, atol=1e-4, rtol=1e-4)
        x_dl = model(x_gen, eps)
        # In response units: reco_std (up to 60) would scale float rounding of the response.
        torch.testing.assert_close((x_dl - x_gen) / model.reco_std, response, atol=1e-5, rtol=0)
        z_dl = model.standardize_reco(x_dl)
        variable = z_dl - model.standardize_reco(x_gen)
        torch.testing.assert_close(variable, response, atol=1e-4, rtol=1e-4)
        # And from the physical features back to the noise of the draw.
        torch.testing.assert_close(model.base_values(x_gen, x_dl), eps, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize(
    "config",
    [
        FlowConfig(),
        FlowConfig(passes=2),
        FlowConfig(passes=4, transforms=2),
        FlowConfig(transform="spline", bins=4),
        FlowConfig(transform="spline", transforms=4, hidden_features=(32, 16, 24)),
    ],
    ids=["affine", "affine-coupling", "affine-4-passes", "spline", "spline-3-layers"],
)
def test_sampling_by_feature_group_is_the_generic_inverse(config: FlowConfig) -> None:
    """One feature group per pass (flow_sampling) gives zuko's transform.inv up to float
    rounding, including base samples beyond the spline's [-5, 5] range (the identity)."""
    model = _flow(config)
    z_conditioning = model.conditioning(_gen(1024, seed=2))
    eps = torch.randn(1024, N_FEATURES, generator=torch.Generator().manual_seed(3))
    eps[:16] *= 4.0
    assert (eps.abs() > 5.0).any()
    assert all(groups is not None for groups in model.sampling_groups)
    with torch.no_grad():
        generic = model.flow(z_conditioning).transform.inv(eps)
        by_group = model.sample_standardized(z_conditioning, eps)
    # Float rounding (the spline's softmax as exp and a normalization), carried through the
    # later passes of an autoregressive inverse.
    torch.testing.assert_close(by_group, generic, rtol=1e-4, atol=1e-4)
    # With autograd recording (fresh tensors instead of buffers): the same bits, and gradients.
    recorded = model.sample_standardized(z_conditioning.detach(), eps)
    assert torch.equal(recorded.detach(), by_group)
    recorded.square().sum().backward()
    gradients = [p.grad for p in model.parameters() if p.grad is not None]
    assert gradients
    assert all(torch.isfinite(g).all() for g in gradients)
    assert any(g.abs().sum() > 0 for g in gradients)
    passes = config.passes or N_FEATURES
    for groups in model.sampling_groups:
        assert 1 < len(groups) <= passes
        assert sorted(j for group in groups for j in group) == list(range(N_FEATURES))


def test_univariate_parts_give_the_bits_of_the_whole_block(monkeypatch) -> None:
    """On the CPU the spline inverse runs in parts of UNIVARIATE_ROWS rows (its temporaries
    then stay below the allocator's mmap threshold); the samples are bitwise those of one
    part holding the whole block."""
    model = _flow(FlowConfig(transform="spline", bins=8))
    n_events = 2 * flow_sampling.UNIVARIATE_ROWS + 77
    with torch.no_grad():
        z_conditioning = model.conditioning(_gen(n_events, seed=5))
        eps = torch.randn(n_events, N_FEATURES, generator=torch.Generator().manual_seed(6))
        in_parts = model.sample_standardized(z_conditioning, eps)
        monkeypatch.setattr(flow_sampling, "UNIVARIATE_ROWS", 10 * n_events)
        whole = model.sample_standardized(z_conditioning, eps)
    assert torch.equal(in_parts, whole)


@pytest.mark.parametrize("bins", [2, 8, 12])
def test_rational_quadratic_inverse_is_zukos_inverse(bins: int) -> None:
    """The sampler's spline inverse makes zuko's operations in fewer calls: zuko's
    MonotonicRQSTransform.inv up to float rounding (its softmax is exp and a normalization),
    steep bins and values beyond [-bound, bound] (left as they are, bit for bit) included;
    the round trip returns y; gradients are finite everywhere."""
    generator = torch.Generator().manual_seed(bins)
    n_events, n_features = 4096, 3
    phi = 3.0 * torch.randn(n_events, n_features, 3 * bins - 1, generator=generator)
    y = 2.0 * torch.randn(n_events, n_features, generator=generator)
    y[:8] = torch.tensor([-5.0, 5.0, -7.5])  # the edges and beyond
    phi.requires_grad_(True)
    x = flow_sampling.rational_quadratic_inverse(phi, y, bins, bound=5.0, slope=1e-3)
    spline = MonotonicRQSTransform(*unpack(phi.detach(), ((bins,), (bins,), (bins - 1,))))
    reference = spline.inv(y)
    # Float rounding of the knots (tens of units in the last place of the bound), amplified
    # by the inverse's slope 1 / S'(x) where a bin is nearly flat.
    forward_slope = torch.exp(spline.log_abs_det_jacobian(reference, y))
    tolerance = 1e-4 * (1 + 1 / forward_slope)
    assert ((x.detach() - reference).abs() <= tolerance).all()
    outside = (y <= -5.0) | (y > 5.0)
    assert outside.any()
    assert (~outside).sum() > 0.9 * y.numel()
    assert torch.equal(x[outside].detach(), y[outside])
    # Float rounding, amplified by the slope where the spline is steep.
    slope = torch.exp(spline.log_abs_det_jacobian(x.detach(), y))
    torch.testing.assert_close(spline(x.detach()) / (1 + slope), y / (1 + slope), atol=2e-4, rtol=0)
    x.sum().backward()
    assert torch.isfinite(phi.grad).all()
    assert phi.grad.abs().sum() > 0


def test_log_prob_matches_the_autograd_jacobian() -> None:
    model = _flow(FlowConfig(transforms=2))
    z_gen = model.standardize_gen(_gen(3))
    z_reco = torch.randn(3, N_FEATURES, generator=torch.Generator().manual_seed(2))
    log_prob = model.log_prob_standardized(z_reco, z_gen)
    base = torch.distributions.Normal(0.0, 1.0)
    for i in range(3):
        transform = model.flow(z_gen[i : i + 1]).transform

        def to_base(z: torch.Tensor, transform=transform, i=i) -> torch.Tensor:
            x_gen = z_gen[i : i + 1] * model.gen_std + model.gen_mean
            return transform(z[None] - model.standardize_reco(x_gen))[0]

        jacobian = torch.autograd.functional.jacobian(to_base, z_reco[i])
        expected = base.log_prob(to_base(z_reco[i])).sum() + torch.linalg.slogdet(jacobian)[1]
        torch.testing.assert_close(log_prob[i], expected, atol=1e-4, rtol=1e-4)


def test_training_config_selects_the_family() -> None:
    flow = TrainingConfig(model="flow")
    assert flow.flow == FlowConfig()
    assert flow.learning_rate == DEFAULT_LEARNING_RATE["flow"]
    assert TrainingConfig().learning_rate == DEFAULT_LEARNING_RATE["gaussian"] == 1e-3
    assert TrainingConfig(model="flow", learning_rate=0.5).learning_rate == 0.5
    with pytest.raises(ValueError, match="model must be one of"):
        TrainingConfig(model="gan")
    with pytest.raises(ValueError, match="flow is set but model is 'gaussian'"):
        TrainingConfig(flow=FlowConfig())


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("transform", "cubic", "transform must be one of"),
        ("transforms", 0, "transforms must be at least 1"),
        ("hidden_features", (), "hidden_features must be positive"),
        ("passes", 0, "passes must be None or at least 1"),
        ("bins", 1, "bins must be at least 2"),
    ],
)
def test_flow_config_is_checked(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FlowConfig(**{field: value})


@pytest.mark.slow
def test_learns_a_skewed_response_better_than_the_gaussian() -> None:
    """RECO = GEN + exponential noise: the flow reproduces the skew, mu + sigma * eps cannot."""
    rng = np.random.default_rng(3)
    gen = rng.normal(size=(6000, N_FEATURES)) * 10.0
    reco = gen + rng.exponential(size=gen.shape) * 2.0
    distances = {}
    for family in ("gaussian", "flow"):
        result = train_surrogate(
            gen, reco, TrainingConfig(epochs=8, batch_size=256, progress=False, model=family)
        )
        test = result.split.test
        eps = torch.randn(len(test), N_FEATURES, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            dl = result.model(torch.as_tensor(gen[test], dtype=torch.float32), eps).numpy()
        # Quantiles of the residual over all features: exponential(2) has none below 0.
        levels = np.linspace(0.01, 0.99, 50)
        dl_quantiles = np.quantile(dl - gen[test], levels)
        reco_quantiles = np.quantile(reco[test] - gen[test], levels)
        distances[family] = float(np.abs(dl_quantiles - reco_quantiles).mean())
    assert distances["flow"] < 0.5 * distances["gaussian"], distances


@pytest.mark.parametrize(
    "file_format", [None, "state_dict", pytest.param("torch_export", marks=pytest.mark.slow)]
)
def test_file_round_trip_gives_identical_outputs(file_format, tmp_path: Path) -> None:
    model = _flow()
    path = save_model(
        model, tmp_path / "flow.pt", PROVENANCE, file_format, feature_names=WJETS.feature_names
    )
    loaded = load_model(path)
    # The flow's default: the weights, the module rebuilt from the metadata.
    assert loaded.metadata["format"] == (file_format or "state_dict")
    assert loaded.metadata["model_family"] == "flow"
    for n in (1, 7, EVALUATION_BLOCK, 1500):
        x_gen, eps = _gen(n), torch.randn(n, N_FEATURES)
        with torch.inference_mode():
            torch.testing.assert_close(loaded.module(x_gen, eps), model(x_gen, eps), rtol=0, atol=0)


def test_flow_cannot_be_saved_as_torchscript(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"one of \['state_dict', 'torch_export'\] for the 'flow' family"
    ):
        save_model(
            _flow(),
            tmp_path / "flow.pt",
            PROVENANCE,
            "torchscript",
            feature_names=WJETS.feature_names,
        )


@pytest.mark.slow
def test_gaussian_model_may_be_exported_too(tmp_path: Path) -> None:
    from coffea_fastsim.surrogate.gaussian import GaussianSurrogate

    torch.manual_seed(0)
    ones = torch.ones(N_FEATURES)
    model = GaussianSurrogate(Standardization(ones * 0, ones, ones * 0, ones)).eval()
    path = save_model(
        model, tmp_path / "g.pt", PROVENANCE, "torch_export", feature_names=WJETS.feature_names
    )
    loaded = load_model(path)
    x_gen, eps = _gen(5), torch.randn(5, N_FEATURES)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.module(x_gen, eps), model(x_gen, eps), rtol=0, atol=0)


@pytest.mark.slow
def test_modified_flow_metadata_is_detected(flow_file: Path, tmp_path: Path) -> None:
    import zipfile

    tampered = tmp_path / "tampered.pt"
    with zipfile.ZipFile(flow_file) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith("/extra/coffea_fastsim.json"):
                data = data.replace(b'"best_epoch": 0', b'"best_epoch": 9')
            target.writestr(item, data)
    with pytest.raises(ValueError, match=r"tampered\.pt: checksum mismatch"):
        load_model(tampered)


@pytest.mark.slow
def test_engine_output_does_not_depend_on_chunking(flow_file: Path) -> None:
    # 18 chunks against 2, the large ones crossing the flow's evaluation block.
    n = FLOW_EVALUATION_BLOCK + 1100
    gen = _gen(n, seed=5).numpy()
    ids = np.arange(n, dtype=np.uint64)
    sizes = (300, FLOW_EVALUATION_BLOCK + 1)
    small, large = (
        SurrogateEngine(flow_file, chunk_size=size, device="cpu", seed=2) for size in sizes
    )
    assert small.evaluation_rows == FLOW_EVALUATION_BLOCK
    reference = large.predict(gen, ids, ids, ids)
    assert np.isfinite(reference).all()
    np.testing.assert_array_equal(small.predict(gen, ids, ids, ids), reference)
    order = np.random.default_rng(0).permutation(n)
    shuffled = small.predict(gen[order], ids[order], ids[order], ids[order])
    np.testing.assert_array_equal(shuffled, reference[order])


@pytest.fixture(scope="module")
def trained_flows(wjets_sample: Path, tmp_path_factory) -> Path:
    """``train --model flow --ensemble 2`` on the small sample; returns OUTPUT."""
    output = tmp_path_factory.mktemp("flows") / "flow.pt"
    arguments = ["-o", str(output), "--model", "flow", "--epochs", "2", "--ensemble", "2"]
    main(["train", str(wjets_sample), *arguments])
    return output


@pytest.mark.slow
def test_cli_trains_an_ensemble_of_flows(trained_flows: Path, wjets_sample: Path) -> None:
    ensemble = resolve_ensemble(trained_flows)
    assert ensemble.members == (member_path(trained_flows, 0), member_path(trained_flows, 1))
    metadata = [load_model(path).metadata for path in ensemble.members]
    assert [m["model_family"] for m in metadata] == ["flow", "flow"]
    assert [m["training_config"]["seed"] for m in metadata] == [0, 1]
    assert metadata[0]["training_config"]["flow"]["transform"] == "affine"
    features = read_features(wjets_sample, WJETS)
    rows = np.flatnonzero(features.reco_valid)
    dl = predict_members(ensemble.members, features, rows, 4, WJETS)
    assert np.isfinite(dl).all()
    members = [ObservableTable.of(member, WJETS) for member in dl]
    gen, reco = (
        ObservableTable.of(features.gen[rows], WJETS),
        ObservableTable.of(features.reco[rows], WJETS),
    )
    comparison = compare(gen, members[0], reco, members)
    assert comparison.band["muon_pt"].any()


@pytest.mark.slow
def test_cli_trains_a_coupling_spline_flow(wjets_sample: Path, tmp_path: Path) -> None:
    """--flow-passes 2 makes a coupling flow (two sampling passes per transform) and
    --flow-bins sets the spline's bins; both are recorded and rebuilt from the file."""
    output = tmp_path / "coupling.pt"
    spline = ["--flow-transform", "spline", "--flow-transforms", "2", "--flow-hidden", "16"]
    options = [*spline, "--flow-passes", "2", "--flow-bins", "5"]
    assert main(["train", str(wjets_sample), "-o", str(output), "--model", "flow", "--epochs",
                 "1", *options]) == 0  # fmt: skip
    loaded = load_model(output)
    flow = loaded.metadata["training_config"]["flow"]
    assert (flow["passes"], flow["bins"], flow["transforms"]) == (2, 5, 2)
    assert loaded.metadata["architecture"]["flow"]["passes"] == 2
    module = loaded.module
    assert [len(groups) for groups in module.sampling_groups] == [2, 2]
    assert all(transform.shapes[0] == (5,) for transform in module.flow.transform.transforms)


@pytest.mark.slow
def test_flow_runs_through_the_processor(trained_flows: Path, wjets_sample: Path) -> None:
    model = member_path(trained_flows, 0)
    config = FastSimConfig(model=model, chunk_size=64, seed=3)
    result = run_processor(
        make_fileset([wjets_sample], "wjets"),
        FastSimProcessor(config),
        executor="iterative",
        chunksize=97,
        status=False,
    )
    output = result.output["wjets"]
    features = read_features(wjets_sample, WJETS)
    assert output["cutflow"]["gen_selected"] == len(features)
    assert output["cutflow"]["dl_nonfinite"] == 0
    engine = SurrogateEngine(model, seed=3)
    dl = engine.predict(features.gen, features.run, features.luminosity_block, features.event)
    counts = output["histograms"]["muon_px"]["dl", :]
    expected, _ = np.histogram(dl[:, 0], bins=counts.axes[0].edges)
    np.testing.assert_array_equal(counts.values(), expected)
