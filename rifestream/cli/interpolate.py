"""``rifestream interpolate INPUT OUTPUT``: the offline file → file job.

It is the live pipeline's frame loop with a file source, no pacing and no
latency budget (docs/ARCHITECTURE.md): hand-offs block instead of dropping, every frame
is made by the full model (scene cuts still repeat frame0).
"""

from __future__ import annotations

import argparse

from rifestream.cli.options import add_ensemble_option, add_subcommand
from rifestream.errors import RifestreamError

HELP = "raise the frame rate of a video file (offline, file → file)"
DESCRIPTION = (
    "Raise the frame rate of INPUT and write OUTPUT. With --factor N every input frame is kept and "
    "N-1 frames are synthesised between each pair; with --fps F the output has exactly F frames per "
    "second (24→60, 25→50, 30→144 …), source frames passed through where they fall on the output grid. "
    "The last input frame ends the output. Audio is copied when the output container allows it, "
    "else re-encoded to AAC, and stays in sync."
)
EPILOG = """\
examples:
  rifestream interpolate in.mp4 out.mp4                     # 2x with the default model
  rifestream interpolate in.mp4 out.mkv --fps 60 --codec ffv1
  rifestream interpolate in.mov out.mp4 --factor 4 --model v4.6 --scale 0.5
  rifestream interpolate in.mp4 out.mp4 --device cuda --fp16"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "interpolate", run, help=HELP, description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("input", help='input video file; or a folder or a quoted glob ("clips/*.mp4"): many files')
    p.add_argument(
        "output",
        help="output video file; the container follows the extension (.mp4, .mkv, .mov …); for many inputs a folder",
    )
    # Flags that set a pipeline key have that key as their dest and are checked by its rule (rifestream.config);
    # left out, they take the offline job's defaults (rifestream.pipeline.offline.interpolate_file).
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--factor", dest="rate.factor", metavar="N", type=int, help="frames out per frame in (default 2)")
    rate.add_argument("--fps", dest="rate.fps", metavar="F", help="output frame rate, e.g. 60 or 60000/1001")
    p.add_argument(
        "--model",
        dest="model.name",
        metavar="NAME|PATH",
        help="model name (see `rifestream models list`) or weights file; default: shipped model",
    )
    p.add_argument(
        "--scale",
        dest="engine.scale",
        metavar="S",
        type=float,
        help="model scale: 0.25, 0.5, 1, 2 or 4 (0.5 for 4K; default 1)",
    )
    p.add_argument("--fp16", dest="engine.precision", action="store_const", const="fp16", help="half precision (CUDA)")
    add_ensemble_option(p)
    p.add_argument("--device", dest="engine.device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument(
        "--codec", dest="encoder.codec", metavar="CODEC", help="video encoder: libx264 (default), ffv1 (lossless), …"
    )
    p.add_argument(
        "--crf", dest="encoder.crf", metavar="N", type=int, help="x264/x265 quality, lower is better (default 18)"
    )
    p.add_argument(
        "--scene-threshold",
        type=float,
        help="scene-cut score above which frame0 is repeated instead of morphed; 0 disables "
        "(default: a pipeline's, engine.scene_threshold)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    many = p.add_argument_group("many files (INPUT a folder or a glob)")
    many.add_argument("--ray", metavar="auto|ADDRESS", help="spread the files over a Ray cluster's workers")
    many.add_argument("--ray-cpus", type=float, default=1.0, metavar="N", help="with --ray: CPUs per file's task")
    many.add_argument("--ray-gpus", type=float, default=0.0, metavar="N", help="with --ray: GPUs per file's task")


# flag dest (the pipeline key) → interpolate_file's argument
ARGUMENTS = {
    "rate.factor": "factor",
    "rate.fps": "fps",
    "model.name": "model",
    "engine.scale": "scale",
    "engine.precision": "precision",
    "engine.device": "device",
    "encoder.codec": "codec",
    "encoder.crf": "crf",
}


def run(args: argparse.Namespace) -> int:
    from rifestream.config import check_value
    from rifestream.io.url_redact import redact_text
    from rifestream.pipeline.offline import interpolate_file
    from rifestream.pipeline.offline_many import is_many

    many = is_many(args.input)
    if args.ray is not None and not many:
        raise RifestreamError("--ray spreads many files: give INPUT as a folder or a quoted glob, OUTPUT as a folder")
    if not many:
        check_value("source.url", args.input, "INPUT")
        check_value("sinks.url", args.output, "OUTPUT")
    given = {
        name: check_value(key, getattr(args, key), f"--{name}")  # (each flag is named as its argument)
        for key, name in ARGUMENTS.items()
        if getattr(args, key) is not None
    }
    if "fps" in given:
        given["factor"] = None
    if args.scene_threshold is not None:
        if not 0 <= args.scene_threshold < float("inf"):  # nan and inf too
            raise RifestreamError(
                f"--scene-threshold must be a number ≥ 0 (0 disables scene-cut detection), got {args.scene_threshold}"
            )
        given["scene_threshold"] = args.scene_threshold or None
    if many:
        return _run_many(args, {**given, "ensemble": args.ensemble})
    summary = interpolate_file(args.input, args.output, **given, ensemble=args.ensemble, progress=not args.no_progress)
    print(redact_text(str(summary)))
    return 0


def _run_many(args: argparse.Namespace, options: dict) -> int:
    """Every file of a folder or glob into the folder OUTPUT, here or spread over a Ray cluster."""
    import sys

    from rifestream.pipeline.offline_many import interpolate_many, plan

    pairs = plan(args.input, args.output)
    from rifestream.cli.fleet import worker_logging

    outcomes = interpolate_many(pairs, options, address=args.ray, num_cpus=args.ray_cpus, num_gpus=args.ray_gpus,
                                progress=not args.no_progress, worker_setup=worker_logging)  # fmt: skip
    for o in outcomes:
        if o.summary is not None:
            print(f"{o.input} → {o.output}: {o.summary.frames_in} frames in, {o.summary.total_out} out")
        else:
            print(f"rifestream interpolate: {o.input}: error: {o.error}", file=sys.stderr)
    failed = sum(o.error is not None for o in outcomes)
    print(f"interpolate: {len(outcomes) - failed} of {len(outcomes)} files done")
    return 2 if failed else 0
