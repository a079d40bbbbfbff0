"""On a CPU the bench times its steps in turn, call by call, so that the ratios between models
compare the same minutes of a machine whose speed drifts; each figure is its own step's time."""

from __future__ import annotations

import time

import torch

from rifestream.engine.bench import Timed, baseline_steps, time_steps
from rifestream.engine.interpolator import FrameEngine


def test_cpu_steps_take_turns_and_each_keeps_its_own_time():
    engine = FrameEngine("cpu")
    order: list[str] = []

    def step(label: str, seconds: float):
        def run(a: torch.Tensor, b: torch.Tensor, ts) -> torch.Tensor:
            order.append(label)
            time.sleep(seconds)
            return torch.cat([engine.blend(a, b, t) for t in ts])

        return run

    steps = [Timed("slow", engine, step("slow", 0.01)), Timed("fast", engine, step("fast", 0.0))]
    results = time_steps(steps, [(48, 32)], factor=2, iters=4, warmup=1)
    timed = order[4:]  # after one warm-up call of each (model only and uint8 -> uint8)
    assert timed == ["slow", "fast"] * 8  # 4 rounds on tensors, then 4 rounds uint8 -> uint8
    by_label = {r.model: r for r in results}
    assert set(by_label) == {"slow", "fast"}
    assert by_label["slow"].model_ms >= 10.0 and by_label["slow"].frame_ms >= 10.0
    assert by_label["fast"].model_ms < 5.0 and by_label["fast"].frame_ms < 5.0
    assert all(r.size == (48, 32) and r.device == "cpu" for r in results)


def test_baselines_and_factor_give_a_row_per_step_and_time_per_in_between_frame():
    results = time_steps(baseline_steps("cpu"), [(64, 48)], factor=3, iters=2, warmup=0)
    assert [r.model for r in results] == ["classical", "blend"]
    assert all(r.factor == 3 and r.model_ms > 0 and r.frame_ms > 0 for r in results)


def test_each_timed_call_continues_the_pair_before_as_a_stream_does():
    """A model that keeps a stream's history (rifestream-lite's quadratic motion) pays for it in the
    bench: pair k is (frame k, frame k + 1), and frame k + 1 is the next pair's first frame."""
    engine = FrameEngine("cpu")
    seen: list[tuple[bytes, bytes]] = []

    def step(a: torch.Tensor, b: torch.Tensor, ts) -> torch.Tensor:
        seen.append((a[..., 0, :].numpy().tobytes(), b[..., 0, :].numpy().tobytes()))  # a row tells frames apart
        return torch.cat([engine.blend(a, b, t) for t in ts])

    time_steps([Timed("step", engine, step)], [(64, 48)], factor=2, iters=5, warmup=1)
    on_tensors = seen[:1] + seen[2:7]  # the warm-up's tensor call, then the 5 timed tensor calls
    for (_, second), (first, _) in zip(on_tensors[:-1], on_tensors[1:], strict=True):
        assert first == second
    assert len({a for a, _ in on_tensors}) == 3  # the stream goes round three frames
