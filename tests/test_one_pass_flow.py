"""The one-pass flow and its spline: exact values, invertibility, log-det, learning, files."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from coffea_fastsim.analysis.reading import feature_pairs
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.surrogate.flow import FlowConfig, FlowSurrogate
from coffea_fastsim.surrogate.inference import SurrogateEngine
from coffea_fastsim.surrogate.model_file import load_model, rebuild_surrogate, save_model
from coffea_fastsim.surrogate.one_pass_flow import OnePassFlow
from coffea_fastsim.surrogate.scaling import Standardization
from coffea_fastsim.surrogate.spline import spline_forward, spline_inverse
from coffea_fastsim.surrogate.training import TrainingConfig, train_surrogate

BOUND = 5.0
PROVENANCE = {"sample_hash": "sha256:0", "training_config": {"seed": 0}, "best_epoch": 0}
ONE_PASS = FlowConfig(transform="spline", passes=1, transforms=2, hidden_features=(32, 32))


def _random_flow(
    features: int = 5, context: int = 3, transforms: int = 3, groups=None
) -> OnePassFlow:
    torch.manual_seed(0)
    flow = OnePassFlow(
        features, context, transforms, hidden_features=(16, 16), bins=6, groups=groups
    )
    # Away from the identity of the zero initialization.
    for network in flow.networks:
        for parameter in network.hyper[-1].parameters():
            torch.nn.init.normal_(parameter, std=0.3)
    return flow


def test_spline_with_zero_parameters_is_the_identity() -> None:
    x = torch.linspace(-7.0, 7.0, 141)[:, None]
    y, log_derivative = spline_forward(torch.zeros(141, 1, 23), x, 8, BOUND)
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)
    torch.testing.assert_close(log_derivative, torch.zeros_like(x), atol=1e-6, rtol=0)


def test_spline_knot_and_slope_have_their_known_values() -> None:
    """Two bins of equal width and heights 1 : 3: the middle knot x = 0 maps to
    y = -5 + 10 / 4 = -2.5 with the slope exp(logit); a value in the first bin follows
    the rational-quadratic formula."""
    slope_logit = math.log(0.7)
    phi = torch.tensor([[[0.0, 0.0, 0.0, math.log(3.0), slope_logit]]])
    y, log_derivative = spline_forward(phi, torch.tensor([[0.0]]), 2, BOUND)
    torch.testing.assert_close(y, torch.tensor([[-2.5]]))
    torch.testing.assert_close(log_derivative, torch.tensor([[slope_logit]]))
    # x = -2.5: t = 1/2 in the bin [-5, 0] -> [-5, -2.5], s = 0.5, d0 = 1, d1 = 0.7.
    s, d0, d1, t = 0.5, 1.0, 0.7, 0.5
    expected = -5 + 2.5 * (s * t * t + d0 * t * (1 - t)) / (s + (d0 + d1 - 2 * s) * t * (1 - t))
    y, _ = spline_forward(phi, torch.tensor([[-2.5]]), 2, BOUND)
    torch.testing.assert_close(y, torch.tensor([[expected]]))


@pytest.mark.parametrize("bins", [2, 8, 12])
def test_spline_inverse_and_log_derivative(bins: int) -> None:
    generator = torch.Generator().manual_seed(bins)
    phi = 0.7 * torch.randn(4096, 3, 3 * bins - 1, generator=generator)
    x = 2.5 * torch.randn(4096, 3, generator=generator)
    x[:3] = torch.tensor([-5.0, 5.0, 7.5])  # the edges and beyond: the identity
    x.requires_grad_(True)
    y, log_derivative = spline_forward(phi, x, bins, BOUND)
    (derivative,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(log_derivative.detach(), derivative.log(), atol=1e-4, rtol=1e-4)
    assert (derivative > 0).all()
    outside = x.detach().abs() >= BOUND
    assert torch.equal(y.detach()[outside], x.detach()[outside])
    back = spline_inverse(phi, y.detach(), bins, BOUND)
    # Float rounding, amplified by 1 / slope where a bin is flat.
    tolerance = 1e-5 * (1 + 1 / derivative)
    assert ((back - x.detach()).abs() <= tolerance).all()


GROUPS = [None, [[0, 2, 4], [3], [1]]]


@pytest.mark.parametrize("groups", GROUPS, ids=["one-group", "three-groups"])
def test_one_pass_log_prob_is_the_change_of_variables(groups) -> None:
    """log p(x) = log N(eps) - log |det dx/deps|, with the Jacobian of the sampler from
    autograd."""
    flow = _random_flow(groups=groups)
    context = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(4, 5, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        x = flow.sample(context, eps)
    log_prob = flow.log_prob(x, context)
    for i in range(4):
        # From the sampling direction: log p(x) = log N(eps) - log |det dx/deps|.
        def sample(e: torch.Tensor, i: int = i) -> torch.Tensor:
            return flow.sample(context[i : i + 1], e[None])[0]

        jacobian = torch.autograd.functional.jacobian(sample, eps[i])
        expected = (
            -0.5 * (eps[i].square().sum() + 5 * math.log(2 * math.pi))
            - torch.linalg.slogdet(jacobian)[1]
        )
        torch.testing.assert_close(log_prob[i], expected, atol=1e-4, rtol=1e-4)


def _context_and_noise(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n rows of a standard normal context (3 columns) and base noise (5), drawn in that
    order from one generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=generator), torch.randn(n, 5, generator=generator)


@pytest.mark.parametrize("groups", GROUPS, ids=["one-group", "three-groups"])
def test_one_pass_sampling_is_row_by_row(groups) -> None:
    """Any block of rows gives the same bits (the engine's chunk invariance)."""
    flow = _random_flow(groups=groups)
    context, eps = _context_and_noise(3000, seed=3)
    with torch.no_grad():
        whole = flow.sample(context, eps)
        parts = torch.cat(
            [flow.sample(context[i : i + 700], eps[i : i + 700]) for i in range(0, 3000, 700)]
        )
    assert torch.equal(whole, parts)
    assert torch.isfinite(whole).all()


@pytest.mark.parametrize("groups", GROUPS, ids=["one-group", "three-groups"])
def test_base_inverts_the_sampler(groups) -> None:
    """base(sample(eps)) = eps: the base sample of a drawn x is the one it was drawn from."""
    flow = _random_flow(groups=groups)
    context, eps = _context_and_noise(500, seed=4)
    with torch.no_grad():
        x = flow.sample(context, eps)
        z = flow.base(x, context)
    assert not torch.allclose(x, eps, atol=0.1)
    torch.testing.assert_close(z, eps, atol=1e-4, rtol=1e-4)


def test_one_pass_flow_starts_as_the_standard_normal() -> None:
    flow = OnePassFlow(4, 2)
    x = torch.randn(10, 4)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(dim=-1)
    torch.testing.assert_close(flow.log_prob(x, torch.randn(10, 2)), expected, atol=1e-5, rtol=0)


def test_one_pass_needs_the_spline_and_whole_groups() -> None:
    with pytest.raises(ValueError, match="passes=1"):
        FlowConfig(passes=1)
    with pytest.raises(ValueError, match="groups is an option of the one-pass flow"):
        FlowConfig(transform="spline", groups="by-response")
    with pytest.raises(ValueError, match="groups must be one of"):
        FlowConfig(transform="spline", passes=1, groups="pairs")
    with pytest.raises(ValueError, match="do not cover the 3 variables once"):
        OnePassFlow(3, 2, groups=[[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="order is an option of the one-pass flow"):
        FlowConfig(transform="spline", order=("jet",))
    assert FlowConfig(transform="spline", passes=1, order=["jet", "met"]).order == ("jet", "met")


@pytest.fixture(scope="module")
def wjets_pairs(embedded_sample: Path):
    return feature_pairs([embedded_sample], WJETS)


@pytest.fixture(scope="module")
def one_pass_model(wjets_pairs, embedded_model: Path) -> FlowSurrogate:
    """An untrained one-pass flow by feature with the embedded W+jet model's scales (the detector
    target, the muon's exact eta and phi responses), random last layers (no training),
    and the support and acceptance of the embedded sample's RECO, as training sets them."""
    metadata = dict(load_model(embedded_model).metadata)
    architecture = dict(metadata["architecture"])
    architecture["flow"] = dataclasses.asdict(dataclasses.replace(ONE_PASS, groups="by-feature"))
    model = rebuild_surrogate({**metadata, "architecture": architecture})
    torch.manual_seed(1)
    for network in model.flow.networks:
        for parameter in network.hyper[-1].parameters():
            torch.nn.init.normal_(parameter, std=0.1)
    gen, reco = (
        torch.as_tensor(x, dtype=torch.float64) for x in (wjets_pairs.gen, wjets_pairs.reco)
    )
    model.set_support(model.standardize_reco(model.coordinates.encode(gen, reco).float()))
    model.set_acceptance(reco)
    return model.eval()


def test_exact_responses_stay_exact(one_pass_model: FlowSurrogate, wjets_pairs) -> None:
    """The reference detector measures the muon direction exactly: the flow models only the
    other responses, and DL keeps the GEN muon direction to float rounding."""
    exact = (one_pass_model.reco_std == 0).nonzero().flatten().tolist()
    assert len(exact) == 2  # the muon's eta and phi responses
    assert one_pass_model.flow.features == len(WJETS.features) - 2
    gen = torch.as_tensor(wjets_pairs.gen, dtype=torch.float32)
    with torch.no_grad():
        dl = one_pass_model(gen, torch.randn(gen.shape, generator=torch.Generator().manual_seed(0)))
    muon_gen, muon_dl = gen[:, :3], dl[:, :3]
    # Same direction: the DL muon momentum is the GEN one scaled.
    cross = torch.linalg.cross(muon_gen.double(), muon_dl.double())
    relative = cross.norm(dim=1) / (muon_gen.double().norm(dim=1) * muon_dl.double().norm(dim=1))
    assert relative.max() < 1e-6
    assert not torch.equal(muon_gen, muon_dl)


def test_base_values_give_back_the_noise_of_a_draw(one_pass_model: FlowSurrogate, wjets_pairs):
    """From physical GEN and DL features back to the base sample: the noise of the draw for
    the responses the flow models, 0 for the exact ones (the muon's eta and phi)."""
    model = one_pass_model
    gen = torch.as_tensor(wjets_pairs.gen, dtype=torch.float32)
    eps = torch.randn(gen.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        dl = model(gen, eps)
        base = model.base_values(gen, dl)
        variable = model.sample_standardized(model.conditioning(gen), eps)
    free = model.free_features
    exact = [i for i in range(gen.shape[1]) if i not in free.tolist()]
    assert torch.equal(base[:, exact], torch.zeros(len(gen), len(exact)))
    # The bounds of the training support are not undone: compare the rows within them.
    inside = ((variable > model.support_low) & (variable < model.support_high))[:, free].all(1)
    assert inside.float().mean() > 0.5
    torch.testing.assert_close(base[inside][:, free], eps[inside][:, free], atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    "file_format", ["state_dict", pytest.param("torch_export", marks=pytest.mark.slow)]
)
def test_one_pass_file_round_trip_and_chunking(
    one_pass_model: FlowSurrogate, wjets_pairs, file_format: str, tmp_path: Path
) -> None:
    path = save_model(
        one_pass_model,
        tmp_path / "flow.pt",
        PROVENANCE,
        file_format,
        feature_names=WJETS.feature_names,
    )
    loaded = load_model(path)
    assert loaded.metadata["architecture"]["flow"]["passes"] == 1
    gen = np.asarray(wjets_pairs.gen, dtype=np.float32)
    ids = np.arange(len(gen), dtype=np.uint64)
    engine = SurrogateEngine(path, seed=4, chunk_size=len(gen))
    reference = engine.predict(gen, ids, ids, ids)
    small = SurrogateEngine(path, seed=4, chunk_size=37)
    np.testing.assert_array_equal(small.predict(gen, ids, ids, ids), reference)
    eps = torch.randn(len(gen), len(WJETS.features))
    with torch.inference_mode():
        torch.testing.assert_close(
            loaded.module(torch.as_tensor(gen), eps),
            one_pass_model(torch.as_tensor(gen), eps),
            rtol=0,
            atol=0,
        )


@pytest.mark.slow
def test_learns_a_skewed_correlated_response() -> None:
    """RECO = GEN + exponential noise, two responses anticorrelated (-0.98): the one-pass
    flow reproduces the skew and the correlation that mu + sigma * eps cannot."""
    rng = np.random.default_rng(3)
    n_features = 4
    gen = rng.normal(size=(8000, n_features)) * 10.0
    noise = rng.exponential(size=gen.shape) * 2.0
    noise[:, 1] = -0.8 * noise[:, 0] + 0.3 * rng.normal(size=len(gen))
    reco = gen + noise
    distances, correlations = {}, {}
    for family, flow in (("gaussian", None), ("flow", ONE_PASS)):
        config = TrainingConfig(epochs=10, batch_size=256, progress=False, model=family, flow=flow)
        result = train_surrogate(gen, reco, config)
        test = result.split.test
        eps = torch.randn(len(test), n_features, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            dl = result.model(torch.as_tensor(gen[test], dtype=torch.float32), eps).numpy()
        levels = np.linspace(0.01, 0.99, 50)
        residual_dl, residual_reco = dl - gen[test], reco[test] - gen[test]
        distances[family] = float(
            np.abs(np.quantile(residual_dl, levels) - np.quantile(residual_reco, levels)).mean()
        )
        correlations[family] = float(np.corrcoef(residual_dl[:, 0], residual_dl[:, 1])[0, 1])
    true_correlation = float(np.corrcoef(noise[:, 0], noise[:, 1])[0, 1])
    assert distances["flow"] < 0.5 * distances["gaussian"], distances
    assert abs(correlations["flow"] - true_correlation) < 0.05, (correlations, true_correlation)
    assert abs(correlations["gaussian"]) < 0.1  # independent noise per feature


MASS_FIRST = ("jet_mass", "jet", "muon", "met")


def _scales(model: FlowSurrogate) -> Standardization:
    """The scales of ``model``, to build another flow on them."""
    names = ("gen_mean", "gen_std", "reco_mean", "reco_std", "context_mean", "context_std")
    return Standardization(**{name: getattr(model, name) for name in names})


@pytest.mark.parametrize(
    ("groups", "order", "expected"),
    [
        ("one", (), [[0, 1, 2, 3, 4, 5, 6]]),
        ("one", MASS_FIRST, [[0, 1, 2, 3, 4, 5, 6]]),
        # muon pT ratio, jet (pT ratio, eta, phi), jet mass, MET (along, across the jet),
        # the muon's exact eta and phi left out
        ("transverse-last", (), [[0, 1, 2, 3, 4], [5, 6]]),
        ("transverse-last", MASS_FIRST, [[4, 1, 2, 3, 0], [5, 6]]),
        ("by-response", (), [[0], [1, 2, 3], [4], [5, 6]]),
        ("by-response", MASS_FIRST, [[4], [1, 2, 3], [0], [5, 6]]),
        ("by-feature", (), [[0], [1], [2], [3], [4], [5], [6]]),
        # the jet mass, the jet (pT ratio, eta, phi), the muon pT ratio, the MET
        ("by-feature", MASS_FIRST, [[4], [1], [2], [3], [0], [5], [6]]),
        ("by-feature", ("muon", "jet", "jet_mass", "met"), [[0], [1], [2], [3], [4], [5], [6]]),
    ],
)
def test_one_pass_groups_follow_the_analysis_responses(
    one_pass_model: FlowSurrogate, groups: str, order: tuple[str, ...], expected: list[list[int]]
) -> None:
    config = FlowConfig(transform="spline", passes=1, groups=groups, order=order)
    model = FlowSurrogate(_scales(one_pass_model), one_pass_model.coordinates, config)
    assert model.free_features.tolist() == [0, 3, 4, 5, 6, 7, 8]
    assert model.flow.groups == expected


@pytest.mark.parametrize(
    "order", [("jet", "muon", "met"), ("jet_mass", "jet", "muon", "met", "mt")]
)
def test_an_order_must_name_every_response_once(
    one_pass_model: FlowSurrogate, order: tuple[str, ...]
) -> None:
    config = FlowConfig(transform="spline", passes=1, groups="by-feature", order=order)
    with pytest.raises(ValueError, match="must name each of the responses"):
        FlowSurrogate(_scales(one_pass_model), one_pass_model.coordinates, config)


@pytest.mark.slow
def test_cli_trains_a_one_pass_flow(embedded_sample: Path, tmp_path: Path) -> None:
    """--flow-passes 1 --flow-groups by-response, --flow-order and --learning-rate are recorded
    in the file and rebuild the same flow."""
    from coffea_fastsim.cli import main

    output = tmp_path / "one-pass.pt"
    options = ["--model", "flow", "--flow-transform", "spline", "--flow-passes", "1"]
    options += ["--flow-groups", "by-response", "--flow-transforms", "1", "--flow-hidden", "8"]
    options += ["--flow-order", "jet_mass", "jet", "muon", "met"]
    arguments = ["train", str(embedded_sample), "-o", str(output), "--epochs", "1"]
    assert main([*arguments, *options, "--learning-rate", "0.003", "--batch-size", "64"]) == 0
    loaded = load_model(output)
    flow = loaded.metadata["training_config"]["flow"]
    assert (flow["passes"], flow["groups"], flow["transforms"]) == (1, "by-response", 1)
    assert flow["order"] == ["jet_mass", "jet", "muon", "met"]
    assert loaded.metadata["training_config"]["learning_rate"] == 0.003
    assert loaded.module.flow.groups == [[4], [1, 2, 3], [0], [5, 6]]


def test_sampled_momenta_stay_within_the_training_acceptance(one_pass_model: FlowSurrogate) -> None:
    """|eta_RECO| is kept within the largest |eta| of the training RECO momenta: a delta eta
    beyond it is cut to the limit, one within it is kept, and a zero response stays exact
    for a GEN momentum already beyond the limit."""
    model = one_pass_model
    muon_limit, jet_limit = model.eta_limit.tolist()
    assert 2.0 < muon_limit <= 2.4 + 1e-6  # the muon selection's |eta| < 2.4
    assert jet_limit > 2.0
    # GEN muon at eta = 2.5 (beyond the limit), GEN jet at eta = 1 with pT = 50 GeV.
    muon = [10.0, 0.0, 10.0 * math.sinh(2.5)]
    jet = [50.0, 0.0, 50.0 * math.sinh(1.0)]
    x_gen = torch.tensor([[*muon, *jet, 2.0, 5.0, -3.0]] * 2)
    response = torch.zeros(2, 9)
    response[0, 4] = 3.0 * jet_limit  # far beyond: cut to eta_RECO = jet_limit
    response[1, 4] = -0.5  # within: kept
    kept = model._within_acceptance(x_gen, response)
    torch.testing.assert_close(kept[0, 4], torch.tensor(jet_limit - 1.0))
    assert kept[1, 4] == -0.5
    assert (kept[:, 1] == 0).all()  # the muon's zero response, GEN beyond the limit
    assert torch.equal(kept[:, [0, 2, 3, 5, 6, 7, 8]], response[:, [0, 2, 3, 5, 6, 7, 8]])


@pytest.mark.parametrize("weights_seed", range(12))
def test_a_huge_scale_stays_finite(
    one_pass_model: FlowSurrogate, wjets_pairs, weights_seed: int
) -> None:
    """A network output asking for a scale exp(s) beyond float range (s = 100: a GEN event
    far outside the training sample) is clamped to e^7, and each group's sample to the
    training support before it conditions the next groups, so that no huge input enters a
    later network and overflows to a NaN. Every weight of the networks is drawn here
    (without the support bound, 6 of these 12 draws gave NaN)."""
    model = copy.deepcopy(one_pass_model)
    torch.manual_seed(weights_seed)
    for network in model.flow.networks:
        for layer in network.hyper:
            if isinstance(layer, torch.nn.Linear):
                layer.reset_parameters()
        for parameter in network.hyper[-1].parameters():
            torch.nn.init.normal_(parameter, std=0.1)
        start = network.features * network.spline_width
        with torch.no_grad():
            network.hyper[-1].bias[start : start + network.features] = 100.0
    gen = torch.as_tensor(wjets_pairs.gen[:200], dtype=torch.float32)
    eps = torch.randn(gen.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        sample = model.sample_standardized(model.conditioning(gen), eps)
        dl = model(gen, eps)
    assert torch.isfinite(dl).all()
    free = model.free_features
    assert (sample[:, free] >= model.support_low[free]).all()
    assert (sample[:, free] <= model.support_high[free]).all()


def test_cli_refuses_a_bad_order_before_reading(tmp_path: Path, capsys) -> None:
    """A misspelt response fails at once, with the names, not after the inputs are read:
    the input here does not even exist."""
    from coffea_fastsim.cli import main

    arguments = ["train", str(tmp_path / "missing.root"), "-o", str(tmp_path / "m.pt")]
    options = ["--model", "flow", "--flow-transform", "spline", "--flow-passes", "1"]
    assert main([*arguments, *options, "--flow-order", "jet", "muons", "jet_mass", "met"]) != 0
    error = capsys.readouterr().err
    assert "must name each of the responses ['muon', 'jet', 'jet_mass', 'met'] once" in error
    assert "missing.root" not in error
