"""``rifestream train``: train or fine-tune an IFNet (student + privileged teacher) on video clips."""

from __future__ import annotations

import argparse
from typing import Any

from rifestream.cli.options import add_subcommand

HELP = "train or fine-tune the model on video clips"
DESCRIPTION = (
    "Train an IFNet on triplets from video files mixed with synthetic scenes of known motion. "
    "Checkpoints (last.pt) and the current weights (latest.safetensors) go to --out. "
    "Under torchrun it trains with DistributedDataParallel."
)


def positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected minutes, e.g. 9.5") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive number of minutes")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_subcommand(subparsers, "train", run, help=HELP, description=DESCRIPTION)
    p.add_argument("clips", nargs="*", help="training videos (default: the config's train_clips in clips_dir)")
    p.add_argument(
        "--config",
        help=(
            "training TOML (default: configs/train/default.toml when run in a checkout, "
            "else the built-in settings, which name no clips)"
        ),
    )
    p.add_argument("--clips-dir", help="folder the config's clip names are relative to")
    p.add_argument("--out", default="runs/train", help="folder for checkpoints and exported weights")
    p.add_argument(
        "--resume",
        action="store_true",
        help=(
            "continue from OUT/last.pt with the settings it was written with (step, schedule, data); "
            "options given here (--steps, --lr, --batch, --crop, --synthetic-share, clips) change them"
        ),
    )
    p.add_argument(
        "--val", action="append", metavar="CLIP", help="validation video (repeatable; replaces the config's val_clips)"
    )
    p.add_argument(
        "--init",
        metavar="MODEL",
        help="start the student from these weights, a file or a model name such as rifestream-v1 (fine-tuning)",
    )
    p.add_argument(
        "--name",
        help=(
            "the name the exported weights carry, as `--model` and `rifestream models` show it "
            "(default: the --init weights' own name, else the config's [model] name; kept on --resume)"
        ),
    )
    p.add_argument(
        "--reinit-block",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help=(
            "start block N (0 = coarsest) of the --init weights afresh, output layer zeroed so the "
            "frames do not change at first (repeatable; for a collapsed block, see docs/MODEL_HISTORY.md)"
        ),
    )
    p.add_argument("--steps", type=int, help="total steps of the schedule (overrides the config)")
    p.add_argument(
        "--batch", type=int, help="batch size per process (under torchrun the total is this times the processes)"
    )
    p.add_argument("--crop", type=int, help="crop size in pixels")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument(
        "--synthetic-share",
        type=float,
        metavar="S",
        help="share of each batch made of synthetic scenes, 0 to 1 (overrides the config)",
    )
    p.add_argument("--stop-at", type=int, metavar="STEP", help="stop (with a checkpoint) at this step")
    p.add_argument("--max-minutes", type=positive_minutes, help="stop (with a checkpoint) after this much wall time")
    p.add_argument(
        "--fit-minutes",
        type=positive_minutes,
        metavar="M",
        help=(
            "size the schedule (--steps) to this run: after 50 steps, time them and end the cosine decay "
            "about M minutes after the start (a GPU lent for a fixed time)"
        ),
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")


def run(args: argparse.Namespace) -> int:

    import torch

    from rifestream.errors import RifestreamError
    from rifestream.train.config import default_config, load_config, replaced
    from rifestream.train.trainer import distributed_rank, resumed_config, train

    if args.device is not None:
        from rifestream.config import check_value

        check_value("engine.device", args.device, "--device")
    if args.config and _is_lite_config(args.config):
        return _run_lite(args)
    if args.resume and args.config:
        raise RifestreamError(
            f"--resume continues with the settings saved in {args.out}/last.pt; drop --config "
            "(change single settings with --steps, --lr, --batch, --crop or --synthetic-share)"
        )
    if args.resume:
        cfg = resumed_config(args.out)
    else:
        cfg = load_config(args.config) if args.config else default_config()
    if args.synthetic_share is not None and not 0.0 <= args.synthetic_share <= 1.0:
        raise RifestreamError(f"--synthetic-share {args.synthetic_share}: must be between 0 and 1")
    cfg = replaced(cfg, settings_from_flags(args, val_clips=[]))
    if not cfg.train_clips and cfg.synthetic_share < 1.0:
        raise RifestreamError(
            "no training videos: name them (rifestream train CLIP [CLIP ...]) or give a --config "
            "whose [data] train_clips lists them (synthetic_share = 1.0 trains on synthetic scenes alone)"
        )
    for clip in cfg.clip_paths(cfg.train_clips + cfg.val_clips):
        if not clip.is_file():
            raise RifestreamError(f"{clip}: no such video file; name existing clips or fix the config's clips_dir")
    init = None
    if args.init:
        from rifestream.model.registry import resolve_model

        init = resolve_model(args.init, option="--init")[0]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device if args.device not in (None, "auto") else ("cuda" if torch.cuda.is_available() else "cpu")
    state = train(
        cfg,
        args.out,
        device=device,
        resume=args.resume,
        init_weights=init,
        max_minutes=args.max_minutes,
        progress=not args.no_progress,
        stop_at=args.stop_at,
        fit_minutes=args.fit_minutes,
        reinit=args.reinit_block,
        name=args.name,
    )
    if distributed_rank()[0] == 0:  # under torchrun, once
        print(f"stopped at step {state.step}; weights: {args.out}/latest.safetensors")
    return 0


FLAG_SETTINGS = ("steps", "batch", "crop", "lr", "synthetic_share")  # flags named as the setting they change


def settings_from_flags(args: argparse.Namespace, **when_clips_named: Any) -> dict[str, Any]:
    """The training settings the flags change; ``when_clips_named``: what naming clips also changes."""
    from pathlib import Path

    changes = {name: getattr(args, name) for name in FLAG_SETTINGS if getattr(args, name) is not None}
    if args.clips_dir:
        changes["clips_dir"] = args.clips_dir
    if args.clips:
        changes.update(clips_dir="", train_clips=[str(Path(c).resolve()) for c in args.clips], **when_clips_named)
    if args.val:
        changes["val_clips"] = [str(Path(c).resolve()) for c in args.val]
    return changes


def _is_lite_config(path: str) -> bool:
    """Whether a training TOML is for the CPU model (``[model] family = "lite"``)."""
    from rifestream.errors import RifestreamError
    from rifestream.train.config import read_settings

    try:
        return read_settings(path).get("family") == "lite"
    except RifestreamError:
        return False  # the IFNet loader reports the problem in its own words


def _run_lite(args: argparse.Namespace) -> int:
    """Train the CPU model (rifestream-lite) from a ``family = "lite"`` config."""

    import torch

    from rifestream.errors import RifestreamError
    from rifestream.train.config import replaced
    from rifestream.train.lite import LiteTrainConfig, train_lite

    unsupported = [
        flag
        for flag, given in (
            ("--resume", args.resume),
            ("--reinit-block", args.reinit_block),
            ("--stop-at", args.stop_at is not None),
            ("--fit-minutes", args.fit_minutes is not None),
            ("--device cuda", args.device not in (None, "auto", "cpu")),
        )
        if given
    ]
    if unsupported:
        raise RifestreamError(
            f"{', '.join(unsupported)}: not available for the CPU model's config (it trains on the CPU, "
            "from scratch or --init, bounded by --steps or --max-minutes)"
        )
    changes = settings_from_flags(args)
    if args.name:
        changes["name"] = args.name
    cfg = replaced(LiteTrainConfig.load(args.config), changes)  # the flags pass the same checks as the file
    for entry in cfg.train_clips + cfg.val_clips:
        path = cfg.clip_spec(entry)[0]
        if not path.is_file():
            raise RifestreamError(f"{path}: no such video file; name existing clips or fix the config's clips_dir")
    init = None
    if args.init:
        from rifestream.model import load_model
        from rifestream.model.lite import LiteNet
        from rifestream.model.registry import resolve_model

        path, version = resolve_model(args.init, option="--init")
        init = load_model(path, version=version)
        if not isinstance(init, LiteNet):
            raise RifestreamError(f"--init {args.init}: not a CPU model (rifestream-lite); this config trains one")
    torch.set_num_threads(args.threads or 1)  # one thread trains fastest on a shared 2-core machine
    weights = train_lite(cfg, args.out, max_minutes=args.max_minutes, init=init, progress=not args.no_progress)
    print(f"weights: {weights}")
    return 0
