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
        return _interleaved([fn], iters)[0]

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


Step = Callable[[torch.Tensor, torch.Tensor, Sequence[float]], torch.Tensor]


@dataclass
class Timed:
    """One thing to time: ``step`` of ``engine`` (frames on the engine's device → frames at ``ts``)."""

    label: str
    engine: FrameEngine
    step: Step


def model_steps(
    *,
    model: str | None,
    arch: str | None,
    device: str = "auto",
    precision: Precision = "fp32",
    scale: float = 1.0,
    ensemble: int = 1,
    cuda_graphs: bool = True,
    cupy_kernels: bool | None = None,
    seed: int = 0,
    cpu_runtimes: Sequence[str] = (),
) -> list[Timed]:
    """The model's step; ``arch`` builds random weights of an official architecture; a CPU model gets
    one step under each of ``cpu_runtimes`` (none: the engine's default runtime), each on its own engine."""
    torch.manual_seed(seed)
    dev = resolve_device(device)
    if arch is not None:
        if arch not in OFFICIAL_ARCHS:
            raise RifestreamError(f"unknown architecture {arch!r}; known: {', '.join(OFFICIAL_ARCHS)}")
        net: IFNet | str | None = IFNet(OFFICIAL_ARCHS[arch])
        label = f"{arch} (random)"
    else:
        net, label = model, model or "default"

    def engine() -> Interpolator:
        return Interpolator(
            net,
            device=dev,
            precision=precision,
            scale=scale,
            ensemble=ensemble,
            cuda_graphs=cuda_graphs,
            cupy_kernels=cupy_kernels,
        )

    first = engine()
    if not (cpu_runtimes and isinstance(first.model, LiteNet) and dev.type == "cpu"):
        return [Timed(label, first, first.synthesize)]
    steps = []
    for i, runtime in enumerate(cpu_runtimes):
        e = first if i == 0 else engine()
        e.model.use_runner(network_runner(e.model.refine, runtime))
        steps.append(Timed(f"{label} [{runtime}]", e, e.synthesize))
    return steps


def baseline_steps(device: str = "auto", precision: Precision = "fp32") -> list[Timed]:
    """The ladder's model-free steps: the classical flow frame and the blend."""
    engine = FrameEngine(device, precision)

    def blend(a: torch.Tensor, b: torch.Tensor, ts: Sequence[float]) -> torch.Tensor:
        return torch.cat([engine.blend(a, b, t) for t in ts])

    return [Timed("classical", engine, engine.classical), Timed("blend", engine, blend)]


#: Frames a bench stream cycles through: pair k is (frame k, frame k + 1), so each pair continues
#: the one before, as in a job (a model that keeps a stream's history, rifestream-lite's quadratic
#: motion, pays for it here; with two frames the second pair would be the first one mirrored).
STREAM_FRAMES = 3


def test_frames(w: int, h: int, rng: np.random.Generator, count: int = STREAM_FRAMES) -> list[np.ndarray]:
    """``count`` frames of a textured scene, each 4 px right and 2 px down of the one before: smooth
    enough that flow methods do their usual work (random noise makes DIS and the model do something
    no video asks of them)."""
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
    return [np.roll(frame0, (2 * k, 4 * k), axis=(0, 1)) for k in range(count)]


class _Stream:
    """Calls ``fn(frame k, frame k + 1)`` with k advancing one each call, around the frames."""

    def __init__(self, fn: Callable[[object, object], object], frames: Sequence[object]) -> None:
        self.fn, self.frames, self.k = fn, frames, 0

    def __call__(self) -> object:
        a, b = self.frames[self.k], self.frames[(self.k + 1) % len(self.frames)]
        self.k = (self.k + 1) % len(self.frames)
        return self.fn(a, b)


def _round_trip(engine: FrameEngine, step: Callable, frame0: np.ndarray, frame1: np.ndarray, ts: list[float]):
    """One step from uint8 RGB frames to uint8 RGB frames, as a job runs it."""
    return engine.to_numpy(step(engine.to_tensor(frame0), engine.to_tensor(frame1), ts))


def time_steps(
    steps: Sequence[Timed],
    sizes: Sequence[tuple[int, int]],
    factor: int = 2,
    iters: int = 10,
    warmup: int = 2,
    seed: int = 0,
) -> list[BenchResult]:
    """ms per in-between frame of each step at each size: on the engine's tensors, and uint8 RGB in →
    uint8 RGB out.

    On a CPU the steps take turns call by call (A, B, C, A, B, C, ...) and each figure is the median
    call: a shared machine's speed drifts within minutes, and steps timed one block after another
    compare moments as much as steps. On CUDA each step is timed in its own block between two
    CUDA events (a call there is queued, not timed alone)."""
    ts = [j / factor for j in range(1, factor)]
    rng = np.random.default_rng(seed)
    results = []
    for w, h in sizes:
        frames = test_frames(w, h, rng)
        calls = []
        for item in steps:
            tensors = [item.engine.to_tensor(f) for f in frames]
            calls.append(
                (
                    _Stream(lambda a, b, step=item.step: step(a, b, ts), tensors),
                    _Stream(partial(_round_trip, item.engine, item.step, ts=ts), frames),
                )
            )
        if all(item.engine.device.type == "cpu" for item in steps):
            for call in calls:
                for _ in range(warmup):
                    call[0]()
                    call[1]()
            model_ms = _interleaved([c[0] for c in calls], iters)
            frame_ms = _interleaved([c[1] for c in calls], iters)
            memory = [0] * len(steps)
        else:
            model_ms, frame_ms, memory = [], [], []
            for item, (model_only, uint8_to_uint8) in zip(steps, calls, strict=True):
                dev = item.engine.device
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(dev)
                for _ in range(warmup):
                    model_only()
                    uint8_to_uint8()
                timer = _timer(dev)
                model_ms.append(timer(model_only, iters))
                frame_ms.append(timer(uint8_to_uint8, iters))
                memory.append(torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else 0)
        for i, item in enumerate(steps):
            dev, prec = str(item.engine.device), item.engine.precision
            per_frame = (model_ms[i] / len(ts), frame_ms[i] / len(ts))
            results.append(BenchResult((w, h), dev, prec, item.label, factor, *per_frame, memory[i]))
    return results


#: Untimed pause before each timed CPU call. torch's OpenMP workers keep spinning for a while after
#: a parallel op and take the cores from whatever runs next: with no pause, the CPU model right after
#: the blend's torch ops measured 21.9 ms where it takes 16.4 (the classical step after
#: rifestream-v1: 13.3 against 10.1). A live job runs the model once an input interval, not back to back.
SETTLE_S = 0.02


def _interleaved(calls: Sequence[Callable[[], object]], iters: int) -> list[float]:
    """The median ms of each of ``calls`` over ``iters`` rounds in which each is called once, in turn
    (:data:`SETTLE_S` before each call)."""
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(iters):
        for k, fn in enumerate(calls):
            time.sleep(SETTLE_S)
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return [float(np.median(t)) * 1000.0 for t in times]
