"""Command-line options shared by several subcommands."""

from __future__ import annotations

import argparse


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
