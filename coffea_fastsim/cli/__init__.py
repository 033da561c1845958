"""The ``coffea-fastsim`` command: generate, train, validate, run, plot, demo, analyses.

Each command parses its arguments (:mod:`coffea_fastsim.cli.parser`), calls the library and
prints; the heavy imports happen inside the command, so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from coffea_fastsim.cli.arguments import parse_arguments
from coffea_fastsim.cli.parser import build_parser
from coffea_fastsim.processing.run import IncompleteRunError, RunOptions, run_and_save

__all__ = ["COMMANDS", "build_parser", "main"]


def _generate(args: argparse.Namespace) -> None:
    import dataclasses

    from coffea_fastsim.sim.detector.pileup import MinBiasPoolConfig
    from coffea_fastsim.sim.generation import DEFAULT_DETECTOR, GenerationConfig, generate_sample
    from coffea_fastsim.sim.presets import generate_preset

    if (args.preset is None) == (args.events is None):
        raise ValueError("give either -n/--events or --preset")
    pool = MinBiasPoolConfig()
    if args.pool_events is not None:
        pool = dataclasses.replace(pool, n_events=args.pool_events)
    config = GenerationConfig(
        n_events=args.events or 1,
        seed=args.seed,
        pthat_min=args.pthat_min,
        n_workers=args.workers,
        detector=args.detector or DEFAULT_DETECTOR,
        include_reco=not args.gen_only,
        detector_seed=args.detector_seed,
        mu=args.mu,
        pool=pool,
        resimulations=args.resimulations,
        process=args.process,
    )
    print(f"process {config.process}, detector {config.detector}, mean pileup {config.pileup_mu:g}")
    summaries = (
        generate_preset(args.preset, args.output, config)
        if args.preset
        else [generate_sample(args.output, config)]
    )
    for summary in summaries:
        if isinstance(summary, Path):
            print(f"kept {summary} (already there)")
            continue
        print(
            f"wrote {summary.n_events} events to {summary.path} "
            f"in {summary.wall_seconds:.1f} s ({summary.events_per_second:.0f} events/s)"
        )
        for path in summary.resimulations:
            print(f"wrote the re-simulation {path}")


def _train(args: argparse.Namespace) -> None:
    from functools import partial

    from coffea_fastsim.analysis.reading import feature_pairs, sample_process
    from coffea_fastsim.analysis.registry import resolve_analysis
    from coffea_fastsim.surrogate.ensemble_training import train_ensemble
    from coffea_fastsim.surrogate.flow import FlowConfig, ordered_responses
    from coffea_fastsim.surrogate.training import TrainingConfig
    from coffea_fastsim.validation.heldout import heldout_agreement

    analysis = resolve_analysis(args.analysis)
    ordered_responses(analysis.responses, args.flow_order)  # a bad name fails before reading
    config = TrainingConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        seed=args.seed,
        model=args.model,
        flow=FlowConfig(
            transform=args.flow_transform,
            transforms=args.flow_transforms,
            hidden_features=tuple(args.flow_hidden),
            passes=args.flow_passes,
            bins=args.flow_bins,
            groups=args.flow_groups,
            order=tuple(args.flow_order),
        )
        if args.model == "flow"
        else None,
        target=args.target or ("detector" if analysis.responses else "paper"),
        context_eta_steps=tuple(args.context_eta_steps),
    )
    pairs = feature_pairs(args.inputs, analysis)
    print(
        f"{len(pairs)} events selected by the analysis {analysis.name!r} with valid RECO partners"
    )
    members = train_ensemble(
        pairs.gen,
        pairs.reco,
        config,
        args.output,
        check=partial(heldout_agreement, pairs, analysis),
        feature_names=analysis.feature_names,
        n_members=args.ensemble,
        responses=analysis.responses,
        metadata={
            "analysis": analysis.record,
            "process": sorted({sample_process(path) for path in args.inputs}),
            "sources": [str(path) for path in args.inputs],
        },
    )
    for member in members:
        result = member.result
        print(
            f"{args.model} model, {config.target} target, seed {result.config.seed}: "
            f"best epoch {result.best_epoch} of "
            f"{len(result.history.train_loss)} ({result.seconds:.0f} s)"
        )
        print(
            f"held-out agreement, {len(result.split.test)} events: "
            "Wasserstein-1 / RECO std (0 = identical)"
        )
        for name, value in member.heldout.items():
            print(f"  {name:14s} {value:.4f}")
        print(f"model written to {member.path}")


def _validate(args: argparse.Namespace) -> None:
    from coffea_fastsim.validation.run import parse_formats, validate
    from coffea_fastsim.validation.suite import ValidationConfig

    config = ValidationConfig(
        analysis=args.analysis,
        test_sample=args.test_sample,
        model=args.model,
        ensemble=args.ensemble,
        reco_prime=args.reco_prime,
        large_test=args.large_test,
        seed=args.seed,
        n_bootstrap=args.bootstrap,
        noise_draws=args.noise_draws,
        resimulations=args.resimulations,
    )
    result, report = validate(config, args.output, args.figures_dir, parse_formats(args.formats))
    for line in result.summary_lines:
        print(line)
    print(f"report written to {report}")


def _run_options(
    args: argparse.Namespace, inputs: Sequence[Path], model: Path, dataset: str
) -> RunOptions:
    return RunOptions(
        inputs=tuple(inputs),
        model=model,
        output_dir=args.output_dir,
        dataset=dataset,
        processor=args.processor,
        analysis=args.analysis,
        executor=args.executor,
        workers=args.workers,
        scheduler=args.scheduler,
        chunksize=args.chunksize,
        inference_chunk_size=args.inference_chunk_size,
        device=args.device,
        seed=args.seed,
        write_dataset=not args.no_dataset,
        skip_bad_files=args.skip_bad_files,
        resume=not args.no_resume,
        oversample=args.oversample,
        root_file=args.root,
        replace=args.replace,
        allow_nonfinite=args.allow_nonfinite,
    )


def _run_and_print(options: RunOptions) -> Path:
    report = run_and_save(options)
    for line in report.summary:
        print(line)
    for note in report.notes:
        print(f"note: {note}")
    report.raise_if_incomplete()
    if report.root_file is not None:
        print(f"ROOT histograms: {report.root_file}")
    return report.histograms


def _run(args: argparse.Namespace) -> None:
    options = _run_options(args, args.inputs, args.model, args.dataset)
    histogram_path = _run_and_print(options)
    print(f"histograms: {histogram_path}")
    print(f"manifest: {args.output_dir / 'manifest.json'}")
    if not args.no_dataset:
        print(f"DL dataset: {args.output_dir / 'dataset' / args.dataset}")


def _plot(args: argparse.Namespace) -> None:
    from coffea_fastsim.analysis.registry import resolve_analysis
    from coffea_fastsim.processing.plotting import plot_histogram_file

    analysis = None if args.analysis is None else resolve_analysis(args.analysis)
    written = plot_histogram_file(args.histograms, args.output_dir, args.dataset, analysis)
    print(f"wrote {len(written)} figures to {args.output_dir}")


def _demo(args: argparse.Namespace) -> None:
    from coffea_fastsim.analysis.registry import resolve_analysis
    from coffea_fastsim.embedded import DEMO_PROCESSORS, embedded_model, embedded_sample
    from coffea_fastsim.processing.plotting import plot_histogram_file

    name = args.analysis
    args.processor = DEMO_PROCESSORS.get(name, args.processor)
    options = _run_options(args, [embedded_sample(name)], embedded_model(name), name)
    histogram_path = _run_and_print(options)
    plots = args.output_dir / "plots"
    written = plot_histogram_file(histogram_path, plots, name, resolve_analysis(name))
    print("demo outputs:")
    print(f"  histograms (coffea.util.load): {histogram_path}")
    print(f"  plots ({len(written)} PNG/PDF files): {plots}")
    if not args.no_dataset:
        print(f"  DL dataset (Parquet): {args.output_dir / 'dataset' / name}")


def _analyses(args: argparse.Namespace) -> None:
    from coffea_fastsim.analysis.registry import builtin_analyses

    for definition in builtin_analyses().values():
        print(f"{definition.name}: {definition.description}")
        print(f"  features ({len(definition.features)}): {', '.join(definition.feature_names)}")
        auxiliary = ", ".join(definition.auxiliary_names)
        print(f"  auxiliary ({len(definition.auxiliary)}): {auxiliary}")
        responses = ", ".join(f"{r.name} ({r.kind})" for r in definition.responses)
        print(f"  responses ({len(definition.responses)}): {responses}")


COMMANDS = {
    "generate": _generate,
    "train": _train,
    "validate": _validate,
    "run": _run,
    "plot": _plot,
    "analyses": _analyses,
    "demo": _demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``coffea-fastsim`` console script; returns the exit status."""
    args = parse_arguments(argv)
    from coffea_fastsim.analysis.reading import ignore_nanoaod_warnings

    ignore_nanoaod_warnings()
    try:
        COMMANDS[args.command](args)
    except KeyboardInterrupt:
        resume = "; rerun it to resume" if args.command in ("run", "demo") else ""
        print(f"coffea-fastsim {args.command}: interrupted{resume}", file=sys.stderr)
        return 130
    except IncompleteRunError as error:
        print(f"coffea-fastsim {args.command}: incomplete: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        if os.environ.get("COFFEA_FASTSIM_DEBUG"):
            raise
        print(f"coffea-fastsim {args.command}: error: {error}", file=sys.stderr)
        print("(set COFFEA_FASTSIM_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 2
    return 0
