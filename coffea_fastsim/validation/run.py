"""The validate use case: run the fidelity suite and write its report, headed by the command
line that reproduces it. The command line's ``validate`` only parses its arguments, calls
:func:`validate` and prints the summary lines.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from coffea_fastsim.analysis.registry import DEFAULT_ANALYSIS
from coffea_fastsim.processing.plotting import FORMATS
from coffea_fastsim.validation.report import write_report
from coffea_fastsim.validation.suite import ValidationConfig, ValidationResult, run_validation

__all__ = ["parse_formats", "validate", "validation_command"]


def parse_formats(text: str) -> tuple[str, ...]:
    """Figure formats from a comma-separated list, e.g. "png,pdf" -> ("png", "pdf").

    Raises:
        ValueError: no format in ``text``.
    """
    formats = tuple(part.strip() for part in text.split(",") if part.strip())
    if not formats:
        raise ValueError(f"formats: no figure format in {text!r}; give e.g. png,pdf")
    return formats


def _analysis_option(config: ValidationConfig) -> str | None:
    """The ``--analysis`` value of the command line; None for the default analysis."""
    spec = config.analysis if isinstance(config.analysis, str) else config.definition.name
    return None if spec == DEFAULT_ANALYSIS else spec


def validation_command(
    config: ValidationConfig,
    output: str | os.PathLike[str],
    figures_dir: str | os.PathLike[str] | None = None,
    formats: Sequence[str] = FORMATS,
) -> str:
    """The ``coffea-fastsim validate`` command line of these inputs, shell-quoted."""
    options = [
        ("--analysis", _analysis_option(config)),
        ("--model", config.model),
        ("--ensemble", config.ensemble),
        ("--reco-prime", config.reco_prime),
        ("--large-test", config.large_test),
        ("-o", output),
        ("--figures-dir", figures_dir),
        ("--seed", config.seed),
        ("--bootstrap", config.n_bootstrap),
        ("--noise-draws", config.noise_draws if config.noise_draws > 1 else None),
        ("--resimulations", config.resimulations or None),
        ("--formats", ",".join(formats)),
    ]
    words = ["coffea-fastsim", "validate", *map(str, config.test_samples)]
    for option, value in options:
        if value is not None:
            words += [option, *map(str, value if isinstance(value, tuple) else (value,))]
    return shlex.join(words)


def validate(
    config: ValidationConfig,
    output: str | os.PathLike[str],
    figures_dir: str | os.PathLike[str] | None = None,
    formats: Sequence[str] = FORMATS,
) -> tuple[ValidationResult, Path]:
    """Run the suite on ``config`` and write the report to ``output`` (figures in
    ``figures_dir``, default ``<output dir>/figures/validation``).

    Returns:
        The suite's result and the report's path.
    """
    result = run_validation(config)
    command = validation_command(config, output, figures_dir, formats)
    return result, write_report(result, output, figures_dir, command, formats)
