"""The flow surrogate: a conditional normalizing flow for p(RECO features | GEN features).

The 9 RECO features are modelled jointly, so correlations between them (a mismeasured jet
shifts the MET; the muon direction is measured almost exactly, so its px, py, pz residuals
move together) and non-Gaussian response shapes are learned, as in FlashSim. The flow is
zuko's masked autoregressive flow, with affine or rational-quadratic spline transforms,
conditioned on the standardized GEN features and the target's context. With the detector
target (``TargetCoordinates``) the flow's variable is the standardized response itself. With
the paper target it is t = (x_RECO - x_GEN) / reco_std rather than the standardized x_RECO:
the identity part of the detector response is then exact instead of being learned by a
network, which matters because the muon momentum components are measured to about 1% of
their spread in the sample (see docs/flow.md for the comparison with x_RECO as the variable).

Sampling keeps the engine's contract ``forward(x_gen, eps) -> x_dl``: the per-event
standard normal noise ``eps`` is the sample of the flow's base distribution, mapped to a RECO
sample through the inverse transform, so seeding and chunk invariance work as for the
Gaussian model.

References:
    Papamakarios, Pavlakou, Murray, "Masked Autoregressive Flow for Density Estimation",
    NeurIPS 2017.
    Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", NeurIPS 2019.
    Vaselli, Rizzi, Cattafesta, Cicconofri (CMS), "FlashSim: accelerating HEP simulation
    with an end-to-end Machine Learning framework".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import zuko
from torch import Tensor, nn

from coffea_fastsim.analysis.definition import Response
from coffea_fastsim.surrogate.coordinates import TargetCoordinates
from coffea_fastsim.surrogate.flow_sampling import (
    feature_groups,
    flow_inverse,
    supports_fast_inverse,
)
from coffea_fastsim.surrogate.gaussian import StandardizedSurrogate
from coffea_fastsim.surrogate.one_pass_flow import OnePassFlow
from coffea_fastsim.surrogate.scaling import Standardization

__all__ = ["FLOW_GROUPS", "FLOW_TRANSFORMS", "FlowConfig", "FlowSurrogate", "ordered_responses"]

#: Widening of the sampled range beyond the training responses (compressed units).
SUPPORT_MARGIN = 0.5
#: Kinds of univariate transform: zuko's MAF (affine) and NSF (spline) flows.
FLOW_TRANSFORMS = ("affine", "spline")
#: Sampling groups of the one-pass flow (``FlowConfig.groups``).
FLOW_GROUPS = ("one", "transverse-last", "by-response", "by-feature")


@dataclass(frozen=True)
class FlowConfig:
    """Architecture of the flow.

    Arguments:
        transform: "affine" (exp(a) x + b per feature) or "spline" (monotonic
            rational-quadratic spline on [-5, 5] standardized units, identity outside).
        transforms: number of autoregressive transforms; feature order reversed between them.
        hidden_features: widths of the hidden layers of each transform's masked network.
        passes: sequential passes of the sampling direction; None: one per feature (fully
            autoregressive), 2: a coupling flow (faster sampling, less expressive), 1: every
            transform's parameters from the conditioning alone (``OnePassFlow``: splines
            per feature between triangular linear maps, one network evaluation per sample;
            spline only).
        groups: for the one-pass flow (``passes=1``) with the detector target, how the
            responses are sampled: "one" (every response in one network pass),
            "transverse-last" (the transverse responses, the missing momentum, in a second
            pass conditioned on the other responses: the detector's missing momentum follows
            the mismeasurement of the muon and the jet), "by-response" (one pass per
            response of the analysis, each conditioned on those before it), "by-feature"
            (one pass per response feature: an autoregressive flow with one network per
            feature).
        bins: number of spline bins (``transform="spline"`` only).
        order: for the one-pass flow, the analysis's response names in the order their
            groups are sampled (each conditioned on those before); empty: the analysis's
            order. Sampling the W+jet jet mass first, from GEN alone, and the jet momentum
            after it brings the jet-mass W1/sigma nearer the floor (docs/validation.md).
    """

    transform: str = "affine"
    transforms: int = 3
    hidden_features: tuple[int, ...] = (64, 64)
    passes: int | None = None
    bins: int = 8
    groups: str = "one"
    order: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.transform not in FLOW_TRANSFORMS:
            raise ValueError(f"transform must be one of {FLOW_TRANSFORMS}, got {self.transform!r}")
        if self.transforms < 1:
            raise ValueError(f"transforms must be at least 1, got {self.transforms}")
        if not self.hidden_features or min(self.hidden_features) < 1:
            raise ValueError(f"hidden_features must be positive widths, got {self.hidden_features}")
        if self.passes is not None and self.passes < 1:
            raise ValueError(f"passes must be None or at least 1, got {self.passes}")
        if self.bins < 2:
            raise ValueError(f"bins must be at least 2, got {self.bins}")
        if self.passes == 1 and self.transform != "spline":
            raise ValueError("passes=1 (the one-pass flow) needs transform='spline'")
        if self.groups not in FLOW_GROUPS:
            raise ValueError(f"groups must be one of {FLOW_GROUPS}, got {self.groups!r}")
        if self.groups != "one" and self.passes != 1:
            raise ValueError("groups is an option of the one-pass flow (passes=1)")
        if self.order and self.passes != 1:
            raise ValueError("order is an option of the one-pass flow (passes=1)")
        # Lists from a JSON round trip of the metadata become a tuple (frozen, hashable).
        object.__setattr__(self, "hidden_features", tuple(int(w) for w in self.hidden_features))
        object.__setattr__(self, "order", tuple(str(name) for name in self.order))


class FlowSurrogate(StandardizedSurrogate):
    """GEN features -> RECO-like features sampled from a conditional normalizing flow.

    Not scriptable with ``torch.jit.script`` (zuko builds distributions in Python); it is
    saved with ``torch.export`` (see ``model_io``).

    Arguments:
        standardization, coordinates: see ``StandardizedSurrogate``.
        config: the flow's architecture.
    """

    def __init__(
        self,
        standardization: Standardization,
        coordinates: TargetCoordinates | None = None,
        config: FlowConfig | None = None,
    ) -> None:
        super().__init__(standardization, coordinates, compress=True)
        config = config or FlowConfig()
        self.config = config
        # The range of the flow's variable that a sample may take (set by training).
        infinite = torch.full((self.n_features,), float("inf"))
        self.register_buffer("support_low", -infinite)
        self.register_buffer("support_high", infinite.clone())
        # The paper target's variable is the difference to the GEN features (see above).
        self.relative_to_gen = self.coordinates.name == "paper"
        arguments = {
            "features": self.n_features,
            "context": self.n_conditioning,
            "transforms": config.transforms,
            "hidden_features": config.hidden_features,
            "passes": config.passes,
        }
        self.flow: nn.Module
        self.sampling_groups: list[list[list[int]] | None] | None = None
        if config.passes == 1:
            # A response the detector does not have (scale 0) is exactly 0: the flow models
            # the others only.
            free = torch.arange(self.n_features)
            if self.detector:
                free = free[self.reco_std > 0]
            self.register_buffer("free_features", free, persistent=False)
            # The largest |eta| of each RECO momentum in training (``set_acceptance``).
            momenta = self.coordinates.momentum_index.shape[0] if self.detector else 0
            self.register_buffer("eta_limit", torch.full((momenta,), float("inf")))
            groups = _response_groups(self.coordinates, free.tolist(), config.groups, config.order)
            self.flow = OnePassFlow(
                max(len(free), 1),
                self.n_conditioning,
                config.transforms,
                config.hidden_features,
                config.bins,
                groups,
            )
            return
        if config.transform == "spline":
            self.flow = zuko.flows.NSF(bins=config.bins, **arguments)
        else:
            self.flow = zuko.flows.MAF(**arguments)
        # The feature groups of each sampling pass (see ``flow_sampling``); plain lists.
        self.sampling_groups = [
            feature_groups(t) if supports_fast_inverse(t) else None
            for t in self.flow.transform.transforms
        ]

    def _offset(self, z_conditioning: Tensor) -> Tensor:
        """What the flow's variable is measured from, standardized target units: the GEN
        features for the paper target, zero response for the detector target."""
        if not self.relative_to_gen:
            return torch.zeros_like(z_conditioning[:, : self.n_features])
        x_gen = z_conditioning[:, : self.n_features] * self.gen_std + self.gen_mean
        return self.standardize_reco(x_gen)

    def log_prob_standardized(self, z_reco: Tensor, z_conditioning: Tensor) -> Tensor:
        """log p(z_reco | conditioning) of the standardized target, shape (n_events,).

        log p(target | x_GEN) is this minus sum(log reco_std).

        Arguments:
            z_reco: standardized target, shape (n_events, n_features).
            z_conditioning: standardized conditioning (``conditioning``), shape
                (n_events, n_conditioning).
        """
        variable = z_reco - self._offset(z_conditioning)
        if isinstance(self.flow, OnePassFlow):
            return self.flow.log_prob(variable.index_select(1, self.free_features), z_conditioning)
        return self.flow(z_conditioning).log_prob(variable)

    def base_values(self, x_gen: Tensor, x_reco: Tensor) -> Tensor:
        """The base sample that ``forward`` maps to ``x_reco`` for ``x_gen``: its inverse.

        For RECO-like features the flow drew, it is the standard normal sample they came
        from; for the RECO of events the flow never saw (a held-out split), its mean and
        width per feature are the flow's calibration: a mean other than 0 is a bias, a
        width other than 1 a response too narrow (> 1) or too wide (< 1), in units of the
        base sample. The bounds that ``forward`` applies (training support, acceptance)
        are not undone: beyond them the round trip does not hold.

        Arguments:
            x_gen, x_reco: GEN and RECO features, each (n_events, n_features), physical
                units, in the dtype of the model (float32).

        Returns:
            The base sample, (n_events, n_features); 0 for a response the detector does not
            have (exact), which the flow does not model.
        """
        target = self.coordinates.encode(x_gen.double(), x_reco.double()).to(x_gen.dtype)
        z_conditioning = self.conditioning(x_gen)
        variable = self.standardize_reco(target) - self._offset(z_conditioning)
        if isinstance(self.flow, OnePassFlow):
            free = self.flow.base(variable.index_select(1, self.free_features), z_conditioning)
            return variable.new_zeros(variable.shape).index_copy(1, self.free_features, free)
        return self.flow(z_conditioning).transform(variable)

    def sample_standardized(self, z_conditioning: Tensor, eps: Tensor) -> Tensor:
        """The flow's variable for the base sample ``eps``: the inverse transform, one
        feature group per pass (``flow_sampling``), zuko's ``transform.inv`` up to float rounding.

        Arguments:
            z_conditioning: standardized conditioning, shape (n_events, n_conditioning).
            eps: base sample, shape (n_events, n_features).
        """
        if isinstance(self.flow, OnePassFlow):
            # Each group within the training support before it conditions the next ones.
            free = self.flow.sample(
                z_conditioning,
                eps.index_select(1, self.free_features),
                self.support_low.index_select(0, self.free_features),
                self.support_high.index_select(0, self.free_features),
            )
            return eps.new_zeros(eps.shape).index_copy(1, self.free_features, free)
        transforms = list(self.flow.transform.transforms)
        return flow_inverse(transforms, self.sampling_groups, z_conditioning, eps)

    def forward(self, x_gen: Tensor, eps: Tensor) -> Tensor:
        """Sample RECO-like features, one per event: the inverse transform of ``eps``.

        Arguments:
            x_gen: GEN features, shape (n_events, n_features), physical units.
            eps: standard normal noise (the base sample), shape (n_events, n_features).

        Returns:
            RECO-like features x_DL, shape (n_events, n_features), physical units.
        """
        if self.relative_to_gen:
            response = self.sample_standardized(self.standardize_gen(x_gen), eps)
            return x_gen + self.reco_std * response
        z_target = self.sample_standardized(self.conditioning(x_gen), eps)
        z_target = torch.clamp(z_target, self.support_low, self.support_high)
        response = self.destandardize_reco(z_target)
        if isinstance(self.flow, OnePassFlow) and self.eta_limit.numel() > 0:
            response = self._within_acceptance(x_gen, response)
        return self.coordinates.decode(x_gen, response)

    def _within_acceptance(self, x_gen: Tensor, response: Tensor) -> Tensor:
        """The response with each momentum's delta eta clamped so that |eta_RECO| stays
        within ``eta_limit``: a jet that the detector matched to another particle has a wide
        delta eta, which the one-pass flow can give a jet near the edge of the acceptance,
        and pz = pT sinh(eta) then grows without bound."""
        _, eta_gen, _ = self.coordinates.momenta(x_gen)
        columns = self.coordinates.momentum_index[:, 1]
        delta_eta = response.index_select(1, columns)
        # Never beyond 0: a GEN momentum outside the limit keeps a zero response exact.
        low = torch.clamp(-self.eta_limit - eta_gen, max=0.0)
        high = torch.clamp(self.eta_limit - eta_gen, min=0.0)
        delta_eta = torch.minimum(torch.maximum(delta_eta, low), high)
        return response.index_copy(1, columns, delta_eta.to(response.dtype))

    def set_acceptance(self, x_reco: Tensor) -> None:
        """One-pass flow, detector target: keep each sampled RECO momentum within the largest
        |eta| of the training RECO features ``x_reco`` (n_events, n_features, physical
        units), the acceptance of the detector that made them; other flows: nothing."""
        if isinstance(self.flow, OnePassFlow) and self.eta_limit.numel() > 0:
            _, eta, _ = self.coordinates.momenta(x_reco.to(self.eta_limit.device))
            self.eta_limit.copy_(eta.abs().max(dim=0).values)

    def set_support(self, z_reco: Tensor, margin: float = SUPPORT_MARGIN) -> None:
        """Limit samples of the detector target to the range of the standardized training
        responses ``z_reco`` (n_events, n_features), widened by ``margin`` on each side.

        An affine transform of the flow can send a rare base sample far beyond anything
        the detector does (a jet response of 10^20); with the compressed variable the
        margin is a factor of e^margin in the response's tail.
        """
        self.support_low.copy_(z_reco.min(dim=0).values - margin)
        self.support_high.copy_(z_reco.max(dim=0).values + margin)


def ordered_responses(responses: Sequence[Response], order: Sequence[str]) -> list[Response]:
    """The analysis's ``responses`` in ``order`` (their names; empty: as they are).

    Raises:
        ValueError: ``order`` is not the responses' names, each once.
    """
    if not order:
        return list(responses)
    names = [r.name for r in responses]
    if sorted(order) != sorted(names):
        raise ValueError(f"flow order {list(order)} must name each of the responses {names} once")
    return [responses[names.index(name)] for name in order]


def _response_groups(
    coordinates: TargetCoordinates, free: list[int], groups: str, order: tuple[str, ...] = ()
) -> list[list[int]] | None:
    """The one-pass flow's groups (positions among the ``free`` target features) for
    ``FlowConfig.groups``, the responses taken in ``order``; None: one group (also for the
    paper target, which has no responses)."""
    responses = ordered_responses(coordinates.responses, order)
    if groups == "one" or not responses:
        return None
    if groups == "by-feature" and not order:
        return [[k] for k in range(len(free))] if len(free) > 1 else None
    position = {name: i for i, name in enumerate(coordinates.feature_names)}
    of_response = [[position[f] for f in r.features] for r in responses]
    if groups == "by-feature":
        of_response = [[j] for features in of_response for j in features]
    if groups == "transverse-last":
        kinds = [r.kind == "transverse" for r in responses]
        of_response = [
            [
                j
                for features, kind in zip(of_response, kinds, strict=True)
                if kind == last
                for j in features
            ]
            for last in (False, True)
        ]
    result = [[free.index(j) for j in features if j in free] for features in of_response]
    result = [group for group in result if group]
    return result if len(result) > 1 else None
