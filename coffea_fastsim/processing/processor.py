"""FastSimProcessor: the coffea processor that runs the surrogate on GEN events.

For each chunk of events it applies the GEN selection of the analysis definition, evaluates
the surrogate on the GEN feature vectors (DL = RECO-like features), fills histograms of GEN,
DL and (when the input has RECO collections) RECO and the definition's regions, and
optionally writes the DL dataset.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
import torch
from coffea import processor

from coffea_fastsim import __version__
from coffea_fastsim.analysis.definition import AnalysisDefinition, Region
from coffea_fastsim.analysis.features import EventFeatures, build_features
from coffea_fastsim.analysis.histograms import (
    SAMPLES,
    fill_observables,
    fill_residuals,
    make_histograms,
)
from coffea_fastsim.analysis.registry import (
    DEFAULT_ANALYSIS,
    check_model_analysis,
    resolve_analysis,
)
from coffea_fastsim.processing.dataset import check_dataset_name, chunk_file_name, write_chunk
from coffea_fastsim.processing.identities import EventIdentities
from coffea_fastsim.processing.simulation import DLEvents, check_oversample, simulate
from coffea_fastsim.surrogate.inference import SurrogateEngine

__all__ = ["FastSimConfig", "FastSimProcessor", "NonFiniteOutputError", "chunk_histograms"]


class NonFiniteOutputError(ValueError):
    """The surrogate gave NaN or infinite features for some events of a chunk."""


@dataclass(frozen=True)
class FastSimConfig:
    """Configuration of :class:`FastSimProcessor`.

    Arguments:
        model: path of the surrogate model file.
        chunk_size: events per surrogate evaluation (memory bound, not the Runner's chunk);
            None: automatic, 65536 on the CPU and from the free memory on a GPU
            (``inference.automatic_chunk_size``). Outputs do not depend on it.
        device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: seed of the per-event noise; with the event identity it fixes every DL value.
        output_dir: where to write the DL dataset (one Parquet file per chunk); None: no dataset.
        analysis: the analysis definition, a built-in name or ``path/to/file.py:NAME``;
            resolved to the definition when the configuration is made. The model must have
            been trained for it.
        threads: torch CPU threads in each worker; None keeps torch's default (all cores).
            Use 1 when several worker processes share the cores.
        oversample: K, DL replicas per selected GEN event, each with independent noise and
            the weight 1 / K; with K > 1 the histograms have Weight storage whose variances
            count the K replicas of an event as one correlated contribution, and the DL
            dataset has a ``replica`` column (see docs/oversampling.md).
        allow_nonfinite: keep events whose DL features are NaN or infinite (counted in the
            cutflow, never filled); False: such a chunk fails with ``NonFiniteOutputError``.
    """

    model: str | os.PathLike
    chunk_size: int | None = None
    device: str = "auto"
    seed: int = 0
    output_dir: str | os.PathLike | None = None
    analysis: str | AnalysisDefinition = DEFAULT_ANALYSIS
    threads: int | None = None
    oversample: int = 1
    allow_nonfinite: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "analysis", resolve_analysis(self.analysis))
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be a positive integer or None, got {self.threads}")
        check_oversample(self.oversample)


def chunk_histograms(
    analysis: AnalysisDefinition, features: EventFeatures, dl: DLEvents
) -> tuple[dict[str, hist.Hist], dict[str, dict[str, np.ndarray]]]:
    """The histograms of one chunk, and the observables that filled them.

    GEN and RECO (where matched) count each event once; DL fills the K replicas of each
    event with the weight 1 / K as one group per event (``fill_grouped``, Weight storage)
    when K > 1, so that the variance of a bin counts an event's replicas together.

    Arguments:
        analysis: the analysis definition (observables, binning).
        features: the selected events of the chunk.
        dl: their DL events (``simulate``).

    Returns:
        ``(histograms, observables)``: ``make_histograms(analysis)`` filled, and
        ``observables[sample][name]`` for "gen" (n,), "dl" (n * K,) and, with RECO, "reco"
        (matched events only).
    """
    histograms = make_histograms(analysis, weighted=dl.oversample > 1)
    observables = {
        "gen": analysis.observables_of(features.gen),
        "dl": analysis.observables_of(dl.features),
    }
    fill_observables(histograms, "gen", observables["gen"])
    groups = dl.source if dl.oversample > 1 else None
    gen_of_dl = {name: values[dl.source] for name, values in observables["gen"].items()}
    fill_observables(histograms, "dl", observables["dl"], groups, dl.weight)
    fill_residuals(histograms, "dl", observables["dl"], gen_of_dl, groups, dl.weight)
    if features.has_reco:
        valid = features.reco_valid
        reco = analysis.observables_of(features.reco[valid])  # type: ignore[index]
        gen_of_valid = {name: values[valid] for name, values in observables["gen"].items()}
        fill_observables(histograms, "reco", reco)
        fill_residuals(histograms, "reco", reco, gen_of_valid)
        observables["reco"] = reco
    return histograms, observables


class FastSimProcessor(processor.ProcessorABC):
    """Fill GEN / DL / RECO histograms and write the DL dataset, chunk by chunk.

    The output of :meth:`process` is ``{dataset: {"histograms": {...}, "cutflow": {...},
    "files": {path: {"entries": n, "gen_selected": k}}, "dataset_files": [...]}}``;
    histograms are ``hist.Hist`` with a ``source`` axis. The cutflow counts the input
    events, the GEN-selected ones, those with a RECO match, and, so that nothing is dropped
    silently, events excluded for non-finite GEN values and DL outputs that are not finite.
    The model is loaded lazily once per worker and never pickled with the processor.
    """

    def __init__(self, config: FastSimConfig) -> None:
        self.config = config
        self.analysis: AnalysisDefinition = config.analysis  # type: ignore[assignment]
        self.engine = SurrogateEngine(
            config.model,
            chunk_size=config.chunk_size,
            device=config.device,
            seed=config.seed,
        )
        # Load once here so that a missing or mismatched model fails before any chunk is sent;
        # the engine reloads it lazily on each worker.
        check_model_analysis(self.engine.metadata, self.analysis, config.model)
        self.model_checksum = str(self.engine.metadata["checksum"])

    def fingerprint(self) -> str:
        """What fixes every output of a chunk: model, noise seed, analysis, dataset target."""
        return json.dumps(
            {
                "model": self.model_checksum,
                "seed": self.config.seed,
                "oversample": self.config.oversample,
                "analysis": self.analysis.record,
                "output_dir": None
                if self.config.output_dir is None
                else str(self.config.output_dir),
                "processor": type(self).__qualname__,
                "version": __version__,
            },
            sort_keys=True,
        )

    def analyze(self, observables: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
        """Analysis-level additions to a chunk's output; ``observables[sample][name]`` (n,).

        The default gives the definition's regions: ``NAME_yields`` (events per sample) and
        ``NAME_OBSERVABLE`` (its histogram in the region); subclasses may add more.
        With ``oversample`` K > 1, ``observables["dl"]`` holds the K replicas of each event
        (n * K values), each of weight ``1 / config.oversample``.
        """
        output: dict[str, Any] = {}
        for region in self.analysis.regions:
            output.update(
                _region_outputs(self.analysis, region, observables, self.config.oversample)
            )
        return output

    def process(self, events: ak.Array) -> dict[str, Any]:
        """Process one chunk of events.

        Reads the GEN branches of the selection (GenPart, GenJet, GenMET), the event
        identity (run, luminosityBlock, event) and, when the file has them, the RECO
        collections (Muon, Jet, MET). Selects the W+jet events at GEN level
        (``config.selection``) and evaluates the surrogate on their GEN features with
        their identities (``SurrogateEngine.predict``). Fills the GEN and DL histograms
        and the DL residuals of every selected event and, for events with a valid RECO
        match, the RECO histograms and residuals. Writes the DL features of the chunk with
        the identities as one Parquet file under ``config.output_dir/<dataset>`` (when
        set), named after the file and the entry range.

        Arguments:
            events: a chunk of NanoAOD-like events; ``events.metadata`` (from the Runner)
                gives the dataset name, the file and the entry range.

        Returns:
            ``{dataset: output}``, output as in the class docstring plus what
            :meth:`analyze` adds.
        """
        metadata = getattr(events, "metadata", None) or {}
        dataset = metadata.get("dataset", "events")
        if self.config.threads is not None:
            torch.set_num_threads(self.config.threads)
        features = build_features(events, self.analysis)
        dl = simulate(self.engine, features, self.config.oversample)
        nonfinite = int((~np.isfinite(dl.features).all(axis=1)).sum())
        if nonfinite and not self.config.allow_nonfinite:
            raise NonFiniteOutputError(
                f"the model {self.config.model} gave NaN or infinite output for {nonfinite} "
                f"events of {metadata.get('filename')} (entries {metadata.get('entrystart')} "
                f"to {metadata.get('entrystop')}); allow_nonfinite (--allow-nonfinite) keeps them"
            )
        histograms, observables = chunk_histograms(self.analysis, features, dl)

        cutflow = {
            "input": features.n_input,
            "gen_nonfinite": features.n_gen_nonfinite,
            "gen_selected": len(features),
            "reco_matched": int(features.reco_valid.sum()),
            "dl_events": len(dl),
            "dl_nonfinite": nonfinite,
        }
        filename = str(metadata.get("filename", "events"))
        files = {filename: {"entries": features.n_input, "gen_selected": len(features)}}
        dataset_files = []
        if self.config.output_dir is not None:
            dataset_files.append(self._write_dataset(features, dl, metadata, dataset))
        output = {
            "histograms": histograms,
            "cutflow": cutflow,
            "files": files,
            "dataset_files": dataset_files,
            "identities": EventIdentities.of(
                features.run, features.luminosity_block, features.event
            ),
        }
        output.update(self.analyze(observables))
        return {dataset: output}

    def _write_dataset(
        self,
        features: EventFeatures,
        dl: DLEvents,
        metadata: dict[str, Any],
        dataset: str,
    ) -> str:
        file_id = str(
            metadata.get("fileuuid") or Path(str(metadata.get("filename", "events"))).stem
        )
        start = int(metadata.get("entrystart", 0))
        stop = int(metadata.get("entrystop", start + features.n_input))
        columns: dict[str, np.ndarray] = {
            "run": features.run[dl.source],
            "luminosityBlock": features.luminosity_block[dl.source],
            "event": features.event[dl.source],
        }
        if dl.oversample > 1:
            columns["replica"] = dl.replica
        features_t = np.ascontiguousarray(dl.features.T)
        columns.update({name: features_t[i] for i, name in enumerate(self.analysis.feature_names)})
        directory = Path(self.config.output_dir) / check_dataset_name(dataset)  # type: ignore[arg-type]
        return str(write_chunk(directory, chunk_file_name(file_id, start, stop), columns))

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        for output in accumulator.values():
            output["dataset_files"] = sorted(output["dataset_files"])
            # The hashes were needed to count across chunks; the count is what is kept.
            identities = output.pop("identities", None)
            output["identity_repeats"] = 0 if identities is None else identities.repeats
        return accumulator


def _region_outputs(
    analysis: AnalysisDefinition,
    region: Region,
    observables: dict[str, dict[str, np.ndarray]],
    oversample: int = 1,
) -> dict[str, Any]:
    """Yields per sample and the histogram of `region.observable` in the region; DL events
    weigh 1 / ``oversample`` each (yields in GEN events)."""
    axis = analysis.observable(region.observable)
    histogram = (
        hist.Hist.new.StrCat(list(SAMPLES), name="source", label="Source")
        .Reg(
            axis.bins,
            axis.low,
            axis.high,
            name=axis.name,
            label=f"{axis.label}, {region.label}",
        )
        .Double()
    )
    yields = {}
    for sample, values in observables.items():
        inside = np.logical_and.reduce(
            [values[name] > cut for name, cut in region.above]
            + [values[name] < cut for name, cut in region.below]
        )
        if sample == "dl" and oversample > 1:
            yields[sample] = float(inside.sum() / oversample)
            histogram.fill(
                source=sample, **{axis.name: values[axis.name][inside]}, weight=1.0 / oversample
            )
            continue
        yields[sample] = int(inside.sum())
        histogram.fill(source=sample, **{axis.name: values[axis.name][inside]})
    return {f"{region.name}_yields": yields, f"{region.name}_{axis.name}": histogram}
