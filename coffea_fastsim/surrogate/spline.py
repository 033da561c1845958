"""A monotonic rational-quadratic spline per feature, in few tensor operations.

The spline of Durkan, Bekasov, Murray and Papamakarios ("Neural Spline Flows", NeurIPS 2019)
maps [-bound, bound] onto itself through ``bins`` bins and is the identity outside, with
unit slope at both ends. Between knots (x_k, y_k) and (x_k+1, y_k+1), with slopes d_k and
d_k+1 at the knots, s = (y_k+1 - y_k) / (x_k+1 - x_k) and t = (x - x_k) / (x_k+1 - x_k):

    y = y_k + (y_k+1 - y_k) [s t^2 + d_k t (1 - t)] / [s + (d_k+1 + d_k - 2 s) t (1 - t)]

Its parameters per feature, unconstrained (a network's output), are ``bins`` width logits,
``bins`` height logits and ``bins - 1`` logits of the interior slopes, in this order. Bin
widths and heights are proportional to exp(logit), the logit clamped to [-5, 5], and the
interior slopes are exp(logit), clamped to [0.001, 1000]: an exponential and a
normalization, not a softmax (torch's softmax over a few bins is several times slower on the
CPU). All-zero parameters give the identity.

``spline_forward`` (with log dy/dx, for training) and ``spline_inverse`` (for sampling)
locate a value's bin in the cumulative bin sizes and rescale only that bin's knots: few
operations on the (events, features, bins) tensors, which are the sampling's cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "rational_quadratic_root",
    "spline_forward",
    "spline_inverse",
    "spline_parameter_count",
]

#: Largest |log| of a bin's size (width or height) before normalization: no bin is narrower
#: than e^-10 times another.
BIN_LOG_RANGE = 5.0
#: Largest |log slope| at an interior knot (slopes from 0.001 to 1000).
SLOPE_LOG_RANGE = 6.9


def spline_parameter_count(bins: int) -> int:
    """Unconstrained parameters per feature: widths, heights and interior slopes."""
    return 3 * bins - 1


def _bin_values(
    phi: Tensor, values: Tensor, bins: int, bound: float, axis: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(x_k, x_k+1, y_k, y_k+1, d_k, d_k+1) of the bin holding ``values`` (...), located
    along the knots' x (``axis`` 0, the forward direction) or y (``axis`` 1, the inverse).

    The knots are cumulative sums of the bin sizes, searched in those units (the value is
    rescaled, not every knot) and rescaled to [-bound, bound] only where gathered.
    """
    logits = phi[..., : 2 * bins].unflatten(-1, (2, bins))
    sizes = torch.exp(torch.clamp(logits, -BIN_LOG_RANGE, BIN_LOG_RANGE))
    cumulative = torch.cumsum(sizes, dim=-1)  # (..., 2, bins): right edges, x then y
    per_unit = cumulative[..., -1] / (2 * bound)  # (..., 2)
    target = (values + bound) * per_unit[..., axis]
    k = torch.sum(cumulative[..., axis, :-1] < target[..., None], dim=-1, keepdim=True)
    both = torch.cat([k, k + 1], dim=-1)  # (..., 2): the bin's left and right knots
    padded = F.pad(cumulative, (1, 0))  # a knot at -bound
    edges = padded.gather(-1, both[..., None, :].expand(*both.shape[:-1], 2, 2))
    edges = edges / per_unit[..., None] - bound  # (..., 2, 2): (x_k, x_k+1), (y_k, y_k+1)
    interior = torch.exp(torch.clamp(phi[..., 2 * bins :], -SLOPE_LOG_RANGE, SLOPE_LOG_RANGE))
    slopes = F.pad(interior, (1, 1), value=1.0).gather(-1, both)
    return (
        edges[..., 0, 0],
        edges[..., 0, 1],
        edges[..., 1, 0],
        edges[..., 1, 1],
        slopes[..., 0],
        slopes[..., 1],
    )


def spline_forward(phi: Tensor, x: Tensor, bins: int, bound: float) -> tuple[Tensor, Tensor]:
    """y = S(x) and log dy/dx, elementwise.

    Arguments:
        phi: unconstrained parameters, shape (..., n, 3 bins - 1).
        x: values, shape (..., n).
        bins, bound: the spline's bins and half-range.

    Returns:
        (y, log dy/dx), each shaped like ``x``; the identity (log-derivative 0) outside
        [-bound, bound].
    """
    inside = (x > -bound) & (x < bound)
    # Outside, the formulas are evaluated at -bound (finite values and gradients) and
    # replaced by the identity.
    x_in = torch.where(inside, x, -bound)
    x0, x1, y0, y1, d0, d1 = _bin_values(phi, x_in, bins, bound, 0)
    width = x1 - x0
    height = y1 - y0
    s = height / width
    t = (x_in - x0) / width
    t1 = t * (1 - t)
    denominator = s + (d0 + d1 - 2 * s) * t1
    y = y0 + height * (s * t * t + d0 * t1) / denominator
    numerator = s * s * (d1 * t * t + 2 * s * t1 + d0 * (1 - t) * (1 - t))
    log_derivative = torch.log(numerator) - 2 * torch.log(denominator)
    return torch.where(inside, y, x), torch.where(inside, log_derivative, 0.0)


def spline_inverse(phi: Tensor, y: Tensor, bins: int, bound: float) -> Tensor:
    """x = S^-1(y), elementwise: the stable root of the rational quadratic's equation.

    Arguments:
        phi: unconstrained parameters, shape (..., n, 3 bins - 1).
        y: values, shape (..., n).
        bins, bound: the spline's bins and half-range.

    Returns:
        x, shaped like ``y``; the identity outside [-bound, bound].
    """
    inside = (y > -bound) & (y < bound)
    y_in = torch.where(inside, y, -bound)
    x0, x1, y0, y1, d0, d1 = _bin_values(phi, y_in, bins, bound, 1)
    return torch.where(inside, rational_quadratic_root(x0, x1, y0, y1, d0, d1, y_in - y0), y)


def rational_quadratic_root(
    x0: Tensor, x1: Tensor, y0: Tensor, y1: Tensor, d0: Tensor, d1: Tensor, shifted: Tensor
) -> Tensor:
    """x in [x0, x1] where the bin's rational quadratic reaches y0 + ``shifted``: the root of
    its quadratic equation in t = (x - x0) / (x1 - x0) that is stable for t near 0
    (2 c / (-b - sqrt(b^2 - 4 a c))). Arguments: the bin's knots, the slopes at them, and
    y - y0, all of one shape."""
    dy = y1 - y0
    dx = x1 - x0
    s = dy / dx
    curvature = d0 + d1 - 2 * s
    a = dy * (s - d0) + shifted * curvature
    b = dy * d0 - shifted * curvature
    c = -s * shifted
    z = 2 * c / (-b - torch.sqrt(b * b - 4 * a * c))
    return x0 + z * dx
