"""Pythia8 settings of the generated processes at sqrt(s) = 13 TeV, and per-job seeds.

The processes are generation options (`PROCESSES`); which objects an analysis selects from
the events is the analysis definition's business (`coffea_fastsim.analysis`), so a model of
one analysis can be run on a sample of another process.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_PROCESS",
    "PROCESSES",
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


#: Boson + parton processes, name -> (description, process switches without the pT cut).
#: wjets: W -> mu nu. zmumu: Z/gamma* -> mu mu with the gamma*/Z mass in [50, 150] GeV
#: (23:mMin, 23:mMax bound the generated mass of the gamma*/Z0 resonance), which keeps the Z
#: peak and its Drell-Yan tails.
PROCESSES: dict[str, tuple[str, tuple[str, ...]]] = {
    "wjets": (
        "W(->mu nu)+jet",
        (
            "WeakBosonAndParton:qqbar2Wg = on",
            "WeakBosonAndParton:qg2Wq = on",
            "24:onMode = off",
            "24:onIfAny = 13",
        ),
    ),
    "zmumu": (
        "Z/gamma*(->mu mu)+jet, 50 < m_mumu < 150 GeV",
        (
            "WeakBosonAndParton:qqbar2gmZg = on",
            "WeakBosonAndParton:qg2gmZq = on",
            "23:onMode = off",
            "23:onIfAny = 13",
            "23:mMin = 50.",
            "23:mMax = 150.",
        ),
    ),
}
DEFAULT_PROCESS = "wjets"


def process_settings(pthat_min: float, process: str = DEFAULT_PROCESS) -> tuple[str, ...]:
    """Pythia8 settings of boson+parton production `process` (a key of PROCESSES), full ISR,
    FSR, MPI and hadronization (Pythia defaults), with hard-process pT above `pthat_min` (GeV)."""
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; known processes: {sorted(PROCESSES)}")
    return (
        "Beams:idA = 2212",
        "Beams:idB = 2212",
        "Beams:eCM = 13000.",
        *PROCESSES[process][1][:2],
        f"PhaseSpace:pTHatMin = {pthat_min!r}",
        *PROCESSES[process][1][2:],
    )


def min_bias_settings() -> tuple[str, ...]:
    """Pythia8 settings of the minimum-bias (pileup) events: all inelastic processes
    (non-diffractive, single and double diffractive), pp at 13 TeV."""
    return ("Beams:idA = 2212", "Beams:idB = 2212", "Beams:eCM = 13000.", "SoftQCD:inelastic = on")


def pythia_seed(seed: int, job: int) -> int:
    """Pythia ``Random:seed`` (1 to PYTHIA_MAX_SEED) of job `job` of the sample seeded `seed`."""
    state = np.random.SeedSequence([seed, job]).generate_state(1, dtype=np.uint64)[0]
    return int(state % PYTHIA_MAX_SEED) + 1


def make_pythia(seed: int, pthat_min: float, process: str = DEFAULT_PROCESS) -> Any:
    """An initialized, silent `pythia8mc.Pythia` for `process` with Random:seed `seed`."""
    return _initialized(process_settings(pthat_min, process), seed, f"the {process} process")


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
