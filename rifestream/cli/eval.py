"""``rifestream eval``: score a model on video clips with the team's protocol, next to repeat and blend."""

from __future__ import annotations

import argparse

from rifestream.cli.options import add_ensemble_option


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="score a model on clips (busiest window, even frames in, odd frames scored)",
        description=(
            "For each clip, keep the even frames of its busiest window, rebuild the odd ones with the model "
            "and with the repeat and blend baselines, and print PSNR (RGB, dB) / SSIM (luma) per clip and the mean."
        ),
    )
    p.add_argument("clips", nargs="+", help="video files")
    p.add_argument(
        "--model",
        action="append",
        help="model name or weights file (repeatable; default: the shipped default model)",
    )
    p.add_argument("--frames", type=int, default=41, help="window length in frames (default: %(default)s)")
    p.add_argument(
        "--scan", type=int, default=900, help="frames searched for the busiest window (default: %(default)s)"
    )
    p.add_argument("--no-baselines", action="store_true", help="leave out repeat and blend")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: %(default)s)")
    p.add_argument("--fp16", action="store_true", help="run the model in fp16 (CUDA only)")
    p.add_argument("--scale", type=float, default=1.0, help="model scale: 0.25, 0.5, 1, 2 or 4 (default 1)")
    add_ensemble_option(p)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from rifestream import eval as protocol
    from rifestream.config import check_value

    check_value("engine.device", args.device, "--device")
    check_value("engine.scale", args.scale, "--scale")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.frames < 5:
        from rifestream.errors import RifestreamError

        raise RifestreamError(f"--frames {args.frames} is too short; use at least 5 (the protocol uses 41)")
    methods: dict[str, protocol.Rebuild] = {}
    if not args.no_baselines:
        methods["repeat"] = protocol.repeat
        methods["blend"] = protocol.blend
    precision = "fp16" if args.fp16 else "fp32"
    for spec in args.model or [None]:
        label = "default" if spec is None else spec.rsplit("/", 1)[-1]
        if args.scale != 1.0:
            label += f" s{args.scale:g}"
        if args.ensemble > 1:
            label += f" x{args.ensemble}"
        methods[label] = protocol.model_rebuild(spec, args.device, precision, args.scale, args.ensemble)
    scores = []
    for clip in args.clips:
        clip_scores = protocol.score_clip(clip, methods, args.frames, args.scan)
        for s in clip_scores:
            print(f"{s.clip} {s.method} psnr={s.psnr:.2f} ssim={s.ssim:.4f} frames={s.frames}", flush=True)
        scores.extend(clip_scores)
    print()
    print(protocol.format_table(scores, list(methods)))
    return 0
