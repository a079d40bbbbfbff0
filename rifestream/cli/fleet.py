"""``rifestream fleet FLEET.toml``: many streams in one process (or as Ray actors across a cluster)."""

from __future__ import annotations

import argparse
import sys

from rifestream.cli.options import add_subcommand

HELP = "run many streams in one process (batched), or across a Ray cluster"
DESCRIPTION = "Run every stream of a fleet file: one process with one engine per device, or Ray actors."
EPILOG = """\
A fleet file holds an optional [defaults] table (any pipeline-file keys, inherited by
every stream) and one [[streams]] table per stream: a pipeline (source, sinks, rate,
model, engine, latency, …) plus a unique name ([a-z0-9_-]+), the metrics' `stream` label.

  rifestream fleet pipelines/fleet-example.toml --duration 20
  rifestream fleet cams.toml --metrics-port 9108        # every stream on one /metrics
  rifestream fleet cams.toml --ray 10.0.0.5:6379        # each stream a Ray actor on the cluster

Streams that run the same model on the same device share one engine, which batches
their in-between frames into one model call when they are ready together (on CUDA;
on a CPU, one call per pair unless --max-batch says otherwise). A stream
that fails ends alone (its error line); the others go on; exit status 2 if any failed.
SIGINT/SIGTERM stop every stream cleanly (drained, flushed, closed).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = add_subcommand(subparsers, "fleet", run, help=HELP, description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("fleet", metavar="FLEET.toml", help="fleet file ([defaults] + [[streams]])")
    p.add_argument("--duration", type=float, metavar="S", help="stop every stream cleanly after S seconds")
    p.add_argument(
        "--metrics-port", type=int, metavar="P", help="one /metrics and /healthz for every stream (0: a free port)"
    )
    p.add_argument(
        "--ray",
        metavar="auto|ADDRESS",
        help="run each stream as a Ray actor on the cluster at ADDRESS (auto: RAY_ADDRESS or a local one)",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        metavar="N",
        help="most pairs of in-between frames in one model call (1: one call per pair; default: 8 on CUDA, "
        "1 on a CPU, where batching measured slower)",
    )
    p.add_argument(
        "--ray-group",
        type=int,
        default=1,
        metavar="N",
        help="with --ray: up to N streams of one engine (model, device) per actor, sharing it (batched on CUDA)",
    )
    p.add_argument("--ray-cpus", type=float, default=1.0, metavar="N", help="with --ray: CPUs per stream")
    p.add_argument(
        "--ray-gpus",
        type=float,
        default=1.0,
        metavar="N",
        help="with --ray: GPUs each actor of CUDA streams declares (a fraction, e.g. 0.25, packs small ones)",
    )
    p.add_argument(
        "--targets-file",
        metavar="PATH",
        help="with --ray: write the actors' metrics endpoints here (Prometheus file_sd JSON)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from rifestream.config import check_value, load_fleet
    from rifestream.errors import RifestreamError
    from rifestream.io.url_redact import redact_text

    streams = load_fleet(args.fleet).streams  # before torch is imported: a bad stream fails fast
    if args.duration is not None:
        check_value("duration", args.duration, "--duration")
    if args.metrics_port is not None:
        check_value("metrics.port", args.metrics_port, "--metrics-port")
    if args.max_batch is not None and args.max_batch < 1:
        raise RifestreamError(f"--max-batch: expected a whole number ≥ 1, got {args.max_batch}")
    if args.ray_group < 1:
        raise RifestreamError(f"--ray-group: expected a whole number ≥ 1, got {args.ray_group}")
    for flag, value in (("--ray-cpus", args.ray_cpus), ("--ray-gpus", args.ray_gpus)):
        if not 0 < value <= 1024:
            raise RifestreamError(f"{flag}: expected a number above 0 (a fraction is fine), got {value:g}")
    if args.ray is not None:
        from rifestream.pipeline.fleet_ray import RayFleet

        outcome = RayFleet(
            streams,
            address=args.ray,
            duration=args.duration,
            max_batch=args.max_batch,
            group=args.ray_group,
            num_cpus=args.ray_cpus,
            num_gpus=args.ray_gpus,
            targets_file=args.targets_file,
            worker_setup=worker_logging,
        ).run()
    else:
        from rifestream.cli.run import loop_factory
        from rifestream.pipeline.fleet import run_fleet

        first = streams[0].pipeline.metrics  # one server for the fleet: the first stream's (or the defaults')
        port = args.metrics_port
        if port is None and first.enabled:
            port = first.port
        outcome = run_fleet(
            streams,
            metrics_port=port,
            metrics_host=first.host,
            duration=args.duration,
            max_batch=args.max_batch,
            loop_factory=loop_factory(),
        )
    print(redact_text(outcome.format()), flush=True)
    for s in outcome.failed:
        print(f"rifestream fleet: stream {s.name}: error: {redact_text(s.error or '')}", file=sys.stderr)
    return 2 if outcome.failed else 0


def worker_logging() -> None:
    """Logging in a Ray worker process as on the command line: INFO and up to stderr (which Ray
    forwards to the driver), every URL's secrets masked."""
    import logging

    from rifestream.cli import RedactingFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
