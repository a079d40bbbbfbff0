"""YUV 4:2:0 (NV12, yuv420p) <-> planar RGB on the device, with a torch reference for every kernel.

Decode side: 8-bit Y, U, V planes -> a (1, 3, Hp, Wp) fp16/fp32 tensor in
[0, 1], the picture in the top-left H x W and zeros in the model's padding,
written in one pass. Encode side: planar RGB (the top-left H x W of a padded
tensor) -> 8-bit planes, rounded to nearest (ties to even) and clamped.

Conventions (what FFmpeg's swscale does for untagged frames, SD and HD alike):
- matrix BT.601 (``Kr = 0.299, Kb = 0.114``) and limited ("MPEG", TV) range,
  Y in [16, 235] and U, V in [16, 240], are the default; BT.709
  (``Kr = 0.2126, Kb = 0.0722``) and full range are options. swscale does not
  switch to BT.709 for HD by itself: a BT.709 source needs ``matrix="bt709"``.
  (Checked in the tests: PyAV's ``to_ndarray(format="rgb24")`` matches this
  module's BT.601 limited-range decode within 3 levels, mean under 1.)
- chroma upsampling is nearest (each chroma sample covers its 2 x 2 luma
  block), as swscale's unscaled yuv420p -> RGB path does (its NV12 path
  filters chroma instead: a few levels apart on smooth chroma); downsampling is
  the mean of the block's RGB (swscale's ``AREA`` filter), so decoding an
  encoded frame gives its planes back exactly when no value clips.
- odd sizes: chroma planes are ceil(H/2) x ceil(W/2); an edge block averages
  only the pixels it has.

Planes are 2-D uint8 tensors whose rows may be padded (any row stride); NV12's
interleaved UV plane is passed as its two strided views ``uv[:, 0::2]`` and
``uv[:, 1::2]`` (see :func:`nv12_chroma`). The public functions run the CuPy
kernels on CUDA tensors when CuPy can run (see ``rifestream.model.warp_cupy``)
and the torch references otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from rifestream.model.warp_cupy import COMMON_SOURCE, CupyKernels, dtype_tag

log = logging.getLogger(__name__)

Matrix = Literal["bt601", "bt709"]
PixelFormat = Literal["yuv420p", "nv12"]

_KR_KB: dict[str, tuple[float, float]] = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def _f32(x: float) -> float:
    """``x`` rounded to fp32, so the kernels (fp32 parameters) and the references use the same constants."""
    return float(np.float32(x))


@dataclass(frozen=True)
class YuvSpec:
    """Which YCbCr matrix and range the 8-bit planes use."""

    matrix: Matrix = "bt601"
    full_range: bool = False

    def __post_init__(self) -> None:
        if self.matrix not in _KR_KB:
            raise ValueError(f"unknown YCbCr matrix {self.matrix!r}; expected one of {sorted(_KR_KB)}")

    def decode_coefficients(self) -> tuple[float, ...]:
        """(y_off, y_scale, c_scale, r_cr, g_cb, g_cr, b_cb), fp32-exact.

        ``y = (Y - y_off) * y_scale``, ``cb = (U - 128) * c_scale``, ``cr = (V - 128) * c_scale``;
        ``R = y + r_cr * cr``, ``G = y - g_cb * cb - g_cr * cr``, ``B = y + b_cb * cb``.
        """
        kr, kb = _KR_KB[self.matrix]
        kg = 1.0 - kr - kb
        y_off, y_scale, c_scale = (0.0, 1 / 255, 1 / 255) if self.full_range else (16.0, 1 / 219, 1 / 224)
        coeffs = (y_off, y_scale, c_scale, 2 * (1 - kr), 2 * kb * (1 - kb) / kg, 2 * kr * (1 - kr) / kg, 2 * (1 - kb))
        return tuple(_f32(c) for c in coeffs)

    def encode_coefficients(self) -> tuple[float, ...]:
        """(kr, kg, kb, y_off, y_range, cu, cv), fp32-exact.

        ``y = kr * R + kg * G + kb * B``, ``Y = y_off + y_range * y``,
        ``U = 128 + cu * (B - y)``, ``V = 128 + cv * (R - y)``.
        """
        kr, kb = _KR_KB[self.matrix]
        kg = 1.0 - kr - kb
        y_off, y_range, c_range = (0.0, 255.0, 255.0) if self.full_range else (16.0, 219.0, 224.0)
        coeffs = (kr, kg, kb, y_off, y_range, c_range / (2 * (1 - kb)), c_range / (2 * (1 - kr)))
        return tuple(_f32(c) for c in coeffs)


BT601 = YuvSpec("bt601")
BT709 = YuvSpec("bt709")


def chroma_size(height: int, width: int) -> tuple[int, int]:
    """Size of a 4:2:0 chroma plane: (ceil(H/2), ceil(W/2))."""
    return (height + 1) // 2, (width + 1) // 2


def frame_nbytes(pix_fmt: PixelFormat, height: int, width: int) -> int:
    """Bytes of a tightly packed 8-bit 4:2:0 frame (Y plane, then the chroma plane(s))."""
    hc, wc = chroma_size(height, width)
    if pix_fmt not in ("yuv420p", "nv12"):
        raise ValueError(f"unknown pixel format {pix_fmt!r}; expected yuv420p or nv12")
    return height * width + 2 * hc * wc


def frame_planes(buf: torch.Tensor, pix_fmt: PixelFormat, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """Views of a packed 1-D uint8 frame: (Y, U, V) for yuv420p, (Y, UV) for nv12 (UV is hc x 2*wc).

    The layout is the one PyAV's ``VideoFrame.to_ndarray()`` / ``from_ndarray``
    use for these formats at even sizes (an (H * 3 / 2, W) array).
    """
    if buf.dim() != 1 or buf.dtype != torch.uint8 or buf.numel() != frame_nbytes(pix_fmt, height, width):
        raise ValueError(f"expected a 1-D uint8 buffer of {frame_nbytes(pix_fmt, height, width)} bytes")
    hc, wc = chroma_size(height, width)
    y = buf[: height * width].view(height, width)
    rest = buf[height * width :]
    if pix_fmt == "nv12":
        return y, rest.view(hc, 2 * wc)
    return y, rest[: hc * wc].view(hc, wc), rest[hc * wc :].view(hc, wc)


def nv12_chroma(uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The U and V views (strided, no copy) of an NV12 interleaved (hc, 2*wc) chroma plane."""
    return uv[:, 0::2], uv[:, 1::2]


def padded_rgb(height: int, width: int, multiple: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised (1, 3, Hp, Wp) tensor, Hp and Wp the next multiples of ``multiple``, for the decoders."""
    hp = -(-height // multiple) * multiple
    wp = -(-width // multiple) * multiple
    return torch.empty((1, 3, hp, wp), dtype=dtype, device=device)


# --------------------------------------------------------------------------------------------------
# CUDA source. One thread per output pixel for YUV -> RGB (the padding included), one thread per
# chroma sample (its up-to-2x2 luma block) for RGB -> YUV. Chroma reads/writes use a row pitch and a
# column step (1 for planar, 2 for NV12's interleaved plane).

COLOR_SOURCE = r"""
__host__ __device__ __forceinline__ float clamp01(float v) { return fminf(fmaxf(v, 0.0f), 1.0f); }

__host__ __device__ __forceinline__ unsigned char quantize_u8(float v) {
    return (unsigned char)fminf(fmaxf(rintf(v), 0.0f), 255.0f);
}

// out: (3, hp, wp) contiguous planes; the picture is the top-left h x w, the rest is written as 0.
template <typename T>
__host__ __device__ __forceinline__ void yuv420_to_rgb_thread(
    long long idx, const unsigned char* __restrict__ y_plane, const unsigned char* __restrict__ u_plane,
    const unsigned char* __restrict__ v_plane, long long y_pitch, long long u_pitch, long long v_pitch,
    long long c_step, int h, int w, int hp, int wp, T* __restrict__ out,
    float y_off, float y_scale, float c_scale, float r_cr, float g_cb, float g_cr, float b_cb)
{
    const long long plane = (long long)hp * wp;
    if (idx >= plane) return;
    const int py = (int)(idx / wp);
    const int px = (int)(idx - (long long)py * wp);
    float r = 0.0f, g = 0.0f, b = 0.0f;
    if (py < h && px < w) {
        const long long co = (long long)(px >> 1) * c_step;
        const float yv = ((float)y_plane[(long long)py * y_pitch + px] - y_off) * y_scale;
        const float cb = ((float)u_plane[(long long)(py >> 1) * u_pitch + co] - 128.0f) * c_scale;
        const float cr = ((float)v_plane[(long long)(py >> 1) * v_pitch + co] - 128.0f) * c_scale;
        r = clamp01(yv + r_cr * cr);
        g = clamp01(yv - g_cb * cb - g_cr * cr);
        b = clamp01(yv + b_cb * cb);
    }
    store(out + idx, r);
    store(out + plane + idx, g);
    store(out + 2 * plane + idx, b);
}

// rgb: three planes rgb_plane elements apart, rows rgb_pitch apart, columns contiguous; the picture
// is the top-left h x w. Writes the block's Y values and the block's U and V.
template <typename T>
__host__ __device__ __forceinline__ void rgb_to_yuv420_thread(
    long long idx, const T* __restrict__ rgb, long long rgb_plane, long long rgb_pitch, int h, int w,
    unsigned char* __restrict__ y_plane, unsigned char* __restrict__ u_plane, unsigned char* __restrict__ v_plane,
    long long y_pitch, long long u_pitch, long long v_pitch, long long c_step,
    float kr, float kg, float kb, float y_off, float y_range, float cu, float cv)
{
    const int wc = (w + 1) >> 1;
    const int hc = (h + 1) >> 1;
    if (idx >= (long long)hc * wc) return;
    const int cy = (int)(idx / wc);
    const int cx = (int)(idx - (long long)cy * wc);
    float sr = 0.0f, sg = 0.0f, sb = 0.0f;
    int count = 0;
    for (int dy = 0; dy < 2; ++dy) {
        const int py = 2 * cy + dy;
        if (py >= h) break;
        for (int dx = 0; dx < 2; ++dx) {
            const int px = 2 * cx + dx;
            if (px >= w) break;
            const long long o = (long long)py * rgb_pitch + px;
            const float r = clamp01(to_f32(rgb[o]));
            const float g = clamp01(to_f32(rgb[rgb_plane + o]));
            const float b = clamp01(to_f32(rgb[2 * rgb_plane + o]));
            y_plane[(long long)py * y_pitch + px] = quantize_u8(y_off + y_range * (kr * r + kg * g + kb * b));
            sr += r;
            sg += g;
            sb += b;
            ++count;
        }
    }
    const float inv = 1.0f / (float)count;   // 1, 1/2 or 1/4: exact
    const float ar = sr * inv, ag = sg * inv, ab = sb * inv;
    const float ya = kr * ar + kg * ag + kb * ab;
    const long long co = (long long)cx * c_step;
    u_plane[(long long)cy * u_pitch + co] = quantize_u8(128.0f + cu * (ab - ya));
    v_plane[(long long)cy * v_pitch + co] = quantize_u8(128.0f + cv * (ar - ya));
}

#define RS_DEFINE_YUV_TO_RGB(NAME, T)                                                           \
RS_KERNEL(NAME, const unsigned char* y_plane, const unsigned char* u_plane,                     \
          const unsigned char* v_plane, long long y_pitch, long long u_pitch, long long v_pitch, \
          long long c_step, int h, int w, int hp, int wp, T* out, float y_off, float y_scale,   \
          float c_scale, float r_cr, float g_cb, float g_cr, float b_cb) {                      \
    RS_EACH_THREAD(idx)                                                                         \
        yuv420_to_rgb_thread<T>(idx, y_plane, u_plane, v_plane, y_pitch, u_pitch, v_pitch,     \
                                c_step, h, w, hp, wp, out,                                      \
                                y_off, y_scale, c_scale, r_cr, g_cb, g_cr, b_cb);               \
}

#define RS_DEFINE_RGB_TO_YUV(NAME, T)                                                           \
RS_KERNEL(NAME, const T* rgb, long long rgb_plane, long long rgb_pitch, int h, int w,          \
          unsigned char* y_plane, unsigned char* u_plane, unsigned char* v_plane,              \
          long long y_pitch, long long u_pitch, long long v_pitch, long long c_step,           \
          float kr, float kg, float kb, float y_off, float y_range, float cu, float cv) {      \
    RS_EACH_THREAD(idx)                                                                         \
        rgb_to_yuv420_thread<T>(idx, rgb, rgb_plane, rgb_pitch, h, w, y_plane, u_plane,         \
                                v_plane, y_pitch, u_pitch, v_pitch, c_step,                     \
                                kr, kg, kb, y_off, y_range, cu, cv);                            \
}

RS_DEFINE_YUV_TO_RGB(yuv420_to_rgb_f32, float)
RS_DEFINE_YUV_TO_RGB(yuv420_to_rgb_f16, half_bits)
RS_DEFINE_RGB_TO_YUV(rgb_to_yuv420_f32, float)
RS_DEFINE_RGB_TO_YUV(rgb_to_yuv420_f16, half_bits)
"""

KERNEL_SOURCE = COMMON_SOURCE + COLOR_SOURCE
"""The full CUDA source of this module's kernels (NVRTC-compilable, no headers)."""

_COLOR_NAMES = ("yuv420_to_rgb_f32", "yuv420_to_rgb_f16", "rgb_to_yuv420_f32", "rgb_to_yuv420_f16")
_kernels = CupyKernels(KERNEL_SOURCE, _COLOR_NAMES)
_fallback_logged = False


def available() -> bool:
    """True when the colour kernels can run here (CuPy, a CUDA device, the source compiled); checked once."""
    return _kernels.available()


def unavailable_reason() -> str | None:
    """Why :func:`available` is False (None when it is True)."""
    return _kernels.unavailable_reason()


def _use_kernels(t: torch.Tensor) -> bool:
    global _fallback_logged
    if not t.is_cuda:
        return False
    if _kernels.available():
        return True
    if not _fallback_logged:
        log.warning("CuPy colour kernels unavailable (%s); converting with torch ops", _kernels.unavailable_reason())
        _fallback_logged = True
    return False


# --------------------------------------------------------------------------------------------------
# Checks shared by the kernels and the references.


def _check_planes(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> tuple[int, int]:
    """(H, W) of a 4:2:0 picture given as three 2-D uint8 planes on one device."""
    for name, p in (("Y", y), ("U", u), ("V", v)):
        if p.dim() != 2 or p.dtype != torch.uint8:
            raise ValueError(f"{name} plane must be a 2-D uint8 tensor, got {tuple(p.shape)} {p.dtype}")
        if p.device != y.device:
            raise ValueError(f"all planes must be on one device, got Y on {y.device} and {name} on {p.device}")
    h, w = y.shape
    hc, wc = chroma_size(h, w)
    if tuple(u.shape) != (hc, wc) or tuple(v.shape) != (hc, wc):
        got = f"{tuple(u.shape)}, {tuple(v.shape)}"
        raise ValueError(f"chroma planes must be {(hc, wc)} for a {h}x{w} picture, got {got}")
    if y.stride(1) != 1 or u.stride(1) != v.stride(1):
        raise ValueError("Y columns must be contiguous and U, V must share one column step")
    return h, w


def _rgb_planes(rgb: torch.Tensor) -> torch.Tensor:
    """The (3, Hp, Wp) view of a (1, 3, Hp, Wp) or (3, Hp, Wp) float tensor."""
    if rgb.dim() == 4 and rgb.shape[0] == 1:
        rgb = rgb[0]
    if rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"expected RGB as (1, 3, H, W) or (3, H, W), got {tuple(rgb.shape)}")
    dtype_tag(rgb.dtype)
    return rgb


# --------------------------------------------------------------------------------------------------
# Torch references (any device; the CPU path and the kernels' test oracle). Same fp32 operations in
# the same order as the kernels, so they agree to the last bit up to library rounding of ties.


def yuv420_to_rgb_torch(
    y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, padded_hw: tuple[int, int],
    dtype: torch.dtype = torch.float32, spec: YuvSpec = BT601,
) -> torch.Tensor:  # fmt: skip
    """Reference decode: planes -> a new (1, 3, Hp, Wp) tensor of ``dtype``, zeros outside the picture."""
    h, w = _check_planes(y, u, v)
    hp, wp = padded_hw
    if hp < h or wp < w:
        raise ValueError(f"padded size {padded_hw} is smaller than the picture {(h, w)}")
    y_off, y_scale, c_scale, r_cr, g_cb, g_cr, b_cb = spec.decode_coefficients()
    cb_full = u.repeat_interleave(2, 0).repeat_interleave(2, 1)[:h, :w]
    cr_full = v.repeat_interleave(2, 0).repeat_interleave(2, 1)[:h, :w]
    yv = (y.float() - y_off) * y_scale
    cb = (cb_full.float() - 128.0) * c_scale
    cr = (cr_full.float() - 128.0) * c_scale
    r = (yv + r_cr * cr).clamp(0.0, 1.0)
    g = (yv - g_cb * cb - g_cr * cr).clamp(0.0, 1.0)
    b = (yv + b_cb * cb).clamp(0.0, 1.0)
    out = torch.zeros((1, 3, hp, wp), dtype=dtype, device=y.device)
    out[0, :, :h, :w] = torch.stack((r, g, b)).to(dtype)
    return out


def rgb_to_yuv420_torch(
    rgb: torch.Tensor, height: int, width: int, spec: YuvSpec = BT601
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reference encode: the top-left ``height`` x ``width`` of planar RGB -> new (Y, U, V) uint8 planes."""
    planes = _rgb_planes(rgb)
    if planes.shape[1] < height or planes.shape[2] < width:
        raise ValueError(f"RGB {tuple(planes.shape)} is smaller than the picture {(height, width)}")
    kr, kg, kb, y_off, y_range, cu, cv = spec.encode_coefficients()
    r, g, b = (planes[i, :height, :width].float().clamp(0.0, 1.0) for i in range(3))

    def quantize(x: torch.Tensor) -> torch.Tensor:
        return x.round().clamp(0.0, 255.0).to(torch.uint8)

    y = quantize(y_off + y_range * (kr * r + kg * g + kb * b))
    hc, wc = chroma_size(height, width)

    def block_sum(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The kernel's order: ((x00 + x01) + x10) + x11, missing pixels of odd edges adding nothing.
        padded = torch.zeros((2 * hc, 2 * wc), dtype=torch.float32, device=x.device)
        padded[:height, :width] = x
        total = padded[0::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 0::2] + padded[1::2, 1::2]
        present = torch.zeros_like(padded)
        present[:height, :width] = 1.0
        count = present[0::2, 0::2] + present[0::2, 1::2] + present[1::2, 0::2] + present[1::2, 1::2]
        return total, count

    sr, count = block_sum(r)
    sg, _ = block_sum(g)
    sb, _ = block_sum(b)
    inv = 1.0 / count
    ar, ag, ab = sr * inv, sg * inv, sb * inv
    ya = kr * ar + kg * ag + kb * ab
    u = quantize(128.0 + cu * (ab - ya))
    v = quantize(128.0 + cv * (ar - ya))
    return y, u, v


# --------------------------------------------------------------------------------------------------
# Public conversions: the CuPy kernel on CUDA when it can run, the reference otherwise.


def _check_decode(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, out: torch.Tensor) -> tuple[int, int]:
    h, w = _check_planes(y, u, v)
    if out.dim() != 4 or out.shape[:2] != (1, 3) or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous (1, 3, Hp, Wp) tensor, got {tuple(out.shape)}")
    if out.device != y.device:
        raise ValueError(f"out is on {out.device} but the planes are on {y.device}")
    if out.shape[2] < h or out.shape[3] < w:
        raise ValueError(f"out {tuple(out.shape)} is smaller than the picture {(h, w)}")
    dtype_tag(out.dtype)
    return h, w


def yuv420_to_rgb(
    y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, out: torch.Tensor, spec: YuvSpec = BT601
) -> torch.Tensor:
    """Decode 4:2:0 planes into ``out`` (1, 3, Hp, Wp), fp16/fp32, contiguous; returns ``out``.

    The picture lands in the top-left H x W of ``out`` and every other
    element is set to 0, in one pass (``out`` may be reused frame after
    frame, e.g. as a CUDA-graph input).
    """
    if _use_kernels(y):
        return _yuv420_to_rgb_on(_kernels, y, u, v, out, spec)
    _check_decode(y, u, v, out)
    out.copy_(yuv420_to_rgb_torch(y, u, v, (out.shape[2], out.shape[3]), out.dtype, spec))
    return out


def _yuv420_to_rgb_on(
    kernels: CupyKernels, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, out: torch.Tensor, spec: YuvSpec
) -> torch.Tensor:
    h, w = _check_decode(y, u, v, out)
    hp, wp = out.shape[2], out.shape[3]
    args = (
        y, u, v, np.int64(y.stride(0)), np.int64(u.stride(0)), np.int64(v.stride(0)), np.int64(u.stride(1)),
        np.int32(h), np.int32(w), np.int32(hp), np.int32(wp), out,
        *(np.float32(c) for c in spec.decode_coefficients()),
    )  # fmt: skip
    kernels.launch(f"yuv420_to_rgb_{dtype_tag(out.dtype)}", y.device, hp * wp, args)
    return out


def nv12_to_rgb(y: torch.Tensor, uv: torch.Tensor, out: torch.Tensor, spec: YuvSpec = BT601) -> torch.Tensor:
    """Decode NV12 (Y plane, interleaved (hc, 2*wc) UV plane) into ``out``; see :func:`yuv420_to_rgb`."""
    u, v = nv12_chroma(uv)
    return yuv420_to_rgb(y, u, v, out, spec)


def _check_encode(
    rgb: torch.Tensor, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, int, int]:
    h, w = _check_planes(y, u, v)
    planes = _rgb_planes(rgb)
    if planes.shape[1] < h or planes.shape[2] < w or planes.device != y.device:
        raise ValueError(f"RGB {tuple(planes.shape)} on {planes.device} cannot fill {h}x{w} planes on {y.device}")
    return planes, h, w


def rgb_to_yuv420(rgb: torch.Tensor, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, spec: YuvSpec = BT601) -> None:
    """Encode the top-left H x W of planar RGB (H, W from ``y``) into the given uint8 planes, in place."""
    if _use_kernels(y):
        _rgb_to_yuv420_on(_kernels, rgb, y, u, v, spec)
        return
    planes, h, w = _check_encode(rgb, y, u, v)
    ry, ru, rv = rgb_to_yuv420_torch(planes, h, w, spec)
    y.copy_(ry)
    u.copy_(ru)
    v.copy_(rv)


def _rgb_to_yuv420_on(
    kernels: CupyKernels, rgb: torch.Tensor, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, spec: YuvSpec
) -> None:
    planes, h, w = _check_encode(rgb, y, u, v)
    if planes.stride(2) != 1:
        planes = planes.contiguous()
    hc, wc = chroma_size(h, w)
    args = (
        planes, np.int64(planes.stride(0)), np.int64(planes.stride(1)), np.int32(h), np.int32(w),
        y, u, v, np.int64(y.stride(0)), np.int64(u.stride(0)), np.int64(v.stride(0)), np.int64(u.stride(1)),
        *(np.float32(c) for c in spec.encode_coefficients()),
    )  # fmt: skip
    kernels.launch(f"rgb_to_yuv420_{dtype_tag(planes.dtype)}", y.device, hc * wc, args)


def rgb_to_nv12(rgb: torch.Tensor, y: torch.Tensor, uv: torch.Tensor, spec: YuvSpec = BT601) -> None:
    """Encode planar RGB into NV12 planes (Y, interleaved UV), in place; see :func:`rgb_to_yuv420`."""
    u, v = nv12_chroma(uv)
    rgb_to_yuv420(rgb, y, u, v, spec)
