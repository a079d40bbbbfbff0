"""One model engine shared by the streams of a fleet, with their in-between frames batched.

Each stream's frame loop runs in its own thread and calls ``synthesize`` on its
``StreamEngine``. Calls go to one ``SharedEngine`` per model and device: the first
caller that finds the model idle runs, in one model call, its own pair together with
every pair of the same frame size and scale that other streams have handed in
meanwhile (``Interpolator.synthesize_pairs``); the others wait for that call and take
their frames from it. Nobody waits for partners: a pair runs as soon as the model is
free, alone if no other stream is ready, so batching never adds a wait beyond the
model call already running (the latency budget's ladder sees the batched call's time
as the pair's cost and steps down if it is too slow).

Batches hold a power of two of pairs (1, 2, 4, … ``max_batch``; of five ready pairs
four run, and the fifth in the next call, led by its own stream): each batch size is a
compiled network (OpenVINO on a CPU) or a captured CUDA graph, so a few fixed sizes
keep them cached. ``max_batch=1`` is
"one call per pair": the same serialised model, no batching (the fleet's default on a CPU, where
batching measured slower: docs/BENCHMARKS.md, "Fleet").

The model runs in one thread at a time (an OpenVINO request, a CUDA graph and the
CPU model's DIS are not shared across threads); everything else a frame loop does
(uploads, scene-cut features, blends, downloads) runs in the stream's own thread,
and each stream has its own classical-step DIS.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from rifestream.engine.interpolator import FrameEngine, Interpolator

MAX_BATCH = 8


@dataclass(eq=False)
class _Pair:
    """One stream's request: the frames at ``ts`` between ``img0`` and ``img1``."""

    img0: torch.Tensor
    img1: torch.Tensor
    ts: list[float]
    scale: float | None
    result: torch.Tensor | None = None
    error: BaseException | None = None
    captured: bool = False
    done: bool = False
    key: tuple = field(init=False)

    def __post_init__(self) -> None:
        self.key = (tuple(self.img0.shape), self.img0.dtype, self.scale)


@dataclass
class BatchStats:
    """Model calls and pairs so far (``pairs / calls`` is the mean batch)."""

    calls: int = 0
    pairs: int = 0
    largest: int = 0


class SharedEngine:
    """An ``Interpolator`` shared by several streams; ``view()`` gives each stream its engine."""

    def __init__(self, engine: Interpolator, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.engine = engine
        self.max_batch = 1 << (max_batch.bit_length() - 1)  # a power of two
        self.stats = BatchStats()
        self._cond = threading.Condition()
        self._pending: list[_Pair] = []
        self._busy = False
        self._streams = 0

    def view(self) -> StreamEngine:
        """One stream's engine. A model that keeps a stream's history (the CPU model's quadratic
        motion) is made to remember two pairs for each stream, so that streams interleaving through
        it still find their own pair before."""
        self._streams += 1
        history = getattr(self.engine.model, "history", None)
        if history is not None:
            history.make_room(2 * self._streams)
        return StreamEngine(self)

    def synthesize(
        self, img0: torch.Tensor, img1: torch.Tensor, ts: Sequence[float], scale: float | None = None
    ) -> tuple[torch.Tensor, bool]:
        """(frames, whether the call captured a CUDA graph) for one stream's pair."""
        mine = _Pair(img0, img1, list(ts), scale)
        with self._cond:
            self._pending.append(mine)
            while not mine.done and self._busy:
                self._cond.wait()
            lead = not mine.done  # the model is free and my pair not made: I run the next call
            if lead:
                self._busy = True
                batch = self._take(mine)
        if lead:
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result, mine.captured

    def _take(self, mine: _Pair) -> list[_Pair]:
        """``mine`` and the pending pairs of its size and scale, as many as make the largest power of
        two up to ``max_batch`` (under the lock); the rest wait for the next call."""
        same = [mine, *(p for p in self._pending if p is not mine and p.key == mine.key)]
        size = 1 << (min(len(same), self.max_batch).bit_length() - 1)
        for p in same[:size]:
            self._pending.remove(p)
        return same[:size]

    def _run(self, batch: list[_Pair]) -> None:
        """One model call for ``batch``; every pair of it gets its frames (or the call's error)."""
        try:
            frames = self.engine.synthesize_pairs([(p.img0, p.img1, p.ts) for p in batch], batch[0].scale)
        except BaseException as exc:  # every stream of the batch gets the error (and its ladder steps down)
            for p in batch:
                p.error = exc
            frames = None
        with self._cond:
            self.stats.calls += 1
            self.stats.pairs += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))
            for k, p in enumerate(batch):
                if frames is not None:
                    p.result, p.captured = frames[k], self.engine.last_call_captured
                p.done = True


class StreamEngine:
    """One stream's engine over a ``SharedEngine``: the model calls are shared (and batched),
    everything else is the shared engine's own, run in the stream's thread; the classical step
    has its own DIS (an OpenCV DIS instance is not for two threads at once)."""

    def __init__(self, shared: SharedEngine) -> None:
        self.shared = shared
        self._dis = None  # FrameEngine.classical makes it on first use
        self.last_call_captured = False

    def __getattr__(self, name: str):
        return getattr(self.shared.engine, name)

    classical = FrameEngine.classical

    def synthesize(
        self, img0: torch.Tensor, img1: torch.Tensor, ts: Sequence[float], scale: float | None = None
    ) -> torch.Tensor:
        frames, self.last_call_captured = self.shared.synthesize(img0, img1, ts, scale)
        return frames
