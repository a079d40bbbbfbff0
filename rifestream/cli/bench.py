"""``rifestream bench``: milliseconds per interpolated frame and output fps, warm-up excluded."""

from __future__ import annotations

import argparse

from rifestream.cli.options import add_ensemble_option, add_subcommand
from rifestream.errors import RifestreamError

HELP = "measure ms per interpolated frame and output fps"
DESCRIPTION = (
    "Time the model on random frames at one or more sizes: ms per interpolated frame (model only, "
    "and uint8 RGB in → uint8 RGB out) and the output fps that implies for the chosen factor. "
    "Warm-up iterations are excluded; on a CPU the models and baselines take turns call by call and "
    "each figure is the median call (ratios between them compare the same minutes), on CUDA the mean "
    "between two CUDA events."
)
EPILOG = """\
examples:
  rifestream bench --arch v4.6 --size 640x360 --size 1280x720
  rifestream bench --model rifestream-v1 --size 320x240 --iters 20
  rifestream bench --arch v4.6 --device cuda --fp16 --size 1920x1080
  rifestream bench --model rifestream-lite --model rifestream-v1 --baselines --device cpu"""


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` → (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"size {text!r}: width and height must be at least 8")
    return w, h


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "bench", run, help=HELP, description=DESCRIPTION, epilog=EPILOG)
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--model",
        action="append",
        help="model name or weights file, repeatable: each is timed in the same run (default: the shipped default)",
    )
    src.add_argument("--arch", help="an official architecture with random weights, e.g. v4.6 (no download needed)")
    p.add_argument("--size", type=parse_size, action="append", help="WIDTHxHEIGHT, repeatable (default 640x360)")
    p.add_argument("--factor", type=int, default=2, help="frame-rate factor: N-1 interpolated frames per pair")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--fp16", action="store_true", help="half precision (CUDA only)")
    p.add_argument("--scale", type=float, default=1.0, help="model scale: 0.25, 0.5, 1, 2 or 4 (0.5 for 4K)")
    add_ensemble_option(p)
    p.add_argument("--iters", type=int, default=10, help="timed iterations per size (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations first (default 2)")
    p.add_argument("--no-graphs", action="store_true", help="run eagerly on CUDA (no CUDA graphs)")
    p.add_argument(
        "--cupy-kernels",
        action="store_true",
        default=None,
        help="CUDA: the CuPy warp kernels instead of torch ops (opt-in: not yet verified on a GPU)",
    )
    p.add_argument(
        "--cpu-runtime",
        action="append",
        choices=("openvino", "torch"),
        help="what runs the CPU model's network (repeatable: each is timed in the same run; default openvino; "
        "other models ignore it)",
    )
    p.add_argument(
        "--baselines",
        action="store_true",
        help="also time the ladder's model-free steps in the same run: the classical flow frame and the blend",
    )


def run(args: argparse.Namespace) -> int:
    from rifestream.config import check_value
    from rifestream.engine.bench import BenchResult, Timed, baseline_steps, model_steps, time_steps

    check_value("engine.device", args.device, "--device")
    check_value("engine.scale", args.scale, "--scale")
    if args.factor < 2:
        raise RifestreamError("--factor must be at least 2 to interpolate anything")
    if args.iters < 1 or args.warmup < 0:
        raise RifestreamError("--iters must be ≥ 1 and --warmup ≥ 0")
    precision = "fp16" if args.fp16 else "fp32"
    steps: list[Timed] = []
    for model in args.model or [None]:
        steps += model_steps(
            model=model,
            arch=args.arch,
            device=args.device,
            precision=precision,
            scale=args.scale,
            ensemble=args.ensemble,
            cuda_graphs=not args.no_graphs,
            cupy_kernels=args.cupy_kernels,
            cpu_runtimes=args.cpu_runtime or (),
        )
    if args.baselines:
        steps += baseline_steps(args.device, precision)
    results: list[BenchResult] = time_steps(
        steps, args.size or [(640, 360)], factor=args.factor, iters=args.iters, warmup=args.warmup
    )
    print(BenchResult.header())
    for r in results:
        print(r.row())
    return 0
