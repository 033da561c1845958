"""Generate a boson+jet sample (W -> mu nu or Z/gamma* -> mu mu) with Pythia8 and write it
as a NanoAOD-like ROOT file.

The sample is split into fixed-size jobs (`GenerationConfig.events_per_job`); job `i`
seeds Pythia and the detector from (seed, i), so the file does not depend on how many
worker processes run the jobs. Per event the GEN content is: a pruned GenPart collection,
anti-kt R = 0.5 GEN jets of the visible final-state particles and GenMET (the neutrinos'
pT sum); the detector model (`coffea_fastsim.sim.detector.registry`) adds Muon, Jet and MET.
"""

from __future__ import annotations

import contextlib
import inspect
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from tqdm.auto import tqdm

from coffea_fastsim.sim.detector.jets import cluster
from coffea_fastsim.sim.detector.pileup import MinBiasPoolConfig, make_min_bias_pool
from coffea_fastsim.sim.detector.registry import DETECTORS, make_detector
from coffea_fastsim.sim.detector.response import NEUTRINO_PDG_IDS, polar_coordinates
from coffea_fastsim.sim.nanoaod_writer import NanoAODWriter
from coffea_fastsim.sim.pythia_config import DEFAULT_PROCESS, PROCESSES, make_pythia, pythia_seed

__all__ = [
    "DEFAULT_DETECTOR",
    "DEFAULT_MU",
    "GEN_JET_PT_MIN",
    "GEN_PHOTON_PT_MIN",
    "STATUS_FLAG_BITS",
    "GenerationConfig",
    "GenerationSummary",
    "charge_lookup",
    "gen_event_record",
    "generate_sample",
    "resimulation_path",
]

#: GEN jets: anti-kt distance parameter and pT threshold (GeV).
GEN_JET_R = 0.5
GEN_JET_PT_MIN = 10.0
#: Final-state photons above this pT (GeV) are kept in GenPart.
GEN_PHOTON_PT_MIN = 10.0
#: Bits of GenPart_statusFlags, with the CMS (reco::GenStatusFlags) meaning.
STATUS_FLAG_BITS: dict[str, int] = {
    "isPrompt": 0,
    "isHardProcess": 7,
    "fromHardProcess": 8,
    "isFirstCopy": 12,
    "isLastCopy": 13,
}
#: Events per Pythia ``nextBatch`` call inside a job (bounds the worker's memory).
PYTHIA_BATCH = 250
_MAX_UINT32 = 2**32 - 1
#: The detector model and mean pileup of a sample unless the configuration says otherwise
#: (docs/detector.md explains the choice of mu).
DEFAULT_DETECTOR = "cms-particle"
DEFAULT_MU = 0.0


@dataclass(frozen=True)
class GenerationConfig:
    """Settings of one generated sample.

    Arguments:
        n_events: number of generated Pythia events (all are written, no selection).
        seed: sample seed, 0 to 2^32 - 1; it is also the ``run`` number of the events.
        pthat_min: minimum pT of the hard 2 -> 2 process, GeV.
        events_per_job: events per job; jobs are the unit of seeding and parallelism.
        n_workers: worker processes, default ``os.cpu_count()``.
        detector: name of the detector model in `coffea_fastsim.sim.detector.registry.DETECTORS`.
        progress: show a progress bar over events.
        include_reco: write Muon, Jet and MET; False writes a GEN-only file.
        detector_seed: seed of the detector randomness, default `seed`; the same `seed`
            with another `detector_seed` gives the same GEN events with independent RECO.
        mu: mean number of pileup interactions; None: DEFAULT_MU for a detector with pileup
            (a ``mu`` argument), 0 otherwise.
        pool: the minimum-bias pool used when mu > 0 (generated once and cached).
        resimulations: extra RECO passes of the same GEN events with independent detector
            randomness, each written to `resimulation_path(output, k)`, k = 1 ... resimulations.
        process: the hard process, a key of `coffea_fastsim.sim.pythia_config.PROCESSES`.
    """

    n_events: int
    seed: int = 1
    pthat_min: float = 20.0
    events_per_job: int = 1000
    n_workers: int | None = None
    detector: str = DEFAULT_DETECTOR
    progress: bool = True
    include_reco: bool = True
    detector_seed: int | None = None
    mu: float | None = None
    pool: MinBiasPoolConfig = field(default_factory=MinBiasPoolConfig)
    resimulations: int = 0
    process: str = DEFAULT_PROCESS

    def __post_init__(self) -> None:
        positive_ints = {"n_events": self.n_events, "events_per_job": self.events_per_job}
        if self.n_workers is not None:
            positive_ints["n_workers"] = self.n_workers
        for name, value in positive_ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        seeds = {"seed": self.seed, "detector_seed": self.detector_seed}
        for name, value in seeds.items():
            if value is not None and (not isinstance(value, int) or not 0 <= value <= _MAX_UINT32):
                raise ValueError(f"{name} must be an integer in [0, 2**32 - 1], got {value!r}")
        if not np.isfinite(self.pthat_min) or self.pthat_min <= 0:
            raise ValueError(f"pthat_min must be a positive number of GeV, got {self.pthat_min!r}")
        if self.process not in PROCESSES:
            raise ValueError(
                f"process {self.process!r} is not known; known processes: {sorted(PROCESSES)}"
            )
        if self.detector not in DETECTORS:
            raise ValueError(
                f"detector {self.detector!r} is not registered; known detectors: "
                f"{sorted(DETECTORS)}"
            )
        if self.mu is not None and (not np.isfinite(self.mu) or self.mu < 0):
            raise ValueError(f"mu must be a non-negative number, got {self.mu!r}")
        if self.pileup_mu > 0 and not _has_pileup(self.detector):
            raise ValueError(f"detector {self.detector!r} has no pileup; use mu=0 or None")
        if not isinstance(self.resimulations, int) or self.resimulations < 0:
            raise ValueError(f"resimulations must be an integer >= 0, got {self.resimulations!r}")
        if self.resimulations and not self.include_reco:
            raise ValueError("resimulations need RECO: include_reco is False")

    @property
    def pileup_mu(self) -> float:
        """The mean pileup the detector runs with."""
        if self.mu is not None:
            return float(self.mu)
        return DEFAULT_MU if _has_pileup(self.detector) else 0.0


def _has_pileup(detector: str) -> bool:
    return "mu" in inspect.signature(DETECTORS[detector]).parameters


def resimulation_path(output: str | os.PathLike, k: int) -> Path:
    """File of the k-th re-simulation of the sample written to `output`: NAME.resimK.root."""
    path = Path(output)
    return path.with_name(f"{path.stem}.resim{k}{path.suffix}")


@dataclass(frozen=True)
class GenerationSummary:
    """Result of `generate_sample`.

    Arguments:
        path: the written ROOT file.
        n_events: number of events in it.
        wall_seconds: wall-clock time of the generation, seconds.
        events_per_second: n_events / wall_seconds.
        resimulations: the re-simulation files, `resimulation_path(path, k)`.
    """

    path: Path
    n_events: int
    wall_seconds: float
    events_per_second: float
    resimulations: tuple[Path, ...] = ()


@dataclass(frozen=True)
class _Job:
    index: int
    first_event: int
    n_events: int
    config: GenerationConfig
    pool: Path | None


def generate_sample(output: str | os.PathLike, config: GenerationConfig) -> GenerationSummary:
    """Generate `config.n_events` events and write them to the ROOT file `output`.

    The file holds an ``Events`` TTree readable with coffea's NanoAODSchema (layout in
    `coffea_fastsim.sim.nanoaod_writer`); it is written atomically, jobs appended in order.
    With `config.resimulations` = m, m more files with the same GEN collections and event
    ids and independent RECO are written alongside (`resimulation_path`).
    """
    path = Path(output)
    if not path.parent.is_dir():
        raise ValueError(f"output directory {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"output {str(path)!r} is a directory, expected a file name")
    start = time.perf_counter()
    n_workers = config.n_workers or os.cpu_count() or 1
    use_pool = config.include_reco and config.pileup_mu > 0
    pool = make_min_bias_pool(config.pool, n_workers) if use_pool else None
    jobs = [
        _Job(i, first, min(config.events_per_job, config.n_events - first), config, pool)
        for i, first in enumerate(range(0, config.n_events, config.events_per_job))
    ]
    n_workers = min(n_workers, len(jobs))
    extra = tuple(resimulation_path(path, k) for k in range(1, config.resimulations + 1))
    with (
        contextlib.ExitStack() as stack,
        tqdm(total=config.n_events, unit="event", disable=not config.progress) as bar,
    ):
        writers = [stack.enter_context(NanoAODWriter(p)) for p in (path, *extra)]
        if n_workers == 1:
            results = map(_run_job, jobs)
        else:
            context = multiprocessing.get_context("spawn")
            results = stack.enter_context(context.Pool(n_workers)).imap(_run_job, jobs)
        for job, outputs in zip(jobs, results, strict=True):
            for writer, columns in zip(writers, outputs, strict=True):
                writer.extend(columns)
            bar.update(job.n_events)
    wall = time.perf_counter() - start
    return GenerationSummary(path, config.n_events, wall, config.n_events / wall, extra)


def charge_lookup(pythia: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A function from PDG ids (any shape) to their electric charges (e units), flat float64,
    read from ``pythia.particleData`` once per id and cached."""
    charges: dict[int, float] = {}

    def charge_of(pdg_ids: np.ndarray) -> np.ndarray:
        for pdg_id in np.unique(pdg_ids):
            charges.setdefault(int(pdg_id), pythia.particleData.charge(int(pdg_id)))
        return np.array([charges[int(i)] for i in pdg_ids], dtype=np.float64).reshape(-1)

    return charge_of


def _run_job(job: _Job) -> list[dict[str, Any]]:
    """Generate, cluster, prune and reconstruct the events of one job (in a worker); one
    column set per output file (the sample, then its re-simulations)."""
    config = job.config
    pythia = make_pythia(pythia_seed(config.seed, job.index), config.pthat_min, config.process)
    options = {"mu": config.pileup_mu, "pool": job.pool} if config.pileup_mu > 0 else {}
    detector = make_detector(config.detector, **options) if config.include_reco else None
    detector_seed = config.seed if config.detector_seed is None else config.detector_seed
    # Pass k = 0 keeps the seeding of single-pass samples; re-simulation k adds k to the key.
    rngs = [np.random.default_rng([detector_seed, job.index])]
    rngs += [
        np.random.default_rng([detector_seed, job.index, k])
        for k in range(1, config.resimulations + 1)
    ]
    charge_of = charge_lookup(pythia)
    chunks: list[list[dict[str, Any]]] = []
    for first in range(0, job.n_events, PYTHIA_BATCH):
        n = min(PYTHIA_BATCH, job.n_events - first)
        batch = pythia.nextBatch(n)
        if len(batch) != n:
            raise RuntimeError(f"Pythia8 returned {len(batch)} of {n} requested events")
        columns, particles, gen_jets = gen_event_record(batch.prt, charge_of)
        columns["genWeight"] = ak.to_numpy(batch.info.weights[:, 0])
        passes = [columns]
        if detector is not None:
            passes = []
            for rng in rngs:
                reco = detector.reconstruct(particles, gen_jets, rng)
                passes.append(columns | {name: reco[name] for name in ak.fields(reco)})
        chunks.append(passes)
    ids = {
        "run": np.full(job.n_events, config.seed, dtype=np.uint32),
        "luminosityBlock": np.full(job.n_events, job.index + 1, dtype=np.uint32),
        "event": np.arange(job.first_event + 1, job.first_event + job.n_events + 1),
    }
    return [
        {name: ak.concatenate([c[k][name] for c in chunks]) for name in chunks[0][k]} | ids
        for k in range(len(chunks[0]))
    ]


def _hadron(abs_id: np.ndarray) -> np.ndarray:
    """PDG codes of hadrons: at least three digits with a non-zero quark digit n_q3
    (diquarks, n_q3 = 0, are not hadrons)."""
    return (abs_id > 100) & ((abs_id // 10) % 10 != 0)


def _first_ancestor(
    start: np.ndarray, mother: np.ndarray, is_root: np.ndarray, stop: np.ndarray, depth: int
) -> np.ndarray:
    """Flat index of the first ancestor along the mother chain (excluding the particle
    itself) where `stop` is true, -1 if the chain reaches the event root first."""
    found = np.full(start.size, -1)
    current = mother[start]
    active = np.ones(start.size, dtype=bool)
    for _ in range(depth):
        hit = active & stop[current]
        found[hit] = current[hit]
        active &= ~hit & ~is_root[current]
        if not active.any():
            break
        current = np.where(active, mother[current], current)
    return found


def gen_event_record(
    prt: ak.Array, charge_of: Callable[[np.ndarray], np.ndarray]
) -> tuple[dict[str, ak.Array], ak.Array, ak.Array]:
    """GEN collections of a batch of Pythia events.

    Arguments:
        prt: Pythia event records (``pythia8mc`` ``nextBatch(...).prt``), n_events lists of
            particles with id, status, mother1/2, daughter1/2, p (px, py, pz, e in GeV), m.
        charge_of: callable mapping an array of PDG ids to electric charges (units of e).

    Returns:
        columns: ``GenPart``, ``GenJet`` and ``GenMET`` (see `coffea_fastsim.sim.nanoaod_writer`).
        particles: the final-state particles in the `coffea_fastsim.sim.detector.registry`
            input layout.
        gen_jets: the GEN jets (Momentum4D, GeV), sorted by decreasing pT.
    """
    counts = ak.to_numpy(ak.num(prt, axis=1))
    first = np.repeat(np.cumsum(counts) - counts, counts)
    pdg_id = ak.to_numpy(ak.flatten(prt.id))
    status = ak.to_numpy(ak.flatten(prt.status))
    mother1, mother2, daughter1, daughter2 = (
        ak.to_numpy(ak.flatten(prt[name])) + first
        for name in ("mother1", "mother2", "daughter1", "daughter2")
    )
    px, py, pz, energy = (ak.to_numpy(ak.flatten(prt.p[c])) for c in ("px", "py", "pz", "e"))
    pt, eta, phi, _ = polar_coordinates(px, py, pz, energy)
    abs_id, abs_status = np.abs(pdg_id), np.abs(status)
    is_root = np.arange(pdg_id.size) == first
    final = status > 0
    hard = (abs_status >= 21) & (abs_status <= 29)
    # Indices equal to `first` are "no particle" (index 0 is the event-system entry).
    first_copy = (pdg_id[mother1] != pdg_id) & ((mother2 == first) | (pdg_id[mother2] != pdg_id))
    last_copy = ((daughter1 == first) | (pdg_id[daughter1] != pdg_id)) & (
        (daughter2 == first) | (pdg_id[daughter2] != pdg_id)
    )
    decayed = ~final & (daughter1 != first) & (np.abs(status[daughter1]) // 10 == 9)
    lepton = (abs_id >= 11) & (abs_id <= 16)
    keep = (
        (hard & (abs_status != 21))
        | (((abs_id == 23) | (abs_id == 24)) & last_copy)
        | ((abs_id == 15) & last_copy)
        | (final & lepton)
        | (final & (abs_id == 22) & (pt > GEN_PHOTON_PT_MIN))
    )

    kept = np.flatnonzero(keep)
    depth = int(counts.max(initial=1))
    parton = (abs_id <= 6) | (abs_id == 21)

    def ancestor(stop: np.ndarray) -> np.ndarray:
        return _first_ancestor(kept, mother1, is_root, stop, depth)

    decayed_hadron_or_tau = decayed & (_hadron(abs_id) | (abs_id == 15))
    # fromHardProcess: reach a hard-process particle through leptons and bosons only.
    hard_origin = ancestor(hard | _hadron(abs_id) | parton)
    flags = {
        "isPrompt": ancestor(decayed_hadron_or_tau) < 0,
        "isHardProcess": hard[kept],
        "fromHardProcess": hard[kept] | ((hard_origin >= 0) & hard[np.maximum(hard_origin, 0)]),
        "isFirstCopy": first_copy[kept],
        "isLastCopy": last_copy[kept],
    }
    status_flags = sum(
        flags[name].astype(np.int32) << bit for name, bit in STATUS_FLAG_BITS.items()
    )
    kept_so_far = np.cumsum(keep)
    pruned_index = kept_so_far - 1 - (kept_so_far[first] - keep[first])
    mother_kept = ancestor(keep)
    event = np.repeat(np.arange(counts.size), counts)
    gen_part = ak.unflatten(
        ak.zip(
            {
                "pt": pt[kept],
                "eta": eta[kept],
                "phi": phi[kept],
                "mass": ak.to_numpy(ak.flatten(prt.m))[kept],
                "pdgId": pdg_id[kept],
                "status": np.where(final, 1, np.where(decayed, 2, abs_status))[kept],
                "statusFlags": status_flags,
                "genPartIdxMother": np.where(mother_kept >= 0, pruned_index[mother_kept], -1),
            }
        ),
        np.bincount(event[kept], minlength=counts.size),
    )

    neutrino = final & np.isin(abs_id, NEUTRINO_PDG_IDS)
    met_x = np.bincount(event[neutrino], px[neutrino], minlength=counts.size)
    met_y = np.bincount(event[neutrino], py[neutrino], minlength=counts.size)
    gen_met = ak.zip({"pt": np.hypot(met_x, met_y), "phi": np.arctan2(met_y, met_x)})

    visible = np.flatnonzero(final & ~neutrino)
    gen_jets, jet_of_visible = cluster(
        px[visible],
        py[visible],
        pz[visible],
        energy[visible],
        np.bincount(event[visible], minlength=counts.size),
        GEN_JET_R,
        GEN_JET_PT_MIN,
    )
    jet_index = np.full(pdg_id.size, -1)
    jet_index[visible] = jet_of_visible
    j_counts = ak.to_numpy(ak.num(gen_jets, axis=1))
    j_pt, j_eta, j_phi, j_mass = polar_coordinates(
        *(ak.to_numpy(ak.flatten(gen_jets[c])) for c in ("px", "py", "pz", "E"))
    )
    gen_jet = ak.unflatten(
        ak.zip({"pt": j_pt, "eta": j_eta, "phi": j_phi, "mass": j_mass}), j_counts
    )

    fs = np.flatnonzero(final)
    particles = ak.unflatten(
        ak.zip(
            {
                "px": px[fs],
                "py": py[fs],
                "pz": pz[fs],
                "E": energy[fs],
                "pdgId": pdg_id[fs],
                "charge": charge_of(pdg_id[fs]),
                "genPartIdx": np.where(keep[fs], pruned_index[fs], -1),
                "genJetIdx": jet_index[fs],
            },
            with_name="Momentum4D",
        ),
        np.bincount(event[fs], minlength=counts.size),
    )
    return {"GenPart": gen_part, "GenJet": gen_jet, "GenMET": gen_met}, particles, gen_jets
