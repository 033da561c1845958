"""Sampling a masked autoregressive flow: one feature group per pass, nothing recomputed.

The inverse of a masked autoregressive transform (zuko's ``AutoregressiveTransform``) makes
one pass of its masked network per group of features, and each pass evaluates the whole
network and inverts every feature's univariate transform, though only the features of one
group become final in it. Here a pass evaluates the hidden layers once, then only the output
rows of the group being determined, and inverts only that group's univariate transform
(a rational-quadratic spline of ``bins`` bins per feature: softmax, cumulative sums and a
bin search). For a 9-feature spline flow with 2 hidden layers of 128 this is about half the
floating-point work and a ninth of the spline work of the generic inverse. The spline's
inverse itself (``rational_quadratic_inverse``) makes zuko's operations in fewer, larger
calls, with the softmax as exp and a normalization (equal up to the last bit).

The result is the generic inverse's up to float rounding: the hidden layers are the same
matrix products, and the features not yet determined enter a pass with zero value where the
generic inverse has a provisional one, which the mask multiplies by a weight of exactly zero.
The output rows of a group come from a product with only those rows of the weight, which a
BLAS kernel may sum in another order, and the softmax of the spline's bins is computed as
exp and a normalization (``tests/test_flow.py`` checks agreement within 1e-4). Like every
surrogate, it is deterministic for a fixed block of rows, so chunk invariance holds.
"""

from __future__ import annotations

import functools
import inspect
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from zuko.flows.autoregressive import MaskedAutoregressiveTransform
from zuko.nn import MaskedLinear
from zuko.transforms import MonotonicRQSTransform
from zuko.utils import unpack

from coffea_fastsim.surrogate.spline import rational_quadratic_root

#: Rows per evaluation of a univariate inverse on the CPU. Its temporaries, (rows, bins + 1)
#: float32 each, then stay below glibc's 128 KiB mmap threshold, which dask's workers fix
#: (MALLOC_TRIM_THRESHOLD_): above it every temporary maps and zero-fills fresh pages. The
#: operations are row by row, so the parts give the same bits as the whole block.
UNIVARIATE_ROWS = 2048

__all__ = [
    "UNIVARIATE_ROWS",
    "feature_groups",
    "flow_inverse",
    "masked_autoregressive_inverse",
    "rational_quadratic_inverse",
    "row_parts",
    "sampling_flops",
    "spline_parameters",
    "supports_fast_inverse",
]


def supports_fast_inverse(transform: nn.Module) -> bool:
    """Whether ``transform`` (one lazy transform of a zuko flow) is a masked autoregressive
    transform whose network is a plain chain of masked linear layers and activations."""
    if not isinstance(transform, MaskedAutoregressiveTransform):
        return False
    layers = list(transform.hyper)
    linear = [isinstance(layer, MaskedLinear) for layer in layers]
    # Linear, activation, linear, ..., linear: activations hold no parameters.
    return (
        len(layers) % 2 == 1
        and all(linear[0::2])
        and not any(linear[1::2])
        and not any(next(layer.parameters(), None) is not None for layer in layers[1::2])
    )


def feature_groups(transform: MaskedAutoregressiveTransform) -> list[list[int]]:
    """The features of ``transform`` determined in each sampling pass, in pass order: the
    features of equal ``order`` (one feature per pass for a fully autoregressive flow)."""
    order = transform.order.tolist()
    return [[j for j, o in enumerate(order) if o == value] for value in sorted(set(order))]


def sampling_flops(transform: MaskedAutoregressiveTransform, groups: list[list[int]]) -> int:
    """Floating-point operations per sample of ``masked_autoregressive_inverse``: 2 x the
    multiply-adds of the hidden layers once per group, and of the output layer once (each
    group evaluates only its own rows). The spline's elementwise work is not counted."""
    linears = list(transform.hyper)[0::2]

    def flops(layer: nn.Module) -> int:
        return 2 * layer.weight.shape[0] * layer.weight.shape[1]

    return len(groups) * sum(flops(layer) for layer in linears[:-1]) + flops(linears[-1])


def masked_autoregressive_inverse(
    transform: MaskedAutoregressiveTransform,
    groups: list[list[int]],
    context: Tensor | None,
    y: Tensor,
) -> Tensor:
    """x with transform(context)(x) = y, one pass per feature group.

    Arguments:
        transform: a masked autoregressive transform (``supports_fast_inverse``).
        groups: ``feature_groups(transform)``, computed once (plain lists, so that
            ``torch.export`` sees no data-dependent Python values).
        context: the conditioning, shape (n_events, n_context); None without context.
        y: the transformed values, shape (n_events, n_features).

    Returns:
        x, shape (n_events, n_features).
    """
    layers = list(transform.hyper)
    linears = layers[0::2]
    activations = layers[1::2]
    weights = [layer.mask * layer.weight for layer in linears]
    biases = [layer.bias for layer in linears]
    total = transform.total
    n_events, n_features = y.shape
    # One input buffer [x, context] updated in place, and one buffer per hidden layer: a
    # fresh tensor per layer and pass would map and zero-fill new pages under allocator
    # settings such as dask's (MALLOC_TRIM_THRESHOLD_), which halves the sampling rate.
    # Where autograd records (grad mode and a tensor that requires grad), fresh tensors.
    tensors = [y, *transform.parameters(), *([] if context is None else [context])]
    differentiable = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    n_context = 0 if context is None else context.shape[-1]
    inputs = y.new_zeros((n_events, n_features + n_context))
    if context is not None:
        inputs[:, n_features:] = context
    hidden_buffers = [
        None if differentiable else y.new_empty((n_events, weight.shape[0]))
        for weight in weights[:-1]
    ]
    parameter_buffers: dict[int, Tensor] = {}
    spline = spline_parameters(transform)
    for group in groups:
        hidden = inputs
        for weight, bias, activation, buffer in zip(
            weights[:-1], biases[:-1], activations, hidden_buffers, strict=True
        ):
            hidden = _linear(hidden, weight, bias, None if differentiable else buffer, activation)
        columns = torch.tensor(group, device=y.device)
        rows = (columns[:, None] * total + torch.arange(total, device=y.device)).flatten()
        last_bias = None if biases[-1] is None else biases[-1][rows]
        if not differentiable and len(rows) not in parameter_buffers:
            parameter_buffers[len(rows)] = y.new_empty((n_events, len(rows)))
        phi = _linear(hidden, weights[-1][rows], last_bias, parameter_buffers.get(len(rows)))
        phi = phi.unflatten(-1, (len(group), total))
        y_group = y.index_select(1, columns)
        x_group = torch.cat(
            [
                _univariate_inverse(transform, spline, phi[part], y_group[part])
                for part in row_parts(n_events, y.device)
            ]
        )
        if differentiable:
            inputs = inputs.index_copy(1, columns, x_group)
        else:
            inputs.index_copy_(1, columns, x_group)
    return inputs[:, :n_features].clone()


def row_parts(n_rows: int, device: torch.device, rows: int | None = None) -> list[slice]:
    """The rows of a block in parts of ``rows`` (default ``UNIVARIATE_ROWS``) on the CPU;
    whole on other devices and when traced (``torch.export``, where the number of rows is
    symbolic)."""
    step = UNIVARIATE_ROWS if rows is None else rows
    if device.type != "cpu" or torch.compiler.is_compiling():
        return [slice(None)]
    return [slice(start, start + step) for start in range(0, n_rows, step)]


#: zuko's default bound and minimum slope of its spline, read once (not per sampled block).
_SPLINE_DEFAULTS = inspect.signature(MonotonicRQSTransform.__init__).parameters


def spline_parameters(transform: MaskedAutoregressiveTransform) -> tuple[float, float] | None:
    """(bound, slope) of ``transform``'s univariate transform when it is zuko's monotonic
    rational-quadratic spline (``rational_quadratic_inverse`` then inverts it), else None."""
    univariate = transform.univariate
    keywords: dict = {}
    if isinstance(univariate, functools.partial):
        if univariate.args:
            return None
        univariate, keywords = univariate.func, dict(univariate.keywords)
    if univariate is not MonotonicRQSTransform:
        return None
    bound = keywords.pop("bound", _SPLINE_DEFAULTS["bound"].default)
    slope = keywords.pop("slope", _SPLINE_DEFAULTS["slope"].default)
    return None if keywords else (float(bound), float(slope))


def _univariate_inverse(
    transform: MaskedAutoregressiveTransform,
    spline: tuple[float, float] | None,
    phi: Tensor,
    y: Tensor,
) -> Tensor:
    """x with univariate(phi)(x) = y, shapes (n_events, n_group) from phi (n_events,
    n_group, total): ``rational_quadratic_inverse`` for a spline, else zuko's own."""
    if spline is None:
        return transform.univariate(*unpack(phi, transform.shapes)).inv(y)
    bins = int(transform.shapes[0][0])
    return rational_quadratic_inverse(phi, y, bins, *spline)


def rational_quadratic_inverse(
    phi: Tensor, y: Tensor, bins: int, bound: float = 5.0, slope: float = 1e-3
) -> Tensor:
    """The inverse of zuko's monotonic rational-quadratic spline (``MonotonicRQSTransform``),
    from its unconstrained parameters, in fewer and larger tensor operations.

    The spline maps [-bound, bound] onto itself through ``bins`` bins (identity outside); its
    parameters are, per feature, the unconstrained widths and heights (``bins`` each) and the
    interior knot derivatives (``bins`` - 1), packed in this order as zuko's masked network
    gives them. The same formulas as zuko's (Durkan et al. 2019: the knots from softmax and
    cumulative sums, the inverse of the rational quadratic by the stable root of its
    quadratic equation), so the same knots up to the last bit of the softmax, which is
    computed as exp and a normalization (torch's softmax over a few bins is several times
    slower on the CPU); the gain is also in fewer, larger operations (the widths and heights
    together, one gather per knot quantity, no padding or broadcasting copies)
    (docs/benchmarks.md).

    Arguments:
        phi: unconstrained parameters, shape (n_events, n_features, 3 bins - 1).
        y: the values to invert, shape (n_events, n_features).
        bins, bound, slope: the spline's number of bins, half-range and minimum slope.

    Returns:
        x, shape (n_events, n_features).
    """
    scale = math.log(slope)
    widths_heights = phi[..., : 2 * bins]
    widths_heights = widths_heights / (1 + torch.abs(2 * widths_heights / scale))
    # The softmax as exp and a normalization: the soft clamp above bounds the exponent by
    # |scale| / 2, and torch's softmax over a last dimension of a few bins is 5 to 7 times
    # slower on the CPU than these two operations (its bits can differ in the last place).
    exponentials = torch.exp(widths_heights.unflatten(-1, (2, bins)))
    fractions = exponentials / exponentials.sum(dim=-1, keepdim=True)
    # The right knot of each bin, (n_events, n_features, 2, bins): horizontal, vertical.
    knots = bound * (2 * torch.cumsum(fractions, dim=-1) - 1)
    derivatives = phi[..., 2 * bins :]
    derivatives = torch.exp(derivatives / (1 + torch.abs(derivatives / scale)))
    left = torch.full_like(knots[..., :1], -bound)
    knots = torch.cat([left, knots], dim=-1)  # every knot, bins + 1
    ones = torch.ones_like(derivatives[..., :1])
    derivatives = torch.cat([ones, derivatives, ones], dim=-1)  # exp(0) at both ends
    # The bin of y: the interior vertical knots below it (0 ... bins - 1).
    k = torch.sum(knots[..., 1, 1:-1] < y[..., None], dim=-1, keepdim=True)
    k1 = k + 1
    x0 = knots[..., 0, :].gather(-1, k).squeeze(-1)
    x1 = knots[..., 0, :].gather(-1, k1).squeeze(-1)
    y0 = knots[..., 1, :].gather(-1, k).squeeze(-1)
    y1 = knots[..., 1, :].gather(-1, k1).squeeze(-1)
    d0 = derivatives.gather(-1, k).squeeze(-1)
    d1 = derivatives.gather(-1, k1).squeeze(-1)
    # Outside the spline's range (the identity) the quadratic is solved at y0 instead, so
    # that it has a real root and its gradient is finite.
    inside = (y > -bound) & (y <= knots[..., 1, -1])
    shifted = torch.where(inside, y - y0, 0.0)
    return torch.where(inside, rational_quadratic_root(x0, x1, y0, y1, d0, d1, shifted), y)


def _linear(
    inputs: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    out: Tensor | None,
    activation: nn.Module | None = None,
) -> Tensor:
    """``activation(F.linear(inputs, weight, bias))``, written into ``out`` when given: the
    same matrix product as F.linear (addmm), so the same bits; a ReLU then runs in place."""
    if out is None:
        result = F.linear(inputs, weight, bias)
    elif bias is None:
        result = torch.mm(inputs, weight.t(), out=out)
    else:
        result = torch.addmm(bias, inputs, weight.t(), out=out)
    if activation is None:
        return result
    if out is not None and isinstance(activation, nn.ReLU):
        return torch.relu_(result)
    return activation(result)


def flow_inverse(
    transforms: list[nn.Module],
    groups: list[list[list[int]] | None],
    context: Tensor | None,
    y: Tensor,
) -> Tensor:
    """The inverse of a composed flow transform: each transform's inverse, last first.

    Arguments:
        transforms: the flow's lazy transforms, in the order of the forward direction.
        groups: per transform, ``feature_groups`` where ``supports_fast_inverse``, else None
            (that transform is inverted by zuko's own ``inv``).
        context: the conditioning, shape (n_events, n_context), or None.
        y: a sample of the base distribution, shape (n_events, n_features).

    Returns:
        The flow's sample, shape (n_events, n_features).
    """
    for transform, transform_groups in zip(reversed(transforms), reversed(groups), strict=True):
        if transform_groups is None:
            y = transform(context).inv(y)
        else:
            y = masked_autoregressive_inverse(transform, transform_groups, context, y)
    return y
