"""A streaming job from a ``PipelineConfig``: the engine, the metrics server and the runner, wired up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from rifestream.config import PipelineConfig
from rifestream.engine import FrameEngine
from rifestream.pipeline.budget import LatencyBudget
from rifestream.pipeline.clock import OutputClock
from rifestream.pipeline.run_stats import RunStats, RunSummary
from rifestream.pipeline.runner import Runner, queue_names, run_blocking

log = logging.getLogger(__name__)

NO_MODEL_STEPS = ("classical", "blend", "repeat")


def build_engine(config: PipelineConfig, stats: RunStats) -> tuple[Any, str, str | None]:
    """(engine, model label, forced ladder step).

    A forced ``classical``/``blend``/``repeat`` needs no model, so none is loaded. With no model
    named, a CPU runs the CPU model (``rifestream-lite``: the full model is many times over a live
    budget there) and a GPU the full default. When the *default* model's file is not installed (a
    fresh checkout), the job still runs:
    every in-between frame is blended, said once in the log and in the summary,
    and counted as ``blend`` fallbacks. Any other model that cannot be loaded (a
    named one, or the default's file failing to load) is an error: the job does
    not start.
    """
    force = config.latency.force_step
    if force in NO_MODEL_STEPS:
        return FrameEngine(config.engine.device), f"none ({force} forced)", force
    from rifestream.engine import Interpolator
    from rifestream.engine.interpolator import resolve_device
    from rifestream.model.registry import default_model_for, shipped_models

    settings = config.engine
    default = default_model_for(resolve_device(settings.device).type)
    if config.model.ref is None and default not in shipped_models():
        engine = FrameEngine(settings.device, settings.precision)  # checks the device and precision all the same
        log.warning(
            "no model available (%s is not installed): in-between frames will be blends, counted as "
            "fallbacks; pass --model NAME|PATH for the real thing (`rifestream models list`)",
            default,
        )
        stats.note("no model available: in-between frames blended")
        return engine, "none (blend fallback)", "blend"
    model = config.model.ref or default
    engine = Interpolator(model, **settings.model_dump(include={"device", "precision", "scale", "cupy_kernels"}))
    return engine, model, force


def set_cpu_threads(config: PipelineConfig, engine: Any) -> None:
    """torch's CPU thread count for this process (the job owns it): ``engine.threads`` when given; one
    thread for a blend-only engine, whose small memory-bound ops only lose to thread hand-offs, and
    badly so on a CPU shared with other work."""
    import torch

    if config.engine.threads:
        torch.set_num_threads(config.engine.threads)
    elif type(engine) is FrameEngine:
        torch.set_num_threads(1)


def build_runner(config: PipelineConfig, stats: RunStats, engine: Any, force: str | None) -> Runner:
    from rifestream.io.sources import open_source

    def open_configured_source():
        return open_source(config.source.url, realtime=config.source.realtime, options=config.source.options or None)

    return Runner(
        open_source=open_configured_source,
        sinks=config.sinks,
        engine=engine,
        clock=OutputClock(factor=config.rate.factor) if config.rate.fps is None else OutputClock(fps=config.rate.fps),
        budget=LatencyBudget(config.latency.budget_s, force),
        scene_threshold=config.engine.scene_threshold,
        source_queue=config.latency.source_queue,
        sink_queue=config.latency.sink_queue,
        stats=stats,
        reconnect=(config.reconnect.initial_delay_s, config.reconnect.max_delay_s),
        stall_timeout=config.reconnect.stall_timeout_s,
        start_timeout=config.reconnect.start_timeout_s,
        look_every=config.reconnect.probe_interval_s,
        duration=config.duration,
        handle_signals=True,
        source_url=config.source.url,
    )


def run_job(
    config: PipelineConfig,
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    on_ready: Callable[[Runner], None] | None = None,
) -> RunSummary:
    """Run the pipeline to its end (duration, end of input, SIGINT/SIGTERM) and return its summary."""
    from rifestream.metrics import PipelineMetrics

    metrics = None
    if config.metrics.enabled:
        metrics = PipelineMetrics(queues=queue_names([s.url for s in config.sinks]))
    stats = RunStats(metrics)
    engine, model_label, force = build_engine(config, stats)
    set_cpu_threads(config, engine)
    server = None
    if metrics is not None:
        metrics.set_build_info(model=model_label, device=str(engine.device))
        server = metrics.serve(config.metrics.port, config.metrics.host)
        log.info("metrics on %s/metrics (health: %s/healthz)", server.url, server.url)
    try:
        runner = build_runner(config, stats, engine, force)
        if on_ready is not None:
            on_ready(runner)
        return run_blocking(runner, loop_factory)
    finally:
        if server is not None:
            server.stop()
