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
momentum (``context``). Everything is plain tensor indexing, so the module scripts with
TorchScript and exports with torch.export, and every row is computed on its own (chunk
invariance).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from coffea_fastsim.analysis.definition import RESPONSE_KINDS, Response

__all__ = ["TARGETS", "TargetCoordinates"]

#: Target names: the paper's (RECO features) and the detector's responses.
TARGETS = ("paper", "detector")


def _wrap(angle: Tensor) -> Tensor:
    """Angle wrapped to [-pi, pi)."""
    return torch.remainder(angle + math.pi, 2.0 * math.pi) - math.pi


class TargetCoordinates(nn.Module):
    """The map between RECO features and the surrogate's target, given the GEN features.

    Arguments:
        feature_names: the analysis's feature names, in order.
        responses: the analysis's responses (``AnalysisDefinition.responses``); empty: the
            paper target (t = x_RECO, no context).
    """

    # Recorded in the model file's metadata; not part of the scripted computation.
    __jit_ignored_attributes__: ClassVar[list[str]] = ["responses"]

    def __init__(self, feature_names: Sequence[str], responses: Sequence[Response] = ()) -> None:
        super().__init__()
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
        self.name = "detector" if responses else "paper"
        self.responses = tuple(responses)
        self.n_features = len(names)
        self.n_context = 2 * len(momenta)

    def _gen_momenta(self, x_gen: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """pT, eta, phi of the GEN momenta, each (n_events, n_momenta)."""
        momenta = x_gen[:, self.momentum_index]
        pt = torch.hypot(momenta[:, :, 0], momenta[:, :, 1])
        eta = torch.asinh(momenta[:, :, 2] / pt)
        phi = torch.atan2(momenta[:, :, 1], momenta[:, :, 0])
        return pt, eta, phi

    @torch.jit.export
    def context(self, x_gen: Tensor) -> Tensor:
        """log pT (log GeV) and eta of each GEN momentum, (n_events, n_context)."""
        pt, eta, _ = self._gen_momenta(x_gen)
        return torch.cat([torch.log(pt), eta], dim=1)

    @torch.jit.export
    def encode(self, x_gen: Tensor, x_reco: Tensor) -> Tensor:
        """The target of RECO features, (n_events, n_features); the paper target is x_reco."""
        target = x_reco.clone()
        n_events = x_gen.shape[0]
        pt, eta, phi = self._gen_momenta(x_gen)
        reco_pt, reco_eta, reco_phi = self._gen_momenta(x_reco)
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

        Computed in float64: a response of exactly zero (a direction the detector measures
        exactly) then gives back the GEN float32 values, not float32 rounding of the
        trigonometric round trip."""
        dtype = target.dtype
        x_gen, target = x_gen.double(), target.double()
        x_reco = target.clone()
        n_events = x_gen.shape[0]
        pt, eta, phi = self._gen_momenta(x_gen)
        response = target[:, self.momentum_index]
        reco_pt = pt * torch.exp(response[:, :, 0])
        reco_eta = eta + response[:, :, 1]
        reco_phi = phi + response[:, :, 2]
        momentum = torch.stack(
            [
                reco_pt * torch.cos(reco_phi),
                reco_pt * torch.sin(reco_phi),
                reco_pt * torch.sinh(reco_eta),
            ],
            2,
        )
        x_reco[:, self.momentum_index.reshape(-1)] = momentum.reshape(n_events, -1)
        difference = self.difference_index
        x_reco[:, difference] = x_gen[:, difference] + target[:, difference]
        transverse = target[:, self.transverse_index]
        axis = phi[:, self.transverse_axis]
        cos, sin = torch.cos(axis), torch.sin(axis)
        delta_x = transverse[:, :, 0] * cos - transverse[:, :, 1] * sin
        delta_y = transverse[:, :, 0] * sin + transverse[:, :, 1] * cos
        delta = torch.stack([delta_x, delta_y], 2)
        gen = x_gen[:, self.transverse_index]
        x_reco[:, self.transverse_index.reshape(-1)] = (gen + delta).reshape(n_events, -1)
        return x_reco.to(dtype)
