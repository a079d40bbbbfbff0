"""The ``Interpolator``: an IFNet wrapped for frames as users hold them.

It owns device placement, precision, padding to the model's multiple, user
``scale``, several timesteps in one call, test-time ensembles, CUDA-graph
capture per input shape on CUDA (eager on the CPU), a cheap blend and a
scene-cut score.

On CUDA the model runs with torch ops (``grid_sample`` warps), channels-last
convolutions and cuDNN autotuning; the CuPy warp kernels are opt-in
(``cupy_kernels=True``) until a GPU run has verified them. Captured graphs share
one memory pool and at most ``max_graphs`` are kept (least recently used dropped).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from rifestream.engine.heap import keep_freed_memory
from rifestream.errors import RifestreamError
from rifestream.model import IFNet, load_model
from rifestream.model.lite import LiteNet
from rifestream.model.warp import CUPY_KERNELS_BY_DEFAULT, Backend, cached_grids

log = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16"]
# Official RIFE's scale values: every block's resize is then exact on the padded frame.
SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
# The classical step's DIS preset: "fast" is the anchor the CPU model is measured against (about
# 8 ms for both directions of a 640x360 pair on 2 cores; "ultrafast" 5 ms, 0.1-0.4 dB lower).
CLASSICAL_PRESET = "fast"
# What runs the CPU model's network on a CPU (rifestream.engine.cpu_runtime; measured fastest).
DEFAULT_CPU_RUNTIME = "openvino"
# Passes averaged per frame: 1 (none), 2 (+ the pair in reverse time), 4 (+ both mirrored left-right).
ENSEMBLES = (1, 2, 4)
# Graphs kept per engine: one per (batch, padded size, scale); a 24→60 stream with the model and
# the scale step uses four. Each holds its activations (v7 at 1080p: ~157 MB per batch item).
MAX_GRAPHS = 8
_cpu_fallback_logged = False


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → CUDA when present, else the CPU (said once in the log)."""
    global _cpu_fallback_logged
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if not _cpu_fallback_logged:
            log.info("CUDA not available: running on the CPU with torch ops (no CuPy kernels, no CUDA graphs)")
            _cpu_fallback_logged = True
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RifestreamError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return dev


def check_scale(scale: float) -> float:
    """``scale`` must be one of 0.25, 0.5, 1, 2, 4 (lower for higher resolutions: 0.5 for 4K)."""
    if float(scale) not in SCALES:
        raise RifestreamError(f"scale {scale:g} is not supported; use one of 0.25, 0.5, 1, 2, 4 (0.5 for 4K)")
    return float(scale)


def check_ensemble(ensemble: int) -> int:
    """``ensemble`` must be 1, 2 or 4 model passes per frame."""
    if ensemble not in ENSEMBLES:
        raise RifestreamError(f"ensemble {ensemble} is not supported; use 1 (off), 2 or 4 passes per frame")
    return int(ensemble)


def warp_backend_for(device: torch.device, cupy_kernels: bool) -> Backend:
    """The model's warp backend: torch ops unless the CuPy kernels are asked for, and then only on
    CUDA where they can run (anything else is an error naming the fix)."""
    if not cupy_kernels:
        return "torch"
    if device.type != "cuda":
        raise RifestreamError("cupy_kernels needs a CUDA device; turn it off or use --device cuda")
    from rifestream.model import warp_cupy

    if not warp_cupy.available():
        raise RifestreamError(
            f"cupy_kernels: the CuPy kernels cannot run here ({warp_cupy.unavailable_reason()}); "
            "install CuPy (pip install -e '.[cuda]') or turn cupy_kernels off"
        )
    return "cupy"


def _cupy_can_run() -> bool:
    from rifestream.model import warp_cupy

    return warp_cupy.available()


@dataclass
class _Graph:
    """One captured CUDA graph with its static input and output buffers."""

    graph: torch.cuda.CUDAGraph
    img0: torch.Tensor
    img1: torch.Tensor
    timestep: torch.Tensor
    out: torch.Tensor
    grids: list[torch.Tensor]  # the warp grids it reads by address: kept alive while it lives


class FrameEngine:
    """Frames on a device without a model: conversions, the blend and repeat steps.

    It is what a job runs when the ladder is pinned to ``blend``/``repeat`` or no
    model is available; :class:`Interpolator` adds the model.
    """

    # True when the last synthesize() call captured a CUDA graph (its time is no cost to learn from)
    last_call_captured: bool = False
    # The CuPy kernels opted in (Interpolator's cupy_kernels): warps, and 4:2:0 frames converted on the device
    cupy_kernels: bool = False

    def __init__(self, device: str | torch.device = "auto", precision: Precision = "fp32", scale: float = 1.0) -> None:
        self.device = resolve_device(device)
        if precision not in ("fp32", "fp16"):
            raise RifestreamError(f"precision {precision!r} unknown; expected fp32 or fp16")
        if precision == "fp16" and self.device.type != "cuda":
            raise RifestreamError("fp16 needs a CUDA device; drop --fp16 or use --device cuda")
        self.precision: Precision = precision
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.scale = check_scale(scale)
        keep_freed_memory()  # every step on the host allocates frame-sized buffers (rifestream.engine.heap)
        self._dis = None  # the classical step's DIS, made on its first use

    # ----- conversions -------------------------------------------------
    def to_tensor(self, frame: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A frame as a (1, 3, H, W) tensor of this engine's device and dtype, in [0, 1]."""
        if isinstance(frame, np.ndarray):
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise RifestreamError(f"expected an H×W×3 uint8 RGB array, got {frame.dtype} {frame.shape}")
            if self.device.type == "cpu" and self.dtype == torch.float32:
                return torch.from_numpy(_planar_unit(frame))[None]
            t = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device, non_blocking=True)
            # planar (contiguous NCHW), not a permuted view: per-pixel channel sums (scene features)
            # and convolutions run several times faster on it
            planar = t.permute(2, 0, 1).unsqueeze(0).to(self.dtype, memory_format=torch.contiguous_format)
            return planar.div_(255.0)
        if frame.dim() == 3:
            frame = frame.unsqueeze(0)
        if frame.dim() != 4 or frame.shape[1] != 3:
            raise RifestreamError(f"expected a (3, H, W) or (1, 3, H, W) tensor, got {tuple(frame.shape)}")
        return frame.to(self.device, self.dtype)

    def frame_to_tensor(self, video) -> torch.Tensor:
        """A decoded ``av.VideoFrame`` as this engine's (1, 3, H, W) tensor: converted to RGB by PyAV,
        or, with the CuPy kernels opted in on CUDA, uploaded as yuv420p/NV12 planes and converted there."""
        from rifestream.engine.device_frames import planes_to_tensor, uploads_planes

        if uploads_planes(self.device, self.cupy_kernels, video.format.name):
            return planes_to_tensor(video, self.device, self.dtype)
        return self.to_tensor(video.to_ndarray(format="rgb24"))

    def to_frames(self, frames: torch.Tensor) -> list:
        """(N, 3, H, W) frames as ``av.VideoFrame``s for the sinks: rgb24 converted on the host, or, with the
        CuPy kernels opted in on CUDA, yuv420p converted on the device (half the bytes to bring down).
        Waits for the device."""
        import av

        from rifestream.engine.device_frames import downloads_planes, tensor_to_yuv420p_frames

        if downloads_planes(self.device, self.cupy_kernels, frames.shape[2], frames.shape[3]):
            return tensor_to_yuv420p_frames(frames)
        return [av.VideoFrame.from_ndarray(a, format="rgb24") for a in self.to_numpy(frames)]

    @staticmethod
    def to_numpy(frames: torch.Tensor) -> np.ndarray:
        """(N, 3, H, W) in [0, 1] → (N, H, W, 3) uint8, rounded."""
        if frames.device.type == "cpu" and frames.dtype == torch.float32:
            return np.stack([_interleaved_u8(frame.detach().numpy()) for frame in frames])
        u8 = frames.float().mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
        return u8.permute(0, 2, 3, 1).contiguous().cpu().numpy()

    def blend(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        """The cheap fallback: a linear cross-fade at ``t``."""
        return torch.lerp(img0, img1, float(t))

    def classical(self, img0: torch.Tensor, img1: torch.Tensor, ts: Sequence[float]) -> torch.Tensor:
        """The ladder's step between the model and a blend: OpenCV DIS flow (fast preset) both ways,
        linear intermediate flows, both frames warped and averaged (:mod:`rifestream.model.classical`)."""
        from rifestream.model.classical import DISFlow, classical_frames

        if self._dis is None:
            self._dis = DISFlow(CLASSICAL_PRESET, 1)
        with torch.inference_mode():
            return classical_frames(img0, img1, self._dis(img0, img1), ts).to(self.dtype)

    def synthesize(
        self, img0: torch.Tensor, img1: torch.Tensor, ts: Sequence[float], scale: float | None = None
    ) -> torch.Tensor:
        raise RifestreamError("no model loaded: this engine only blends or repeats; pass --model NAME|PATH")


def _planar_unit(frame: np.ndarray) -> np.ndarray:
    """An H×W×3 uint8 frame as (3, H, W) float32 planes in [0, 1], with OpenCV.

    On a CPU the frame conversions use OpenCV, not torch ops: they cost the same alone, but torch's
    OpenMP workers keep spinning after each op and slow the OpenCV work of the CPU model and the
    classical step that follows (docs/BENCHMARKS.md)."""
    out = np.empty((3, *frame.shape[:2]), dtype=np.float32)
    for k, plane in enumerate(cv2.split(frame)):
        cv2.multiply(plane, 1.0 / 255.0, dst=out[k], dtype=cv2.CV_32F)
    return out


def _interleaved_u8(planes: np.ndarray) -> np.ndarray:
    """(3, H, W) float32 planes in [0, 1] as an H×W×3 uint8 frame: rounded half to even and
    saturated, as torch's round and clamp do."""
    return cv2.merge([cv2.multiply(np.ascontiguousarray(p), 255.0, dtype=cv2.CV_8U) for p in planes])


class Interpolator(FrameEngine):
    """Synthesises frames between two frames with an IFNet, or with the CPU model (:class:`LiteNet`).

    >>> interp = Interpolator("rifestream-v1")           # doctest: +SKIP
    >>> mid = interp.interpolate(frame0, frame1, 0.5)     # H×W×3 uint8 in, H×W×3 uint8 out  # doctest: +SKIP

    Frames are H×W×3 uint8 RGB numpy arrays or float tensors (3, H, W) /
    (1, 3, H, W) in [0, 1]; results come back in the same form. ``t`` may be
    a float or a sequence (several frames in one batched call).

    ``ensemble`` 2 or 4 averages each frame over that many passes in one batch:
    the pair as given and in reverse time (the frame at 1 - t from frame1 to
    frame0), and with 4 both of those mirrored left-right. The model's errors
    differ between the passes, so the average is closer to the truth (measured
    in the README), at 2× or 4× the cost.

    ``cpu_runtime`` runs the CPU model's network on a CPU: ``openvino`` (:mod:`rifestream.engine.cpu_runtime`)
    or ``torch``.

    ``cupy_kernels`` runs the warps with the CuPy kernels on CUDA (opt-in: never yet run on a
    GPU; None: ``CUPY_KERNELS_BY_DEFAULT``, False); ``max_graphs`` caps the CUDA graphs kept.
    """

    def __init__(
        self,
        model: IFNet | str | Path | None = None,
        *,
        device: str | torch.device = "auto",
        precision: Precision = "fp32",
        scale: float = 1.0,
        ensemble: int = 1,
        cuda_graphs: bool = True,
        cupy_kernels: bool | None = None,
        max_graphs: int = MAX_GRAPHS,
        cpu_runtime: str = DEFAULT_CPU_RUNTIME,
    ) -> None:
        super().__init__(device, precision, scale)
        self.ensemble = check_ensemble(ensemble)
        if cupy_kernels is None:  # the default (rifestream.model.warp.CUPY_KERNELS_BY_DEFAULT), where it can apply
            cupy_kernels = CUPY_KERNELS_BY_DEFAULT and self.device.type == "cuda" and _cupy_can_run()
        backend = warp_backend_for(self.device, cupy_kernels)
        if not isinstance(model, IFNet | LiteNet):
            from rifestream.model.registry import resolve_model

            path, version = resolve_model(None if model is None else str(model))
            model = load_model(path, version=version)
        self.model = model.to(self.device, self.dtype).eval()
        if isinstance(self.model, LiteNet) and self.device.type == "cpu" and self.model.config.network:
            from rifestream.engine.cpu_runtime import network_runner

            self.model.use_runner(network_runner(self.model.refine, cpu_runtime))
        self.model.warp_backend = backend
        self.cupy_kernels = backend == "cupy"
        if self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)  # NHWC convolutions (tensor cores)
            torch.backends.cudnn.benchmark = True  # fixed shapes per stream: autotune once per shape
        self.use_graphs = cuda_graphs and self.device.type == "cuda"
        self.max_graphs = max(1, int(max_graphs))
        self._graphs: OrderedDict[tuple, _Graph | None] = OrderedDict()  # least recently used first
        self._graph_pool: tuple[int, int] | None = None  # one memory pool shared by every graph

    # ----- the model ---------------------------------------------------
    def synthesize(
        self, img0: torch.Tensor, img1: torch.Tensor, ts: Sequence[float], scale: float | None = None
    ) -> torch.Tensor:
        """Frames at each of ``ts`` between (1, 3, H, W) tensors ``img0`` and ``img1``: (len(ts), 3, H, W)."""
        scale = self.scale if scale is None else check_scale(scale)
        firsts, seconds, times = self._passes(img0, img1, list(ts))
        n, passes = len(ts), len(times)
        _, _, h, w = img0.shape
        mult = self.model.pad_multiple(scale)
        pad = (0, (-w) % mult, 0, (-h) % mult)
        mode = self._pad_mode()
        first, second = (self._batch(frames, n, pad, mode) for frames in (firsts, seconds))
        timestep = self._timesteps([x for pass_ts in times for x in pass_ts], *first.shape[2:])
        with torch.inference_mode():
            if isinstance(self.model, LiteNet):  # its DIS prior runs once per pass, not once per frame
                priors = [
                    self.model.prior(first[k * n : k * n + 1], second[k * n : k * n + 1], scale).expand(n, -1, -1, -1)
                    for k in range(passes)
                ]
                flows = priors[0] if passes == 1 else torch.cat(priors)
                out = self.model(first, second, timestep, scale, flows)[:, :, :h, :w]
            else:
                out = self._run(first, second, timestep, scale)[:, :, :h, :w]
            if passes == 1:
                return out
            out = out.view(passes, n, *out.shape[1:])
            if passes == 4:
                out = torch.cat((out[:2], out[2:].flip(-1)))
            return out.float().mean(0).to(self.dtype)

    def synthesize_pairs(
        self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor, Sequence[float]]], scale: float | None = None
    ) -> list[torch.Tensor]:
        """``synthesize`` of several same-size pairs (e.g. of different streams) in one model call:
        one (len(ts), 3, H, W) result per pair. Ensembles run each pair on its own."""
        if len(pairs) == 1 or self.ensemble != 1:
            return [self.synthesize(a, b, ts, scale) for a, b, ts in pairs]
        scale = self.scale if scale is None else check_scale(scale)
        _, _, h, w = pairs[0][0].shape
        mult = self.model.pad_multiple(scale)
        pad = (0, (-w) % mult, 0, (-h) % mult)
        counts, mode = [len(ts) for _, _, ts in pairs], self._pad_mode()
        first = torch.cat([self._batch([a], n, pad, mode) for (a, _, _), n in zip(pairs, counts, strict=True)])
        second = torch.cat([self._batch([b], n, pad, mode) for (_, b, _), n in zip(pairs, counts, strict=True)])
        timestep = self._timesteps([float(t) for _, _, ts in pairs for t in ts], *first.shape[2:])
        with torch.inference_mode():
            if isinstance(self.model, LiteNet):
                starts = [sum(counts[:k]) for k in range(len(pairs))]
                flows = torch.cat([self.model.prior(first[s : s + 1], second[s : s + 1], scale).expand(n, -1, -1, -1)
                                   for s, n in zip(starts, counts, strict=True)])  # fmt: skip
                out = self.model(first, second, timestep, scale, flows)[:, :, :h, :w]
            else:
                out = self._run(first, second, timestep, scale)[:, :, :h, :w]
        return list(out.split(counts))

    def _timesteps(self, values: list[float], h: int, w: int) -> torch.Tensor:
        """(len(values), 1, H, W) holding each value, made on the device with fill kernels (the value
        is a kernel argument): no blocking host→device copy per call."""
        t = torch.empty(len(values), 1, 1, 1, device=self.device, dtype=self.dtype)
        start = 0
        for i in range(1, len(values) + 1):
            if i == len(values) or values[i] != values[start]:
                t[start:i].fill_(values[start])
                start = i
        return t.expand(len(values), 1, h, w)

    def _pad_mode(self) -> str:
        """IFNets are padded with zeros, as the official code does; the CPU model repeats the edge
        pixels (its DIS flow would otherwise see a still border beside the moving picture)."""
        return "replicate" if isinstance(self.model, LiteNet) else "constant"

    @staticmethod
    def _batch(
        frames: list[torch.Tensor], n: int, pad: tuple[int, int, int, int], mode: str = "constant"
    ) -> torch.Tensor:
        """Each (1, 3, H, W) frame padded once and repeated ``n`` times; one frame stays a view (no copy)."""
        if any(pad):
            frames = [F.pad(x, pad, mode=mode) for x in frames]
        if len(frames) == 1:
            return frames[0].expand(n, -1, -1, -1)
        return torch.cat([x.expand(n, -1, -1, -1) for x in frames])

    def _passes(
        self, img0: torch.Tensor, img1: torch.Tensor, ts: list[float]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[list[float]]]:
        """The (first frames, second frames, timesteps) of each of ``ensemble`` passes.

        Mirrored before padding, so that a mirrored pass is exactly the plain pass of the mirrored pair.
        """
        if self.ensemble == 1:
            return [img0], [img1], [ts]
        firsts, seconds, times = [img0, img1], [img1, img0], [ts, [1.0 - x for x in ts]]
        if self.ensemble == 4:
            firsts += [x.flip(-1) for x in firsts]
            seconds += [x.flip(-1) for x in seconds]
            times += times
        return firsts, seconds, times

    def _run(self, img0: torch.Tensor, img1: torch.Tensor, timestep: torch.Tensor, scale: float) -> torch.Tensor:
        self.last_call_captured = False
        if not self.use_graphs:
            return self.model(img0, img1, timestep, scale)
        g = self._graph_for(img0, img1, timestep, scale)
        if g is None:  # capture failed for this shape: eager, as on the CPU
            return self.model(img0, img1, timestep, scale)
        with torch.cuda.device(self.device):
            g.img0.copy_(img0)
            g.img1.copy_(img1)
            g.timestep.copy_(timestep)
            g.graph.replay()
            return g.out.clone()

    def _graph_for(self, img0: torch.Tensor, img1: torch.Tensor, timestep: torch.Tensor, scale: float) -> _Graph | None:
        """The graph of this (batch, size, scale), captured on first use (``last_call_captured``);
        None where capture failed. Keeps at most ``max_graphs``, dropping the least recently used."""
        key = (tuple(img0.shape), scale)
        if key in self._graphs:
            self._graphs.move_to_end(key)
            return self._graphs[key]
        graph = self._capture(img0, img1, timestep, scale)
        self.last_call_captured = True
        self._graphs[key] = graph
        while len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)  # its memory goes back to the shared pool
        return graph

    def _capture(self, img0: torch.Tensor, img1: torch.Tensor, timestep: torch.Tensor, scale: float) -> _Graph | None:
        """Capture one CUDA graph for this shape and scale; None (logged) if capture fails.

        Runs on ``self.device`` (also for ``cuda:N``), on a side stream that the ``with`` gives back
        to the thread whatever happens, into the engine's one shared memory pool."""
        start = time.perf_counter()
        with torch.cuda.device(self.device):
            static = [img0.clone(), img1.clone(), timestep.clone()]
            if self._graph_pool is None:
                self._graph_pool = torch.cuda.graph_pool_handle()
            side = torch.cuda.Stream()
            try:
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):  # warm-up: cuDNN autotuning, warp grid caches, allocator pools
                        self.model(*static, scale)
                    torch.cuda.synchronize()
                    graph = torch.cuda.CUDAGraph()
                    graph.capture_begin(pool=self._graph_pool, capture_error_mode="thread_local")
                    try:
                        out = self.model(*static, scale)
                    finally:
                        graph.capture_end()
            except RuntimeError as exc:
                torch.cuda.current_stream().wait_stream(side)
                log.warning("CUDA graph capture failed for %s (%s); running eagerly", tuple(img0.shape), exc)
                return None
            torch.cuda.current_stream().wait_stream(side)
            grids = cached_grids(static[0].device)
            log.info(
                "captured a CUDA graph for input %s at scale %s in %.0f ms (%.0f MiB reserved)",
                tuple(img0.shape),
                scale,
                (time.perf_counter() - start) * 1e3,
                torch.cuda.memory_reserved() / 2**20,
            )
            return _Graph(graph, *static, out, grids)

    # ----- the user-facing call -----------------------------------------
    @overload
    def interpolate(self, frame0: np.ndarray, frame1: np.ndarray, t: float = 0.5) -> np.ndarray: ...
    @overload
    def interpolate(self, frame0: np.ndarray, frame1: np.ndarray, t: Sequence[float]) -> list[np.ndarray]: ...
    @overload
    def interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor, t: float = 0.5) -> torch.Tensor: ...
    @overload
    def interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor, t: Sequence[float]) -> list[torch.Tensor]: ...

    def interpolate(self, frame0, frame1, t=0.5):
        """The frame(s) at ``t`` ∈ (0, 1) between ``frame0`` and ``frame1``, in the input's form."""
        ts = [float(x) for x in t] if isinstance(t, Sequence) else [float(t)]
        if any(not 0.0 < x < 1.0 for x in ts):
            raise RifestreamError(f"t must lie strictly between 0 and 1, got {ts}")
        a, b = self.to_tensor(frame0), self.to_tensor(frame1)
        if a.shape != b.shape:
            raise RifestreamError(f"frames differ in size: {tuple(a.shape[2:])} vs {tuple(b.shape[2:])}")
        out = self.synthesize(a, b, ts)
        if isinstance(frame0, np.ndarray):
            result = list(self.to_numpy(out))
        else:
            squeeze = frame0.dim() == 3
            result = [o if squeeze else o.unsqueeze(0) for o in out.to(frame0.dtype)]
        return result if isinstance(t, Sequence) else result[0]
