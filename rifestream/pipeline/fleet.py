"""Many streams in one process: a ``Runner`` per stream on one event loop, one engine per device.

::

    stream cam1: source thread → Runner (FrameLoop thread) → sinks ┐
    stream cam2: source thread → Runner (FrameLoop thread) → sinks ├─ model calls → SharedEngine (batched)
    stream cam3: …                                                 ┘   one per (model, device, precision, scale)

Each stream is the live pipeline unchanged (``pipeline.job.build_runner``): its own
source, clock, latency budget, sinks, reconnects and start-up rule. Streams that run
the same model on the same device share one engine (``engine.batching``), which
batches the in-between frames of streams ready at the same time into one model call.

Isolation: a stream that fails (its source cannot be opened at the start, a sink
fails for good) ends alone with its error; the others go on, and the fleet's
outcome lists which failed. ``stop()`` (SIGINT/SIGTERM, the fleet's duration) stops
every stream the way ``Runner.stop()`` stops one: drained, flushed, closed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rifestream.config import FleetStream, PipelineConfig
from rifestream.errors import RifestreamError
from rifestream.io.url_redact import redact_text
from rifestream.metrics import FleetMetrics, check_stream_name
from rifestream.pipeline.job import NO_MODEL_STEPS, build_engine, build_runner, set_cpu_threads
from rifestream.pipeline.run_stats import RunStats, RunSummary
from rifestream.pipeline.runner import Runner, queue_names
from rifestream.pipeline.stop_signals import exit_at_once, install_stop_handlers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamOutcome:
    """How one stream ended: its summary, and its error line if it failed."""

    name: str
    summary: RunSummary | None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass(frozen=True)
class FleetOutcome:
    streams: list[StreamOutcome]
    batches: dict[str, dict[str, int]]  # engine group → calls, pairs, largest

    @property
    def failed(self) -> list[StreamOutcome]:
        return [s for s in self.streams if s.failed]

    def format(self) -> str:
        lines = []
        for s in self.streams:
            if s.error is not None:
                lines.append(f"stream {s.name}: error: {redact_text(s.error)}")
            if s.summary is not None:
                text = redact_text(s.summary.format()).replace("rifestream summary", f"stream {s.name}", 1)
                lines.append(text)
        for group, b in self.batches.items():
            if b["calls"]:
                lines.append(
                    f"engine {group}: {b['pairs']} pairs in {b['calls']} model calls "
                    f"(mean batch {b['pairs'] / b['calls']:.2f}, largest {b['largest']})"
                )
        ok = len(self.streams) - len(self.failed)
        lines.append(f"fleet: {ok} of {len(self.streams)} streams ended cleanly")
        return "\n".join(lines)


def default_max_batch(device_type: str) -> int:
    """Pairs per model call by default: 8 on CUDA; 1 on a CPU, where batching measured slower
    (docs/BENCHMARKS.md, "Fleet": the CPU model's DIS prior and full-size warps gain nothing from a
    batch, and one stream's model call overlaps the others' decode and encode better unbatched)."""
    return 8 if device_type == "cuda" else 1


def engine_key(config: PipelineConfig) -> tuple:
    """Streams with the same key share one engine (and so batch): model, device, precision, scale."""
    engine = config.engine
    if config.latency.force_step in NO_MODEL_STEPS:
        return ("no-model", engine.device, config.latency.force_step)
    return (config.model.ref, engine.device, engine.precision, engine.scale, engine.cupy_kernels)


def check_streams(streams: Sequence[FleetStream]) -> None:
    """Names are metrics labels: valid and unique (a fleet file's own check says so first, naming the entry)."""
    if not streams:
        raise ValueError("a fleet needs at least one stream")
    for s in streams:
        check_stream_name(s.name)
    if len({s.name for s in streams}) != len(streams):
        raise ValueError("stream names are unique in a fleet")


class Fleet:
    """Runs ``streams`` together; ``await run()`` returns a ``FleetOutcome``; ``stop()`` ends them all.

    ``duration`` (seconds) replaces every stream's own; ``max_batch``: most pairs in one model call,
    1: one call per pair; None: ``default_max_batch`` of the engine's device; ``metrics``: where each
    stream's metrics go (None: none)."""

    def __init__(
        self,
        streams: Sequence[FleetStream],
        *,
        metrics: FleetMetrics | None = None,
        duration: float | None = None,
        max_batch: int | None = None,
        handle_signals: bool = False,
    ) -> None:
        check_streams(streams)
        self.streams = list(streams)
        self.metrics = metrics
        self.duration = duration
        self.max_batch = max_batch
        self.handle_signals = handle_signals
        self.runners: dict[str, Runner] = {}
        self.shared: dict[str, Any] = {}  # engine group label → SharedEngine
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Stop every stream cleanly (drain, flush, close). Safe from any thread."""
        self._stopping.set()
        for runner in list(self.runners.values()):
            runner.stop()

    # ----- building -------------------------------------------------------------------------
    def _build(self) -> list[tuple[FleetStream, Runner | None, RunStats, str | None]]:
        """A runner per stream over one engine per group; a stream whose engine cannot be built
        (its model, its device) gets its error instead of a runner."""
        from rifestream.engine.batching import SharedEngine
        from rifestream.engine.interpolator import Interpolator

        engines: dict[tuple, tuple[Any, str, str | None] | str] = {}
        built = []
        for stream in self.streams:
            config = stream.pipeline
            stats = RunStats(self._stream_metrics(stream))
            key = engine_key(config)
            if key not in engines:
                try:
                    engine, label, force = build_engine(config, RunStats())  # notes: per stream, below
                    set_cpu_threads(config, engine)
                    if isinstance(engine, Interpolator):
                        shared = SharedEngine(engine, self.max_batch or default_max_batch(engine.device.type))
                        self.shared[f"{label} on {engine.device}"] = shared
                        engine = shared
                    engines[key] = (engine, label, force)
                except RifestreamError as exc:
                    engines[key] = str(exc)
            entry = engines[key]
            if isinstance(entry, str):
                built.append((stream, None, stats, entry))
                continue
            engine, label, force = entry
            if label.startswith("none (blend"):
                stats.note("no model available: in-between frames blended")
            view = engine.view() if hasattr(engine, "view") else engine
            if stats.metrics is not None:
                stats.metrics.set_build_info(model=label, device=str(view.device))
            runner = build_runner(config, stats, view, force)
            runner.handle_signals = False  # the fleet's handlers stop every stream
            if self.duration is not None:
                runner.duration = self.duration
            self.runners[stream.name] = runner
            built.append((stream, runner, stats, None))
        return built

    def _stream_metrics(self, stream: FleetStream):
        if self.metrics is None or not stream.pipeline.metrics.enabled:
            return None
        return self.metrics.stream(stream.name, queues=queue_names([s.url for s in stream.pipeline.sinks]))

    # ----- running ----------------------------------------------------------------------------
    async def run(self) -> FleetOutcome:
        loop = asyncio.get_running_loop()
        built = await loop.run_in_executor(None, self._build)  # model loading blocks: not on the loop
        if self._stopping.is_set():
            self.stop()
        handlers = install_stop_handlers(loop, self._on_signal) if self.handle_signals else []
        try:
            outcomes = await asyncio.gather(*(self._one(s, r, st, e) for s, r, st, e in built))
        finally:
            for sig in handlers:
                loop.remove_signal_handler(sig)
        batches = {
            group: {"calls": sh.stats.calls, "pairs": sh.stats.pairs, "largest": sh.stats.largest}
            for group, sh in self.shared.items()
        }
        return FleetOutcome(list(outcomes), batches)

    async def _one(self, stream: FleetStream, runner: Runner | None, stats: RunStats, error: str | None):
        metrics = stats.metrics
        if runner is None:
            log.error("stream %s: %s", stream.name, redact_text(error or ""))
            if metrics is not None:
                metrics.ended(redact_text(error or ""))
            return StreamOutcome(stream.name, None, error)
        try:
            summary = await runner.run()
        except Exception as exc:  # noqa: BLE001 - one stream's failure ends that stream only
            message = str(exc) if isinstance(exc, RifestreamError) else f"{type(exc).__name__}: {exc}"
            log.error("stream %s ended with an error: %s", stream.name, redact_text(message))
            if not isinstance(exc, RifestreamError):
                log.debug("stream %s", stream.name, exc_info=exc)
            if metrics is not None:
                metrics.ended(redact_text(message))
            return StreamOutcome(stream.name, stats.summary(), message)
        if metrics is not None:
            metrics.ended(None)
        log.info("stream %s ended", stream.name)
        return StreamOutcome(stream.name, summary)

    def _on_signal(self, sig: int) -> None:
        """First SIGINT/SIGTERM: every stream stops cleanly. A second: exit now (as ``Runner`` does)."""
        name = signal.Signals(sig).name
        if self._stopping.is_set():
            exit_at_once(sig)
        log.info("%s: stopping every stream; draining queues, flushing encoders, closing sinks", name)
        self.stop()


def run_fleet(
    streams: Sequence[FleetStream],
    *,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    duration: float | None = None,
    max_batch: int | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> FleetOutcome:
    """Run the fleet to its end (duration, end of every input, SIGINT/SIGTERM); metrics on one port
    (``metrics_port`` None: none served; 0: a free one)."""
    metrics = FleetMetrics() if any(s.pipeline.metrics.enabled for s in streams) else None
    server = None
    if metrics is not None and metrics_port is not None:
        server = metrics.serve(metrics_port, metrics_host)
        log.info("fleet metrics on %s/metrics (health: %s/healthz)", server.url, server.url)
    fleet = Fleet(streams, metrics=metrics, duration=duration, max_batch=max_batch, handle_signals=True)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as aio:
            return aio.run(fleet.run())
    finally:
        if server is not None:
            server.stop()
