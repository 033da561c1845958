"""Are the errors of oversampled histograms right? Measured against independent samples.

A sample of N GEN events simulated K times has bin contents whose variance falls with K
towards the limit set by the N GEN events. The histograms store, per bin, the sum over GEN
events of (the summed weight of the event's replicas in the bin)^2
(``analysis.histograms.fill_grouped``). :func:`measure_errors` checks that this variance is
the variance of the bin contents over independent samples: new GEN samples drawn from a
population of selected events (with replacement, Poisson-distributed sizes, new event
numbers so that the noise is new), each simulated with K replicas and histogrammed as the
processor does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.features import EventFeatures
from coffea_fastsim.processing.processor import chunk_histograms
from coffea_fastsim.processing.simulation import simulate
from coffea_fastsim.surrogate.inference import SurrogateEngine

__all__ = ["ErrorMeasurement", "independent_sample", "measure_errors"]


def independent_sample(
    population: EventFeatures, mean_size: int, rng: np.random.Generator, label: int
) -> EventFeatures:
    """A new GEN sample from the population's distribution: Poisson(``mean_size``) events
    drawn with replacement, numbered ``label * 2**32 + 0, 1, ...`` (new noise keys), GEN only.
    """
    rows = rng.integers(0, len(population), rng.poisson(mean_size))
    return dataclasses.replace(
        population,
        run=population.run[rows],
        luminosity_block=population.luminosity_block[rows],
        event=np.arange(len(rows), dtype=np.uint64) + np.uint64(label << 32),
        gen=population.gen[rows],
        reco=None,
        reco_valid=np.zeros(len(rows), dtype=bool),
        n_input=len(rows),
    )


@dataclasses.dataclass(frozen=True)
class ErrorMeasurement:
    """Per bin of the DL histograms of the chosen observables, over the samples.

    Arguments:
        oversample: K.
        mean: mean bin content, shape (n_bins,).
        spread: variance of the bin content over the independent samples, (n_bins,).
        stored: mean of the stored variances, (n_bins,).
        naive: mean of sum w^2 over the DL events (as if the replicas were independent).
        n_samples: number of independent samples.
    """

    oversample: int
    mean: np.ndarray
    spread: np.ndarray
    stored: np.ndarray
    naive: np.ndarray
    n_samples: int


def measure_errors(
    analysis: AnalysisDefinition,
    engine: SurrogateEngine,
    population: EventFeatures,
    oversample: int,
    observables: Sequence[str] = ("muon_pt", "mt"),
    n_samples: int = 150,
    mean_size: int = 300,
    seed: int = 0,
) -> ErrorMeasurement:
    """Simulate ``n_samples`` independent samples with K = ``oversample`` replicas and compare
    the spread of the DL bin contents with the stored variances (see the module docstring).
    """
    rng = np.random.default_rng(seed)
    contents, variances = [], []
    for label in range(n_samples):
        events = independent_sample(population, mean_size, rng, label)
        histograms, _ = chunk_histograms(analysis, events, simulate(engine, events, oversample))
        views = [histograms[name]["dl", :] for name in observables]
        contents.append(np.concatenate([view.values() for view in views]))
        variances.append(np.concatenate([view.variances() for view in views]))
    contents_array = np.array(contents)
    mean = contents_array.mean(axis=0)
    return ErrorMeasurement(
        oversample=oversample,
        mean=mean,
        spread=contents_array.var(axis=0, ddof=1),
        stored=np.mean(variances, axis=0),
        naive=mean / oversample,
        n_samples=n_samples,
    )
