"""Parsing the command line: defaults shown in the help, unknown options with their
subcommand's usage."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from coffea_fastsim.cli.parser import build_parser

__all__ = ["parse_arguments"]


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append each option's default to its help, unless the text already states it."""
    for action in parser._actions:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.help == argparse.SUPPRESS:
            continue
        if action.default not in (None, False, argparse.SUPPRESS):
            action.help = f"{text} (default: %(default)s)"


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv`` with :func:`build_parser`; an unknown option is reported with its
    subcommand's usage (``run --bogus`` prints ``run``'s)."""
    parser = build_parser()
    subcommands = next(
        a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    for subparser in subcommands.values():
        _show_defaults(subparser)
    args, extra = parser.parse_known_args(argv)
    if extra:
        subcommands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args
