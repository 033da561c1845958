"""Generation speed and validation figures of the particle-level detector.

Usage: python benchmarks/detector.py [--mu 0 50 200] [--events 400] [--workers 2]
                                     [--figures DIR]
For each mu, generates --events W+jet events (Pythia8 + detector) with --workers processes and
prints events/s, the fraction passing the GEN selection with a valid RECO match, and the
projected hours for 300,000 such events. The minimum-bias pool is made (and cached) first,
outside the timing. With --figures, the same samples give the validation figures (jet
response and resolution vs GenJet pT, muon resolution vs pT, MET resolution vs sum ET, one
curve per mu) as PNG files in DIR.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import awkward as ak
import matplotlib as mpl
import numpy as np

from coffea_fastsim.analysis.reading import open_events, read_features
from coffea_fastsim.sim.detector.pileup import MinBiasPoolConfig, make_min_bias_pool
from coffea_fastsim.sim.generation import GenerationConfig, generate_sample

mpl.use("Agg")
import matplotlib.pyplot as plt

TARGET_SELECTED = 300_000
JET_PT_BINS = np.array([20, 30, 40, 50, 70, 100, 150, 250, 400])
MUON_PT_BINS = np.array([10, 20, 30, 40, 50, 70, 100, 200])
SUM_ET_BINS = np.array([0, 100, 200, 300, 500, 800, 1200, 2000, 3000, 4500, 7000, 10000])


def profile(x: np.ndarray, y: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, ...]:
    """Bin centres, mean of y, its error, standard deviation of y and its error per x bin."""
    index = np.digitize(x, bins) - 1
    centres, means, mean_errors, widths, width_errors = [], [], [], [], []
    for i in range(bins.size - 1):
        values = y[index == i]
        if values.size < 10:
            continue
        centres.append(0.5 * (bins[i] + bins[i + 1]))
        means.append(values.mean())
        mean_errors.append(values.std() / np.sqrt(values.size))
        widths.append(values.std())
        width_errors.append(values.std() / np.sqrt(2 * values.size))
    return tuple(np.array(a) for a in (centres, means, mean_errors, widths, width_errors))


def validation_data(path: Path) -> dict[str, np.ndarray]:
    """Matched (GEN, RECO) pairs of central jets and of W muons, and MET residuals."""
    events = open_events(path)
    jets = events.Jet[(events.Jet.genJetIdx >= 0)]
    gen_jets = events.GenJet[jets.genJetIdx]
    central = abs(gen_jets.eta) < 2.4
    muons = events.Muon[events.Muon.genPartIdx >= 0]
    gen_muons = events.GenPart[muons.genPartIdx]
    met_x = events.MET.pt * np.cos(events.MET.phi) - events.GenMET.pt * np.cos(events.GenMET.phi)
    flat = {
        "jet_gen_pt": ak.flatten(gen_jets.pt[central]),
        "jet_response": ak.flatten((jets.pt / gen_jets.pt)[central]),
        "muon_gen_pt": ak.flatten(gen_muons.pt),
        "muon_residual": ak.flatten((muons.pt - gen_muons.pt) / gen_muons.pt),
        "sum_et": events.MET.sumEt,
        "met_x_residual": met_x,
    }
    return {name: ak.to_numpy(values).astype(float) for name, values in flat.items()}


def draw_figures(data: dict[float, dict[str, np.ndarray]], directory: Path) -> list[Path]:
    """The four validation figures, one curve per mu."""
    directory.mkdir(parents=True, exist_ok=True)
    specs = [
        (
            "jet_response",
            "jet_gen_pt",
            JET_PT_BINS,
            "mean",
            "GenJet $p_T$ [GeV]",
            "mean jet response $p_T/p_T^{gen}$",
        ),
        (
            "jet_resolution",
            "jet_gen_pt",
            JET_PT_BINS,
            "width",
            "GenJet $p_T$ [GeV]",
            r"jet resolution $\sigma(p_T/p_T^{gen})$",
        ),
        (
            "muon_resolution",
            "muon_gen_pt",
            MUON_PT_BINS,
            "width",
            r"GEN muon $p_T$ [GeV]",
            r"muon resolution $\sigma(\Delta p_T/p_T)$",
        ),
        (
            "met_resolution",
            "sum_et",
            SUM_ET_BINS,
            "width",
            r"$\Sigma E_T$ [GeV]",
            r"MET resolution $\sigma(E_x^{miss} - E_x^{miss,gen})$ [GeV]",
        ),
    ]
    y_of = {
        "jet_response": "jet_response",
        "jet_resolution": "jet_response",
        "muon_resolution": "muon_residual",
        "met_resolution": "met_x_residual",
    }
    written = []
    for name, x_name, bins, what, x_label, y_label in specs:
        figure, axes = plt.subplots(figsize=(5.5, 4))
        for mu, arrays in data.items():
            centres, mean, mean_error, width, width_error = profile(
                arrays[x_name], arrays[y_of[name]], bins
            )
            y, error = (mean, mean_error) if what == "mean" else (width, width_error)
            axes.errorbar(centres, y, yerr=error, marker="o", ls="", label=f"$\\mu$ = {mu:g}")
        if name == "jet_response":
            axes.axhline(1.0, color="grey", lw=0.8)
        axes.set_xscale("log")
        axes.set_xlabel(x_label)
        axes.set_ylabel(y_label)
        axes.legend()
        figure.tight_layout()
        path = directory / f"{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mu", type=float, nargs="+", default=[0.0, 50.0, 200.0])
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--figures", type=Path, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    make_min_bias_pool(MinBiasPoolConfig(), args.workers)
    print(f"minimum-bias pool ready in {time.perf_counter() - start:.0f} s")
    print(f"{'mu':>6} {'events/s':>9} {'selected':>9} {'h for 300k selected':>20}")
    data = {}
    with tempfile.TemporaryDirectory() as directory:
        for mu in args.mu:
            path = Path(directory) / f"mu{mu:g}.root"
            config = GenerationConfig(
                n_events=args.events,
                seed=args.seed,
                n_workers=args.workers,
                events_per_job=max(1, args.events // args.workers),
                mu=mu,
                progress=False,
            )
            summary = generate_sample(path, config)
            selected = read_features(path).reco_valid.sum() / args.events
            hours = TARGET_SELECTED / (summary.events_per_second * selected) / 3600
            print(f"{mu:6g} {summary.events_per_second:9.1f} {selected:9.3f} {hours:20.2f}")
            if args.figures:
                data[mu] = validation_data(path)
    print(f"cores: {os.cpu_count()}, workers: {args.workers}")
    if args.figures:
        for path in draw_figures(data, args.figures):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
