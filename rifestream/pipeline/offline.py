"""The offline job (``rifestream interpolate``): the live runner with a file source, no pacing, no budget.

Same frame loop, same sinks; the runner's offline mode makes every hand-off
wait for room (back-pressure) instead of dropping, and without a latency
budget every in-between frame is made by the full model (scene cuts still
repeat frame0).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from fractions import Fraction
from types import FrameType

import av

from rifestream.config import EngineSettings, RateSettings, SinkSpec
from rifestream.pipeline.budget import LatencyBudget
from rifestream.pipeline.clock import OutputClock
from rifestream.pipeline.run_stats import RunStats, RunSummary
from rifestream.pipeline.runner import Progress, Runner, run_blocking
from rifestream.pipeline.stop_signals import exit_at_once

log = logging.getLogger(__name__)

ENGINE = EngineSettings()  # an offline job's engine settings default to a pipeline's


def estimated_frames(path: str) -> int | None:
    """The input's video frame count from its header (or duration × rate); None if it does not say."""
    try:
        with av.open(path, metadata_errors="replace") as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            if stream.duration and stream.time_base and stream.average_rate:
                return int(round(stream.duration * stream.time_base * stream.average_rate))
            if container.duration and stream.average_rate:
                return int(round(container.duration / av.time_base * stream.average_rate))
    except (av.error.FFmpegError, OSError, IndexError, ValueError, AttributeError):
        return None  # a damaged or odd header: no estimate (the job itself reports what is wrong)
    return None


class _StopOnSignal:
    """SIGINT/SIGTERM during the offline job stop it cleanly, as in the live pipeline: the output is
    finished and plays to where the job stopped (or, stopped before its first frame, is not written at
    all); the job then ends with ``KeyboardInterrupt``. A second signal exits at once. Main thread only."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.runner: Runner | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        name = signal.Signals(sig).name
        if self.received is not None:
            exit_at_once(sig, "the output")
        self.received = name
        log.info("%s: stopping; finishing the output with the frames made so far", name)
        if self.runner is not None:
            self.runner.stop()


def interpolate_file(
    input: str,
    output: str,
    *,
    factor: int | None = RateSettings().factor,
    fps: Fraction | float | str | None = None,
    model: str | None = None,
    scale: float = ENGINE.scale,
    ensemble: int = 1,
    precision: str = ENGINE.precision,
    device: str = ENGINE.device,
    codec: str | None = "libx264",  # an offline file is kept: a better quality than a live stream's (crf 23)
    crf: int | None = 18,
    scene_threshold: float | None = ENGINE.scene_threshold,
    progress: bool | Progress = True,
    engine: object | None = None,
) -> RunSummary:
    """Raise the frame rate of the file ``input`` into ``output``; returns the run's summary.

    ``factor`` N keeps every input frame and adds N-1 between each pair; ``fps``
    gives a fixed output rate instead. ``progress``: a tqdm bar on stderr when it is a
    terminal (True), none (False), or a callable ``(frames done, total or None)``. ``engine``: an
    ``Interpolator`` already built (else one is made from ``model``, ``scale``,
    ``ensemble``, ``precision`` and ``device``).

    SIGINT/SIGTERM (main thread): the job stops cleanly, the output is finished
    (whole, up to where it stopped; absent if no frame was made), and
    ``KeyboardInterrupt`` is raised.
    """
    with _StopOnSignal() as stop:
        summary = _interpolate(input, output, stop, factor=factor, fps=fps, model=model, scale=scale,
                               ensemble=ensemble, precision=precision, device=device, codec=codec, crf=crf,
                               scene_threshold=scene_threshold, progress=progress, engine=engine)  # fmt: skip
    if stop.received is not None:
        raise KeyboardInterrupt(f"{stop.received}: {output} holds the frames made before it")
    return summary


def _interpolate(
    input: str,
    output: str,
    stop: _StopOnSignal,
    *,
    factor: int | None,
    fps: Fraction | float | str | None,
    model: str | None,
    scale: float,
    ensemble: int,
    precision: str,
    device: str,
    codec: str | None,
    crf: int | None,
    scene_threshold: float | None,
    progress: bool | Progress,
    engine: object | None,
) -> RunSummary:
    from rifestream.io.sources import open_source

    if engine is None:
        from rifestream.engine import Interpolator

        engine = Interpolator(model, device=device, precision=precision, scale=scale, ensemble=ensemble)
    if stop.received is not None:  # stopped while the model loaded: no output at all
        return RunStats().summary()
    clock = OutputClock(factor=factor) if fps is None else OutputClock(fps=fps)
    bar = None
    on_progress: Progress | None = None
    if callable(progress):
        on_progress = progress
    elif progress and sys.stderr.isatty():  # never a bar in a log file or a pipe
        from tqdm import tqdm

        bar = tqdm(total=estimated_frames(input), unit="frame", desc="interpolate", leave=False)

        def on_progress(done: int, total: int | None) -> None:
            bar.update(done - bar.n)

    runner = Runner(
        open_source=lambda: open_source(input, realtime=False),
        sinks=[SinkSpec(output, codec=codec, crf=crf)],
        engine=engine,
        clock=clock,
        budget=LatencyBudget(None),
        scene_threshold=scene_threshold,
        live=False,
        on_progress=on_progress,
        handle_signals=False,  # _StopOnSignal: the same clean stop, and the caller learns of it
    )
    stop.runner = runner
    if stop.received is not None:
        runner.stop()
    try:
        return run_blocking(runner)
    finally:
        if bar is not None:
            bar.close()
