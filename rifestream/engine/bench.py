"""Timing the engine: ms per interpolated frame, warm-up excluded (CUDA events on the GPU)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from rifestream.engine.interpolator import Interpolator, Precision, resolve_device
from rifestream.errors import RifestreamError
from rifestream.model import OFFICIAL_ARCHS, IFNet


@dataclass
class BenchResult:
    size: tuple[int, int]
    device: str
    precision: str
    model: str
    factor: int
    model_ms: float  # per interpolated frame, tensors on the device
    frame_ms: float  # per interpolated frame, uint8 RGB in → uint8 RGB out
    memory_bytes: int

    @property
    def output_fps(self) -> float:
        """Output frames per second if interpolation were the only cost: N frames per N-1 interpolations."""
        per_pair_ms = self.frame_ms * (self.factor - 1)
        return 1000.0 * self.factor / per_pair_ms

    @staticmethod
    def header() -> str:
        return (
            f"{'size':>10} {'device':>10} {'prec':>5} {'model':>16} {'model ms':>9} "
            f"{'frame ms':>9} {'out fps':>8} {'mem MiB':>8}"
        )

    def row(self) -> str:
        w, h = self.size
        return (
            f"{f'{w}x{h}':>10} {self.device:>10} {self.precision:>5} {self.model[-16:]:>16} "
            f"{self.model_ms:9.2f} {self.frame_ms:9.2f} {self.output_fps:8.1f} {self.memory_bytes / 2**20:8.1f}"
        )


def _timer(device: torch.device) -> Callable[[Callable[[], object], int], float]:
    """A function timing ``iters`` calls of ``fn`` in ms per call (CUDA events on the GPU)."""

    def cpu(fn: Callable[[], object], iters: int) -> float:
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - start) * 1000.0 / iters

    def cuda(fn: Callable[[], object], iters: int) -> float:
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        begin.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) / iters

    return cuda if device.type == "cuda" else cpu


def benchmark(
    *,
    model: str | None,
    arch: str | None,
    sizes: Sequence[tuple[int, int]],
    factor: int = 2,
    device: str = "auto",
    precision: Precision = "fp32",
    scale: float = 1.0,
    ensemble: int = 1,
    iters: int = 10,
    warmup: int = 2,
    cuda_graphs: bool = True,
    cupy_kernels: bool | None = None,
    seed: int = 0,
) -> list[BenchResult]:
    """Time the engine at each size; ``arch`` builds random weights of an official architecture."""
    torch.manual_seed(seed)
    dev = resolve_device(device)
    if arch is not None:
        if arch not in OFFICIAL_ARCHS:
            raise RifestreamError(f"unknown architecture {arch!r}; known: {', '.join(OFFICIAL_ARCHS)}")
        net: IFNet | str | None = IFNet(OFFICIAL_ARCHS[arch])
        label = f"{arch} (random)"
    else:
        net, label = model, model or "default"
    engine = Interpolator(
        net,
        device=dev,
        precision=precision,
        scale=scale,
        ensemble=ensemble,
        cuda_graphs=cuda_graphs,
        cupy_kernels=cupy_kernels,
    )
    ts = [j / factor for j in range(1, factor)]
    timer = _timer(dev)
    rng = np.random.default_rng(seed)
    results = []
    for w, h in sizes:
        frame0 = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        frame1 = np.roll(frame0, (3, 5), axis=(0, 1))
        a, b = engine.to_tensor(frame0), engine.to_tensor(frame1)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)

        model_only = partial(engine.synthesize, a, b, ts)
        uint8_to_uint8 = partial(engine.interpolate, frame0, frame1, ts)

        for _ in range(warmup):
            model_only()
            uint8_to_uint8()
        model_ms = timer(model_only, iters) / len(ts)
        frame_ms = timer(uint8_to_uint8, iters) / len(ts)
        memory = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else 0
        results.append(BenchResult((w, h), str(dev), precision, label, factor, model_ms, frame_ms, memory))
    return results
