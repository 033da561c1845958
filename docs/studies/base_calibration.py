"""The calibration of a flow on the pairs its training held out, and a shift of its base sample.

``FlowSurrogate.base_values`` maps RECO back to the flow's base sample; on events the flow
never saw it is standard normal when the flow is calibrated. This study reads the model's
own training files (its ``sources``), takes the test split its training held out (the same
seeded split, checked against the model's ``sample_hash``), and prints the mean and width of
each feature's base sample, overall and per |eta| bin of each GEN momentum.

With ``--shift-test FILES`` (test files with their ``.resim1.root`` twins) it also samples
with the base sample shifted by the mean of every feature whose mean is beyond five standard
errors, and prints the W1/sigma ratios to the floor with and without the shift (5 draws of
numpy noise, seeds 100-104, the same for both).

    python docs/studies/base_calibration.py data/wjets_model.pt
    python docs/studies/base_calibration.py data/wjets_model.pt \
        --shift-test samples/scale/w/test-01.root samples/scale/w/test-02.root
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch
from floor_reach import counted  # this folder's other study (run as a script, it is on the path)

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.reading import feature_pairs
from coffea_fastsim.analysis.registry import resolve_analysis
from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.sim.generation import resimulation_path
from coffea_fastsim.surrogate.ensemble import Ensemble
from coffea_fastsim.surrogate.flow import FlowSurrogate
from coffea_fastsim.surrogate.model_file import load_model, sample_hash
from coffea_fastsim.surrogate.training import split_indices
from coffea_fastsim.validation.noise_draws import w1_of_candidate
from coffea_fastsim.validation.samples import load_matched

#: |eta| bins of the per-bin calibration.
ETA_EDGES = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 5.0)
#: A mean of the base sample beyond this many standard errors is shifted (``--shift-test``).
SIGNIFICANCE = 5.0


def held_out_pairs(model_path: Path, analysis: AnalysisDefinition) -> tuple[np.ndarray, ...]:
    """GEN and RECO features of the test split that the model's training held out."""
    metadata = load_model(model_path).metadata
    pairs = feature_pairs([Path(p) for p in metadata["sources"]], analysis)
    if sample_hash(pairs.gen, pairs.reco) != metadata["sample_hash"]:
        raise SystemExit(f"{model_path}: its training files are not those it was trained on")
    config = metadata["training_config"]
    split = split_indices(
        len(pairs.gen), config["test_fraction"], config["validation_fraction"], config["seed"]
    )
    return pairs.gen[split.test], pairs.reco[split.test]


def calibration(model: FlowSurrogate, gen: np.ndarray, reco: np.ndarray, names) -> np.ndarray:
    """Print the base sample's mean and width per feature and |eta| bin; return the means."""
    x_gen = torch.as_tensor(gen, dtype=torch.float32)
    with torch.no_grad():
        base = model.base_values(x_gen, torch.as_tensor(reco, dtype=torch.float32)).numpy()
        _, eta, _ = model.coordinates.momenta(x_gen.double())
        response = model.coordinates.encode(torch.as_tensor(gen), torch.as_tensor(reco)).numpy()
    free = model.free_features.tolist()
    error = 1 / np.sqrt(len(gen))
    print(f"{len(gen)} held-out pairs; standard error of a mean {error:.4f}")
    for i in free:
        print(f"  {names[i]:14s} mean {base[:, i].mean():+.4f}  width {base[:, i].std():.4f}")
    for k, momentum in enumerate(r for r in model.coordinates.responses if r.kind == "momentum"):
        columns = [names.index(f) for f in momentum.features if names.index(f) in free]
        print(
            f"per |eta| bin of the GEN {momentum.name} (base mean / width, "
            f"and the width of RECO's response, of {columns}):"
        )
        abs_eta = eta[:, k].abs().numpy()
        for low, high in itertools.pairwise(ETA_EDGES):
            rows = (abs_eta >= low) & (abs_eta < high)
            if rows.sum() < 100:
                continue
            cells = "  ".join(
                f"{names[i]} {base[rows, i].mean():+.3f}/{base[rows, i].std():.3f}"
                f" ({response[rows, i].std():.4f})"
                for i in columns
            )
            print(f"  {low:.1f}-{high:.1f} ({rows.sum():6d}): {cells}")
    return base.mean(axis=0)


def shifted_ratios(
    model: FlowSurrogate,
    shift: np.ndarray,
    files: list[Path],
    model_path: Path,
    analysis: AnalysisDefinition,
) -> None:
    """W1/sigma ratios to the floor on ``files``, with and without the shift."""
    sample = load_matched(
        files, Ensemble(model_path, ()), 0, analysis, [resimulation_path(p, 1) for p in files]
    )
    names = counted(analysis)
    floor_observables, floor_residuals = w1_of_candidate(sample.gen, sample.reco_prime, sample.reco)  # type: ignore[arg-type]
    x_gen = torch.as_tensor(sample.gen.features, dtype=torch.float32)
    for label, offset in (("no shift", np.zeros_like(shift)), ("shifted", shift)):
        observables, residuals = [], []
        for seed in range(100, 105):
            eps = np.random.default_rng(seed).standard_normal(x_gen.shape) + offset
            with torch.no_grad():
                dl = model(x_gen, torch.as_tensor(eps, dtype=torch.float32)).double().numpy()
            o, r = w1_of_candidate(sample.gen, ObservableTable.of(dl, analysis), sample.reco)
            observables.append([o[n] / floor_observables[n] for n in names])
            residuals.append([r[n] / floor_residuals[n] for n in names])
        o, r = np.mean(observables, 0), np.mean(residuals, 0)
        print(f"{label}: observables > 1.5x: {(o > 1.5).sum()}, residuals > 2x: {(r > 2).sum()}")
        print("   observables:", " ".join(f"{n}={v:.2f}" for n, v in zip(names, o, strict=True)))
        print("   residuals:  ", " ".join(f"{n}={v:.2f}" for n, v in zip(names, r, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a flow model file")
    parser.add_argument("--shift-test", type=Path, nargs="+", default=None)
    args = parser.parse_args()
    loaded = load_model(args.model)
    if loaded.metadata["model_family"] != "flow":
        raise SystemExit(f"{args.model}: not a flow")
    analysis = resolve_analysis(loaded.metadata["analysis"]["name"])
    model = loaded.module
    gen, reco = held_out_pairs(args.model, analysis)
    means = calibration(model, gen, reco, list(analysis.feature_names))
    if args.shift_test:
        significant = np.abs(means) * np.sqrt(len(gen)) > SIGNIFICANCE
        shift = np.where(significant, means, 0.0)
        print(
            "shifted:",
            {
                analysis.feature_names[i]: round(float(shift[i]), 4)
                for i in np.flatnonzero(significant)
            },
        )
        shifted_ratios(model, shift, args.shift_test, args.model, analysis)


if __name__ == "__main__":
    main()
