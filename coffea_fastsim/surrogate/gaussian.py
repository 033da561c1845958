"""The Gaussian surrogate: a mean network and a quantile network, and the paper's loss.

x_DL = mu + sigma * eps, sigma = |q - mu|, with mu from a network trained with an L1 loss
(the median) and q from a network trained with a quantile loss at gamma = 0.841 (the
mean + 1 sigma quantile of a Gaussian). Both networks work on standardized features; the
module takes and returns physical units (GeV, log GeV for the jet mass).

References:
    C. Chen, O. Cerri, T. Q. Nguyen, J.-R. Vlimant, M. Pierini, "Analysis-Specific Fast
    Simulation at the LHC with Deep Learning", Comput. Softw. Big Sci. 5, 15 (2021),
    doi:10.1007/s41781-021-00060-4, arXiv:2010.01835, section "Model Description and
    Training".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "GAMMA",
    "GaussianSurrogate",
    "StandardizedSurrogate",
    "as_feature_array",
    "paper_loss",
    "quantile_loss",
    "regression_mlp",
    "resolve_device",
]

#: Quantile learned by the width network: Phi(1), the mean + 1 sigma point of a Gaussian.
GAMMA = 0.841


def regression_mlp(
    n_features: int, hidden_width: int = 100, hidden_layers: int = 4, negative_slope: float = 0.05
) -> nn.Sequential:
    """The paper's "six-layer" dense network: n -> 100 -> 100 -> 100 -> 100 -> n.

    LeakyReLU(negative_slope) after every layer but the last, which is linear.

    Arguments:
        n_features: width of the input and output layers (9).
        hidden_width: nodes of each hidden layer.
        hidden_layers: number of hidden layers.
        negative_slope: LeakyReLU slope for negative inputs.
    """
    layers: list[nn.Module] = []
    width = n_features
    for _ in range(hidden_layers):
        layers += [nn.Linear(width, hidden_width), nn.LeakyReLU(negative_slope)]
        width = hidden_width
    layers.append(nn.Linear(width, n_features))
    return nn.Sequential(*layers)


def quantile_loss(q: Tensor, target: Tensor, gamma: float = GAMMA) -> Tensor:
    """Quantile regression loss QR(q, x_R) of each event, summed over features.

    QR(x, y) = sum_i [(1 - gamma) theta(x_i - y_i) + gamma theta(y_i - x_i)] |x_i - y_i|,
    minimal when q is the gamma quantile of the target distribution.

    Arguments:
        q: predicted quantiles, shape (n_events, n_features).
        target: true values, shape (n_events, n_features).
        gamma: quantile level in (0, 1).

    Returns:
        Loss per event, shape (n_events,).
    """
    residual = target - q
    return torch.maximum(gamma * residual, (gamma - 1.0) * residual).sum(dim=1)


def paper_loss(mu: Tensor, q: Tensor, target: Tensor, gamma: float = GAMMA) -> Tensor:
    """The training loss < ||mu - x_R||_1 + QR(q, x_R) >, averaged over events.

    Arguments:
        mu: predicted central values, shape (n_events, n_features).
        q: predicted gamma quantiles, shape (n_events, n_features).
        target: true values x_R, shape (n_events, n_features).
        gamma: quantile level of ``q``.

    Returns:
        Scalar tensor.
    """
    l1 = (mu - target).abs().sum(dim=1)
    return (l1 + quantile_loss(q, target, gamma)).mean()


class StandardizedSurrogate(nn.Module):
    """Base of every surrogate family: the standardization of GEN and RECO features.

    The constants are buffers, so they travel with the weights. A subclass implements
    ``forward(x_gen, eps) -> x_dl``, shapes (n_events, n_features), physical units, with
    ``eps`` standard normal noise; the inference engine needs nothing else.

    Arguments:
        gen_mean, gen_std: mean and standard deviation of the GEN features of the training
            sample, shape (n_features,), physical units.
        reco_mean, reco_std: the same for the RECO features.
    """

    def __init__(
        self, gen_mean: Tensor, gen_std: Tensor, reco_mean: Tensor, reco_std: Tensor
    ) -> None:
        super().__init__()
        n_features = gen_mean.shape[0]
        for name, value in [
            ("gen_std", gen_std),
            ("reco_mean", reco_mean),
            ("reco_std", reco_std),
        ]:
            if value.shape != gen_mean.shape:
                raise ValueError(f"{name} has shape {tuple(value.shape)}, expected ({n_features},)")
        if not (bool((gen_std > 0).all()) and bool((reco_std > 0).all())):
            raise ValueError("standard deviations must be positive")
        self.register_buffer("gen_mean", gen_mean.detach().to(torch.float32).clone())
        self.register_buffer("gen_std", gen_std.detach().to(torch.float32).clone())
        self.register_buffer("reco_mean", reco_mean.detach().to(torch.float32).clone())
        self.register_buffer("reco_std", reco_std.detach().to(torch.float32).clone())

    @property
    def n_features(self) -> int:
        """Number of GEN (and RECO) features."""
        return int(self.gen_mean.shape[0])

    @torch.jit.export
    def standardize_gen(self, x_gen: Tensor) -> Tensor:
        """Physical GEN features (n_events, n_features) -> standardized."""
        return (x_gen - self.gen_mean) / self.gen_std

    @torch.jit.export
    def standardize_reco(self, x_reco: Tensor) -> Tensor:
        """Physical RECO features (n_events, n_features) -> standardized."""
        return (x_reco - self.reco_mean) / self.reco_std

    @torch.jit.export
    def destandardize_reco(self, z_reco: Tensor) -> Tensor:
        """Standardized RECO features (n_events, n_features) -> physical units."""
        return z_reco * self.reco_std + self.reco_mean


class GaussianSurrogate(StandardizedSurrogate):
    """GEN features -> RECO-like features with a learned Gaussian response.

    The standardization constants are buffers: they travel with the weights. Scriptable
    with ``torch.jit.script``.

    Arguments:
        gen_mean, gen_std: mean and standard deviation of the GEN features of the training
            sample, shape (n_features,), physical units.
        reco_mean, reco_std: the same for the RECO features.
        hidden_width, hidden_layers, negative_slope: see ``regression_mlp``.
    """

    def __init__(
        self,
        gen_mean: Tensor,
        gen_std: Tensor,
        reco_mean: Tensor,
        reco_std: Tensor,
        hidden_width: int = 100,
        hidden_layers: int = 4,
        negative_slope: float = 0.05,
    ) -> None:
        super().__init__(gen_mean, gen_std, reco_mean, reco_std)
        n_features = gen_mean.shape[0]
        self.mean_net = regression_mlp(n_features, hidden_width, hidden_layers, negative_slope)
        self.quantile_net = regression_mlp(n_features, hidden_width, hidden_layers, negative_slope)

    @torch.jit.export
    def heads(self, z_gen: Tensor) -> tuple[Tensor, Tensor]:
        """Standardized (mu, q) from standardized GEN features, each (n_events, n_features)."""
        return self.mean_net(z_gen), self.quantile_net(z_gen)

    @torch.jit.export
    def mean_and_width(self, x_gen: Tensor) -> tuple[Tensor, Tensor]:
        """Central value mu and width sigma = |q - mu|, physical units.

        Arguments:
            x_gen: GEN features, shape (n_events, n_features), physical units.

        Returns:
            (mu, sigma), each of shape (n_events, n_features).
        """
        mu, q = self.heads(self.standardize_gen(x_gen))
        return self.destandardize_reco(mu), (q - mu).abs() * self.reco_std

    def forward(self, x_gen: Tensor, eps: Tensor) -> Tensor:
        """Sample x_DL = mu + sigma * eps.

        Arguments:
            x_gen: GEN features, shape (n_events, n_features), physical units.
            eps: standard normal noise, shape (n_events, n_features).

        Returns:
            RECO-like features x_DL, shape (n_events, n_features), physical units.
        """
        mu, sigma = self.mean_and_width(x_gen)
        return mu + sigma * eps


def resolve_device(device: str) -> torch.device:
    """The torch device for "auto", "cpu", "cuda" or "cuda:N".

    "auto" picks the first CUDA device when one is present, else the CPU.

    Raises:
        ValueError: unknown device string, or CUDA requested but not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    index_text = device.removeprefix("cuda:") if device.startswith("cuda:") else None
    if device != "cuda" and not (index_text is not None and index_text.isdigit()):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if index_text is not None and int(index_text) >= torch.cuda.device_count():
        raise ValueError(
            f"device {device!r} requested but only {torch.cuda.device_count()} CUDA devices exist"
        )
    return torch.device(device)


def as_feature_array(
    values: object, name: str, n_features: int, feature_names: Sequence[str] | None = None
) -> np.ndarray:
    """Validate a feature matrix and return it as float64.

    Arguments:
        values: array-like of shape (n_events, n_features), physical units.
        name: argument name, used in error messages.
        n_features: expected number of columns.
        feature_names: names of the columns for error messages; None: their positions.

    Raises:
        ValueError: wrong shape, or rows with NaN or infinite values (the message gives the
            number of such rows and of bad entries per feature).
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (n_events, {n_features}), got {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        per_feature = bad.sum(axis=0)
        names = feature_names if feature_names is not None else range(n_features)
        detail = ", ".join(f"{f}: {c}" for f, c in zip(names, per_feature, strict=True) if c)
        raise ValueError(
            f"{name} has {int(bad.any(axis=1).sum())} of {len(array)} rows with NaN or "
            f"infinite values (bad entries per feature: {detail})"
        )
    return array
