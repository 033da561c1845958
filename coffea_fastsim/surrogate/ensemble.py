"""Ensembles of surrogates trained with different seeds, and their bin-by-bin spread.

The reference study trains its model ten times and takes the bin-by-bin spread of the ten
DL distributions as the systematic uncertainty of the model. Each member is a normal model
file; ``train --ensemble K -o model.pt`` writes ``model.0.pt`` ... ``model.{K-1}.pt``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Ensemble", "ensemble_band", "member_path", "resolve_ensemble"]


def member_path(output: str | os.PathLike[str], index: int) -> Path:
    """Path of ensemble member ``index``: ``model.pt`` -> ``model.<index>.pt``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.{index}{output.suffix}")


@dataclass(frozen=True)
class Ensemble:
    """The model files of a validation.

    Arguments:
        nominal: the model whose DL sample is validated.
        members: the models whose spread gives the systematic band (may include
            ``nominal``); fewer than two: no band.
    """

    nominal: Path
    members: tuple[Path, ...]


def _numbered_members(path: Path) -> list[Path]:
    pattern = re.compile(rf"^{re.escape(path.stem)}\.(\d+){re.escape(path.suffix)}$")
    found = [
        (int(match.group(1)), candidate)
        for candidate in path.parent.glob(f"{path.stem}.*{path.suffix}")
        if (match := pattern.match(candidate.name))
    ]
    return [candidate for _, candidate in sorted(found)]


def resolve_ensemble(path: str | os.PathLike[str]) -> Ensemble:
    """The nominal model and the ensemble members named by ``path``.

    - a directory: its ``*.pt`` files (sorted by name); the first is the nominal model;
    - an existing file ``model.pt``: the nominal model; members ``model.<k>.pt`` when they
      exist, else the file alone;
    - a missing ``model.pt`` with ``model.0.pt``, ``model.1.pt``, ...: the members
      (sorted by number); the first is the nominal model.

    Raises:
        FileNotFoundError: no model file matches ``path``.
    """
    path = Path(path)
    if path.is_dir():
        members = sorted(path.glob("*.pt"))
        if not members:
            raise FileNotFoundError(f"no *.pt model file in the directory {path}")
        return Ensemble(nominal=members[0], members=tuple(members))
    numbered = _numbered_members(path)
    if path.is_file():
        return Ensemble(nominal=path, members=tuple(numbered or [path]))
    if numbered:
        return Ensemble(nominal=numbered[0], members=tuple(numbered))
    raise FileNotFoundError(
        f"no model file {path}, and no ensemble members {member_path(path, 0).name}, ..."
    )


def ensemble_band(member_counts: np.ndarray) -> np.ndarray:
    """Bin-by-bin standard deviation of the unit-normalized histograms of ensemble members.

    Arguments:
        member_counts: entries per bin of each member, shape (n_members, n_bins).

    Returns:
        shape (n_bins,): the sample standard deviation (ddof=1) of the bin fractions over
        members; zeros for fewer than two members.
    """
    member_counts = np.asarray(member_counts, dtype=np.float64)
    if member_counts.ndim != 2:
        raise ValueError(
            f"member_counts must have shape (n_members, n_bins), got {member_counts.shape}"
        )
    if len(member_counts) < 2:
        return np.zeros(member_counts.shape[1])
    totals = member_counts.sum(axis=1, keepdims=True)
    fractions = np.divide(member_counts, totals, out=np.zeros_like(member_counts), where=totals > 0)
    # Spread of the differences to the first member: the same value, but exactly zero for
    # identical members (the mean of equal floats can round away from them).
    return (fractions - fractions[0]).std(axis=0, ddof=1)
