"""The one frame loop shared by the live pipeline and the offline ``interpolate`` job.

It keeps the two-frame ring buffer (previous, current) on the engine's device,
asks the output clock which output times fall between them, tests for a scene
cut, lets the latency budget pick a ladder step, and returns timed
``OutputFrame``s. It is synchronous and single-threaded: the caller decides
where it runs (the engine thread of the live runner, or a plain loop offline).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise

import av
import torch

from rifestream.config import EngineSettings
from rifestream.engine import FrameEngine, compare_scene_features, scene_features
from rifestream.engine.scene import scene_score
from rifestream.io.frames import OutputFrame, SourceFrame
from rifestream.pipeline.budget import LatencyBudget
from rifestream.pipeline.clock import OutputClock

#: Pairs of the warm-up's moving scene each ladder step is timed on, after one untimed call.
WARM_UP_TIMED_PAIRS = 2

StageObserver = Callable[[str, float], None]


def inbetween_counts(clock: OutputClock, input_rate: Fraction | float | None) -> list[int]:
    """Every number of in-between frames (t > 0) that ``clock`` asks of one source pair at a steady
    ``input_rate``: one for a factor, one or two for a rate (24→60: 2; 25→60: 2 and 3; 30→50: 1 and 2).

    The pattern repeats every ``(out fps / in fps).denominator`` pairs, so that many pairs of a
    fresh clock (at most 1000) show them all. Empty when the rate is unknown."""
    if clock.factor is not None:
        return [clock.factor - 1] if clock.factor > 1 else []
    if not input_rate or input_rate <= 0:
        return []
    interval = 1 / Fraction(input_rate).limit_denominator(1001 * 1000)
    fresh = OutputClock(fps=clock.fps)
    counts = set()
    for k in range(min((clock.fps * interval).denominator, 1000) + 1):
        t0 = k * interval
        counts.add(sum(1 for when in fresh.times_between(t0, t0 + interval) if when > t0))
    return sorted(c for c in counts if c > 0)


@dataclass
class _Buffered:
    """One slot of the ring buffer: the source frame and its tensor on the device."""

    source: SourceFrame
    tensor: torch.Tensor
    scene: torch.Tensor | None  # its scene-cut features, computed once per frame


class _PendingCut:
    """A scene-cut answer on its way from the device: ``bool()`` waits for that copy alone."""

    def __init__(self, is_cut: torch.Tensor) -> None:
        stream = torch.cuda.current_stream(is_cut.device)
        self._answer = torch.empty((), dtype=torch.bool, pin_memory=True)
        self._answer.copy_(is_cut, non_blocking=True)
        self._copied = torch.cuda.Event()
        self._copied.record(stream)

    def __bool__(self) -> bool:
        self._copied.synchronize()
        return bool(self._answer)


class FrameLoop:
    """Turns a stream of ``SourceFrame``s into a stream of ``OutputFrame``s.

    ``push`` returns the output frames that the new source frame completes
    (those timed in [previous, new)); ``finish`` returns the last one (the
    final source frame itself, when it lies on the output grid).
    """

    def __init__(
        self,
        engine: FrameEngine,
        clock: OutputClock,
        *,
        budget: LatencyBudget | None = None,
        scene_threshold: float | None = EngineSettings().scene_threshold,
        on_stage: StageObserver | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.budget = budget or LatencyBudget()
        self.scene_threshold = scene_threshold
        self.on_stage = on_stage or (lambda stage, seconds: None)
        self._slots: list[_Buffered] = []
        self._seq = 0
        self._warmed_up = False

    # ----- ring buffer --------------------------------------------------
    def _upload(self, src: SourceFrame) -> _Buffered:
        start = time.perf_counter()
        tensor = self.engine.frame_to_tensor(src.video)
        features = scene_features(tensor) if self.scene_threshold is not None else None
        self.on_stage("upload", time.perf_counter() - start)
        return _Buffered(src, tensor, features)

    def push(self, src: SourceFrame) -> list[OutputFrame]:
        if self._slots and src.time <= self._slots[-1].source.time:
            return []  # a repeated or out-of-order timestamp carries no new time: drop it
        cur = self._upload(src)
        self._slots = [*self._slots[-1:], cur]
        if len(self._slots) < 2:
            return []
        return self._outputs_between(self._slots[0], cur)

    def finish(self) -> list[OutputFrame]:
        """The stream ended: emit the last source frame (the end of the output) if it is an output time."""
        if not self._slots:
            return []
        last = self._slots[-1]
        self._slots = []
        if not self.clock.is_output_time(last.source.time):
            return []
        return [self._make(last.source.video, last.source.time, last.source, 0.0, None)]

    # ----- output frames -------------------------------------------------
    def _make(
        self, video: av.VideoFrame, when: Fraction, source: SourceFrame, t: float, fallback: str | None
    ) -> OutputFrame:
        """An output frame at ``when`` made from ``source`` (frame0 of its pair) and ``t``.

        Its ``arrival`` is frame0's: every frame of a pair goes out only after frame1
        arrived, so this measures the full added latency (one input interval + ours).
        """
        out = OutputFrame(
            video=video,
            time=when,
            source_time=source.time,
            t=t,
            interpolated=t != 0.0,
            fallback=fallback,
            arrival=source.arrival,
            seq=self._seq,
        )
        self._seq += 1
        return out

    def _outputs_between(self, prev: _Buffered, cur: _Buffered) -> list[OutputFrame]:
        t0, t1 = prev.source.time, cur.source.time
        times = self.clock.times_between(t0, t1)
        ts = [self.clock.position(T, t0, t1) for T in times]
        middle = [t for t in ts if t > 0.0]
        made = self._synthesize(prev, cur, middle) if middle else {}
        outputs = []
        for when, t in zip(times, ts, strict=True):
            if t == 0.0:
                outputs.append(self._make(prev.source.video, when, prev.source, 0.0, None))
            else:
                video, fallback = made[t]
                outputs.append(self._make(video, when, prev.source, t, fallback))
        return outputs

    def _scene_cut(self, prev: _Buffered, cur: _Buffered) -> bool | _PendingCut:
        """Whether the pair is a scene cut. On CUDA the answer is copied to the host while the pair
        is made (no wait for the device here), and read once the frames are back."""
        if prev.scene is None or cur.scene is None:
            return False
        is_cut = scene_score(prev.scene, cur.scene) > self.scene_threshold
        return _PendingCut(is_cut) if is_cut.is_cuda else bool(is_cut)

    def _synthesize(
        self, prev: _Buffered, cur: _Buffered, ts: list[float]
    ) -> dict[float, tuple[av.VideoFrame, str | None]]:
        """Frames for every t in ``ts`` by the ladder step the budget allows; keyed by t."""
        engine = self.engine
        start = time.perf_counter()
        cut = self._scene_cut(prev, cur)
        if cut is True:
            return {t: (prev.source.video, "scene_cut") for t in ts}
        if not self._warmed_up:
            counts = inbetween_counts(self.clock, 1 / (cur.source.time - prev.source.time))
            self._warm_up([(prev.tensor, cur.tensor)] * 2, sorted({len(ts), *counts}))
            start = time.perf_counter()
        remaining = None
        if self.budget.budget_s is not None:
            remaining = cur.source.arrival + self.budget.budget_s - time.monotonic()
        step = self.budget.choose(remaining, len(ts))
        if step == "repeat":
            return {t: (prev.source.video, "scene_cut" if bool(cut) else "repeat") for t in ts}
        if step == "blend":
            blends = [engine.blend(prev.tensor, cur.tensor, t) for t in ts]
            frames = blends[0] if len(blends) == 1 else torch.cat(blends)  # 2x: no copy
        elif step == "classical":
            frames = engine.classical(prev.tensor, cur.tensor, ts)
        else:
            scale = engine.scale if step == "model" else max(engine.scale / 2, 0.25)
            frames = engine.synthesize(prev.tensor, cur.tensor, ts, scale=scale)
        videos = engine.to_frames(frames)  # waits for the device (and so for a pending scene-cut answer)
        elapsed = time.perf_counter() - start
        if bool(cut):  # made for nothing, and only at a cut
            return {t: (prev.source.video, "scene_cut") for t in ts}
        if not engine.last_call_captured:  # a capture's time is not the step's cost
            self.budget.record(step, elapsed, len(ts))
        self.on_stage("interpolate", elapsed)
        fallback = None if step == "model" else step
        return {t: (video, fallback) for t, video in zip(ts, videos, strict=True)}

    def warm_up(self, width: int, height: int, input_rate: Fraction | float | None = None) -> None:
        """Do the first pair's warm-up now, for every number of in-between frames the clock makes at
        ``input_rate``, so that a live stream's first pairs do not stall while the model steps are
        run, captured and timed. The frames are a textured scene moving across the picture
        (:func:`rifestream.engine.bench.test_frames`), not blank ones: DIS and the CPU model cost less
        on a blank pair than on any video (the half-scale step 7 ms against 11-15 on the built-in job,
        2-core CPU), and a ladder started from those costs chose steps that ran late on its first second."""
        import numpy as np

        from rifestream.engine.bench import test_frames

        scene = test_frames(width, height, np.random.default_rng(0), WARM_UP_TIMED_PAIRS + 2)
        frames = [self.engine.to_tensor(image) for image in scene]
        compare_scene_features(scene_features(frames[0]), scene_features(frames[1]))
        self.engine.to_numpy(self.engine.blend(frames[0], frames[1], 0.5))
        if not self._warmed_up:
            self._warm_up(list(pairwise(frames)), inbetween_counts(self.clock, input_rate) or [1])

    def _warm_up(self, pairs: list[tuple[torch.Tensor, torch.Tensor]], counts: list[int]) -> None:
        """First pair under a budget: run each model step and the classical step once untimed per
        frame count on the first of ``pairs`` (allocations, DIS's buffers, a CUDA graph each), then
        timed on the others, in order (a model that keeps a stream's history pays for it), so that
        the ladder starts from measured costs. (A first call timed as the step's cost kept the
        classical step out of live runs: 18 ms measured once, 10 ms after.)"""
        self._warmed_up = True
        if self.budget.budget_s is None or self.budget.force is not None:
            return
        engine = self.engine
        steps = {
            "model": lambda a, b, ts: engine.synthesize(a, b, ts, scale=engine.scale),
            "scale": lambda a, b, ts: engine.synthesize(a, b, ts, scale=max(engine.scale / 2, 0.25)),
            "classical": lambda a, b, ts: engine.classical(a, b, ts),
        }
        for step, run in steps.items():
            for n in counts:
                ts = [0.5] * n
                run(*pairs[0], ts)
                for a, b in pairs[1:]:
                    start = time.perf_counter()
                    engine.to_numpy(run(a, b, ts))
                    if not engine.last_call_captured:
                        self.budget.record(step, time.perf_counter() - start, n)
