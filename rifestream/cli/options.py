"""What the subcommands share on the command line: how one is registered, and options several take."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_subcommand(
    subparsers: argparse._SubParsersAction,
    name: str,
    run: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """The parser of subcommand ``name``, whose ``run`` is what ``main`` calls with the parsed arguments.

    Text laid out by hand (any epilog, a description written on several lines) is printed as written;
    a one-line description is wrapped to the terminal.
    """
    as_written = epilog is not None or "\n" in description
    parser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter if as_written else argparse.HelpFormatter,
    )
    parser.set_defaults(func=run)
    return parser


def add_ensemble_option(p: argparse.ArgumentParser) -> None:
    """``--ensemble {1,2,4}``: model passes averaged per frame (Interpolator's ``ensemble``)."""
    p.add_argument(
        "--ensemble",
        type=int,
        choices=(1, 2, 4),
        default=1,
        help="average 2 passes per frame (+ the pair in reverse time) or 4 (+ both mirrored): "
        "frames closer to the truth (on the project's held-out clips +0.3 dB for rifestream-v1, "
        "+0.06 to +0.13 with 4 passes for v2 to v7) at 2x or 4x the cost (default 1: off)",
    )
