"""Pileup: a pool of Pythia8 minimum-bias events, made once and cached on disk, from which
every event draws Poisson(mu) interactions at vertices spread along the beam.

References:
    Delphes modules PileUpMerger and TrackPileUpSubtractor of
    ``cards/CMS_PhaseII/CMS_PhaseII_200PU_v03.tcl`` (delphes/delphes).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import awkward as ak
import numpy as np

from coffea_fastsim.sim.detector.response import NEUTRINO_PDG_IDS, polar_coordinates
from coffea_fastsim.sim.pythia_config import make_min_bias_pythia, min_bias_settings, pythia_seed

__all__ = [
    "CMS_PILEUP",
    "MinBiasPool",
    "MinBiasPoolConfig",
    "PileupCard",
    "PileupParticles",
    "cache_directory",
    "make_min_bias_pool",
    "save_pool",
]

_POOL_FORMAT = 1


@dataclass(frozen=True)
class PileupCard:
    """Vertex distribution and charged-hadron subtraction of CMS_PhaseII_200PU_v03.tcl.

    Arguments:
        z_sigma: PileUpMerger VertexDistributionFormula, Gaussian width in z, m.
        z_max: PileUpMerger ZVertexSpread, the distribution is cut at |z| <= z_max, m.
        z_resolution: TrackPileUpSubtractor ZVertexResolution, m: tracks from a pileup
            vertex farther than this from the primary vertex are removed.
    """

    z_sigma: float = 0.053
    z_max: float = 0.25
    z_resolution: float = 1.0e-4

    def vertex_z(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n vertex positions along the beam in m (truncated Gaussian)."""
        z = rng.normal(0.0, self.z_sigma, n)
        outside = np.abs(z) > self.z_max
        while outside.any():
            z[outside] = rng.normal(0.0, self.z_sigma, int(outside.sum()))
            outside = np.abs(z) > self.z_max
        return z


CMS_PILEUP = PileupCard()


def cache_directory() -> Path:
    """``$COFFEA_FASTSIM_CACHE`` if set, else ``~/.cache/coffea-fastsim``."""
    configured = os.environ.get("COFFEA_FASTSIM_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "coffea-fastsim"


@dataclass(frozen=True)
class MinBiasPoolConfig:
    """Settings of a minimum-bias pool; the cache file name is derived from all of them.

    Arguments:
        n_events: pool size.
        seed: seed of the pool (job i runs Pythia with `pythia_seed(seed, i)`).
        abs_eta_max: final-state particles beyond this |eta| (down the beam pipe) are dropped.
        events_per_job: events per Pythia job (unit of parallelism).
    """

    n_events: int = 10_000
    seed: int = 1
    abs_eta_max: float = 5.5
    events_per_job: int = 1000

    def __post_init__(self) -> None:
        for name in ("n_events", "events_per_job"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def path(self, directory: Path | None = None) -> Path:
        """The cache file of this pool in `directory` (default `cache_directory()`)."""
        recipe = repr((_POOL_FORMAT, min_bias_settings(), sorted(asdict(self).items())))
        digest = hashlib.sha256(recipe.encode()).hexdigest()[:16]
        name = f"minbias-{self.n_events}-seed{self.seed}-{digest}.npz"
        return (directory or cache_directory()) / name


def _pool_job(args: tuple[MinBiasPoolConfig, int, int]) -> dict[str, np.ndarray]:
    """Generate `n` minimum-bias events of job `index` (in a worker)."""
    config, index, n = args
    pythia = make_min_bias_pythia(pythia_seed(config.seed, index))
    batch = pythia.nextBatch(n)
    if len(batch) != n:
        raise RuntimeError(f"Pythia8 returned {len(batch)} of {n} requested min-bias events")
    prt = batch.prt[batch.prt.status > 0]
    counts = ak.to_numpy(ak.num(prt))
    pdg_id = ak.to_numpy(ak.flatten(prt.id))
    px, py, pz, energy = (ak.to_numpy(ak.flatten(prt.p[c])) for c in ("px", "py", "pz", "e"))
    _, eta, _, _ = polar_coordinates(px, py, pz, energy)
    keep = ~np.isin(np.abs(pdg_id), NEUTRINO_PDG_IDS) & (np.abs(eta) < config.abs_eta_max)
    keep &= np.hypot(px, py) > 0
    unique, inverse = np.unique(pdg_id[keep], return_inverse=True)
    charge = np.array([pythia.particleData.charge(int(i)) for i in unique])[inverse]
    event = np.repeat(np.arange(n), counts)[keep]
    return {
        "counts": np.bincount(event, minlength=n),
        "p4": np.stack([px[keep], py[keep], pz[keep], energy[keep]], axis=1).astype(np.float32),
        "pdg_id": pdg_id[keep].astype(np.int32),
        "charge": charge.astype(np.int8),
    }


def make_min_bias_pool(
    config: MinBiasPoolConfig,
    n_workers: int | None = None,
    directory: Path | None = None,
) -> Path:
    """The cache file of the pool `config`, generated first if absent (written atomically).

    Arguments:
        config: the pool settings.
        n_workers: Pythia processes, default ``os.cpu_count()``.
        directory: cache directory, default `cache_directory()`.
    """
    path = config.path(directory)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    jobs = [
        (config, i, min(config.events_per_job, config.n_events - first))
        for i, first in enumerate(range(0, config.n_events, config.events_per_job))
    ]
    n_workers = min(n_workers or os.cpu_count() or 1, len(jobs))
    if n_workers == 1:
        parts = [_pool_job(job) for job in jobs]
    else:
        with multiprocessing.get_context("spawn").Pool(n_workers) as pool:
            parts = pool.map(_pool_job, jobs)
    arrays = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    save_pool(path, **arrays)
    return path


def save_pool(
    path: str | os.PathLike,
    counts: np.ndarray,
    p4: np.ndarray,
    pdg_id: np.ndarray,
    charge: np.ndarray,
) -> None:
    """Write a pool file atomically (a temporary file renamed at the end).

    Arguments:
        path: the ``.npz`` file.
        counts: particles per pool event, shape (n_events,).
        p4: (px, py, pz, E) of the particles in GeV, shape (n, 4), grouped by event.
        pdg_id: PDG codes, shape (n,).
        charge: electric charges in units of e, shape (n,).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as handle:
        np.savez(
            handle,
            counts=np.asarray(counts, dtype=np.int64),
            p4=np.asarray(p4, dtype=np.float32),
            pdg_id=np.asarray(pdg_id, dtype=np.int32),
            charge=np.asarray(charge, dtype=np.int8),
        )
    temporary.replace(path)


@dataclass(frozen=True)
class PileupParticles:
    """Pileup particles overlaid on a batch of events, flat, grouped by event.

    Arguments:
        event: index of the hard event, shape (n,).
        px, py, pz, energy: four-momentum in GeV, shape (n,).
        pdg_id: PDG code, shape (n,).
        charge: electric charge in units of e, shape (n,).
        z_vertex: z of the pileup vertex in m, shape (n,).
        n_interactions: pileup interactions per event, shape (n_events,).
    """

    event: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    pdg_id: np.ndarray
    charge: np.ndarray
    z_vertex: np.ndarray
    n_interactions: np.ndarray


class MinBiasPool:
    """Minimum-bias events held in memory, read from a `make_min_bias_pool` file.

    Arguments:
        path: the ``.npz`` pool file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"minimum-bias pool {self.path} does not exist")
        with np.load(self.path) as arrays:
            counts = arrays["counts"].astype(np.int64)
            self.p4 = arrays["p4"].astype(np.float64)
            self.pdg_id = arrays["pdg_id"]
            self.charge = arrays["charge"].astype(np.float64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.n_events = counts.size

    def overlay(
        self, rng: np.random.Generator, n_events: int, mu: float, card: PileupCard
    ) -> PileupParticles:
        """Draw Poisson(mu) pool events for each of `n_events` events, each rotated by a
        uniform azimuth and placed at a vertex z from `card` (PileUpMerger)."""
        n_interactions = rng.poisson(mu, n_events)
        total = int(n_interactions.sum())
        which = rng.integers(0, self.n_events, total)
        angle = rng.uniform(-np.pi, np.pi, total)
        z_vertex = card.vertex_z(rng, total)
        sizes = self.offsets[which + 1] - self.offsets[which]
        start = np.repeat(self.offsets[which] - np.cumsum(sizes) + sizes, sizes)
        index = start + np.arange(int(sizes.sum()))
        px, py, pz, energy = self.p4[index].T
        cos, sin = np.repeat(np.cos(angle), sizes), np.repeat(np.sin(angle), sizes)
        return PileupParticles(
            event=np.repeat(np.repeat(np.arange(n_events), n_interactions), sizes),
            px=px * cos - py * sin,
            py=px * sin + py * cos,
            pz=pz,
            energy=energy,
            pdg_id=self.pdg_id[index],
            charge=self.charge[index],
            z_vertex=np.repeat(z_vertex, sizes),
            n_interactions=n_interactions,
        )
