"""The surrogate's networks, loss, standardization and input checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.surrogate.gaussian import (
    GAMMA,
    GaussianSurrogate,
    as_feature_array,
    paper_loss,
    quantile_loss,
    resolve_device,
)
from coffea_fastsim.surrogate.scaling import Standardization

N_FEATURES = 9


@pytest.fixture
def model() -> GaussianSurrogate:
    torch.manual_seed(1)
    return GaussianSurrogate(
        Standardization(
            gen_mean=torch.linspace(-5.0, 5.0, N_FEATURES),
            gen_std=torch.linspace(1.0, 50.0, N_FEATURES),
            reco_mean=torch.linspace(5.0, -5.0, N_FEATURES),
            reco_std=torch.linspace(2.0, 60.0, N_FEATURES),
        )
    ).eval()


def _set_constant_heads(model: GaussianSurrogate, mu: torch.Tensor, q: torch.Tensor) -> None:
    """Make the networks output the constants mu and q (standardized) for any input."""
    with torch.no_grad():
        for net, value in ((model.mean_net, mu), (model.quantile_net, q)):
            net[-1].weight.zero_()
            net[-1].bias.copy_(value)


def test_quantile_loss_by_hand() -> None:
    q = torch.tensor([[0.0, 4.0], [1.0, 1.0]])
    target = torch.tensor([[1.0, 1.0], [1.0, 3.0]])
    # event 0: target above q by 1 (weight gamma), below q by 3 (weight 1 - gamma)
    # event 1: equal (0), target above q by 2 (weight gamma)
    expected = torch.tensor([GAMMA * 1 + (1 - GAMMA) * 3, GAMMA * 2])
    torch.testing.assert_close(quantile_loss(q, target), expected)


def test_paper_loss_by_hand() -> None:
    mu = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    q = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    target = torch.tensor([[0.5, 3.0], [1.0, 1.0]])
    l1 = torch.tensor([0.5 + 1.0, 0.0 + 2.0])
    qr = torch.tensor([(1 - GAMMA) * 0.5 + GAMMA * 1.0, GAMMA * 1.0 + GAMMA * 1.0])
    torch.testing.assert_close(paper_loss(mu, q, target), (l1 + qr).mean())


@pytest.mark.parametrize("gamma", [0.5, GAMMA, 0.95])
def test_quantile_loss_minimum_is_the_quantile(gamma: float) -> None:
    target = torch.linspace(0.0, 1.0, 1001)[:, None]
    candidates = torch.linspace(0.0, 1.0, 201)
    losses = torch.stack(
        [quantile_loss(c.expand(1001, 1), target, gamma).sum() for c in candidates]
    )
    assert candidates[losses.argmin()].item() == pytest.approx(gamma, abs=0.006)


def test_architecture_is_the_papers(model: GaussianSurrogate) -> None:
    for net in (model.mean_net, model.quantile_net):
        linear = [m for m in net if isinstance(m, nn.Linear)]
        widths = [linear[0].in_features] + [m.out_features for m in linear]
        assert widths == [9, 100, 100, 100, 100, 9]
        activations = [m for m in net if isinstance(m, nn.LeakyReLU)]
        assert len(activations) == 4
        assert all(a.negative_slope == 0.05 for a in activations)
        assert isinstance(net[-1], nn.Linear)


def test_standardization_round_trip(model: GaussianSurrogate) -> None:
    x = torch.randn(100, N_FEATURES, dtype=torch.float32) * 40.0
    torch.testing.assert_close(model.destandardize_reco(model.standardize_reco(x)), x)
    torch.testing.assert_close(
        model.standardize_gen(model.gen_mean[None, :]), torch.zeros(1, N_FEATURES)
    )
    torch.testing.assert_close(
        model.standardize_gen((model.gen_mean + model.gen_std)[None, :]), torch.ones(1, N_FEATURES)
    )


def test_mean_width_and_sample_in_physical_units(model: GaussianSurrogate) -> None:
    mu_z, q_z = torch.full((N_FEATURES,), 0.5), torch.full((N_FEATURES,), -0.25)
    _set_constant_heads(model, mu_z, q_z)
    x_gen = torch.randn(7, N_FEATURES)
    eps = torch.randn(7, N_FEATURES)
    mu, sigma = model.mean_and_width(x_gen)
    expected_mu = (mu_z * model.reco_std + model.reco_mean).expand(7, -1)
    expected_sigma = (0.75 * model.reco_std).expand(7, -1)
    torch.testing.assert_close(mu, expected_mu)
    torch.testing.assert_close(sigma, expected_sigma)
    torch.testing.assert_close(model(x_gen, eps), expected_mu + expected_sigma * eps)


def test_scripted_model_matches_eager(model: GaussianSurrogate) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(model)
    x_gen, eps = torch.randn(50, N_FEATURES) * 30.0, torch.randn(50, N_FEATURES)
    assert torch.equal(scripted(x_gen, eps), model(x_gen, eps))
    for got, expected in zip(
        scripted.mean_and_width(x_gen), model.mean_and_width(x_gen), strict=True
    ):
        assert torch.equal(got, expected)


@pytest.mark.parametrize(
    ("name", "value"), [("gen_std", torch.zeros(N_FEATURES)), ("reco_mean", torch.zeros(3))]
)
def test_invalid_standardization_is_refused(name: str, value: torch.Tensor) -> None:
    arguments = {key: torch.ones(N_FEATURES) for key in ("gen_mean", "gen_std", "reco_mean")}
    arguments["reco_std"] = torch.ones(N_FEATURES)
    arguments[name] = value
    with pytest.raises(ValueError, match=r"must be positive|has shape"):
        GaussianSurrogate(Standardization(**arguments))


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "CPU", ""])
def test_resolve_device_rejects_unknown(device: str) -> None:
    with pytest.raises(ValueError, match="device must be"):
        resolve_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_resolve_device_without_cuda(device: str) -> None:
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device(device)


def test_as_feature_array_reports_bad_rows() -> None:
    values = np.zeros((10, N_FEATURES))
    values[2, 0] = np.nan
    values[2, 6] = np.inf
    values[5, 6] = -np.inf
    with pytest.raises(ValueError, match=r"2 of 10 rows") as info:
        as_feature_array(values, "gen_features", N_FEATURES, WJETS.feature_names)
    assert "muon_px: 1" in str(info.value)
    assert "jet_log_mass: 2" in str(info.value)


@pytest.mark.parametrize("shape", [(10,), (10, 8), (2, 10, 9)])
def test_as_feature_array_checks_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"reco_features must have shape \(n_events, 9\)"):
        as_feature_array(np.zeros(shape), "reco_features", N_FEATURES)
