"""The fleet's batching gain, measured: N test-scene streams in one process, batched vs one model call
per pair, alternated in one run (docs/BENCHMARKS.md, "Fleet").

    OMP_NUM_THREADS=1 python scripts/fleet_bench.py --streams 8 --size 320x240 --seconds 20 --rounds 2

Every stream is a live 30 fps test scene raised to 60 fps into a null sink, on the default model
for the device (rifestream-lite on a CPU). ``--step model`` (the default) pins the ladder to the
model, so the in-between frames all come from it and what a pair costs shows as output rate and
latency; ``--budget-ms`` instead lets each stream's ladder step down under its budget (then the
share of in-between frames made by the model is what batching buys). Prints one line per run and
the mean per mode.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from rifestream.config import FleetStream, load_config
from rifestream.pipeline.fleet import Fleet
from rifestream.pipeline.run_stats import END_TO_END


def fleet_streams(n: int, size: str, fps: int, step: str | None, budget_ms: float | None, device: str):
    latency: dict = {}
    if step is not None:
        latency["force_step"] = step
    if budget_ms is not None:
        latency["budget_ms"] = budget_ms
    layer = {
        "source": {"url": f"testsrc:?size={size}&fps={fps}"},
        "sinks": [{"url": "null"}],
        "rate": {"factor": 2},
        "engine": {"device": device},
        "latency": latency,
        "metrics": {"enabled": False},
    }
    config = load_config(None, layer, overrides_origin="fleet_bench")
    return [FleetStream(name=f"s{k}", pipeline=config) for k in range(n)]


def one_run(streams: list[FleetStream], max_batch: int, seconds: float) -> dict:
    import asyncio

    fleet = Fleet(streams, duration=seconds, max_batch=max_batch)
    started = time.monotonic()
    outcome = asyncio.run(fleet.run())
    wall = time.monotonic() - started
    summaries = [s.summary for s in outcome.streams if s.summary is not None]
    p95 = [s.latency[END_TO_END].p95 for s in summaries if END_TO_END in s.latency]
    batches = next(iter(outcome.batches.values()), {"calls": 0, "pairs": 0, "largest": 0})
    made = sum(s.frames_out.get("interpolated", 0) for s in summaries)
    inbetween = sum(v for s in summaries for k, v in s.frames_out.items() if k != "passed_through")
    return {
        "max_batch": max_batch,
        "wall_s": wall,
        "out_fps": sum(s.output_fps for s in summaries),
        "p95_mean_ms": 1e3 * statistics.fmean(p95) if p95 else float("nan"),
        "p95_max_ms": 1e3 * max(p95) if p95 else float("nan"),
        "model_share": made / inbetween if inbetween else 0.0,
        "drops": sum(sum(s.drops.values()) for s in summaries),
        "mean_batch": batches["pairs"] / batches["calls"] if batches["calls"] else 0.0,
        "failed": len(outcome.failed),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--size", default="320x240")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--seconds", type=float, default=20.0, help="each run's duration")
    p.add_argument("--rounds", type=int, default=2, help="batched and unbatched runs each, alternated")
    p.add_argument("--step", default="model", help="ladder step pinned (model); 'none' with --budget-ms")
    p.add_argument("--budget-ms", type=float, help="each stream's latency budget (with --step none)")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    step = None if args.step == "none" else args.step
    streams = fleet_streams(args.streams, args.size, args.fps, step, args.budget_ms, args.device)
    results: dict[int, list[dict]] = {args.streams: [], 1: []}
    print(f"{args.streams} streams {args.size} {args.fps}->{2 * args.fps} fps, step {args.step}, "
          f"budget {args.budget_ms} ms, {args.seconds:g} s per run")  # fmt: skip
    header = "max_batch  out_fps  p95_mean_ms  p95_max_ms  model_share  drops  mean_batch  failed"
    print(header)
    for _ in range(args.rounds):
        for max_batch in (args.streams, 1):
            r = one_run(streams, max_batch, args.seconds)
            results[max_batch].append(r)
            print(f"{r['max_batch']:>9}  {r['out_fps']:7.1f}  {r['p95_mean_ms']:11.1f}  {r['p95_max_ms']:10.1f}  "
                  f"{r['model_share']:11.2f}  {r['drops']:5d}  {r['mean_batch']:10.2f}  {r['failed']:6d}",
                  flush=True)  # fmt: skip
    print("mean per mode:")
    for max_batch, runs in results.items():
        keys = ("out_fps", "p95_mean_ms", "p95_max_ms", "model_share")
        mean = {k: statistics.fmean(r[k] for r in runs) for k in keys}
        print(f"  max_batch {max_batch}: {mean['out_fps']:.1f} fps out (all streams), per-stream p95 "
              f"{mean['p95_mean_ms']:.1f} ms mean / {mean['p95_max_ms']:.1f} ms worst, "
              f"model share {mean['model_share']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
