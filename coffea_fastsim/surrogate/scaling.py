"""The scales a surrogate's network works in: of the GEN features, the context and the target.

GEN features, context and the paper target are standardized with their mean and standard
deviation on the training split. The detector target, a response with a narrow core and
wide tails (a jet matched to another particle), is scaled by its median and half its
central 68% interval; a response the detector does not have is exact (scale 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["EXACT_RESPONSE", "Standardization", "feature_scale", "response_scale"]

#: A detector response whose spread (half the central 68% interval) is below this, in its
#: units (log ratio, radians, GeV), is one the detector does not have: the muon direction
#: of a detector that measures it exactly differs from GEN by float rounding only. The
#: surrogate reproduces it exactly (scale 0) instead of learning rounding noise.
EXACT_RESPONSE = 1e-6


# Not compared by value (eq=False): tensors have no single truth value.
@dataclass(frozen=True, eq=False)
class Standardization:
    """The scales of a surrogate: what its network's standardized inputs and target are
    measured from and in, each a center and a scale per feature, from the training split.

    Arguments:
        gen_mean, gen_std: mean and standard deviation of the GEN features, shape
            (n_features,), physical units (those of the analysis's feature vector).
        reco_mean, reco_std: center and scale of the target, shape (n_features,), in the
            target's units: for the paper target the mean and standard deviation of the
            RECO features (the units of the GEN features); for the detector target the
            median and half the central 68% interval of each response (log ratio, radians,
            GeV; ``response_scale``), scale 0 for an exact response.
        context_mean, context_std: mean and standard deviation of the target's context
            (``TargetCoordinates.context``: log pT in log GeV, eta), shape (n_context,);
            None when the target has no context (the paper target).
    """

    gen_mean: Tensor
    gen_std: Tensor
    reco_mean: Tensor
    reco_std: Tensor
    context_mean: Tensor | None = None
    context_std: Tensor | None = None


def feature_scale(
    values: np.ndarray, name: str, feature_names: Sequence[str]
) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation per feature, shape (n_features,); constant features are
    refused."""
    mean, std = values.mean(axis=0), values.std(axis=0)
    constant = [f for f, s in zip(feature_names, std, strict=True) if not s > 0]
    if constant:
        raise ValueError(f"{name} features {constant} are constant in the training split")
    return torch.as_tensor(mean), torch.as_tensor(std)


def response_scale(values: np.ndarray) -> tuple[Tensor, Tensor]:
    """Median and half the central 68% interval of each response, shape (n_features,);
    an exact response (``EXACT_RESPONSE``) gets median 0 and scale 0."""
    low, median, high = np.percentile(values, [15.865, 50.0, 84.135], axis=0)
    scale = (high - low) / 2.0
    exact = scale < EXACT_RESPONSE
    return torch.as_tensor(np.where(exact, 0.0, median)), torch.as_tensor(
        np.where(exact, 0.0, scale)
    )
