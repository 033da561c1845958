"""Pythia8 settings of the W(->mu nu)+jet sample at sqrt(s) = 13 TeV, and per-job seeds."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "PYTHIA_MAX_SEED",
    "make_min_bias_pythia",
    "make_pythia",
    "min_bias_settings",
    "process_settings",
    "pythia_seed",
]

#: Largest value Pythia8 accepts for ``Random:seed``.
PYTHIA_MAX_SEED = 900_000_000

#: Silence every Pythia printout (banner, init tables, event listings, counters).
QUIET_SETTINGS: tuple[str, ...] = (
    "Print:quiet = on",
    "Init:showProcesses = off",
    "Init:showChangedSettings = off",
    "Init:showChangedParticleData = off",
    "Next:numberCount = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
    "Next:numberShowEvent = 0",
)


def process_settings(pthat_min: float) -> tuple[str, ...]:
    """Pythia8 settings of W+jet production with W -> mu nu, full ISR, FSR, MPI and
    hadronization (Pythia defaults), with hard-process pT above `pthat_min` (GeV)."""
    return (
        "Beams:idA = 2212",
        "Beams:idB = 2212",
        "Beams:eCM = 13000.",
        "WeakBosonAndParton:qqbar2Wg = on",
        "WeakBosonAndParton:qg2Wq = on",
        f"PhaseSpace:pTHatMin = {pthat_min!r}",
        "24:onMode = off",
        "24:onIfAny = 13",
    )


def min_bias_settings() -> tuple[str, ...]:
    """Pythia8 settings of the minimum-bias (pileup) events: all inelastic processes
    (non-diffractive, single and double diffractive), pp at 13 TeV."""
    return ("Beams:idA = 2212", "Beams:idB = 2212", "Beams:eCM = 13000.", "SoftQCD:inelastic = on")


def pythia_seed(seed: int, job: int) -> int:
    """Pythia ``Random:seed`` (1 to PYTHIA_MAX_SEED) of job `job` of the sample seeded `seed`."""
    state = np.random.SeedSequence([seed, job]).generate_state(1, dtype=np.uint64)[0]
    return int(state % PYTHIA_MAX_SEED) + 1


def make_pythia(seed: int, pthat_min: float) -> Any:
    """An initialized, silent `pythia8mc.Pythia` for the W+jet process with Random:seed `seed`."""
    return _initialized(process_settings(pthat_min), seed, "the W+jet process")


def make_min_bias_pythia(seed: int) -> Any:
    """An initialized, silent `pythia8mc.Pythia` for minimum-bias events (`min_bias_settings`)."""
    return _initialized(min_bias_settings(), seed, "minimum-bias events")


def _initialized(process: tuple[str, ...], seed: int, what: str) -> Any:
    """pythia8mc is imported here: it is an optional dependency (the ``generate`` extra)."""
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for setting in (*QUIET_SETTINGS, *process, "Random:setSeed = on", f"Random:seed = {seed}"):
        if not pythia.readString(setting):
            raise RuntimeError(f"Pythia8 rejected the setting {setting!r}")
    if not pythia.init():
        raise RuntimeError(f"Pythia8 initialization failed for {what}")
    return pythia
