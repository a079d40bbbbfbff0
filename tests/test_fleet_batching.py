"""Cross-stream batching: several streams' pairs in one model call give each stream the frames its own
call would, and pairs handed in while the model is busy run together (never more than max_batch)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from rifestream.engine import Interpolator
from rifestream.engine.batching import SharedEngine
from rifestream.model import IFNet, IFNetConfig

TINY = IFNetConfig("tiny", (16, 16), (2, 1), head=False, pad=32)


def pair(engine: Interpolator, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2))
    return engine.to_tensor(a), engine.to_tensor(b)


@pytest.fixture
def tiny_engine(one_torch_thread) -> Interpolator:
    torch.manual_seed(0)
    return Interpolator(IFNet(TINY), device="cpu")


@pytest.fixture
def lite_engine(one_torch_thread) -> Interpolator:
    return Interpolator("rifestream-lite", device="cpu")


@pytest.mark.parametrize("which", ["tiny_engine", "lite_engine"])
def test_pairs_in_one_call_equal_one_call_each(which: str, request: pytest.FixtureRequest) -> None:
    engine: Interpolator = request.getfixturevalue(which)
    pairs = [(*pair(engine, 72, 100, seed), ts) for seed, ts in enumerate([[0.5], [0.25, 0.75], [0.5]])]
    together = engine.synthesize_pairs(pairs)
    assert [tuple(t.shape) for t in together] == [(1, 3, 72, 100), (2, 3, 72, 100), (1, 3, 72, 100)]
    for (a, b, ts), batched in zip(pairs, together, strict=True):
        alone = engine.synthesize(a, b, ts)
        assert torch.allclose(batched, alone, atol=2e-5), (batched - alone).abs().max()
    # at the ladder's lower scale too (another padding)
    half = engine.synthesize_pairs(pairs[:2], scale=0.5)
    assert torch.allclose(half[1], engine.synthesize(*pairs[1][:2], pairs[1][2], scale=0.5), atol=2e-5)


class GatedInterpolator(Interpolator):
    """Its first model call waits for ``gate``: the pairs other streams hand in meanwhile pile up."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls: list[int] = []

    def synthesize_pairs(self, pairs, scale=None):
        self.calls.append(len(pairs))
        if len(self.calls) == 1:
            self.entered.set()
            assert self.gate.wait(30), "the test never opened the gate"
        return super().synthesize_pairs(pairs, scale)


def test_pairs_ready_while_the_model_runs_go_in_one_call_of_a_power_of_two(one_torch_thread) -> None:
    torch.manual_seed(0)
    engine = GatedInterpolator(IFNet(TINY), device="cpu")
    shared = SharedEngine(engine, max_batch=4)
    views = [shared.view() for _ in range(7)]
    inputs = [pair(engine, 64, 64, seed) for seed in range(7)]
    results: dict[int, torch.Tensor] = {}
    errors: list[BaseException] = []

    def stream(k: int) -> None:
        try:
            results[k] = views[k].synthesize(*inputs[k], [0.5])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    first = threading.Thread(target=stream, args=(0,))
    first.start()
    assert engine.entered.wait(30)
    others = [threading.Thread(target=stream, args=(k,)) for k in range(1, 7)]
    for t in others:
        t.start()
    with shared._cond:  # the six others wait for the running call
        assert shared._cond.wait_for(lambda: len(shared._pending) == 6, timeout=30)
    engine.gate.set()
    for t in (first, *others):
        t.join(30)
    assert not errors
    # 1 alone, then the six that waited: at most max_batch (4) in a call, as powers of two
    assert engine.calls[0] == 1 and sum(engine.calls) == 7
    assert all(n in (1, 2, 4) for n in engine.calls) and engine.calls[1] == 4
    assert shared.stats.calls == len(engine.calls) and shared.stats.pairs == 7 and shared.stats.largest == 4
    for k in range(7):
        assert torch.allclose(results[k], engine.synthesize(*inputs[k], [0.5]), atol=2e-5)


def test_different_sizes_never_share_a_call(one_torch_thread) -> None:
    torch.manual_seed(0)
    engine = GatedInterpolator(IFNet(TINY), device="cpu")
    shared = SharedEngine(engine, max_batch=8)
    small, large = pair(engine, 64, 64, 1), pair(engine, 96, 128, 2)
    out: dict[str, object] = {}

    def run(name: str, frames, ts) -> None:
        try:
            out[name] = shared.view().synthesize(*frames, ts)
        except Exception as exc:  # noqa: BLE001 - checked below
            out[name] = exc

    threads = [threading.Thread(target=run, args=("first", small, [0.5]))]
    threads[0].start()
    assert engine.entered.wait(30)
    threads += [
        threading.Thread(target=run, args=("large", large, [0.5])),
        threading.Thread(target=run, args=("three", small, [0.25, 0.5, 0.75])),
        threading.Thread(target=run, args=("small", small, [0.25])),
    ]
    for t in threads[1:]:
        t.start()
    with shared._cond:
        assert shared._cond.wait_for(lambda: len(shared._pending) == 3, timeout=30)
    engine.gate.set()
    for t in threads:
        t.join(30)
    assert out["large"].shape == (1, 3, 96, 128)
    assert out["small"].shape == (1, 3, 64, 64) and out["three"].shape == (3, 3, 64, 64)
    assert sorted(engine.calls) == [1, 1, 2]  # the 64x64 pairs together, the 96x128 one alone
    assert torch.allclose(out["three"], engine.synthesize(*small, [0.25, 0.5, 0.75]), atol=2e-5)
