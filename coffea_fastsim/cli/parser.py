"""The argument parser of the ``coffea-fastsim`` command: its subcommands and options."""

from __future__ import annotations

import argparse
from pathlib import Path

from coffea_fastsim import __version__
from coffea_fastsim.processing.run import DEFAULT_PROCESSOR

__all__ = ["build_parser"]

DESCRIPTION = """\
Analysis-specific deep-learning fast simulation for coffea.

A neural network, trained on GEN+RECO pairs from a detector simulation, turns an analysis's GEN
feature vector (W+jet, Z+jet or your own definition) into a RECO-like one in microseconds.
Typical use: generate (or bring) a GEN+RECO sample, train a surrogate on it, check it with the
fidelity suite, then run it on many GEN-only events with coffea's processor.Runner, and plot
DL vs RECO vs GEN.

  coffea-fastsim demo                       # the whole path on the embedded sample and model
  coffea-fastsim generate train.root -n 100000
  coffea-fastsim generate test.root -n 20000 --seed 2 --resimulations 1
  coffea-fastsim train train.root -o model.pt
  coffea-fastsim validate test.root --model model.pt --reco-prime test.resim1.root -o report.md
  coffea-fastsim run gen.root --model model.pt -o results/
  coffea-fastsim plot results/histograms.coffea -o results/plots
"""


def _add_analysis(parser: argparse.ArgumentParser, default: str | None = "wjets") -> None:
    help_ = "a built-in analysis ('coffea-fastsim analyses') or path/to/file.py:NAME"
    parser.add_argument("--analysis", default=default, help=f"{help_} (default: {default})")


def _add_generate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="simulate W(->mu nu)+jet or Z(->mu mu)+jet events with Pythia8 and a detector model",
        description=(
            "Generate boson+jet events (--process) at 13 TeV with Pythia8, cluster GEN jets with "
            "FastJet (anti-kt R=0.5), pass them through a detector model and write a NanoAOD-like "
            "ROOT file (Events tree with GenPart, GenJet, GenMET, Muon, Jet, MET). With --preset, "
            "OUTPUT is a directory and the preset's samples are written into it (existing files "
            "are kept). Needs the 'generate' extra: pip install 'coffea-fastsim[generate]'."
        ),
    )
    parser.add_argument(
        "output", type=Path, help="ROOT file to write (atomically); with --preset, a directory"
    )
    parser.add_argument(
        "-n", "--events", type=int, default=None, help="number of Pythia events to generate"
    )
    parser.add_argument("--preset", default=None, help="named sample set: paper, small")
    parser.add_argument("--process", default="wjets", help="wjets (default) or zmumu")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument(
        "--workers", type=int, default=None, help="parallel processes (default: number of cores)"
    )
    parser.add_argument(
        "--pthat-min",
        type=float,
        default=20.0,
        help="minimum pT of the hard boson+parton process in GeV",
    )
    parser.add_argument("--detector", default=None, help="detector model (default: cms-particle)")
    parser.add_argument(
        "--mu",
        "--pileup",
        dest="mu",
        type=float,
        default=None,
        help="mean number of pileup interactions (cms-particle only; default: %(default)s = "
        "the detector's default)",
    )
    parser.add_argument(
        "--pool-events",
        type=int,
        default=None,
        help="minimum-bias pool size for pileup (made once, cached in $COFFEA_FASTSIM_CACHE "
        "or ~/.cache/coffea-fastsim)",
    )
    parser.add_argument(
        "--resimulations",
        type=int,
        default=0,
        help="also write NAME.resimK.root, K = 1..N: the same GEN events with independent RECO",
    )
    parser.add_argument(
        "--detector-seed", type=int, default=None, help="seed of the detector (default: --seed)"
    )
    parser.add_argument(
        "--gen-only", action="store_true", help="write GEN collections only (no RECO)"
    )


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the surrogate on GEN+RECO files",
        description=(
            "Train a surrogate on the selected events of NanoAOD-like files with GEN and RECO "
            "collections: the paper's Gaussian model (two MLPs for the mean and the 84.1%% "
            "quantile, the default) or a conditional normalizing flow of the 9 features "
            "(--model flow, maximum likelihood; see docs/flow.md). 80%% of the "
            "events are used for learning (70%% training, 30%% validation), 20%% are held out; "
            "the held-out agreement (Wasserstein-1 / RECO std per observable) is printed."
        ),
    )
    parser.add_argument("inputs", type=Path, nargs="+", help="GEN+RECO ROOT files")
    parser.add_argument("-o", "--output", type=Path, required=True, help="model file to write")
    _add_analysis(parser)
    parser.add_argument("--epochs", type=int, default=100,
                        help="maximum number of epochs (default: 100)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=128,
                        help="mini-batch size (default: 128)")  # fmt: skip
    parser.add_argument("--learning-rate", type=float, default=None, metavar="LR",
                        help="initial Adam learning rate, divided by (1 + epoch) each epoch "
                        "(default: 0.001, 0.01 for the flow)")  # fmt: skip
    parser.add_argument("--patience", type=int, default=None, help="stop after this many "
                        "epochs without a better validation loss (default: never)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the splits and the weights")
    parser.add_argument("--model", choices=("gaussian", "flow"), default="gaussian",
                        help="model family (default: gaussian, the paper's)")  # fmt: skip
    parser.add_argument(
        "--target", choices=("detector", "paper"),
        help="learn each object's detector response or, as the paper, the RECO features "
        "(default: detector when the analysis defines its responses; docs/model.md)",
    )  # fmt: skip
    parser.add_argument("--context-eta-steps", type=float, nargs="+", default=[], metavar="ETA",
                        help="steps in GEN |eta| as context (docs/model.md)")  # fmt: skip
    flow = parser.add_argument_group("flow model (--model flow)")
    flow.add_argument(
        "--flow-transform", choices=("affine", "spline"), default="affine",
        help="univariate transform of the autoregressive flow (default: affine)",
    )  # fmt: skip
    flow.add_argument("--flow-transforms", type=int, default=3, metavar="N",
                      help="number of autoregressive transforms (default: 3)")  # fmt: skip
    flow.add_argument("--flow-hidden", type=int, nargs="+", default=[64, 64], metavar="WIDTH",
                      help="hidden layer widths of each transform (default: 64 64)")  # fmt: skip
    flow.add_argument("--flow-passes", type=int, default=None, metavar="P",
                      help="sampling passes per transform: 2 makes a coupling flow, 1 the "
                      "one-pass flow (transforms from GEN alone; spline; docs/flow.md) "
                      "(default: one per feature, fully autoregressive)")  # fmt: skip
    flow.add_argument("--flow-groups", default="one",
                      choices=("one", "transverse-last", "by-response", "by-feature"),
                      help="one-pass flow (--flow-passes 1): a network pass for all responses "
                      "(default), then the MET, per response, or per feature")  # fmt: skip
    flow.add_argument("--flow-bins", type=int, default=8, metavar="B",
                      help="bins of each spline (--flow-transform spline; default: 8)")  # fmt: skip
    flow.add_argument("--flow-order", nargs="+", default=[], metavar="RESPONSE",
                      help="one-pass flow: the responses' sampling order, e.g. jet_mass jet "
                      "muon met (default: the analysis's)")  # fmt: skip
    parser.add_argument(
        "--ensemble", type=int, default=1, metavar="K",
        help="train K models with seeds SEED, SEED+1, ... and write OUTPUT's stem.0 ... "
        "stem.K-1 (model.pt -> model.0.pt ...), for the validation's systematic band "
        "(default: 1, one model written to OUTPUT)",
    )  # fmt: skip


def _add_validate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="measure how close the surrogate is to RECO, and to RECO's own floor",
        description=(
            "The fidelity suite on a GEN+RECO test sample the surrogate never saw: per "
            "observable and per relative residual W1/sigma, KS and chi2/ndf of DL vs RECO; a "
            "classifier two-sample test of p(output | GEN) (ROC AUC, bootstrap error); "
            "correlation differences and 2D DL vs RECO; the ensemble band; the double ratio "
            "on a larger sample. With --reco-prime (same events, independent detector seed) "
            "every figure is also given for RECO' vs RECO: the floor. Writes a markdown report "
            "and PNG/PDF figures."
        ),
    )
    parser.add_argument(
        "test_sample", type=Path, nargs="+", help="GEN+RECO ROOT files (not used in training)"
    )
    _add_analysis(parser)
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help=(
            "model file; its ensemble members stem.0.pt, stem.1.pt ... (from train --ensemble) "
            "are found next to it, or give the stem of the members, or a directory of *.pt"
        ),
    )
    parser.add_argument(
        "--ensemble", type=Path, default=None,
        help="the band's models (file, stem or directory as for --model) when not next to MODEL",
    )  # fmt: skip
    parser.add_argument(
        "--reco-prime", type=Path, nargs="+", default=None,
        help="each test file's twin with RECO from an independent detector seed (the floor)",
    )  # fmt: skip
    parser.add_argument(
        "--large-test", type=Path, default=None,
        help="a GEN+RECO file about 5x the training sample, for the scaling (double-ratio) test",
    )  # fmt: skip
    parser.add_argument(
        "--noise-draws", type=int, default=1, metavar="K",
        help="also give W1/sigma over K draws of the DL noise (seeds SEED..SEED+K-1): mean, range",
    )  # fmt: skip
    parser.add_argument("--resimulations", type=int, default=0, metavar="K", help="instead "
                        "of --reco-prime: each test file's twins NAME.resim1.root .. "
                        "NAME.resimK.root (generate --resimulations K); the first is RECO', "
                        "with K >= 2 the report adds the floor measured with each")  # fmt: skip
    parser.add_argument("-o", "--output", type=Path, required=True, help="markdown report to write")
    parser.add_argument("--figures-dir", type=Path, default=None, help="directory of the "
                        "figures (default: OUTPUT's directory/figures/validation)")  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the DL noise and the classifier"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=200, help="bootstrap resamplings of the AUC (default: 200)"
    )
    parser.add_argument(
        "--formats",
        default="png,pdf",
        help="comma-separated figure formats; the first is linked in the report (default: png,pdf)",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    _add_analysis(parser)
    parser.add_argument(
        "--executor",
        choices=("iterative", "futures", "dask"),
        default="futures",
        help="coffea executor (default: futures)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="processes (futures, dask LocalCluster)"
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="address of an existing dask scheduler, e.g. tcp://host:8786",
    )
    parser.add_argument("--chunksize", type=int, default=100_000, help="events per Runner chunk")
    parser.add_argument(
        "--inference-chunk-size",
        type=int,
        default=None,
        help="events per surrogate evaluation (default: 65536 on the CPU, from the free "
        "memory on a GPU)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-event DL noise")
    parser.add_argument("--no-dataset", action="store_true", help="do not write the DL dataset")
    parser.add_argument("--oversample", type=int, default=1, help="DL replicas K per GEN event")
    parser.add_argument("--root", type=Path, help="also write the histograms as TH1D there")
    parser.add_argument("--replace", action="store_true", help="remove another run's outputs first")
    parser.add_argument("--allow-nonfinite", action="store_true", help="keep NaN/inf DL output")
    parser.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="skip unreadable files instead of stopping; they are listed in manifest.json",
    )
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="recompute every chunk (by default, chunks checkpointed in OUTPUT_DIR/checkpoints "
        "by an earlier run with the same model, seed and analysis are reused)",
    )


def _add_run(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the surrogate on GEN (or GEN+RECO) files with coffea's Runner",
        description=(
            "Run FastSimProcessor over NanoAOD-like files: select the analysis's events at GEN "
            "level, evaluate the surrogate, fill GEN/DL(/RECO) histograms (histograms.coffea, "
            "read with coffea.util.load) and write the DL dataset (Parquet, one file per chunk)."
        ),
    )
    parser.add_argument("inputs", type=Path, nargs="+", help="NanoAOD-like ROOT files")
    parser.add_argument("--model", type=Path, required=True, help="surrogate model file")
    parser.add_argument(
        "-o", "--output-dir", type=Path, required=True, help="directory for the outputs"
    )
    parser.add_argument("--dataset", default="events", help="dataset name used as the output key")
    parser.add_argument(
        "--processor",
        default=DEFAULT_PROCESSOR,
        metavar="MODULE:CLASS",
        help="the FastSimProcessor (sub)class to run",
    )
    _add_run_options(parser)


def _add_plot(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="plot DL vs RECO vs GEN from a histograms.coffea file",
        description=(
            "Draw each observable (GEN, RECO, DL, unit-normalized) with a DL/RECO ratio panel, "
            "and the relative residuals (x - x_GEN)/x_GEN of DL and RECO, as PNG and PDF."
        ),
    )
    parser.add_argument("histograms", type=Path, help="histograms.coffea written by 'run'")
    _add_analysis(parser, None)
    parser.add_argument(
        "-o", "--output-dir", type=Path, required=True, help="directory for the figures"
    )
    parser.add_argument("--dataset", default=None, help="dataset to plot (default: the first one)")


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole path on the embedded sample and model (about a minute)",
        description=(
            "Run the surrogate shipped in data/ on the embedded GEN+RECO sample of --analysis "
            "with coffea's Runner, write histograms, plots and the DL dataset, and print where."
        ),
    )
    parser.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        default=Path("fastsim-demo"),
        help="default: ./fastsim-demo",
    )
    _add_run_options(parser)
    # Several chunks, so that the demo shows the executor at work on the small sample.
    parser.set_defaults(chunksize=2000, processor=DEFAULT_PROCESSOR)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``coffea-fastsim`` command."""
    parser = argparse.ArgumentParser(
        prog="coffea-fastsim",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_generate, _add_train, _add_validate, _add_run, _add_plot, _add_demo):
        add(subparsers)
    what = "the built-in analyses with their features and auxiliary observables"
    about = f"List {what}; your own is --analysis path/to/file.py:NAME (docs/analyses.md)."
    subparsers.add_parser("analyses", help=f"list {what}", description=about)
    return parser
