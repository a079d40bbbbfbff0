"""``rifestream eval``: score models on video clips with the team's protocol, next to the baselines
(repeat, blend, the classical DIS anchor, FFmpeg's minterpolate), with each kind of clip's means and
each model's gap to the better of minterpolate and classical."""

from __future__ import annotations

import argparse
from dataclasses import replace

from rifestream.cli.options import add_ensemble_option, add_subcommand
from rifestream.errors import RifestreamError

# The eval module's names, repeated here so that building the parser imports neither numpy nor torch.
BASELINES = ("repeat", "blend", "classical", "minterpolate")

HELP = "score a model on clips (busiest window, even frames in, odd frames scored)"
DESCRIPTION = (
    "For each clip, keep the even frames of its busiest window, rebuild the odd ones with the model "
    "and with the baselines (repeat, blend, classical DIS flow, FFmpeg's minterpolate), and print PSNR "
    "(RGB, dB) / SSIM (luma) per clip, the mean of each kind of clip and of all, and each model's gap: "
    "its PSNR minus the better of minterpolate and classical."
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_subcommand(subparsers, "eval", run, help=HELP, description=DESCRIPTION)
    p.add_argument(
        "clips",
        nargs="*",
        help="video files, or folders of them: a folder's clips are of the kind the folder names",
    )
    p.add_argument(
        "--manifest",
        help='a JSON manifest: {"clips": [{"path" or "file", "kind", "split"}, ...]}, paths relative to it '
        "(the corpus manifest scripts/make_corpus.py writes)",
    )
    p.add_argument("--split", help="only the manifest's clips of this split (e.g. heldout)")
    p.add_argument(
        "--model",
        action="append",
        help="model name or weights file (repeatable; default: the shipped default model)",
    )
    p.add_argument("--frames", type=int, default=41, help="window length in frames (default: %(default)s)")
    p.add_argument(
        "--scan", type=int, default=900, help="frames searched for the busiest window (default: %(default)s)"
    )
    p.add_argument(
        "--baselines",
        default=",".join(BASELINES),
        help="comma-separated baselines to run beside the models (default: %(default)s; minterpolate needs "
        "ffmpeg on PATH and is left out with a note without it)",
    )
    p.add_argument("--no-baselines", action="store_true", help="run no baseline, only the models")
    p.add_argument(
        "--by-motion",
        action="store_true",
        help="group the clips by how far their window moves between two input frames (median DIS flow: "
        "under 8, 8-20, 20-40, 40 px and over) instead of by kind",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: %(default)s)")
    p.add_argument("--fp16", action="store_true", help="run the model in fp16 (CUDA only)")
    p.add_argument("--scale", type=float, default=1.0, help="model scale: 0.25, 0.5, 1, 2 or 4 (default 1)")
    add_ensemble_option(p)
    p.add_argument("--threads", type=int, help="torch CPU threads")


def chosen_baselines(args: argparse.Namespace) -> list[str]:
    """The baselines asked for, in the order given (none with --no-baselines)."""
    if args.no_baselines:
        return []
    names = [n.strip() for n in args.baselines.split(",") if n.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise RifestreamError(f"--baselines: unknown {', '.join(unknown)}; choose from {','.join(BASELINES)}")
    return list(dict.fromkeys(names))


def run(args: argparse.Namespace) -> int:
    from rifestream.config import check_value

    check_value("engine.device", args.device, "--device")
    check_value("engine.scale", args.scale, "--scale")
    if args.frames < 5:
        raise RifestreamError(f"--frames {args.frames} is too short; use at least 5 (the protocol uses 41)")
    baselines = chosen_baselines(args)
    if args.split is not None and args.manifest is None:
        raise RifestreamError("--split needs --manifest (the manifest says which clip is in which split)")
    if not args.clips and args.manifest is None:
        raise RifestreamError("no clips: name video files or folders of them, or pass --manifest FILE")

    import torch

    from rifestream import quality_eval as protocol

    clips = protocol.clips_from_paths(args.clips)
    if args.manifest is not None:
        clips += protocol.clips_from_manifest(args.manifest, args.split)
    missing = [str(c.path) for c in clips if not c.path.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise RifestreamError(f"{missing[0]}: no such video file{more}")
    if args.threads:
        torch.set_num_threads(args.threads)

    methods: dict[str, protocol.Method] = {}
    for name in baselines:
        if name == "repeat":
            methods[name] = protocol.repeat
        elif name == "blend":
            methods[name] = protocol.blend
        elif name == "classical":
            methods[name] = protocol.classical_rebuild(args.device)
        elif (ffmpeg := protocol.ffmpeg_binary()) is not None:
            methods[name] = protocol.minterpolate_rebuild(ffmpeg)
        else:
            print("minterpolate: skipped (no ffmpeg on PATH); gaps are to classical alone", flush=True)
    precision = "fp16" if args.fp16 else "fp32"
    models = []
    for spec in args.model or [None]:
        label = "default" if spec is None else spec.rsplit("/", 1)[-1]
        if args.scale != 1.0:
            label += f" s{args.scale:g}"
        if args.ensemble > 1:
            label += f" x{args.ensemble}"
        methods[label] = protocol.model_rebuild(spec, args.device, precision, args.scale, args.ensemble)
        models.append(label)
    scores = []
    for clip in clips:
        clip_scores = protocol.score_clip(clip.path, methods, args.frames, args.scan, clip.kind, args.by_motion)
        for s in clip_scores:
            moved = "" if s.motion is None else f" motion={s.motion:.1f}px"
            print(f"{s.clip} {s.method} psnr={s.psnr:.2f} ssim={s.ssim:.4f} frames={s.frames}{moved}", flush=True)
        if args.by_motion:
            clip_scores = [replace(s, kind=protocol.motion_class(s.motion)) for s in clip_scores]
        scores.extend(clip_scores)
    if args.by_motion:  # one group per class, the classes in order of motion
        scores.sort(key=lambda s: s.motion)
    print()
    print(protocol.format_table(scores, list(methods), models))
    anchors = [a for a in protocol.ANCHORS if a in methods]
    if anchors:
        print(f"gap: a model's PSNR minus the better of {' and '.join(anchors)} (dB; on a mean row, of their means)")
    return 0
