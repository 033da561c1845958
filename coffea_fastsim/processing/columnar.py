"""The surrogate inside a dask-awkward task graph: NanoEvents in dask mode, ``hist.dask``.

For analyses written as dask-awkward graphs (``NanoEventsFactory.from_root(..., mode="dask")``
or ``coffea.dataset_tools.apply_to_fileset``) instead of a ``processor.Runner``:

- :func:`dl_features` gives, per selected event, the event identity and the analysis's DL
  features as a ``dask_awkward.Array``;
- :func:`fill_histograms` builds the processor's histograms (GEN, DL, RECO and residuals) as
  ``hist.dask`` histograms, and its cutflow as dask scalars.

Each partition goes through ``build_features`` and ``simulation.simulate``, the same steps as
the processor, so a DL value is bitwise the Runner's for the same event and seed. As in
``coffea.ml_tools``, the graph holds only the configuration: each worker process loads the
model once, on first use (``_engine``), and the model never enters the graph. When dask
traces the graph with typetracers, the partition function only marks the branches that the
selection reads, so dask reads those and no others.

Needs the ``dask-awkward`` extra: ``pip install 'coffea-fastsim[dask-awkward]'``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.features import (
    ID_FIELDS,
    build_features,
    gen_fields,
    has_reco_branches,
    reco_fields,
)
from coffea_fastsim.analysis.histograms import fill_observables, fill_residuals, make_histograms
from coffea_fastsim.analysis.registry import check_model_analysis
from coffea_fastsim.processing.processor import FastSimConfig
from coffea_fastsim.processing.simulation import simulate
from coffea_fastsim.surrogate.inference import SurrogateEngine

__all__ = ["dl_features", "fill_histograms"]

EXTRA_HINT = "pip install 'coffea-fastsim[dask-awkward]'"

_ENGINES: dict[tuple[Any, ...], SurrogateEngine] = {}
_ENGINES_LOCK = threading.Lock()


def _import_dask_awkward() -> Any:
    try:
        import dask_awkward
    except ImportError as error:
        raise ImportError(f"the dask-awkward mode needs dask-awkward: {EXTRA_HINT}") from error
    return dask_awkward


def _engine(config: FastSimConfig) -> SurrogateEngine:
    """The engine of ``config`` in this process, made and loaded once (thread-safe).

    The key holds the model file's size and modification time, so that a model rewritten
    at the same path is reloaded.
    """
    path = Path(config.model).resolve()
    stat = path.stat()
    analysis: AnalysisDefinition = config.analysis  # type: ignore[assignment]
    key = (str(path), stat.st_size, stat.st_mtime_ns, config.device, config.seed)
    key += (config.chunk_size, analysis.hash)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = SurrogateEngine(
                path,
                chunk_size=config.chunk_size,
                device=config.device,
                seed=config.seed,
            )
            # Load under the lock: once per process.
            check_model_analysis(engine.metadata, analysis, path)
            _ENGINES[key] = engine
    return engine


def _identity_columns(features: Any, rows: np.ndarray) -> dict[str, np.ndarray]:
    ids = (features.run, features.luminosity_block, features.event)
    return {name: values[rows] for name, values in zip(ID_FIELDS, ids, strict=True)}


class _PartitionSimulation:
    """The function that dask maps over the partitions of the events.

    Arguments:
        config: the processor configuration (model path, seed, analysis ...).
        sources: ``("dl",)`` for the DL features, or the samples whose observables the
            histograms need: ``("gen", "dl")`` or ``("gen", "dl", "reco")``.
    """

    def __init__(self, config: FastSimConfig, sources: tuple[str, ...]) -> None:
        self.config = config
        self.analysis: AnalysisDefinition = config.analysis  # type: ignore[assignment]
        self.sources = sources

    def _columns(self, events: ak.Array) -> ak.Array:
        if self.config.threads is not None:
            torch.set_num_threads(self.config.threads)
        analysis = self.analysis
        if "reco" not in self.sources:
            # dask reads only the branches touched while tracing: hide RECO from the selection.
            reco = reco_fields(analysis)
            events = events[[name for name in events.fields if name not in reco]]
        features = build_features(events, analysis)
        dl = simulate(_engine(self.config), features, self.config.oversample)
        columns: dict[str, Any] = _identity_columns(features, dl.source)
        if self.sources == ("dl",):
            if dl.oversample > 1:
                columns["replica"] = dl.replica
            names = analysis.feature_names
            columns.update({name: dl.features[:, i] for i, name in enumerate(names)})
            return ak.zip(columns, depth_limit=1)
        values = {"gen": features.gen[dl.source], "dl": dl.features}
        if "reco" in self.sources:
            values["reco"] = features.reco[dl.source]  # type: ignore[index]
        for source, matrix in values.items():
            columns[source] = ak.zip(analysis.observables_of(matrix), depth_limit=1)
        return ak.zip(columns, depth_limit=1)

    def _empty(self) -> ak.Array:
        """A length-0 output of the same form as :meth:`_columns`'s."""
        ids: dict[str, np.ndarray] = {name: np.zeros(0, dtype=np.uint64) for name in ID_FIELDS}
        if self.sources == ("dl",):
            if self.config.oversample > 1:
                ids["replica"] = np.zeros(0, dtype=np.uint32)
            features = {name: np.zeros(0, dtype=np.float32) for name in self.analysis.feature_names}
            return ak.zip({**ids, **features}, depth_limit=1)
        observables = {name: np.zeros(0) for name in self.analysis.observable_names}
        samples = {source: ak.zip(observables, depth_limit=1) for source in self.sources}
        return ak.zip({**ids, **samples}, depth_limit=1)

    def __call__(self, events: ak.Array) -> ak.Array:
        if ak.backend(events) == "typetracer":
            fields = gen_fields(self.analysis)
            if "reco" in self.sources:
                fields.update(reco_fields(self.analysis))
            for collection, names in fields.items():
                for name in names:
                    ak.typetracer.touch_data(events[collection][name])
            for name in ID_FIELDS:
                ak.typetracer.touch_data(events[name])
            return ak.Array(self._empty().layout.to_typetracer(forget_length=True))
        return self._columns(events)


def _map(events: Any, config: FastSimConfig, sources: tuple[str, ...], label: str) -> Any:
    dak = _import_dask_awkward()
    if not isinstance(events, dak.Array):
        raise TypeError(
            f"events must be a dask_awkward.Array (NanoEvents in dask mode), "
            f"got {type(events).__name__}"
        )
    # Fail on the client, before any task runs, when the model is missing or does not fit.
    _engine(config)
    return dak.map_partitions(_PartitionSimulation(config, sources), events, label=label)


def dl_features(events: Any, config: FastSimConfig) -> Any:
    """DL features and event identity of the GEN-selected events, lazily.

    Arguments:
        events: NanoAOD events as a ``dask_awkward.Array`` (``NanoEventsFactory.from_root(
            ..., mode="dask").events()``).
        config: model, seed, analysis, torch threads per worker and ``oversample``, as for
            ``FastSimProcessor`` (``output_dir`` is not used: the array is the dataset).

    Returns:
        A ``dask_awkward.Array`` of records, one per selected event: ``run``,
        ``luminosityBlock``, ``event`` (uint64) and the analysis's DL features (float32);
        with ``config.oversample`` K > 1, K records per event and a ``replica`` column
        (uint32), as in the Runner's DL dataset.
    """
    return _map(events, config, ("dl",), "fastsim-dl-features")


def fill_histograms(events: Any, config: FastSimConfig) -> dict[str, Any]:
    """The processor's output for dask-awkward events, as a graph: histograms and cutflow.

    Arguments:
        events: NanoAOD events as a ``dask_awkward.Array``.
        config: as for :func:`dl_features`.

    Returns:
        ``{"histograms": {name: hist.dask.Hist}, "cutflow": {"input", "gen_selected",
        "reco_matched": dask scalars}}``; ``dask.compute`` of it gives the histograms of
        ``FastSimProcessor`` for the same events, bin for bin.
    """
    dak = _import_dask_awkward()
    import hist.dask

    if config.oversample > 1:
        raise ValueError(
            f"config.oversample = {config.oversample}: the errors of oversampled histograms "
            "need the replicas of each event grouped per chunk, which hist.dask fills cannot "
            "do; use the Runner (FastSimProcessor) for oversampled histograms"
        )
    analysis: AnalysisDefinition = config.analysis  # type: ignore[assignment]
    sources = ("gen", "dl", "reco") if has_reco_branches(events, analysis) else ("gen", "dl")
    columns = _map(events, config, sources, "fastsim-observables")
    histograms = make_histograms(analysis, hist.dask.Hist)
    names = analysis.observable_names
    observables = {s: {n: columns[s][n] for n in names} for s in sources}
    fill_observables(histograms, "gen", observables["gen"])
    fill_observables(histograms, "dl", observables["dl"])
    fill_residuals(histograms, "dl", observables["dl"], observables["gen"])
    cutflow = {
        "input": dak.num(events, axis=0),
        "gen_selected": dak.num(columns, axis=0),
    }
    if "reco" in sources:
        fill_observables(histograms, "reco", observables["reco"])
        fill_residuals(histograms, "reco", observables["reco"], observables["gen"])
        matched = np.isfinite(columns["reco"][analysis.feature_names[0]])
        cutflow["reco_matched"] = dak.sum(matched, axis=0)
    return {"histograms": histograms, "cutflow": cutflow}
