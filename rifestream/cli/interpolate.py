"""``rifestream interpolate INPUT OUTPUT``: the offline file → file job.

It is the live pipeline's frame loop with a file source, no pacing and no
latency budget (DESIGN §3): hand-offs block instead of dropping, every frame
is made by the full model (scene cuts still repeat frame0).
"""

from __future__ import annotations

import argparse
from fractions import Fraction

from rifestream.cli.options import add_ensemble_option
from rifestream.errors import RifestreamError


def positive_fraction(text: str) -> Fraction:
    try:
        value = Fraction(text).limit_denominator(1001 * 1000)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number like 60, 59.94 or 60000/1001") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be positive")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "interpolate",
        help="raise the frame rate of a video file (offline, file → file)",
        description=(
            "Raise the frame rate of INPUT and write OUTPUT. With --factor N every input frame is kept and "
            "N-1 frames are synthesised between each pair; with --fps F the output has exactly F frames per "
            "second (24→60, 25→50, 30→144 …), source frames passed through where they fall on the output grid. "
            "The last input frame ends the output. Audio is copied when the output container allows it, "
            "else re-encoded to AAC, and stays in sync."
        ),
        epilog=(
            "examples:\n"
            "  rifestream interpolate in.mp4 out.mp4                     # 2x with the default model\n"
            "  rifestream interpolate in.mp4 out.mkv --fps 60 --codec ffv1\n"
            "  rifestream interpolate in.mov out.mp4 --factor 4 --model v4.6 --scale 0.5\n"
            "  rifestream interpolate in.mp4 out.mp4 --device cuda --fp16"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="input video file")
    p.add_argument("output", help="output video file; the container follows the extension (.mp4, .mkv, .mov …)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--factor", type=int, help="frames out per frame in (default 2)")
    rate.add_argument("--fps", type=positive_fraction, help="output frame rate, e.g. 60 or 60000/1001")
    p.add_argument("--model", help="model name (see `rifestream models list`) or weights file; default: shipped model")
    p.add_argument("--scale", type=float, default=1.0, help="model scale: 0.25, 0.5, 1, 2 or 4 (0.5 for 4K; default 1)")
    p.add_argument("--fp16", action="store_true", help="half precision (CUDA only)")
    add_ensemble_option(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--codec", default="libx264", help="video encoder: libx264 (default), ffv1 (lossless), …")
    p.add_argument("--crf", type=int, default=18, help="quality for libx264/libx265, lower is better (default 18)")
    p.add_argument(
        "--scene-threshold",
        type=float,
        default=0.15,
        help="scene-cut score above which frame0 is repeated instead of morphed; 0 disables (default 0.15)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rifestream.config import check_value
    from rifestream.io.url_redact import redact_text
    from rifestream.pipeline.offline import interpolate_file

    check_value("source.url", args.input, "INPUT")
    check_value("sinks.url", args.output, "OUTPUT")
    check_value("engine.device", args.device, "--device")
    check_value("engine.scale", args.scale, "--scale")
    check_value("encoder.codec", args.codec, "--codec")
    if args.factor is not None:
        check_value("rate.factor", args.factor, "--factor")
    if args.fps is not None:
        check_value("rate.fps", args.fps, "--fps")
    if args.crf < 0 or args.crf > 63:
        raise RifestreamError(f"--crf must be between 0 and 63, got {args.crf}")
    if not 0 <= args.scene_threshold < float("inf"):  # nan and inf too
        raise RifestreamError(
            f"--scene-threshold must be a number ≥ 0 (0 disables scene-cut detection), got {args.scene_threshold}"
        )
    summary = interpolate_file(
        args.input,
        args.output,
        factor=(args.factor or 2) if args.fps is None else None,
        fps=args.fps,
        model=args.model,
        scale=args.scale,
        ensemble=args.ensemble,
        precision="fp16" if args.fp16 else "fp32",
        device=args.device,
        codec=args.codec,
        crf=args.crf,
        scene_threshold=args.scene_threshold or None,
        progress=not args.no_progress,
    )
    print(redact_text(str(summary)))
    return 0
