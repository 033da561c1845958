"""Sampling a masked autoregressive flow: one feature group per pass, nothing recomputed.

The inverse of a masked autoregressive transform (zuko's ``AutoregressiveTransform``) makes
one pass of its masked network per group of features, and each pass evaluates the whole
network and inverts every feature's univariate transform, though only the features of one
group become final in it. Here a pass evaluates the hidden layers once, then only the output
rows of the group being determined, and inverts only that group's univariate transform
(a rational-quadratic spline of ``bins`` bins per feature: softmax, cumulative sums and a
bin search). For a 9-feature spline flow with 2 hidden layers of 128 this is about half the
floating-point work and a ninth of the spline work of the generic inverse.

The result is the generic inverse's up to float rounding: the hidden layers are the same
matrix products, and the features not yet determined enter a pass with zero value where the
generic inverse has a provisional one, which the mask multiplies by a weight of exactly zero.
The output rows of a group come from a product with only those rows of the weight, which a
BLAS kernel may sum in another order (the shipped spline flows give bitwise the same samples
on the development machine; ``tests/test_flow.py`` checks agreement within 1e-5). Like every
surrogate, it is deterministic for a fixed block of rows, so chunk invariance holds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from zuko.flows.autoregressive import MaskedAutoregressiveTransform
from zuko.nn import MaskedLinear
from zuko.utils import unpack

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
                transform.univariate(*unpack(phi[part], transform.shapes)).inv(y_group[part])
                for part in _row_parts(n_events, y.device)
            ]
        )
        if differentiable:
            inputs = inputs.index_copy(1, columns, x_group)
        else:
            inputs.index_copy_(1, columns, x_group)
    return inputs[:, :n_features].clone()


def _row_parts(n_rows: int, device: torch.device) -> list[slice]:
    """The rows of a block in parts of ``UNIVARIATE_ROWS`` on the CPU; whole on other devices
    and when traced (``torch.export``, where the number of rows is symbolic)."""
    if device.type != "cpu" or torch.compiler.is_compiling():
        return [slice(None)]
    return [slice(start, start + UNIVARIATE_ROWS) for start in range(0, n_rows, UNIVARIATE_ROWS)]


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
