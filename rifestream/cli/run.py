"""``rifestream run [PIPELINE.toml]``: the streaming job (also ``python run_stream.py``)."""

from __future__ import annotations

import argparse
from typing import Any

from rifestream.cli.options import add_subcommand

HELP = "run a streaming job (live source → upconverted → RTMP, files, ZMQ feed)"
DESCRIPTION = (
    "Run a streaming job: read a live stream, synthesise the in-between frames "
    "under a latency budget, send the higher-rate stream to every sink."
)
EPILOG = """\
with no arguments: the default job, a built-in moving test scene at 30 fps raised
to 60 fps, written to {sink}, metrics on http://{host}:{port}/metrics,
for {duration:g} s; then a summary (frames, fps, latency p50/p95/p99, fallbacks, drops).

sources:  FILE | rtsp://… | rtmp://… | srt://… | capture:x11grab?display=:0&fps=60
          | capture:gdigrab | capture:avfoundation | testsrc:?size=1280x720&fps=30 | zmq://HOST:PORT
sinks:    FILE.mp4/.mkv/.flv/.ts | rtmp://HOST/APP/KEY | zmq://HOST:PORT (binds a PUB feed) | null

examples:
  rifestream run                                       # the default job
  rifestream run pipelines/camera-rtsp-to-rtmp.toml    # a ready pipeline (see pipelines/)
  rifestream run --source rtsp://cam.local/stream --sink rtmp://localhost/live/cam --factor 2
  rifestream run --source game.mkv --realtime --sink zmq://127.0.0.1:5555 --fps 60
  rifestream run --source "capture:x11grab?display=:0&fps=30" --sink out.mkv --duration 60
  rifestream run --force-step blend --sink null --duration 20     # the pipeline's own overhead
  python run_stream.py pipelines/rtsp-to-zmq.toml --budget-ms 40

Flags override the pipeline file, which overrides its preset (configs/NAME.toml), which
overrides the embedded default. A bad key or flag fails at start, naming it.
SIGINT/SIGTERM (Ctrl-C) stop cleanly: queues drain, encoders flush, files stay playable;
a second Ctrl-C stops at once.
"""


def _epilog() -> str:
    """The epilog with the default job's values from the one place that sets them."""
    from rifestream.config.pipeline import PipelineConfig

    default = PipelineConfig()
    return EPILOG.format(
        sink=default.sinks[0].url, host=default.metrics.host, port=default.metrics.port, duration=default.duration
    )


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = add_subcommand(subparsers, "run", run, help=HELP, description=DESCRIPTION, epilog=_epilog())
    # Each flag's dest is the pipeline key it sets: the flags are one more layer of the pipeline file,
    # checked by the same model (rifestream.config), so an error names the key ("command line: latency.budget_ms").
    p.add_argument("pipeline", nargs="?", metavar="PIPELINE.toml", help="pipeline file (default: the built-in job)")
    io = p.add_argument_group("input and output")
    io.add_argument(
        "--source",
        dest="source.url",
        metavar="URL",
        help="input: a file, rtsp://, rtmp://, srt://, capture:…, testsrc:…",
    )
    io.add_argument(
        "--sink",
        dest="sinks",
        metavar="URL",
        action="append",
        help="output (repeat for several): a file, rtmp://…, zmq://HOST:PORT, null; replaces the file's sinks",
    )
    io.add_argument(
        "--realtime",
        dest="source.realtime",
        action="store_true",
        default=None,
        help="pace a file source to its frame rate",
    )
    io.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="stop cleanly this long after the start, connected or not (a source not open by then: error, exit 2)",
    )
    rate = p.add_argument_group("output rate (one of)").add_mutually_exclusive_group()
    rate.add_argument(
        "--factor", dest="rate.factor", type=int, metavar="N", help="N output frames per input frame (2: 30→60)"
    )
    rate.add_argument(
        "--fps",
        dest="rate.fps",
        type=_number_or_text,
        metavar="F",
        help="a fixed output rate, e.g. 60 or 60000/1001 (24→60)",
    )
    engine = p.add_argument_group("engine")
    engine.add_argument(
        "--model", dest="model.name", metavar="NAME|PATH", help="model name (see `rifestream models list`) or file"
    )
    engine.add_argument("--scale", dest="engine.scale", metavar="S", type=float, help="flow scale 0.25…4 (0.5 for 4K)")
    engine.add_argument("--device", dest="engine.device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N")
    engine.add_argument(
        "--fp16", dest="engine.precision", action="store_const", const="fp16", help="half precision (CUDA)"
    )
    engine.add_argument(
        "--cupy-kernels",
        dest="engine.cupy_kernels",
        action="store_true",
        default=None,
        help="CUDA: CuPy warp and colour kernels instead of torch ops (opt-in: not yet verified on a GPU)",
    )
    engine.add_argument(
        "--threads",
        dest="engine.threads",
        type=int,
        metavar="N",
        help="torch CPU threads (default: torch's own; 1 for a blend-only job)",
    )
    engine.add_argument("--preset", help="low-latency, balanced, quality, or a preset .toml file")
    latency = p.add_argument_group("latency")
    latency.add_argument(
        "--budget-ms", dest="latency.budget_ms", type=float, metavar="MS", help="latency budget per frame pair"
    )
    latency.add_argument(
        "--force-step",
        dest="latency.force_step",
        metavar="STEP",
        help="pin one ladder step: model, scale, classical, blend or repeat (blend: measure the pipeline itself)",
    )
    latency.add_argument(
        "--metrics-port", dest="metrics.port", type=int, metavar="PORT", help="Prometheus port (0: any free port)"
    )
    latency.add_argument(
        "--no-metrics", dest="metrics.enabled", action="store_const", const=False, help="serve no metrics"
    )
    return p


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given, as a layer of the pipeline file (each flag's dest is its dotted key)."""
    from rifestream.config import PipelineConfig

    out: dict[str, Any] = {}
    for key, value in vars(args).items():
        *tables, name = key.split(".")
        if value is None or key.split(".")[0] not in PipelineConfig.model_fields:
            continue  # not given, or not a pipeline key (the file's name, --verbose, …)
        node = out
        for table in tables:
            node = node.setdefault(table, {})
        node[name] = value
    return out


def _number_or_text(text: str) -> Any:
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return text  # "60000/1001", or nonsense the config check names


def loop_factory():
    """uvloop's event loop where it is installed, else asyncio's (chosen here, never as a global policy)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(args: argparse.Namespace) -> int:
    from rifestream.config import load_config
    from rifestream.io.url_redact import redact_text

    config = load_config(args.pipeline, overrides_from_args(args))  # before torch is imported: a bad key fails fast
    from rifestream.pipeline.job import run_job

    summary = run_job(config, loop_factory=loop_factory())
    print(redact_text(summary.format()), flush=True)
    return 0
