"""CuPy backend of the warp op, and the fused final warp + mask blend.

Semantics are exactly ``rifestream.model.warp.warp_torch``: bilinear sampling
of ``img`` at ``(x + flow_x, y + flow_y)``, the point clamped to
``[0, W-1] x [0, H-1]`` (border padding, align_corners=True), coordinates and
arithmetic in fp32 for fp16 and fp32 images alike.

How the kernels are run:
- the CUDA source (``KERNEL_SOURCE``) is compiled by NVRTC through a
  ``cupy.RawModule`` on first use, never at import (this module imports
  without CuPy installed);
- tensors cross to CuPy zero-copy through DLPack (``cupy.from_dlpack`` on a
  ``torch.utils.dlpack.to_dlpack`` capsule: the legacy capsule skips the
  producer-side stream handshake, an event per array, that the kernels do not
  need because they run on the producer's stream anyway);
- every launch goes to PyTorch's current stream
  (``cupy.cuda.ExternalStream``), so the kernels order with torch's own work
  and can be captured in a CUDA graph;
- outputs are allocated by torch (caching allocator, graph pools).

The per-thread bodies are ``__host__ __device__`` functions of the flat
thread index, and each kernel entry point is written once for both builds: on
a CPU the same source compiles as plain C++ whose functions run every thread
of the grid, and the tests drive them through this module's own argument
marshalling (``_warp_on`` and friends take the kernel runner as a parameter).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np
import torch

BLOCK_SIZE = 256
"""Threads per block; every kernel here uses a 1-D grid of ceil(threads / BLOCK_SIZE) blocks."""

NVRTC_OPTIONS: tuple[str, ...] = ("--std=c++17", "--fmad=false")
"""``--fmad=false`` keeps each multiply and add separately rounded, as in the torch references."""

# The shared prelude: fp16 storage as raw bits (converted with PTX cvt on the device, so NVRTC needs
# no headers), loads/stores that convert to and from fp32, and the bilinear tap of a sample point.
COMMON_SOURCE = r"""
typedef unsigned short half_bits;   // IEEE fp16 storage, converted to fp32 for all arithmetic

#ifdef __CUDACC__
#define RS_KERNEL(NAME, ...) extern "C" __global__ void NAME(__VA_ARGS__)
#define RS_EACH_THREAD(IDX) const long long IDX = (long long)blockIdx.x * blockDim.x + threadIdx.x;
#else
#define RS_KERNEL(NAME, ...) extern "C" void NAME(long long rs_threads, __VA_ARGS__)
#define RS_EACH_THREAD(IDX) for (long long IDX = 0; IDX < rs_threads; ++IDX)
#endif

#ifdef __CUDA_ARCH__
__host__ __device__ __forceinline__ float to_f32(half_bits h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__host__ __device__ __forceinline__ half_bits f32_to_half(float f) {
    half_bits h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
#else
// Host build of the same source (the CPU tests): their prelude defines rs_host_half_to_float and
// rs_host_float_to_half (round to nearest even). Device-only compiles (NVRTC, nvcc --cubin) never see this.
__host__ __device__ __forceinline__ float to_f32(half_bits h) { return rs_host_half_to_float(h); }
__host__ __device__ __forceinline__ half_bits f32_to_half(float f) { return rs_host_float_to_half(f); }
#endif

__host__ __device__ __forceinline__ float to_f32(float v) { return v; }
__host__ __device__ __forceinline__ void store(float* p, float v) { *p = v; }
__host__ __device__ __forceinline__ void store(half_bits* p, float v) { *p = f32_to_half(v); }

// The four neighbours of a sample point inside one H x W plane and their bilinear weights.
struct BilinearTap {
    long long o00, o01, o10, o11;
    float w00, w01, w10, w11;
};

// Border padding with align_corners=True: the point is clamped to [0, W-1] x [0, H-1] first
// (fmaxf maps NaN to 0, so no flow value can make a read leave the plane).
__host__ __device__ __forceinline__ BilinearTap bilinear_tap(float sx, float sy, int h, int w) {
    sx = fminf(fmaxf(sx, 0.0f), (float)(w - 1));
    sy = fminf(fmaxf(sy, 0.0f), (float)(h - 1));
    const int x0 = (int)floorf(sx);
    const int y0 = (int)floorf(sy);
    const int x1 = x0 + 1 < w ? x0 + 1 : w - 1;
    const int y1 = y0 + 1 < h ? y0 + 1 : h - 1;
    const float fx = sx - (float)x0;
    const float fy = sy - (float)y0;
    BilinearTap t;
    t.o00 = (long long)y0 * w + x0;
    t.o01 = (long long)y0 * w + x1;
    t.o10 = (long long)y1 * w + x0;
    t.o11 = (long long)y1 * w + x1;
    t.w00 = (1.0f - fx) * (1.0f - fy);
    t.w01 = fx * (1.0f - fy);
    t.w10 = (1.0f - fx) * fy;
    t.w11 = fx * fy;
    return t;
}

template <typename T>
__host__ __device__ __forceinline__ float sample(const T* plane, const BilinearTap& t) {
    return t.w00 * to_f32(plane[t.o00]) + t.w01 * to_f32(plane[t.o01])
         + t.w10 * to_f32(plane[t.o10]) + t.w11 * to_f32(plane[t.o11]);
}
"""

WARP_SOURCE = r"""
// One thread per output pixel (n, y, x); it computes the tap once and loops over the channels.
// img: (N, C, H, W) with H, W contiguous, batch/channel strides img_sn/img_sc (elements);
// flow: (N, 2, H, W) likewise (flow_sn, flow_sc), channel 0 = x, 1 = y, in pixels;
// out: (N, C, H, W) contiguous.
template <typename T, typename F>
__host__ __device__ __forceinline__ void warp_thread(
    long long idx, const T* __restrict__ img, const F* __restrict__ flow, T* __restrict__ out,
    int n, int c, int h, int w,
    long long img_sn, long long img_sc, long long flow_sn, long long flow_sc)
{
    const long long hw = (long long)h * w;
    if (idx >= (long long)n * hw) return;
    const long long b = idx / hw;
    const long long p = idx - b * hw;
    const int y = (int)(p / w);
    const int x = (int)(p - (long long)y * w);
    const F* fl = flow + b * flow_sn + p;
    const BilinearTap t = bilinear_tap((float)x + to_f32(fl[0]), (float)y + to_f32(fl[flow_sc]), h, w);
    const T* src = img + b * img_sn;
    T* dst = out + b * (long long)c * hw + p;
    for (int ch = 0; ch < c; ++ch) {
        store(dst + ch * hw, sample(src + ch * img_sc, t));
    }
}

// The final step of IFNet fused: w0 = warp(img0, flow[:, 0:2]), w1 = warp(img1, flow[:, 2:4]),
// m = sigmoid(mask), out = w0 * m + w1 * (1 - m). flow: (N, 4, H, W); mask: (N, 1, H, W) logits.
template <typename T, typename F>
__host__ __device__ __forceinline__ void warp_blend_thread(
    long long idx, const T* __restrict__ img0, const T* __restrict__ img1,
    const F* __restrict__ flow, const F* __restrict__ mask, T* __restrict__ out,
    int n, int c, int h, int w,
    long long img0_sn, long long img0_sc, long long img1_sn, long long img1_sc,
    long long flow_sn, long long flow_sc, long long mask_sn)
{
    const long long hw = (long long)h * w;
    if (idx >= (long long)n * hw) return;
    const long long b = idx / hw;
    const long long p = idx - b * hw;
    const int y = (int)(p / w);
    const int x = (int)(p - (long long)y * w);
    const F* fl = flow + b * flow_sn + p;
    const BilinearTap t0 = bilinear_tap((float)x + to_f32(fl[0]), (float)y + to_f32(fl[flow_sc]), h, w);
    const BilinearTap t1 = bilinear_tap((float)x + to_f32(fl[2 * flow_sc]), (float)y + to_f32(fl[3 * flow_sc]), h, w);
    const float m = 1.0f / (1.0f + expf(-to_f32(mask[b * mask_sn + p])));
    const float one_minus_m = 1.0f - m;
    const T* src0 = img0 + b * img0_sn;
    const T* src1 = img1 + b * img1_sn;
    T* dst = out + b * (long long)c * hw + p;
    for (int ch = 0; ch < c; ++ch) {
        const float v0 = sample(src0 + ch * img0_sc, t0);
        const float v1 = sample(src1 + ch * img1_sc, t1);
        store(dst + ch * hw, v0 * m + v1 * one_minus_m);
    }
}

// Entry points. RS_KERNEL defines a kernel and RS_EACH_THREAD gives its body the flat thread index;
// on a host build (no __CUDACC__) the same text defines a C function with a leading thread count that
// runs every thread of the grid in turn, so the tests can call it with the launcher's own arguments.
#define RS_DEFINE_WARP(NAME, T, F)                                                              \
RS_KERNEL(NAME, const T* img, const F* flow, T* out, int n, int c, int h, int w,               \
          long long img_sn, long long img_sc, long long flow_sn, long long flow_sc) {          \
    RS_EACH_THREAD(idx)                                                                         \
        warp_thread<T, F>(idx, img, flow, out, n, c, h, w, img_sn, img_sc, flow_sn, flow_sc);   \
}

#define RS_DEFINE_WARP_BLEND(NAME, T, F)                                                        \
RS_KERNEL(NAME, const T* img0, const T* img1, const F* flow, const F* mask, T* out,            \
          int n, int c, int h, int w, long long img0_sn, long long img0_sc,                    \
          long long img1_sn, long long img1_sc, long long flow_sn, long long flow_sc,          \
          long long mask_sn) {                                                                  \
    RS_EACH_THREAD(idx)                                                                         \
        warp_blend_thread<T, F>(idx, img0, img1, flow, mask, out, n, c, h, w,                   \
                                img0_sn, img0_sc, img1_sn, img1_sc, flow_sn, flow_sc, mask_sn); \
}

RS_DEFINE_WARP(warp_f32_f32, float, float)
RS_DEFINE_WARP(warp_f32_f16, float, half_bits)
RS_DEFINE_WARP(warp_f16_f32, half_bits, float)
RS_DEFINE_WARP(warp_f16_f16, half_bits, half_bits)
RS_DEFINE_WARP_BLEND(warp_blend_f32_f32, float, float)
RS_DEFINE_WARP_BLEND(warp_blend_f32_f16, float, half_bits)
RS_DEFINE_WARP_BLEND(warp_blend_f16_f32, half_bits, float)
RS_DEFINE_WARP_BLEND(warp_blend_f16_f16, half_bits, half_bits)
"""

KERNEL_SOURCE = COMMON_SOURCE + WARP_SOURCE
"""The full CUDA source of this module's kernels (NVRTC-compilable, no headers)."""

_DTYPE_TAGS = {torch.float32: "f32", torch.float16: "f16"}


def dtype_tag(dtype: torch.dtype) -> str:
    """``f32`` or ``f16``: the suffix of a kernel's name for a tensor of this dtype."""
    tag = _DTYPE_TAGS.get(dtype)
    if tag is None:
        raise ValueError(f"CuPy kernels take float32 or float16 tensors, not {dtype}")
    return tag


class CupyKernels:
    """A CUDA source compiled once, on first use, and launched on PyTorch's current stream.

    ``available()`` does the one-time check (CuPy importable, a CUDA device,
    the source compiles) and caches its answer, so callers may ask it per call.
    """

    def __init__(self, source: str, names: tuple[str, ...], options: tuple[str, ...] = NVRTC_OPTIONS) -> None:
        self._source = source
        self._names = names
        self._options = options
        self._lock = threading.Lock()
        self._checked = False
        self._module: Any = None
        self._reason: str | None = None
        self._functions: dict[tuple[int, str], Any] = {}

    def _check(self) -> None:
        with self._lock:
            if self._checked:
                return
            try:
                self._module = self._compile()
            except Exception as exc:  # noqa: BLE001 - any failure means "use the torch path", with the reason
                self._reason = str(exc) or type(exc).__name__
            self._checked = True

    def _compile(self) -> Any:
        try:
            import cupy
        except ImportError as exc:
            raise RuntimeError(f"CuPy is not installed ({exc}); install it with pip install -e '.[cuda]'") from exc
        if not torch.cuda.is_available():
            raise RuntimeError("PyTorch sees no CUDA device")
        module = cupy.RawModule(code=self._source, options=self._options)
        with cupy.cuda.Device(torch.cuda.current_device()):
            for name in self._names:  # compiles, loads, and fails here rather than mid-stream
                module.get_function(name)
        return module

    def available(self) -> bool:
        if not self._checked:
            self._check()
        return self._module is not None

    def unavailable_reason(self) -> str | None:
        if not self._checked:
            self._check()
        return self._reason

    def launch(self, name: str, device: torch.device, threads: int, args: tuple[Any, ...]) -> None:
        """Run kernel ``name`` with ``threads`` threads on ``device``'s current torch stream.

        ``args`` holds torch tensors (passed zero-copy as CuPy arrays) and numpy
        scalars (``np.int32`` for ``int``, ``np.int64`` for ``long long``,
        ``np.float32`` for ``float``), in the kernel's parameter order.
        """
        if not self.available():
            raise RuntimeError(f"CuPy kernels unavailable: {self._reason}")
        if threads <= 0:
            return
        import cupy

        index = device.index if device.index is not None else torch.cuda.current_device()
        with cupy.cuda.Device(index):
            fn = self._functions.get((index, name))
            if fn is None:
                fn = self._module.get_function(name)
                self._functions[(index, name)] = fn
            stream = _external_stream(torch.cuda.current_stream(index).cuda_stream, index)
            with stream:
                kernel_args = tuple(_as_cupy(a) if isinstance(a, torch.Tensor) else a for a in args)
                blocks = (threads + BLOCK_SIZE - 1) // BLOCK_SIZE
                fn((blocks,), (BLOCK_SIZE,), kernel_args)


@functools.lru_cache(maxsize=32)
def _external_stream(ptr: int, device_index: int) -> Any:
    import cupy

    return cupy.cuda.ExternalStream(ptr, device_id=device_index)


def _as_cupy(t: torch.Tensor) -> Any:
    import cupy

    return cupy.from_dlpack(torch.utils.dlpack.to_dlpack(t.detach()))


def _plane_contiguous(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself when each (H, W) plane is contiguous (batch/channel strides are passed), else a copy."""
    h, w = t.shape[-2:]
    if (t.stride(-1) == 1 or w == 1) and (t.stride(-2) == w or h == 1):
        return t
    return t.contiguous()


_WARP_NAMES = tuple(
    f"{kind}_{i}_{f}" for kind in ("warp", "warp_blend") for i in ("f32", "f16") for f in ("f32", "f16")
)
_kernels = CupyKernels(KERNEL_SOURCE, _WARP_NAMES)


def available() -> bool:
    """True when the kernels can run here (CuPy, a CUDA device, the source compiled); checked once."""
    return _kernels.available()


def unavailable_reason() -> str | None:
    """Why :func:`available` is False (None when it is True)."""
    return _kernels.unavailable_reason()


def _check_pair(img: torch.Tensor, flow: torch.Tensor, flow_channels: int) -> None:
    if img.dim() != 4 or flow.dim() != 4:
        raise ValueError(f"expected 4-D NCHW tensors, got img {tuple(img.shape)} and flow {tuple(flow.shape)}")
    n, _, h, w = img.shape
    if tuple(flow.shape) != (n, flow_channels, h, w):
        raise ValueError(f"flow must be {(n, flow_channels, h, w)} for img {tuple(img.shape)}, got {tuple(flow.shape)}")
    if flow.device != img.device:
        raise ValueError(f"img is on {img.device} but flow is on {flow.device}")
    dtype_tag(img.dtype)
    dtype_tag(flow.dtype)


def _require_cuda(t: torch.Tensor) -> None:
    if not t.is_cuda:
        raise ValueError(f"the CuPy kernels take CUDA tensors, got one on {t.device}")


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp (N, C, H, W) ``img`` by (N, 2, H, W) ``flow`` in pixels; same semantics as ``warp_torch``.

    ``img`` fp32 or fp16 (the output has its dtype), ``flow`` fp32 or fp16
    (read as fp32), both on one CUDA device. Batch and channel strides may be
    anything (a slice such as ``flow[:, 2:4]`` is read in place); each H x W
    plane must be contiguous, else it is copied first.
    """
    _require_cuda(img)
    return _warp_on(_kernels, img, flow)


def _warp_on(kernels: CupyKernels, img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    _check_pair(img, flow, 2)
    img = _plane_contiguous(img)
    flow = _plane_contiguous(flow)
    n, c, h, w = img.shape
    out = torch.empty((n, c, h, w), dtype=img.dtype, device=img.device)
    name = f"warp_{dtype_tag(img.dtype)}_{dtype_tag(flow.dtype)}"
    args = (
        img, flow, out,
        np.int32(n), np.int32(c), np.int32(h), np.int32(w),
        np.int64(img.stride(0)), np.int64(img.stride(1)), np.int64(flow.stride(0)), np.int64(flow.stride(1)),
    )  # fmt: skip
    kernels.launch(name, img.device, n * h * w, args)
    return out


def warp_blend(img0: torch.Tensor, img1: torch.Tensor, flow: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """IFNet's last step in one kernel: ``warp(img0, flow[:, 0:2]) * m + warp(img1, flow[:, 2:4]) * (1 - m)``.

    ``m = sigmoid(mask_logits)``; ``flow`` is (N, 4, H, W), ``mask_logits``
    (N, 1, H, W) with the flow's dtype (cast otherwise), all on one CUDA
    device. Arithmetic is fp32 and the result is rounded once to the images'
    dtype; the oracle is :func:`rifestream.model.warp.warp_blend_torch`.
    """
    _require_cuda(img0)
    return _warp_blend_on(_kernels, img0, img1, flow, mask_logits)


def _warp_blend_on(
    kernels: CupyKernels, img0: torch.Tensor, img1: torch.Tensor, flow: torch.Tensor, mask_logits: torch.Tensor
) -> torch.Tensor:
    if img1.shape != img0.shape or img1.dtype != img0.dtype or img1.device != img0.device:
        raise ValueError(f"img0 and img1 differ: {tuple(img0.shape)} {img0.dtype} vs {tuple(img1.shape)} {img1.dtype}")
    _check_pair(img0, flow, 4)
    n, c, h, w = img0.shape
    if tuple(mask_logits.shape) != (n, 1, h, w) or mask_logits.device != img0.device:
        raise ValueError(f"mask_logits must be {(n, 1, h, w)} on {img0.device}, got {tuple(mask_logits.shape)}")
    mask = mask_logits if mask_logits.dtype == flow.dtype else mask_logits.to(flow.dtype)
    img0, img1, flow, mask = (_plane_contiguous(t) for t in (img0, img1, flow, mask))
    out = torch.empty((n, c, h, w), dtype=img0.dtype, device=img0.device)
    name = f"warp_blend_{dtype_tag(img0.dtype)}_{dtype_tag(flow.dtype)}"
    args = (
        img0, img1, flow, mask, out,
        np.int32(n), np.int32(c), np.int32(h), np.int32(w),
        np.int64(img0.stride(0)), np.int64(img0.stride(1)), np.int64(img1.stride(0)), np.int64(img1.stride(1)),
        np.int64(flow.stride(0)), np.int64(flow.stride(1)), np.int64(mask.stride(0)),
    )  # fmt: skip
    kernels.launch(name, img0.device, n * h * w, args)
    return out
