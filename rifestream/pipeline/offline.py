"""The offline job (``rifestream interpolate``): the live runner with a file source, no pacing, no budget.

Same frame loop, same sinks; the runner's offline mode makes every hand-off
wait for room (back-pressure) instead of dropping, and without a latency
budget every in-between frame is made by the full model (scene cuts still
repeat frame0).
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av

from rifestream.pipeline.budget import LatencyBudget
from rifestream.pipeline.clock import OutputClock
from rifestream.pipeline.run_stats import RunSummary
from rifestream.pipeline.runner import Progress, Runner, SinkSpec, run_blocking

log = logging.getLogger(__name__)


def estimated_frames(path: str) -> int | None:
    """The input's video frame count from its header (or duration × rate); None if it does not say."""
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            if stream.duration and stream.time_base and stream.average_rate:
                return int(round(stream.duration * stream.time_base * stream.average_rate))
            if container.duration and stream.average_rate:
                return int(round(container.duration / av.time_base * stream.average_rate))
    except (av.error.FFmpegError, OSError, IndexError):
        return None
    return None


def interpolate_file(
    input: str,
    output: str,
    *,
    factor: int | None = 2,
    fps: Fraction | float | str | None = None,
    model: str | None = None,
    scale: float = 1.0,
    ensemble: int = 1,
    precision: str = "fp32",
    device: str = "auto",
    codec: str | None = "libx264",
    crf: int | None = 18,
    scene_threshold: float | None = 0.15,
    progress: bool | Progress = True,
    engine: object | None = None,
) -> RunSummary:
    """Raise the frame rate of the file ``input`` into ``output``; returns the run's summary.

    ``factor`` N keeps every input frame and adds N-1 between each pair; ``fps``
    gives a fixed output rate instead. ``progress``: a tqdm bar on stderr (True),
    none (False), or a callable ``(frames done, total or None)``. ``engine``: an
    ``Interpolator`` already built (else one is made from ``model``, ``scale``,
    ``ensemble``, ``precision`` and ``device``).
    """
    from rifestream.io.sources import open_source

    if engine is None:
        from rifestream.engine import Interpolator

        engine = Interpolator(model, device=device, precision=precision, scale=scale, ensemble=ensemble)
    clock = OutputClock(factor=factor) if fps is None else OutputClock(fps=fps)
    bar = None
    on_progress: Progress | None = None
    if callable(progress):
        on_progress = progress
    elif progress:
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
        handle_signals=False,
    )
    try:
        return run_blocking(runner)
    finally:
        if bar is not None:
            bar.close()
