"""What RECO' shares with RECO beyond the GEN features: the reach of the floor.

The floor (RECO' vs RECO) re-simulates the *same* GEN events: the same particles enter the
detector twice. Where the detector's response depends on more of the event than the
analysis's GEN features hold (a jet's constituents, the underlying event under the missing
momentum), RECO and RECO' share that part of the response event by event, and their
distributions agree more closely than those of any model of the GEN features can: such a
model draws that part afresh. This module measures it, per coordinate of the detector
response (``analysis.definition.Response``): the correlation over events of RECO's response
with that of RECO', against its correlation with that of DL.

For a coordinate r = f(x) + h + e, with x the GEN features, h a part fixed by the GEN event
but not by x, and e the detector's own noise, drawn afresh in each pass:

- corr(r_RECO, r_RECO') = (var f + var h) / var r;
- corr(r_RECO, r_DL) <= var f / var r for a model of x, the equality for an exact one.

Their difference is var h / var r, the share of the response that the floor has and a model
of the GEN features cannot. A coordinate where it is large has a floor below the reach of
every such model: the W1/sigma of the observables built from it is then compared with a
floor it cannot meet, and the excess measures the GEN information missing, not only the
model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.surrogate.coordinates import TargetCoordinates

__all__ = [
    "EXACT_SPREAD",
    "SharedResponse",
    "response_labels",
    "shared_response",
    "shared_response_lines",
]

#: A coordinate whose RECO standard deviation is below this (in its own units: a log ratio,
#: radians, GeV) is measured exactly by the detector; its correlations are not defined.
EXACT_SPREAD = 1e-5

#: Smallest share of the response, beyond the GEN features, that the report calls shared.
MIN_SHARED = 0.05


def response_labels(analysis: AnalysisDefinition) -> tuple[str, ...]:
    """The name of each coordinate of the detector response, one per feature, in the order
    of the analysis's features: ``muon log(pT ratio)``, ``muon delta eta``, ``muon delta
    phi``, ``jet_log_mass difference``, ``met along jet``, ``met across jet``; a feature
    that no response covers is its RECO - GEN difference."""
    labels = {name: f"{name} difference" for name in analysis.feature_names}
    for response in analysis.responses:
        if response.kind == "momentum":
            parts = ("log(pT ratio)", "delta eta", "delta phi")
        elif response.kind == "transverse":
            parts = (f"along {response.axis}", f"across {response.axis}")
        else:
            parts = ("difference",)
        prefix = response.name if response.kind != "difference" else None
        for feature, part in zip(response.features, parts, strict=True):
            labels[feature] = f"{prefix or feature} {part}"
    return tuple(labels[name] for name in analysis.feature_names)


def _responses(
    coordinates: TargetCoordinates, gen: np.ndarray, candidate: np.ndarray, covered: np.ndarray
) -> np.ndarray:
    """The response coordinates of ``candidate`` given ``gen``, (n_events, n_features)."""
    response = coordinates.encode(torch.from_numpy(gen), torch.from_numpy(candidate)).numpy()
    return np.where(covered, response, candidate - gen)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    finite = np.isfinite(a) & np.isfinite(b)
    a, b = a[finite], b[finite]
    if a.size < 3 or a.std() < EXACT_SPREAD or b.std() < EXACT_SPREAD:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


@dataclass(frozen=True)
class SharedResponse:
    """Per coordinate of the detector response, how much RECO' and DL share with RECO.

    Arguments:
        labels: the coordinates (``response_labels``), one per feature.
        spread: standard deviation of RECO's response, in the coordinate's units.
        floor: correlation over events of RECO's response with that of RECO'; NaN where the
            detector measures the coordinate exactly (``spread`` < EXACT_SPREAD).
        model: the same with DL's (the nominal model's draw).
        n_events: the matched events.
    """

    labels: tuple[str, ...]
    spread: np.ndarray
    floor: np.ndarray
    model: np.ndarray
    n_events: int

    @property
    def beyond_gen(self) -> np.ndarray:
        """floor - model: the share of RECO's response that RECO' has and DL has not."""
        return self.floor - self.model

    @property
    def error(self) -> float:
        """Statistical error of one correlation, 1/sqrt(n_events) (its largest value)."""
        return 1.0 / np.sqrt(max(self.n_events, 1))

    @property
    def limit(self) -> float:
        """The smallest share beyond DL called shared: MIN_SHARED, or five errors if more."""
        return max(MIN_SHARED, 5.0 * self.error)

    @property
    def shared(self) -> tuple[str, ...]:
        """The coordinates whose share beyond DL is at least ``limit``."""
        return tuple(
            label
            for label, value in zip(self.labels, self.beyond_gen, strict=True)
            if np.isfinite(value) and value >= self.limit
        )


def shared_response(
    gen: ObservableTable,
    reco: ObservableTable,
    reco_prime: ObservableTable,
    dl: ObservableTable,
    analysis: AnalysisDefinition,
) -> SharedResponse:
    """Correlations of RECO's detector response with those of RECO' and DL, per coordinate.

    Arguments:
        gen, reco, reco_prime, dl: the tables of the same matched events, row-aligned.
        analysis: the analysis definition whose responses give the coordinates.
    """
    coordinates = TargetCoordinates(analysis.feature_names, analysis.responses)
    covered_names = {f for response in analysis.responses for f in response.features}
    covered = np.array([name in covered_names for name in analysis.feature_names])
    x_gen = np.ascontiguousarray(gen.features, dtype=np.float64)
    responses = {
        name: _responses(
            coordinates, x_gen, np.ascontiguousarray(table.features, dtype=np.float64), covered
        )
        for name, table in (("reco", reco), ("reco_prime", reco_prime), ("dl", dl))
    }
    columns = range(len(analysis.feature_names))
    spread = np.array([np.nanstd(responses["reco"][:, i]) for i in columns])
    return SharedResponse(
        labels=response_labels(analysis),
        spread=spread,
        floor=np.array(
            [_correlation(responses["reco"][:, i], responses["reco_prime"][:, i]) for i in columns]
        ),
        model=np.array(
            [_correlation(responses["reco"][:, i], responses["dl"][:, i]) for i in columns]
        ),
        n_events=len(gen),
    )


def _value(value: float) -> str:
    return "exact" if not np.isfinite(value) else f"{value:+.3f}"


def shared_response_lines(shared: SharedResponse) -> list[str]:
    """The report's section on the reach of the floor (markdown lines)."""
    lines = [
        "",
        "## 8. The response RECO' shares with RECO beyond the GEN features",
        "",
        "Per coordinate of the detector response, the correlation over events of RECO's "
        "response with that of RECO' (the same GEN particles simulated again) and with that of "
        "DL. A model "
        "of the GEN features reaches at most the share those features explain; the floor "
        "also shares what the GEN event fixes beyond them (a jet's constituents, the "
        "underlying event), so where the two differ even a perfect model of the GEN features "
        "lies above the floor's W1/sigma. Statistical error of a correlation: at most "
        f"{shared.error:.3f}.",
        "",
        "| response coordinate | spread of RECO's response | corr RECO, RECO' | corr RECO, DL "
        "| RECO' beyond DL |",
        "|---|---|---|---|---|",
    ]
    for i, label in enumerate(shared.labels):
        exact = not np.isfinite(shared.floor[i])
        spread = "exact" if shared.spread[i] < EXACT_SPREAD else f"{shared.spread[i]:.4g}"
        lines.append(
            f"| {label} | {spread} | {_value(shared.floor[i])} | "
            f"{'exact' if exact else _value(shared.model[i])} | "
            f"{'exact' if exact else _value(shared.beyond_gen[i])} |"
        )
    lines.append("")
    if shared.shared:
        lines.append(
            "RECO' shares more of RECO's response than DL (by at least "
            f"{shared.limit:.3f}) in: {', '.join(shared.shared)}. The "
            "observables built from these coordinates have a floor below what a perfect model "
            "of the GEN features reaches: part of their excess over the floor is GEN "
            "information the features do not hold."
        )
    else:
        lines.append(
            "DL shares as much of RECO's response as RECO' in every coordinate: the floor is "
            "within the reach of a model of the GEN features."
        )
    return lines
