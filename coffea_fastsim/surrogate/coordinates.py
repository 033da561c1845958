"""The coordinates a surrogate learns in: the RECO features themselves, or the detector response.

A surrogate maps GEN features to a *target* t and back: ``encode(x_gen, x_reco) -> t`` for
training, ``decode(x_gen, t) -> x_reco`` for sampling, both of shape (n_events, n_features).

- The paper target is the RECO feature vector itself: t = x_RECO (the reference study).
- The detector target is the response the detector has, per object of the analysis
  (``analysis.definition.Response``): for a momentum (px, py, pz), log(pT_RECO / pT_GEN),
  eta_RECO - eta_GEN and the wrapped phi difference; for a difference feature such as the
  log jet mass, x_RECO - x_GEN; for a transverse vector such as the missing momentum, the
  RECO - GEN difference along and across the GEN direction of another object. A detector
  that measures a direction exactly then has a response of exactly zero there, which a
  network reproduces, whereas noise on px, py, pz separately smears the direction.

The detector target also gives the network more conditioning: log pT and eta of every GEN
momentum (``context``), and optionally steps in |eta| (``eta_steps``): for each GEN momentum
and each step e, a sigmoid of (|eta| - e) / ETA_STEP_WIDTH, about 0 below e and 1 above it. A
detector's resolution changes in steps at the edges of its parts (a barrel and its endcaps);
a network of smooth inputs rounds a step off over a few tenths in eta, and is then too wide on
one side of it and too narrow on the other. The steps let it place one where the data has it.

Everything is plain tensor indexing, so the module scripts with TorchScript and exports with
torch.export, and every row is computed on its own (chunk invariance).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from coffea_fastsim.analysis.definition import RESPONSE_KINDS, Response

__all__ = ["ETA_STEP_WIDTH", "TARGETS", "TargetCoordinates"]

#: Target names: the paper's (RECO features) and the detector's responses.
TARGETS = ("paper", "detector")

#: Width in |eta| of each step of the context (``TargetCoordinates``, eta_steps).
ETA_STEP_WIDTH = 0.02
#: Smallest share of the training events on either side of a context step in |eta|.
MIN_STEP_SHARE = 0.001


def _wrap(angle: Tensor) -> Tensor:
    """Angle wrapped to [-pi, pi)."""
    return torch.remainder(angle + math.pi, 2.0 * math.pi) - math.pi


def _pt_and_eta(px: Tensor, py: Tensor, pz: Tensor) -> tuple[Tensor, Tensor]:
    """pT and eta of momenta given by their components, each of the same shape."""
    pt = torch.hypot(px, py)
    return pt, torch.asinh(pz / pt)


class TargetCoordinates(nn.Module):
    """The map between RECO features and the surrogate's target, given the GEN features.

    Arguments:
        feature_names: the analysis's feature names, in order.
        responses: the analysis's responses (``AnalysisDefinition.responses``); empty: the
            paper target (t = x_RECO, no context).
        eta_steps: |eta| of the steps of the context, increasing, each > 0 (see the module
            docstring); empty: none. They need momentum responses.
    """

    # Recorded in the model file's metadata; not part of the scripted computation.
    __jit_ignored_attributes__: ClassVar[list[str]] = ["responses", "eta_step_values"]

    def __init__(
        self,
        feature_names: Sequence[str],
        responses: Sequence[Response] = (),
        eta_steps: Sequence[float] = (),
    ) -> None:
        super().__init__()
        steps = [float(e) for e in eta_steps]
        if any(not e > 0 for e in steps) or any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"eta_steps must be positive and increasing, got {steps}")
        names = list(feature_names)
        position = {name: i for i, name in enumerate(names)}
        momenta = [r for r in responses if r.kind == "momentum"]
        momentum_of = {r.name: k for k, r in enumerate(momenta)}
        for response in responses:
            if response.kind not in RESPONSE_KINDS:
                raise ValueError(f"response {response.name!r}: unknown kind {response.kind!r}")
            missing = [f for f in response.features if f not in position]
            if missing:
                raise ValueError(f"response {response.name!r}: {missing} are not in {names}")

        def index(kind: str) -> Tensor:
            rows = [[position[f] for f in r.features] for r in responses if r.kind == kind]
            width = RESPONSE_KINDS[kind]
            return torch.tensor(rows, dtype=torch.long).reshape(-1, width)

        self.register_buffer("momentum_index", index("momentum"))
        self.register_buffer("difference_index", index("difference").reshape(-1))
        self.register_buffer("transverse_index", index("transverse"))
        axes = [momentum_of[r.axis] for r in responses if r.kind == "transverse"]
        self.register_buffer("transverse_axis", torch.tensor(axes, dtype=torch.long))
        if steps and not momenta:
            raise ValueError("eta_steps need momentum responses (the detector target)")
        # A plain tensor, not a buffer: the state dicts of model files stay as they were, and
        # the steps are in the metadata, which rebuilds the module.
        self.eta_step_tensor = torch.tensor(steps, dtype=torch.float32)
        self.name = "detector" if responses else "paper"
        self.responses = tuple(responses)
        self.eta_step_values = tuple(steps)
        self.eta_step_width = ETA_STEP_WIDTH
        self.feature_names = tuple(names)
        self.n_features = len(names)
        self.n_context = (2 + len(steps)) * len(momenta)
        self.context_names = (
            *(f"{r.name} log pT" for r in momenta),
            *(f"{r.name} eta" for r in momenta),
            *(f"{r.name} |eta| step at {e:g}" for r in momenta for e in steps),
        )

    def _columns(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The three columns of every momentum response of ``x`` (features or target):
        px, py, pz (or log pT ratio, delta eta, delta phi), each (n_events, n_momenta)."""
        index = self.momentum_index
        return (
            x.index_select(1, index[:, 0]),
            x.index_select(1, index[:, 1]),
            x.index_select(1, index[:, 2]),
        )

    def momenta(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """pT (GeV), eta, phi of the momenta of the responses in the features ``x`` (GEN or
        RECO, (n_events, n_features)), each (n_events, n_momenta)."""
        px, py, pz = self._columns(x)
        pt, eta = _pt_and_eta(px, py, pz)
        return pt, eta, torch.atan2(py, px)

    def check_eta_steps(self, x_gen: Tensor) -> None:
        """Refuse a step in |eta| that (almost) none of the GEN momenta of ``x_gen`` (the
        training events, (n_events, n_features)) crosses: its context column would be
        constant, and its scale would blow up an event beyond it.

        Raises:
            ValueError: a step with less than MIN_STEP_SHARE of a momentum on one side.
        """
        _, eta, _ = self.momenta(x_gen)
        momenta = [r.name for r in self.responses if r.kind == "momentum"]
        for k, name in enumerate(momenta):
            for step in self.eta_step_values:
                above = float((eta[:, k].abs() > step).double().mean())
                if not MIN_STEP_SHARE <= above <= 1 - MIN_STEP_SHARE:
                    raise ValueError(
                        f"context_eta_steps: the step at |eta| = {step:g} has {above:.2%} of "
                        f"the training events' GEN {name} above it; a step needs at least "
                        f"{MIN_STEP_SHARE:.1%} on each side"
                    )

    @torch.jit.export
    def context(self, x_gen: Tensor) -> Tensor:
        """log pT (log GeV) and eta of each GEN momentum, then its |eta| steps (momentum by
        momentum, step by step), (n_events, n_context) (``context_names``)."""
        pt, eta = _pt_and_eta(*self._columns(x_gen))
        context = torch.cat([torch.log(pt), eta], dim=1)
        if self.eta_step_tensor.numel() == 0:
            return context
        steps = self.eta_step_tensor.to(eta)
        above = torch.sigmoid((eta.abs().unsqueeze(2) - steps) / self.eta_step_width)
        return torch.cat([context, above.flatten(1)], dim=1)

    @torch.jit.export
    def encode(self, x_gen: Tensor, x_reco: Tensor) -> Tensor:
        """The target of RECO features, (n_events, n_features); the paper target is x_reco."""
        target = x_reco.clone()
        n_events = x_gen.shape[0]
        pt, eta, phi = self.momenta(x_gen)
        reco_pt, reco_eta, reco_phi = self.momenta(x_reco)
        momentum = torch.stack([torch.log(reco_pt / pt), reco_eta - eta, _wrap(reco_phi - phi)], 2)
        target[:, self.momentum_index.reshape(-1)] = momentum.reshape(n_events, -1)
        difference = self.difference_index
        target[:, difference] = x_reco[:, difference] - x_gen[:, difference]
        delta = x_reco[:, self.transverse_index] - x_gen[:, self.transverse_index]
        axis = phi[:, self.transverse_axis]
        cos, sin = torch.cos(axis), torch.sin(axis)
        along = delta[:, :, 0] * cos + delta[:, :, 1] * sin
        across = delta[:, :, 1] * cos - delta[:, :, 0] * sin
        transverse = torch.stack([along, across], 2).reshape(n_events, -1)
        target[:, self.transverse_index.reshape(-1)] = transverse
        return target

    @torch.jit.export
    def decode(self, x_gen: Tensor, target: Tensor) -> Tensor:
        """RECO-like features of a target, (n_events, n_features), in the dtype of
        ``target``; the paper target is returned as it is.

        The response scales and turns the GEN momentum, with r = pT_RECO / pT_GEN and
        p = |p_GEN|: px' = r (px cos dphi - py sin dphi), py' = r (py cos dphi + px sin dphi),
        pz' = r (pz cosh deta + p sinh deta) (= pT' sinh(eta + deta)); a transverse response
        turns with the GEN direction (px, py) / pT of its axis. A response of exactly zero
        (a direction the detector measures exactly) then gives back the GEN values exactly
        in any dtype, with no trigonometric round trip through eta and phi."""
        x_gen = x_gen.to(target.dtype)
        x_reco = target.clone()
        index = self.momentum_index
        px, py, pz = self._columns(x_gen)
        log_ratio, delta_eta, delta_phi = self._columns(target)
        ratio = torch.exp(log_ratio)
        cos_phi, sin_phi = torch.cos(delta_phi), torch.sin(delta_phi)
        pt = torch.hypot(px, py)
        p = torch.hypot(pt, pz)
        x_reco.index_copy_(1, index[:, 0], ratio * (px * cos_phi - py * sin_phi))
        x_reco.index_copy_(1, index[:, 1], ratio * (py * cos_phi + px * sin_phi))
        pz_reco = ratio * (pz * torch.cosh(delta_eta) + p * torch.sinh(delta_eta))
        x_reco.index_copy_(1, index[:, 2], pz_reco)
        difference = self.difference_index
        gen_difference = x_gen.index_select(1, difference)
        x_reco.index_copy_(1, difference, gen_difference + target.index_select(1, difference))
        # The GEN direction (px, py) / pT of each transverse response's axis (an axis without
        # pT, which a selected object never is, gives no response rather than NaN).
        axis = self.transverse_axis
        axis_pt = pt.index_select(1, axis).clamp_min(1e-30)
        cos, sin = px.index_select(1, axis) / axis_pt, py.index_select(1, axis) / axis_pt
        x_index, y_index = self.transverse_index[:, 0], self.transverse_index[:, 1]
        along, across = target.index_select(1, x_index), target.index_select(1, y_index)
        delta_x, delta_y = along * cos - across * sin, along * sin + across * cos
        x_reco.index_copy_(1, x_index, x_gen.index_select(1, x_index) + delta_x)
        x_reco.index_copy_(1, y_index, x_gen.index_select(1, y_index) + delta_y)
        return x_reco
