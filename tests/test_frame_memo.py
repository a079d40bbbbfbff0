"""FrameMemo (model.frame_memo): what the CPU model makes from a frame is made once while the frame
is unchanged, made again when it changes (through torch or through a numpy view), bounded, and a
stream's frames come out the same with it as without it."""

from __future__ import annotations

import numpy as np
import torch

from rifestream.engine import bench
from rifestream.engine.interpolator import Interpolator
from rifestream.model.frame_memo import FRAMES, FrameMemo


def _counted(memo: FrameMemo, frame: torch.Tensor, calls: list[int]) -> np.ndarray:
    def make() -> np.ndarray:
        calls.append(1)
        return frame.reshape(-1, *frame.shape[-2:]).numpy().sum(axis=0)

    return memo.get(frame, "sum", make)


def test_a_frame_is_derived_once_and_again_after_any_change():
    memo, calls = FrameMemo(), []
    frame = torch.rand(1, 3, 36, 64)
    first = _counted(memo, frame, calls)
    assert _counted(memo, frame[0], calls) is first  # a view of the same frame
    assert _counted(memo, frame.expand(2, -1, -1, -1)[1], calls) is first  # an expanded batch's item
    assert len(calls) == 1
    frame[0, 0, 0, 0] += 0.5  # a torch write: the version counter moves
    assert float(_counted(memo, frame, calls)[0, 0]) == float(frame[0, :, 0, 0].sum())
    assert len(calls) == 2
    frame.numpy()[...] = 0.25  # a write through numpy: the sample of values moves
    assert float(_counted(memo, frame, calls).max()) == 0.75
    assert len(calls) == 3


def test_the_memo_stays_bounded_and_keeps_no_inference_tensor():
    memo, calls = FrameMemo(), []
    frames = [torch.rand(3, 8, 8) for _ in range(FRAMES + 3)]
    for f in frames:
        _counted(memo, f, calls)
    assert len(memo) == FRAMES
    _counted(memo, frames[0], calls)  # the oldest was dropped
    assert len(calls) == FRAMES + 4
    with torch.inference_mode():
        made_there = torch.rand(3, 8, 8)
    _counted(memo, made_there, calls)
    _counted(memo, made_there, calls)
    assert len(calls) == FRAMES + 6


def test_a_stream_through_the_cpu_model_is_the_same_with_the_memo():
    frames = bench.test_frames(128, 72, np.random.default_rng(3), count=5)
    with_memo = Interpolator("rifestream-lite", device="cpu")
    without = Interpolator("rifestream-lite", device="cpu")
    without.model.memo = FrameMemo(frames=0)
    tensors = [with_memo.to_tensor(f) for f in frames]
    for a, b in zip(tensors, tensors[1:], strict=False):
        ours = with_memo.synthesize(a, b, [0.25, 0.5])
        theirs = without.synthesize(a.clone(), b.clone(), [0.25, 0.5])
        assert torch.equal(ours, theirs)
    assert len(with_memo.model.memo) >= 2
