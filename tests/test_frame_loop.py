"""The shared frame loop: pass-through, exact output times, scene cuts, fallbacks under a budget."""

import time
from fractions import Fraction as Fr

import av
import numpy as np
import pytest
import torch

from rifestream.engine import Interpolator
from rifestream.io.frames import SourceFrame
from rifestream.model import IFNet
from rifestream.pipeline.budget import LatencyBudget
from rifestream.pipeline.clock import OutputClock
from rifestream.pipeline.frame_loop import WARM_UP_TIMED_PAIRS, FrameLoop, inbetween_counts
from tests.test_engine import TINY, blend_model


def moving_frames(n: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w]
    return [np.stack([(np.sin((xx + 2 * i) / 4.0) * 100 + 128).astype(np.uint8)] * 3, -1) for i in range(n)]


def run_loop(loop: FrameLoop, images: list[np.ndarray], rate: int = 30):
    sources = [
        SourceFrame(av.VideoFrame.from_ndarray(img, format="rgb24"), Fr(i, rate), time.monotonic())
        for i, img in enumerate(images)
    ]
    outputs = []
    for src in sources:
        outputs += loop.push(src)
    outputs += loop.finish()
    return sources, outputs


def test_2x_passes_source_frames_through_and_puts_the_rest_halfway():
    loop = FrameLoop(Interpolator(blend_model(), device="cpu"), OutputClock(factor=2))
    sources, outputs = run_loop(loop, moving_frames(6))
    assert len(outputs) == 2 * 6 - 1
    assert [o.time for o in outputs] == [Fr(k, 60) for k in range(11)]
    assert [o.seq for o in outputs] == list(range(11))
    for i, src in enumerate(sources):
        out = outputs[2 * i]
        assert out.video is src.video and out.t == 0.0 and not out.interpolated and out.fallback is None
    for i in range(5):
        mid = outputs[2 * i + 1]
        assert mid.interpolated and mid.t == 0.5 and mid.source_time == Fr(i, 30)
        expected = (
            sources[i].video.to_ndarray(format="rgb24").astype(float) + sources[i + 1].video.to_ndarray(format="rgb24")
        ) / 2
        assert np.abs(mid.video.to_ndarray(format="rgb24") - expected).max() <= 0.5 + 1e-6


def test_24_to_60_makes_exact_times_and_positions():
    loop = FrameLoop(Interpolator(IFNet(TINY), device="cpu"), OutputClock(fps=60), scene_threshold=None)
    _, outputs = run_loop(loop, moving_frames(5), rate=24)
    assert [o.time for o in outputs] == [Fr(k, 60) for k in range(11)]
    assert [round(o.t, 6) for o in outputs[:5]] == [0.0, 0.4, 0.8, 0.2, 0.6]
    assert [o.interpolated for o in outputs].count(False) == 3  # 0, 1/12 and 1/6 fall on source frames


def test_scene_cut_repeats_frame0_instead_of_morphing():
    images = moving_frames(2)
    cut = np.zeros_like(images[0])
    cut[::2] = 255
    loop = FrameLoop(Interpolator(IFNet(TINY), device="cpu"), OutputClock(factor=2), scene_threshold=0.15)
    sources, outputs = run_loop(loop, [images[0], 255 - images[1]])
    assert outputs[1].fallback == "scene_cut" and outputs[1].video is sources[0].video
    assert outputs[1].interpolated and outputs[1].t == 0.5


def test_a_budget_too_small_for_the_model_falls_back_and_says_how():
    loop = FrameLoop(Interpolator(IFNet(TINY), device="cpu"), OutputClock(factor=2), budget=LatencyBudget(1e-6))
    _, outputs = run_loop(loop, moving_frames(8))
    fallbacks = [o.fallback for o in outputs if o.interpolated]
    assert len(fallbacks) == 7
    assert "repeat" in fallbacks and None not in fallbacks[1:]


def test_forced_blend_is_the_average_and_labelled():
    loop = FrameLoop(
        Interpolator(IFNet(TINY), device="cpu"), OutputClock(factor=3), budget=LatencyBudget(force="blend")
    )
    sources, outputs = run_loop(loop, moving_frames(3))
    a, b = (s.video.to_ndarray(format="rgb24").astype(float) for s in sources[:2])
    assert [o.t for o in outputs[:3]] == [0.0, 1 / 3, 2 / 3]
    third = outputs[1].video.to_ndarray(format="rgb24")
    assert outputs[1].fallback == "blend"
    assert np.abs(third - (a * 2 / 3 + b / 3)).max() <= 0.5 + 1e-4


def test_repeated_or_backward_timestamps_are_dropped():
    loop = FrameLoop(Interpolator(blend_model(), device="cpu"), OutputClock(factor=2))
    img = moving_frames(1)[0]
    make = lambda t: SourceFrame(av.VideoFrame.from_ndarray(img, format="rgb24"), t, time.monotonic())  # noqa: E731
    assert loop.push(make(Fr(1, 30))) == []
    assert loop.push(make(Fr(1, 30))) == []
    assert loop.push(make(Fr(0))) == []
    assert [o.time for o in loop.push(make(Fr(2, 30)))] == [Fr(1, 30), Fr(3, 60)]


@pytest.mark.parametrize(
    ("clock", "rate", "counts"),
    [
        (OutputClock(factor=2), None, [1]),
        (OutputClock(factor=4), Fr(30), [3]),
        (OutputClock(factor=1), Fr(30), []),
        (OutputClock(fps=60), Fr(24), [2]),
        (OutputClock(fps=60), Fr(25), [2, 3]),
        (OutputClock(fps=50), Fr(30), [1, 2]),
        (OutputClock(fps=60), Fr(30000, 1001), [2]),
        (OutputClock(fps=60), None, []),
    ],
)
def test_the_warm_up_plan_has_every_in_between_count_the_clock_makes(clock, rate, counts):
    assert inbetween_counts(clock, rate) == counts
    if rate is not None and counts:  # the same counts as a long real run of that clock
        fresh = OutputClock(factor=clock.factor) if clock.factor else OutputClock(fps=clock.fps)
        seen = {sum(1 for T in fresh.times_between(k / rate, (k + 1) / rate) if T > k / rate) for k in range(3000)}
        assert sorted(seen - {0}) == counts


class RecordingEngine(Interpolator):
    """The tiny real model, recording each synthesize call; calls of a (count, scale) not seen before
    report a capture, as the CUDA engine does when it captures a graph."""

    def __init__(self, capture_cost_s: float = 0.0):
        super().__init__(IFNet(TINY), device="cpu")
        self.calls: list[tuple[int, float]] = []
        self.shapes: set[tuple] = set()
        self.capture_cost_s = capture_cost_s

    def synthesize(self, img0, img1, ts, scale=None):
        key = (len(ts), self.scale if scale is None else scale)
        captured = (key, img0.shape) not in self.shapes
        self.shapes.add((key, img0.shape))
        self.calls.append(key)
        if captured:
            time.sleep(self.capture_cost_s)  # what a capture costs
        out = super().synthesize(img0, img1, ts, scale)
        self.last_call_captured = captured
        return out


def test_warm_up_captures_every_frame_count_for_both_model_steps_and_times_only_replays():
    engine = RecordingEngine(capture_cost_s=0.2)
    budget = LatencyBudget(budget_s=0.5)
    loop = FrameLoop(engine, OutputClock(fps=60), budget=budget)
    loop.warm_up(64, 48, Fr(25))  # 25 → 60: pairs of 2 and of 3 in-between frames
    assert sorted(set(engine.calls)) == [(2, 0.5), (2, 1.0), (3, 0.5), (3, 1.0)]
    # captured on the moving scene's first pair, then timed on each of the next ones
    assert all(engine.calls.count(k) == 1 + WARM_UP_TIMED_PAIRS for k in set(engine.calls))
    assert budget.expected_cost("model") < 0.1  # no capture's 200 ms in it
    # the classical step is timed after an untimed first call (DIS's buffers): the ladder can take
    # it on the first pair that needs it instead of falling through to a blend
    assert budget.expected_cost("classical") is not None
    _, outputs = run_loop(loop, moving_frames(6), rate=25)
    assert len(engine.calls) == 4 * (1 + WARM_UP_TIMED_PAIRS) + 5  # no further capture: every pair replays
    assert all(o.fallback is None for o in outputs if o.interpolated)


def test_warm_up_times_the_steps_on_a_moving_textured_scene_in_order():
    """Blank frames cost DIS and the CPU model less than video does: the costs the ladder starts
    from come from pairs that move, given as a stream (each pair's first frame the last one's second)."""
    engine = RecordingEngine()
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    synthesize = engine.synthesize

    def recording(img0, img1, ts, scale=None):
        pairs.append((img0.clone(), img1.clone()))
        return synthesize(img0, img1, ts, scale)

    engine.synthesize = recording
    loop = FrameLoop(engine, OutputClock(factor=2), budget=LatencyBudget(budget_s=0.5))
    loop.warm_up(64, 48, Fr(30))
    model_pairs = pairs[: 1 + WARM_UP_TIMED_PAIRS]  # the model step's calls, the scale step's follow
    for img0, img1 in model_pairs:
        assert float(img0.std()) > 0.05  # textured, not blank
        assert float((img0 - img1).abs().mean()) > 0.02  # and moving
    for (_, second), (first, _) in zip(model_pairs, model_pairs[1:], strict=False):
        assert torch.equal(second, first)


def test_a_call_that_captured_is_not_counted_against_the_model():
    engine = RecordingEngine(capture_cost_s=0.3)
    budget = LatencyBudget(budget_s=0.25)
    loop = FrameLoop(engine, OutputClock(factor=2), budget=budget, scene_threshold=None)
    loop.warm_up(64, 48, Fr(30))
    assert budget.expected_cost("model") < 0.1
    outputs = []
    for i, img in enumerate(moving_frames(4, h=96, w=64)):  # not the warmed-up size: the first pair captures
        video = av.VideoFrame.from_ndarray(img, format="rgb24")
        outputs += loop.push(SourceFrame(video, Fr(i, 30), time.monotonic()))
    assert engine.calls[-3:] == [(1, 1.0)] * 3
    assert budget.expected_cost("model") < 0.04  # the 300 ms capture is not the model's cost (+60 ms if it were)
    assert [o.fallback for o in outputs if o.interpolated] == [None, None, None]


@pytest.mark.gpu
def test_gpu_the_scene_cut_answer_read_after_the_frames_is_the_same():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    images = moving_frames(3)
    cut = 255 - images[1]
    for device in ("cpu", "cuda"):
        loop = FrameLoop(Interpolator(IFNet(TINY), device=device), OutputClock(factor=2), scene_threshold=0.15)
        _, outputs = run_loop(loop, [images[0], images[1], cut])
        assert [o.fallback for o in outputs if o.interpolated] == [None, "scene_cut"], device
