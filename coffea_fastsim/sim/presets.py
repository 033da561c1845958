"""Named sets of samples: `generate_preset` writes each sample of a preset into a directory,
seeded, and keeps the files that are already there (the disk is the cache)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from coffea_fastsim.sim.generation import (
    GenerationConfig,
    GenerationSummary,
    generate_sample,
    resimulation_path,
)

__all__ = ["PRESETS", "Preset", "PresetSample", "generate_preset"]


@dataclass(frozen=True)
class PresetSample:
    """One sample of a preset.

    Arguments:
        name: file stem, the sample is written to ``NAME.root``.
        n_events: generated events.
        seed: sample seed (also its ``run`` number).
        resimulations: independent RECO passes written alongside (``NAME.resimK.root``).
    """

    name: str
    n_events: int
    seed: int
    resimulations: int = 0


@dataclass(frozen=True)
class Preset:
    """A named set of samples generated with the same detector settings.

    Arguments:
        name: preset name (``coffea-fastsim generate --preset NAME``).
        description: one line for the command-line help.
        samples: the samples.
    """

    name: str
    description: str
    samples: tuple[PresetSample, ...]


#: About 25 % of the generated events pass the GEN selection with a valid RECO match, so the
#: training sample gives about 300,000 training pairs and the large test sample is 5x the test.
PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "paper",
            "train (1.2M events), test (240k) and test-large (1.2M, 5x test), with one "
            "re-simulation of the test sample",
            (
                PresetSample("train", 1_200_000, seed=101),
                PresetSample("test", 240_000, seed=102, resimulations=1),
                PresetSample("test-large", 1_200_000, seed=103),
            ),
        ),
        Preset(
            "small",
            "a 1 % scale model of 'paper' (12k, 2.4k, 12k events) to try the chain",
            (
                PresetSample("train", 12_000, seed=101),
                PresetSample("test", 2_400, seed=102, resimulations=1),
                PresetSample("test-large", 12_000, seed=103),
            ),
        ),
    )
}


def generate_preset(
    name: str, directory: str | os.PathLike, base: GenerationConfig
) -> list[GenerationSummary | Path]:
    """Generate the samples of preset `name` into `directory`.

    Arguments:
        name: a key of PRESETS.
        directory: output directory (created if missing).
        base: detector, mu, workers and the other settings; its n_events, seed and
            resimulations are replaced by each sample's.

    Returns:
        Per sample, the `GenerationSummary`, or the path of the file that already existed.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}")
    output = Path(directory)
    output.mkdir(parents=True, exist_ok=True)
    results: list[GenerationSummary | Path] = []
    for sample in PRESETS[name].samples:
        path = output / f"{sample.name}.root"
        config = dataclasses.replace(
            base, n_events=sample.n_events, seed=sample.seed, resimulations=sample.resimulations
        )
        expected = [path, *(resimulation_path(path, k) for k in range(1, sample.resimulations + 1))]
        if all(p.is_file() for p in expected):
            results.append(path)
            continue
        results.append(generate_sample(path, config))
    return results
