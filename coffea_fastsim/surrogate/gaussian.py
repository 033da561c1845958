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
from dataclasses import fields

import numpy as np
import torch
from torch import Tensor, nn

from coffea_fastsim.surrogate.coordinates import TargetCoordinates
from coffea_fastsim.surrogate.scaling import Standardization

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
    n_features: int,
    hidden_width: int = 100,
    hidden_layers: int = 4,
    negative_slope: float = 0.05,
    n_inputs: int | None = None,
) -> nn.Sequential:
    """The paper's "six-layer" dense network: n -> 100 -> 100 -> 100 -> 100 -> n.

    LeakyReLU(negative_slope) after every layer but the last, which is linear.

    Arguments:
        n_features: width of the output layer (9), and of the input layer by default.
        hidden_width: nodes of each hidden layer.
        hidden_layers: number of hidden layers.
        negative_slope: LeakyReLU slope for negative inputs.
        n_inputs: width of the input layer when it differs (GEN features and context).
    """
    layers: list[nn.Module] = []
    width = n_features if n_inputs is None else n_inputs
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
    """Base of every surrogate family: its target coordinates and their standardization.

    The network of a subclass sees the standardized conditioning (the GEN features, then
    the target's context, see ``TargetCoordinates``) and works on the standardized target
    (the RECO features for the paper target, the detector response for the detector
    target). The constants are buffers, so they travel with the weights. A subclass
    implements ``forward(x_gen, eps) -> x_dl``, shapes (n_events, n_features), physical
    units, with ``eps`` standard normal noise; the inference engine needs nothing else.

    Arguments:
        standardization: the scales of the GEN features, the target and its context, from
            the training sample; they become the buffers ``gen_mean``, ``gen_std``,
            ``reco_mean``, ``reco_std`` (named for the paper target, where the target is the
            RECO features), ``context_mean`` and ``context_std`` (empty without context).
        coordinates: the target; None: the paper target.
        compress: standardize the detector target with asinh (see ``standardize_reco``).

    Raises:
        ValueError: a scale's shape does not fit the features or the target's context, or
            a scale is not positive (zero is allowed for an exact detector response).
    """

    def __init__(
        self,
        standardization: Standardization,
        coordinates: TargetCoordinates | None = None,
        compress: bool = False,
    ) -> None:
        super().__init__()
        # The buffers, named and ordered as the fields of Standardization; no context: empty.
        values = {f.name: getattr(standardization, f.name) for f in fields(standardization)}
        scales: dict[str, Tensor] = {
            name: torch.zeros(0) if value is None else value for name, value in values.items()
        }
        n_features = scales["gen_mean"].shape[0]
        coordinates = coordinates or TargetCoordinates([str(i) for i in range(n_features)])
        for name, width in [
            ("gen_std", n_features),
            ("reco_mean", n_features),
            ("reco_std", n_features),
            ("context_mean", coordinates.n_context),
            ("context_std", coordinates.n_context),
        ]:
            shape = tuple(scales[name].shape)
            if shape != (width,):
                raise ValueError(f"{name} has shape {shape}, expected ({width},)")
        if coordinates.n_features != n_features:
            raise ValueError(
                f"the target has {coordinates.n_features} features, gen_mean {n_features}"
            )
        # The detector target's scale is robust, and 0 for a response the detector does
        # not have (exact); a flow's variable is also compressed (see standardize_reco).
        self.detector = coordinates.name == "detector"
        self.compress = compress and self.detector
        reco_std = scales["reco_std"]
        if not all(bool((scales[s] > 0).all()) for s in ("gen_std", "context_std")) or not (
            bool((reco_std >= 0).all()) if self.detector else bool((reco_std > 0).all())
        ):
            raise ValueError("standard deviations must be positive")
        for name, value in scales.items():
            self.register_buffer(name, value.detach().to(torch.float32).clone())
        self.coordinates = coordinates

    @property
    def n_features(self) -> int:
        """Number of GEN (and RECO) features."""
        return int(self.gen_mean.shape[0])

    @property
    def n_conditioning(self) -> int:
        """Width of the network's conditioning: the GEN features and the context."""
        return self.n_features + int(self.context_mean.shape[0])

    @torch.jit.export
    def standardize_gen(self, x_gen: Tensor) -> Tensor:
        """Physical GEN features (n_events, n_features) -> standardized."""
        return (x_gen - self.gen_mean) / self.gen_std

    @torch.jit.export
    def conditioning(self, x_gen: Tensor) -> Tensor:
        """The network's standardized input, (n_events, n_conditioning): the GEN features,
        then the target's context (none for the paper target)."""
        context = (self.coordinates.context(x_gen) - self.context_mean) / self.context_std
        return torch.cat([self.standardize_gen(x_gen), context], dim=1)

    @torch.jit.export
    def standardize_reco(self, x_reco: Tensor) -> Tensor:
        """Target (n_events, n_features), physical units -> standardized.

        The paper target: (x - mean) / std. The detector target: (x - median) / w, with w
        half the central 68% interval, so that the core of a response with wide tails (a
        jet matched to the wrong particle) is resolved; a response with w = 0 (exact)
        gives 0. With ``compress`` (the flow), asinh of that: the tails stay within reach
        of the flow's transforms.
        """
        if not self.detector:
            return (x_reco - self.reco_mean) / self.reco_std
        scale = torch.where(self.reco_std > 0, self.reco_std, torch.ones_like(self.reco_std))
        z_reco = torch.where(self.reco_std > 0, (x_reco - self.reco_mean) / scale, 0.0)
        return torch.asinh(z_reco) if self.compress else z_reco

    @torch.jit.export
    def destandardize_reco(self, z_reco: Tensor) -> Tensor:
        """Standardized target (n_events, n_features) -> physical units (the inverse of
        ``standardize_reco``; an exact response gives its median)."""
        if self.compress:
            z_reco = torch.sinh(z_reco)
        return z_reco * self.reco_std + self.reco_mean


class GaussianSurrogate(StandardizedSurrogate):
    """GEN features -> RECO-like features with a learned Gaussian response.

    The standardization constants are buffers: they travel with the weights. Scriptable
    with ``torch.jit.script``.

    Arguments:
        standardization, coordinates: see ``StandardizedSurrogate``.
        hidden_width, hidden_layers, negative_slope: see ``regression_mlp``.
    """

    def __init__(
        self,
        standardization: Standardization,
        coordinates: TargetCoordinates | None = None,
        hidden_width: int = 100,
        hidden_layers: int = 4,
        negative_slope: float = 0.05,
    ) -> None:
        super().__init__(standardization, coordinates)
        shape = (self.n_features, hidden_width, hidden_layers, negative_slope, self.n_conditioning)
        self.mean_net = regression_mlp(*shape)
        self.quantile_net = regression_mlp(*shape)

    @torch.jit.export
    def heads(self, z_gen: Tensor) -> tuple[Tensor, Tensor]:
        """Standardized (mu, q) of the target, each (n_events, n_features), from the
        standardized conditioning (n_events, n_conditioning)."""
        return self.mean_net(z_gen), self.quantile_net(z_gen)

    @torch.jit.export
    def mean_and_width(self, x_gen: Tensor) -> tuple[Tensor, Tensor]:
        """Central value mu and width sigma = |q - mu| of the target, physical units (the
        RECO features for the paper target, the response for the detector target; sigma is
        the distance from mu to the learned 84.1% quantile).

        Arguments:
            x_gen: GEN features, shape (n_events, n_features), physical units.

        Returns:
            (mu, sigma), each of shape (n_events, n_features).
        """
        mu, q = self.heads(self.conditioning(x_gen))
        if self.detector:
            center = self.destandardize_reco(mu)
            return center, (self.destandardize_reco(q) - center).abs()
        return self.destandardize_reco(mu), (q - mu).abs() * self.reco_std

    def forward(self, x_gen: Tensor, eps: Tensor) -> Tensor:
        """Sample the target mu + sigma * eps and decode it into RECO-like features.

        Arguments:
            x_gen: GEN features, shape (n_events, n_features), physical units.
            eps: standard normal noise, shape (n_events, n_features).

        Returns:
            RECO-like features x_DL, shape (n_events, n_features), physical units.
        """
        if self.detector:
            mu, q = self.heads(self.conditioning(x_gen))
            target = self.destandardize_reco(mu + (q - mu).abs() * eps)
        else:
            mu, sigma = self.mean_and_width(x_gen)
            target = mu + sigma * eps
        return self.coordinates.decode(x_gen, target)


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
