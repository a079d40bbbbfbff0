"""Timing the engine: ms per interpolated frame, warm-up excluded (CUDA events on the GPU)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from rifestream.engine.cpu_runtime import network_runner
from rifestream.engine.interpolator import FrameEngine, Interpolator, Precision, resolve_device
from rifestream.errors import RifestreamError
from rifestream.model import OFFICIAL_ARCHS, IFNet
from rifestream.model.lite import LiteNet


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
            f"{'size':>10} {'device':>10} {'prec':>5} {'model':>30} {'model ms':>9} "
            f"{'frame ms':>9} {'out fps':>8} {'mem MiB':>8}"
        )

    def row(self) -> str:
        w, h = self.size
        return (
            f"{f'{w}x{h}':>10} {self.device:>10} {self.precision:>5} {self.model[-30:]:>30} "
            f"{self.model_ms:9.2f} {self.frame_ms:9.2f} {self.output_fps:8.1f} {self.memory_bytes / 2**20:8.1f}"
        )


def _timer(device: torch.device) -> Callable[[Callable[[], object], int], float]:
    """A function timing ``iters`` calls of ``fn`` in ms per call: on a CPU the median call (a
    shared CPU's hiccups land in a few calls and would move a mean), on the GPU the mean of
    back-to-back calls between two CUDA events (a call there is queued, not timed alone)."""

    def cpu(fn: Callable[[], object], iters: int) -> float:
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return float(np.median(times)) * 1000.0

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
    cpu_runtimes: Sequence[str] = (),
) -> list[BenchResult]:
    """Time the engine at each size; ``arch`` builds random weights of an official architecture;
    a CPU model is timed under each of ``cpu_runtimes`` (none: the engine's default runtime)."""
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
    if not (cpu_runtimes and isinstance(engine.model, LiteNet) and dev.type == "cpu"):
        return _time_steps(engine, {label: engine.synthesize}, sizes, factor, iters, warmup, seed)
    results = []
    for runtime in cpu_runtimes:
        engine.model.use_runner(network_runner(engine.model.refine, runtime))
        results += _time_steps(engine, {f"{label} [{runtime}]": engine.synthesize}, sizes, factor, iters, warmup, seed)
    return results


def benchmark_baselines(
    *,
    sizes: Sequence[tuple[int, int]],
    factor: int = 2,
    device: str = "auto",
    precision: Precision = "fp32",
    iters: int = 10,
    warmup: int = 2,
    seed: int = 0,
) -> list[BenchResult]:
    """Time the ladder's model-free steps (the classical flow frame, the blend) as :func:`benchmark` does."""
    engine = FrameEngine(device, precision)

    def blend(a: torch.Tensor, b: torch.Tensor, ts: Sequence[float]) -> torch.Tensor:
        return torch.cat([engine.blend(a, b, t) for t in ts])

    return _time_steps(engine, {"classical": engine.classical, "blend": blend}, sizes, factor, iters, warmup, seed)


def test_frames(w: int, h: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two frames of a textured scene 4 px apart: smooth enough that flow methods do their usual work
    (random noise makes DIS and the model do something no video asks of them)."""
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
    big = (
        torch.nn.functional.interpolate(
            torch.from_numpy(small).permute(2, 0, 1)[None].float(), scale_factor=8, mode="bicubic", align_corners=False
        )[0]
        .clamp(0, 255)
        .byte()
        .permute(1, 2, 0)
        .numpy()
    )
    frame0 = np.ascontiguousarray(big[:h, :w])
    return frame0, np.roll(frame0, (2, 4), axis=(0, 1))


def _round_trip(engine: FrameEngine, step: Callable, frame0: np.ndarray, frame1: np.ndarray, ts: list[float]):
    """One step from uint8 RGB frames to uint8 RGB frames, as a job runs it."""
    return engine.to_numpy(step(engine.to_tensor(frame0), engine.to_tensor(frame1), ts))


def _time_steps(
    engine: FrameEngine,
    steps: dict[str, Callable[[torch.Tensor, torch.Tensor, Sequence[float]], torch.Tensor]],
    sizes: Sequence[tuple[int, int]],
    factor: int,
    iters: int,
    warmup: int,
    seed: int,
) -> list[BenchResult]:
    """ms per in-between frame of each step: on the engine's tensors, and uint8 RGB in → uint8 RGB out."""
    dev = engine.device
    ts = [j / factor for j in range(1, factor)]
    timer = _timer(dev)
    rng = np.random.default_rng(seed)
    results = []
    for w, h in sizes:
        frame0, frame1 = test_frames(w, h, rng)
        for label, step in steps.items():
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)

            a, b = engine.to_tensor(frame0), engine.to_tensor(frame1)
            model_only = partial(step, a, b, ts)
            uint8_to_uint8 = partial(_round_trip, engine, step, frame0, frame1, ts)
            for _ in range(warmup):
                model_only()
                uint8_to_uint8()
            model_ms = timer(model_only, iters) / len(ts)
            frame_ms = timer(uint8_to_uint8, iters) / len(ts)
            memory = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else 0
            results.append(BenchResult((w, h), str(dev), engine.precision, label, factor, model_ms, frame_ms, memory))
    return results
