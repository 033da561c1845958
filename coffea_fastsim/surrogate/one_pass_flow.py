"""A flow sampled in few network passes: every transform's parameters from the conditioning.

The transforms' parameters depend on the GEN conditioning, and on the features of earlier
groups, never on the features being sampled, so that one evaluation of one network gives
every transform of a group, and sampling is one evaluation per group plus elementwise
operations, where an autoregressive flow evaluates its networks once per feature and
transform. The features may form one group (one network pass) or several, each conditioned
on those before it (``groups``).

From the flow's variable x (the standardized, compressed response, n features of a group)
to the base sample z, each transform l = 1 … L in turn:

    u = S_l(x)        a monotonic rational-quadratic spline per feature (shape)
    x = M_l^-1 u      M_l = diag(exp(s_l)) (1 + A_l), A_l strictly triangular (correlation)

with A_l lower triangular for odd l and upper triangular for even l, and |s_l| ≤ 7.
S_l, s_l and A_l are outputs of the group's network. log p(x) = log N(z; 0, 1) + sum_l
[sum_i log S_l'(x_i) - sum_i s_l,i]. Sampling runs the other way: for l = L … 1,
u = M_l z (a product with a triangular matrix: n (n - 1) / 2 multiply-adds per event), then
x = S_l^-1(u). With one group and one transform this is a Gaussian copula with a learned,
conditioned marginal per feature; more transforms relax the copula, more groups condition
each feature on those before it.

The spline is the rational-quadratic spline of ``spline`` (on [-5, 5], identity outside),
whose knots take few tensor operations: sampling is mostly this elementwise work.

References:
    Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", NeurIPS 2019.
    Laparra, Camps-Valls, Malo, "Iterative Gaussianization: from ICA to random rotations",
    IEEE Trans. Neural Netw. 22 (2011) (marginal transforms alternated with linear ones).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coffea_fastsim.surrogate.flow_sampling import row_parts
from coffea_fastsim.surrogate.spline import spline_forward, spline_inverse, spline_parameter_count

__all__ = ["OnePassFlow"]

#: Half-range of the splines, standardized and compressed units (as the autoregressive flows).
SPLINE_BOUND = 5.0
#: Largest |s| of the scales exp(s) of M: beyond it a GEN event far outside the training
#: sample (a jet of 1 GeV, say) could give an infinite scale, and inf x 0 a NaN.
LOG_SCALE_RANGE = 7.0
#: Rows per evaluation of the splines' inverse on the CPU.
SPLINE_ROWS = 4096


class OnePassFlow(nn.Module):
    """Conditional density and sampler of ``features`` variables given ``context`` inputs,
    in groups of variables: each group's transforms come from one network whose input is
    the context and the variables of the groups before it (one group: the context alone,
    and sampling is one network pass).

    Arguments:
        features: number of variables n.
        context: width of the conditioning.
        transforms: number of (spline, triangular) transforms L of each group.
        hidden_features: widths of the hidden layers of each network (ReLU between layers).
        bins: bins of each spline.
        groups: the variables of each group, in sampling order, covering 0 … n - 1 once;
            None: one group of all.
    """

    def __init__(
        self,
        features: int,
        context: int,
        transforms: int = 2,
        hidden_features: tuple[int, ...] = (128, 128),
        bins: int = 8,
        groups: list[list[int]] | None = None,
    ) -> None:
        super().__init__()
        groups = [list(range(features))] if groups is None else [list(g) for g in groups]
        if sorted(i for group in groups for i in group) != list(range(features)) or not all(groups):
            raise ValueError(f"groups {groups} do not cover the {features} variables once")
        self.features = features
        self.groups = groups
        self.networks = nn.ModuleList()
        before: list[int] = []
        for k, group in enumerate(groups):
            self.networks.append(
                _GroupFlow(len(group), context + len(before), transforms, hidden_features, bins)
            )
            # Plain buffers of separate storage (torch.export's packaging needs both).
            self.register_buffer(f"group_{k}", torch.tensor(group), persistent=False)
            self.register_buffer(
                f"before_{k}", torch.tensor(before, dtype=torch.long), persistent=False
            )
            before = before + group

    def _indices(self) -> list[tuple[Tensor, Tensor]]:
        return [
            (getattr(self, f"group_{k}"), getattr(self, f"before_{k}"))
            for k in range(len(self.groups))
        ]

    def log_prob(self, x: Tensor, context: Tensor) -> Tensor:
        """log p(x | context), shape (N,), from x (N, n) and context (N, n_context)."""
        total = x.new_zeros(x.shape[0])
        for network, (group, before) in zip(self.networks, self._indices(), strict=True):
            inputs = torch.cat([context, x.index_select(1, before)], dim=1)
            total = total + network.log_prob(x.index_select(1, group), inputs)
        return total

    def base(self, x: Tensor, context: Tensor) -> Tensor:
        """The base sample z (N, n) that ``sample`` maps to x (N, n), given ``context``: for
        x drawn from the flow, standard normal; for x from the data the flow models, its
        calibration (a mean or width other than 0 and 1 is a bias of the flow)."""
        z = torch.zeros_like(x)
        for network, (group, before) in zip(self.networks, self._indices(), strict=True):
            inputs = torch.cat([context, x.index_select(1, before)], dim=1)
            z = z.index_copy(1, group, network.to_base(x.index_select(1, group), inputs)[0])
        return z

    def sample(
        self,
        context: Tensor,
        eps: Tensor,
        low: Tensor | None = None,
        high: Tensor | None = None,
    ) -> Tensor:
        """x for the base sample ``eps`` (N, n), given ``context`` (N, n_context): each
        group in turn, one network evaluation each. Row by row, so any block of rows gives
        the same bits.

        ``low`` and ``high`` (n,), when given, bound each group's sample before the groups
        after it are conditioned on it: a sample far outside the range the networks were
        trained on (a scale of e^7 on a rare base sample) would otherwise enter the next
        network as an input of the same size, and its output could overflow to a NaN.
        """
        x = torch.zeros_like(eps)
        for network, (group, before) in zip(self.networks, self._indices(), strict=True):
            inputs = torch.cat([context, x.index_select(1, before)], dim=1)
            sample = network.sample(inputs, eps.index_select(1, group))
            if low is not None and high is not None:
                sample = torch.clamp(
                    sample, low.index_select(0, group), high.index_select(0, group)
                )
            x = x.index_copy(1, group, sample)
        return x


class _GroupFlow(nn.Module):
    """The transforms of one group of n variables, every parameter from the network's
    input (the context, and the variables of earlier groups).

    Arguments:
        features: number of variables n.
        context: width of the network's input.
        transforms: number of (spline, triangular) transforms L.
        hidden_features: widths of the hidden layers of the network (ReLU between layers).
        bins: bins of each spline.

    Built by ``OnePassFlow`` only, which passes its own settings.
    """

    def __init__(
        self,
        features: int,
        context: int,
        transforms: int,
        hidden_features: tuple[int, ...],
        bins: int,
    ) -> None:
        super().__init__()
        self.features = features
        self.transforms = transforms
        self.bins = bins
        self.spline_width = spline_parameter_count(bins)
        self.n_pairs = features * (features - 1) // 2
        # Per transform: spline parameters (n x (3 bins - 1)), log scales (n), the
        # triangular entries (n (n - 1) / 2).
        self.transform_width = features * self.spline_width + features + self.n_pairs
        layers: list[nn.Module] = []
        width = context
        for hidden in hidden_features:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, transforms * self.transform_width))
        self.hyper = nn.Sequential(*layers)
        # The last layer starts at zero weight: every transform starts as the identity
        # spline (zero unconstrained parameters give equal bins and unit slopes) with
        # M = 1, so training starts from the standard normal.
        nn.init.zeros_(self.hyper[-1].weight)
        nn.init.zeros_(self.hyper[-1].bias)
        rows, columns = torch.tril_indices(features, features, offset=-1)
        # Separate storage each (views of one tensor do not survive torch.export's packaging).
        self.register_buffer("lower_rows", rows.clone(), persistent=False)
        self.register_buffer("lower_columns", columns.clone(), persistent=False)

    def _bounds(self, layer: int) -> list[tuple[int, int]]:
        """The network's output columns of transform ``layer``: (start, end) of the spline
        parameters (n x (3 bins - 1)), the log scales (n) and the triangular entries."""
        start = layer * self.transform_width
        spline_end = start + self.features * self.spline_width
        scale_end = spline_end + self.features
        end = start + self.transform_width
        return [(start, spline_end), (spline_end, scale_end), (scale_end, end)]

    def _unpack(self, parameters: Tensor, layer: int) -> tuple[Tensor, Tensor, Tensor]:
        """(spline parameters (N, n, 3 bins - 1), log scales (N, n), triangular entries
        (N, n (n - 1) / 2)) of transform ``layer`` from the network's output."""
        phi, log_scale, entries = (parameters[:, a:b] for a, b in self._bounds(layer))
        return phi.unflatten(-1, (self.features, self.spline_width)), log_scale, entries

    def _pairs(self, layer: int) -> tuple[Tensor, Tensor]:
        """(rows, columns) of the triangular entries: lower for even ``layer`` (counted
        from 0), upper for odd."""
        if layer % 2 == 0:
            return self.lower_rows, self.lower_columns
        return self.lower_columns, self.lower_rows

    def log_prob(self, x: Tensor, context: Tensor) -> Tensor:
        """log p(x | context), shape (N,), from x (N, n) and context (N, n_context)."""
        z, log_det = self.to_base(x, context)
        base = -0.5 * (z.square().sum(dim=-1) + self.features * math.log(2 * math.pi))
        return base + log_det

    def to_base(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """The base sample z (N, n) of x (N, n) given context (N, n_context), and the log
        determinant of the map's Jacobian, shape (N,)."""
        parameters = self.hyper(context)
        log_det = x.new_zeros(x.shape[0])
        for layer in range(self.transforms):
            phi, log_scale, entries = self._unpack(parameters, layer)
            log_scale = torch.clamp(log_scale, -LOG_SCALE_RANGE, LOG_SCALE_RANGE)
            u, spline_log_det = spline_forward(phi, x, self.bins, SPLINE_BOUND)
            rows, columns = self._pairs(layer)
            triangle = x.new_zeros(x.shape[0], self.features, self.features)
            triangle[:, rows, columns] = entries
            # x = (1 + A)^-1 (exp(-s) u), a triangular solve per event.
            x = torch.linalg.solve_triangular(
                triangle,
                (u * torch.exp(-log_scale))[..., None],
                upper=layer % 2 == 1,
                unitriangular=True,
            )[..., 0]
            log_det = log_det + spline_log_det.sum(dim=-1) - log_scale.sum(dim=-1)
        return x, log_det

    def sample(self, context: Tensor, eps: Tensor) -> Tensor:
        """x for the base sample ``eps`` (N, n), given ``context`` (N, n_context): one
        evaluation of the network, then per transform, last first, the triangular product
        and the spline's inverse. Row by row, so any block of rows gives the same bits."""
        hidden = context
        for module in list(self.hyper)[:-1]:
            hidden = module(hidden)
        last = self.hyper[-1]
        z = eps
        for layer in reversed(range(self.transforms)):
            rows, columns = self._pairs(layer)
            # The transform's parameters, each a product with its own rows of the last
            # layer's weight (contiguous results).
            phi, log_scale, entries = (
                F.linear(hidden, last.weight[a:b], last.bias[a:b]) for a, b in self._bounds(layer)
            )
            # u = exp(s) (z + A z), A z added entry by entry in a fixed order.
            log_scale = torch.clamp(log_scale, -LOG_SCALE_RANGE, LOG_SCALE_RANGE)
            u = z.index_add(1, rows, entries * z.index_select(1, columns)) * torch.exp(log_scale)
            phi = phi.unflatten(-1, (self.features, self.spline_width))
            z = torch.cat(
                [
                    spline_inverse(phi[part], u[part], self.bins, SPLINE_BOUND)
                    for part in row_parts(u.shape[0], u.device, SPLINE_ROWS)
                ]
            )
        return z
