"""The CuPy kernels (warp, fused warp + blend, YUV <-> RGB) against their torch references.

Three levels, so that the kernels are checked even where no GPU exists:
1. CPU, always: a numpy emulation of each kernel's per-thread body (the same
   fp32 formulas and flat-index arithmetic, run for every thread of the
   launch grid, the tail threads past the end included) against the torch
   reference; and the colour references against each other and against PyAV.
2. CPU, where a compiler exists: the kernel source itself compiled for the
   device (nvcc --cubin, NVRTC through CuPy), and compiled as plain C++ in
   which every kernel becomes a function running its whole grid; the
   launchers' own argument marshalling (``_warp_on``, ``_yuv420_to_rgb_on``,
   ...) drives that build through a stand-in for ``CupyKernels``, against the
   torch references.
3. GPU (``@pytest.mark.gpu``, skipped without CUDA or CuPy): the kernels on
   the device against the torch references, fp32 within 1e-5, fp16 within
   1e-3, at 37x53 and 1080x1920, on torch's stream and inside a CUDA graph.

Warp tolerances: ``warp_torch`` reaches the sample point through normalised
grid coordinates, the kernels directly as ``x + flow``; at 1920 wide one fp32
ulp of the coordinate is 1.2e-4 px, so the 1e-5 bound is asserted on smooth
images (gradient about 0.01 per pixel, where a one-pixel or a weight error
still costs 1e-2) and noise images get a bound from the coordinate precision.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from rifestream.engine import cuda_color as cc
from rifestream.model import warp as warp_mod
from rifestream.model import warp_cupy
from rifestream.model.warp import warp_torch

F32 = np.float32
BLOCK = warp_cupy.BLOCK_SIZE


# --------------------------------------------------------------------------------------------------
# Inputs


def smooth_images(n: int, c: int, h: int, w: int, seed: int, slope: float = 0.02) -> torch.Tensor:
    """Values in [0.1, 0.9] varying by at most about ``slope`` * 0.57 per pixel, different per image and channel."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.arange(h, dtype=torch.float64).view(1, 1, h, 1)
    xs = torch.arange(w, dtype=torch.float64).view(1, 1, 1, w)
    a = (torch.rand(n, c, 1, 1, generator=g, dtype=torch.float64) * 2 - 1) * slope
    b = (torch.rand(n, c, 1, 1, generator=g, dtype=torch.float64) * 2 - 1) * slope
    phase = torch.rand(n, c, 1, 1, generator=g, dtype=torch.float64) * 6.28
    return (0.5 + 0.4 * torch.sin(a * xs + b * ys + phase)).float()


def noise_images(n: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def flows(n: int, k: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Fractional flows of up to a third of the frame, so that many samples hit the border."""
    g = torch.Generator().manual_seed(seed)
    f = (torch.rand(n, k, h, w, generator=g) * 2 - 1) * (max(h, w) / 3)
    f[:, :, ::7, ::5] = torch.round(f[:, :, ::7, ::5])  # some integer flows: taps on pixel centres
    return f


def mask_logits(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, 1, h, w, generator=g) * 3
    m[:, :, 0, :3] = torch.tensor([-200.0, 200.0, 0.0])  # saturated sigmoid on both sides
    return m


def in_gamut_yuv(h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Y, U, V planes whose RGB lies strictly inside [0, 1] for BT.601 and BT.709, limited and full range."""
    g = torch.Generator().manual_seed(seed)
    hc, wc = cc.chroma_size(h, w)
    y = torch.randint(70, 171, (h, w), generator=g, dtype=torch.uint8)
    u = torch.randint(100, 157, (hc, wc), generator=g, dtype=torch.uint8)
    v = torch.randint(100, 157, (hc, wc), generator=g, dtype=torch.uint8)
    return y, u, v


def any_yuv(h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Planes over the whole 8-bit range (decoded RGB clips)."""
    g = torch.Generator().manual_seed(seed)
    hc, wc = cc.chroma_size(h, w)
    return (
        torch.randint(0, 256, (h, w), generator=g, dtype=torch.uint8),
        torch.randint(0, 256, (hc, wc), generator=g, dtype=torch.uint8),
        torch.randint(0, 256, (hc, wc), generator=g, dtype=torch.uint8),
    )


def pitched(plane: torch.Tensor, extra: int) -> torch.Tensor:
    """The same plane stored with ``extra`` bytes of row padding (as decoders' line sizes have)."""
    h, w = plane.shape
    store = torch.full((h, w + extra), 77, dtype=plane.dtype, device=plane.device)
    store[:, :w] = plane
    return store[:, :w]


def nv12_of(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.stack((u, v), dim=-1).reshape(u.shape[0], 2 * u.shape[1]).contiguous()


# --------------------------------------------------------------------------------------------------
# Level 1: numpy emulation of the per-thread bodies (same formulas and flat indexing as the CUDA source)


def grid_threads(work_items: int) -> np.ndarray:
    """Every thread index of the launch: ceil(work / BLOCK) blocks of BLOCK threads."""
    blocks = (work_items + BLOCK - 1) // BLOCK
    return np.arange(blocks * BLOCK, dtype=np.int64)


def load(mem: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """A checked gather: the emulated kernel may never read outside its buffer."""
    assert offsets.size == 0 or (offsets.min() >= 0 and offsets.max() < mem.size), "out-of-bounds read"
    return mem[offsets].astype(F32)


class Writes:
    """An output buffer that records how often each element is written (each must be written once)."""

    def __init__(self, size: int, dtype: np.dtype) -> None:
        self.mem = np.full(size, np.nan if np.dtype(dtype).kind == "f" else 0, dtype=dtype)
        self.count = np.zeros(size, dtype=np.int64)

    def store(self, offsets: np.ndarray, values: np.ndarray) -> None:
        assert offsets.size == 0 or (offsets.min() >= 0 and offsets.max() < self.mem.size), "out-of-bounds write"
        self.mem[offsets] = values.astype(self.mem.dtype)  # fp32 -> fp16 rounds to nearest even, as cvt.rn
        np.add.at(self.count, offsets, 1)

    def check_each_written_once(self) -> None:
        assert (self.count == 1).all(), f"writes per element: min {self.count.min()}, max {self.count.max()}"


@dataclass
class Tap:
    o00: np.ndarray
    o01: np.ndarray
    o10: np.ndarray
    o11: np.ndarray
    w00: np.ndarray
    w01: np.ndarray
    w10: np.ndarray
    w11: np.ndarray


def bilinear_tap(sx: np.ndarray, sy: np.ndarray, h: int, w: int) -> Tap:
    sx = np.fmin(np.fmax(sx, F32(0)), F32(w - 1))  # fminf/fmaxf: NaN -> the other operand
    sy = np.fmin(np.fmax(sy, F32(0)), F32(h - 1))
    x0 = np.floor(sx).astype(np.int64)
    y0 = np.floor(sy).astype(np.int64)
    x1 = np.where(x0 + 1 < w, x0 + 1, w - 1)
    y1 = np.where(y0 + 1 < h, y0 + 1, h - 1)
    fx = sx - x0.astype(F32)
    fy = sy - y0.astype(F32)
    one = F32(1)
    return Tap(
        y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1,
        (one - fx) * (one - fy), fx * (one - fy), (one - fx) * fy, fx * fy,
    )  # fmt: skip


def sample(mem: np.ndarray, base: np.ndarray, t: Tap) -> np.ndarray:
    return (
        t.w00 * load(mem, base + t.o00) + t.w01 * load(mem, base + t.o01)
        + t.w10 * load(mem, base + t.o10) + t.w11 * load(mem, base + t.o11)
    )  # fmt: skip


def flat(t: torch.Tensor) -> tuple[np.ndarray, int]:
    """The storage a strided view reads (as numpy) and the view's element offset into it."""
    base = t.untyped_storage()
    whole = torch.empty(0, dtype=t.dtype).set_(base, 0, (base.nbytes() // t.element_size(),))
    return whole.numpy(), t.storage_offset()


def emulate_warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``warp_thread`` for every thread of the grid: img (N, C, H, W) and flow (N, 2, H, W) strided views."""
    n, c, h, w = img.shape
    img_mem, img_off = flat(img)
    flow_mem, flow_off = flat(flow)
    hw = h * w
    out = Writes(n * c * hw, img_mem.dtype)
    idx = grid_threads(n * hw)
    idx = idx[idx < n * hw]  # the tail threads return before any memory access
    b = idx // hw
    p = idx - b * hw
    y = p // w
    x = p - y * w
    fl = flow_off + b * flow.stride(0) + p
    t = bilinear_tap(x.astype(F32) + load(flow_mem, fl), y.astype(F32) + load(flow_mem, fl + flow.stride(1)), h, w)
    for ch in range(c):
        out.store(b * c * hw + p + ch * hw, sample(img_mem, img_off + b * img.stride(0) + ch * img.stride(1), t))
    out.check_each_written_once()
    return torch.from_numpy(out.mem).view(n, c, h, w)


def emulate_warp_blend(img0: torch.Tensor, img1: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``warp_blend_thread`` for every thread of the grid."""
    n, c, h, w = img0.shape
    (m0, o0), (m1, o1), (fm, fo), (mm, mo) = flat(img0), flat(img1), flat(flow), flat(mask)
    hw = h * w
    out = Writes(n * c * hw, m0.dtype)
    idx = grid_threads(n * hw)
    idx = idx[idx < n * hw]
    b = idx // hw
    p = idx - b * hw
    y = p // w
    x = p - y * w
    fl = fo + b * flow.stride(0) + p
    fsc = flow.stride(1)
    xf, yf = x.astype(F32), y.astype(F32)
    t0 = bilinear_tap(xf + load(fm, fl), yf + load(fm, fl + fsc), h, w)
    t1 = bilinear_tap(xf + load(fm, fl + 2 * fsc), yf + load(fm, fl + 3 * fsc), h, w)
    with np.errstate(over="ignore"):  # expf(200) = inf gives m = 0, as on the device
        m = F32(1) / (F32(1) + np.exp(-load(mm, mo + b * mask.stride(0) + p)))
    one_minus_m = F32(1) - m
    for ch in range(c):
        v0 = sample(m0, o0 + b * img0.stride(0) + ch * img0.stride(1), t0)
        v1 = sample(m1, o1 + b * img1.stride(0) + ch * img1.stride(1), t1)
        out.store(b * c * hw + p + ch * hw, v0 * m + v1 * one_minus_m)
    out.check_each_written_once()
    return torch.from_numpy(out.mem).view(n, c, h, w)


def clamp01(v: np.ndarray) -> np.ndarray:
    return np.fmin(np.fmax(v, F32(0)), F32(1))


def quantize_u8(v: np.ndarray) -> np.ndarray:
    return np.fmin(np.fmax(np.rint(v), F32(0)), F32(255)).astype(np.uint8)  # rintf: ties to even


def emulate_yuv420_to_rgb(
    y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, hp: int, wp: int, dtype: np.dtype, spec: cc.YuvSpec
) -> torch.Tensor:
    """``yuv420_to_rgb_thread`` for every thread of the grid (planes may be pitched or NV12 views)."""
    h, w = y.shape
    (ym, yo), (um, uo), (vm, vo) = flat(y), flat(u), flat(v)
    y_off, y_scale, c_scale, r_cr, g_cb, g_cr, b_cb = (F32(k) for k in spec.decode_coefficients())
    plane = hp * wp
    out = Writes(3 * plane, dtype)
    idx = grid_threads(plane)
    idx = idx[idx < plane]
    py = idx // wp
    px = idx - py * wp
    inside = (py < h) & (px < w)
    r = np.zeros(idx.shape, F32)
    g = np.zeros(idx.shape, F32)
    b = np.zeros(idx.shape, F32)
    qy, qx = py[inside], px[inside]
    co = (qx >> 1) * u.stride(1)
    yv = (load(ym, yo + qy * y.stride(0) + qx) - y_off) * y_scale
    cb = (load(um, uo + (qy >> 1) * u.stride(0) + co) - F32(128)) * c_scale
    cr = (load(vm, vo + (qy >> 1) * v.stride(0) + co) - F32(128)) * c_scale
    r[inside] = clamp01(yv + r_cr * cr)
    g[inside] = clamp01(yv - g_cb * cb - g_cr * cr)
    b[inside] = clamp01(yv + b_cb * cb)
    out.store(idx, r)
    out.store(plane + idx, g)
    out.store(2 * plane + idx, b)
    out.check_each_written_once()
    return torch.from_numpy(out.mem).view(1, 3, hp, wp)


def emulate_rgb_to_yuv420(rgb: torch.Tensor, h: int, w: int, spec: cc.YuvSpec, nv12: bool = False):
    """``rgb_to_yuv420_thread`` for every thread of the grid; rgb is (3, Hp, Wp). Returns (Y, U, V)."""
    rm, ro = flat(rgb)
    kr, kg, kb, y_off, y_range, cu, cv = (F32(k) for k in spec.encode_coefficients())
    hc, wc = cc.chroma_size(h, w)
    y_out = Writes(h * w, np.uint8)
    c_out = Writes(hc * 2 * wc, np.uint8)  # U and V share one buffer: NV12-interleaved or planar halves
    c_step, u_base, v_base, c_pitch = (2, 0, 1, 2 * wc) if nv12 else (1, 0, hc * wc, wc)
    idx = grid_threads(hc * wc)
    idx = idx[idx < hc * wc]
    cy = idx // wc
    cx = idx - cy * wc
    sums = [np.zeros(idx.shape, F32) for _ in range(3)]
    count = np.zeros(idx.shape, np.int64)
    for dy in range(2):
        for dx in range(2):
            py, px = 2 * cy + dy, 2 * cx + dx
            ok = (py < h) & (px < w)
            o = ro + py[ok] * rgb.stride(1) + px[ok]
            r, g, b = (clamp01(load(rm, o + k * rgb.stride(0))) for k in range(3))
            y_out.store(py[ok] * w + px[ok], quantize_u8(y_off + y_range * (kr * r + kg * g + kb * b)))
            for s, val in zip(sums, (r, g, b), strict=True):
                s[ok] = s[ok] + val
            count[ok] += 1
    inv = F32(1) / count.astype(F32)
    ar, ag, ab = (s * inv for s in sums)
    ya = kr * ar + kg * ag + kb * ab
    c_out.store(u_base + cy * c_pitch + cx * c_step, quantize_u8(F32(128) + cu * (ab - ya)))
    c_out.store(v_base + cy * c_pitch + cx * c_step, quantize_u8(F32(128) + cv * (ar - ya)))
    y_out.check_each_written_once()
    c_out.check_each_written_once()
    chroma = torch.from_numpy(c_out.mem)
    if nv12:
        u, v = cc.nv12_chroma(chroma.view(hc, 2 * wc))
    else:
        u, v = chroma[: hc * wc].view(hc, wc), chroma[hc * wc :].view(hc, wc)
    return torch.from_numpy(y_out.mem).view(h, w), u, v


WARP_CASES = [(1, 3, 37, 53), (2, 4, 9, 16), (1, 1, 2, 7), (3, 2, 5, 2)]  # warp_torch needs H, W >= 2


@pytest.mark.parametrize("shape", WARP_CASES)
@pytest.mark.parametrize("img_dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("flow_dtype", [torch.float32, torch.float16])
def test_emulated_warp_kernel_matches_grid_sample(shape, img_dtype, flow_dtype):
    n, c, h, w = shape
    img = smooth_images(n, c, h, w, seed=1).to(img_dtype)
    flow4 = flows(n, 4, h, w, seed=2).to(flow_dtype)
    for flow in (flow4[:, 0:2], flow4[:, 2:4]):  # strided slices, read in place as the kernel does
        got = emulate_warp(img, flow)
        ref = warp_torch(img, flow)
        assert got.dtype == ref.dtype == img_dtype
        tol = 1e-5 if img_dtype == torch.float32 else 1e-3
        assert (got.float() - ref.float()).abs().max().item() <= tol


def test_emulated_warp_on_noise_is_within_coordinate_precision():
    n, c, h, w = 2, 3, 37, 53
    img = noise_images(n, c, h, w, seed=3)
    flow = flows(n, 2, h, w, seed=4)
    err = (emulate_warp(img, flow) - warp_torch(img, flow)).abs().max().item()
    assert err <= 1e-4  # a few fp32 ulps of a coordinate near 52 times a gradient up to 1
    shifted = emulate_warp(img, flow + 1.0)  # a one-pixel error would be caught by far
    assert (shifted - warp_torch(img, flow)).abs().max().item() > 0.3


def test_emulated_warp_never_reads_outside_for_extreme_flows():
    img = smooth_images(1, 2, 6, 7, seed=5)
    flow = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 3.5, -0.25])
    flow = flow.repeat(1, 2, 6, 1)
    out = emulate_warp(img, flow)  # `load` asserts every offset is inside the buffer
    assert torch.isfinite(out).all()
    finite = torch.isfinite(flow).all(dim=1, keepdim=True).expand_as(flow)
    masked = torch.where(finite, flow, torch.zeros_like(flow))
    agree = (out - warp_torch(img, masked)).abs()[:, :, :, 3:]
    assert agree.max().item() <= 1e-5  # the finite columns agree with grid_sample


@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 3, 8, 12), (1, 4, 2, 5)])
@pytest.mark.parametrize("img_dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("flow_dtype", [torch.float32, torch.float16])
def test_emulated_warp_blend_kernel_matches_reference(shape, img_dtype, flow_dtype):
    n, c, h, w = shape
    img0 = smooth_images(n, c, h, w, seed=6).to(img_dtype)
    img1 = smooth_images(n, c, h, w, seed=7).to(img_dtype)
    block_out = torch.cat((flows(n, 4, h, w, seed=8), mask_logits(n, h, w, seed=9)), dim=1).to(flow_dtype)
    flow, mask = block_out[:, 0:4], block_out[:, 4:5]  # slices of one tensor, as IFNet hands them over
    got = emulate_warp_blend(img0, img1, flow, mask)
    ref = warp_mod.warp_blend_torch(img0, img1, flow, mask)
    assert got.dtype == ref.dtype == img_dtype
    tol = 1e-5 if img_dtype == torch.float32 else 1e-3
    assert (got.float() - ref.float()).abs().max().item() <= tol
    # and the reference is IFNet's own final step
    m = torch.sigmoid(mask.float())
    ifnet = warp_torch(img0.float(), flow[:, 0:2]) * m + warp_torch(img1.float(), flow[:, 2:4]) * (1 - m)
    assert (ref.float() - ifnet).abs().max().item() <= tol


SPECS = [cc.BT601, cc.BT709, cc.YuvSpec("bt601", full_range=True), cc.YuvSpec("bt709", full_range=True)]


@pytest.mark.parametrize("size", [(37, 53), (6, 8), (1, 1), (3, 2)])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.matrix}-{'full' if s.full_range else 'limited'}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_emulated_yuv_to_rgb_kernel_matches_reference(size, spec, dtype):
    h, w = size
    y, u, v = any_yuv(h, w, seed=10)
    hp, wp = h + 11, w + 3
    ref = cc.yuv420_to_rgb_torch(y, u, v, (hp, wp), dtype, spec)
    np_dtype = np.float32 if dtype == torch.float32 else np.float16
    planar = emulate_yuv420_to_rgb(pitched(y, 5), pitched(u, 3), pitched(v, 1), hp, wp, np_dtype, spec)
    nv12 = nv12_of(u, v)
    interleaved = emulate_yuv420_to_rgb(y, *cc.nv12_chroma(pitched(nv12, 4)), hp, wp, np_dtype, spec)
    for got in (planar, interleaved):
        assert torch.equal(got, ref)  # same fp32 operations in the same order: bit-identical


@pytest.mark.parametrize("size", [(37, 53), (6, 8), (1, 1), (3, 2), (2, 5)])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.matrix}-{'full' if s.full_range else 'limited'}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_emulated_rgb_to_yuv_kernel_matches_reference(size, spec, dtype):
    h, w = size
    g = torch.Generator().manual_seed(11)
    rgb = (torch.rand(3, h + 7, w + 2, generator=g) * 1.2 - 0.1).to(dtype)  # out-of-range values clamp
    ref = cc.rgb_to_yuv420_torch(rgb, h, w, spec)
    for nv12 in (False, True):
        got = emulate_rgb_to_yuv420(rgb, h, w, spec, nv12=nv12)
        for a, b in zip(got, ref, strict=True):
            assert torch.equal(a, b)


# --------------------------------------------------------------------------------------------------
# Level 2: the CUDA source through real compilers, and run on the CPU as C++


SOURCES = {"warp": warp_cupy.KERNEL_SOURCE, "color": cc.KERNEL_SOURCE}
KERNEL_NAMES = {
    "warp": [f"{k}_{i}_{f}" for k in ("warp", "warp_blend") for i in ("f32", "f16") for f in ("f32", "f16")],
    "color": ["yuv420_to_rgb_f32", "yuv420_to_rgb_f16", "rgb_to_yuv420_f32", "rgb_to_yuv420_f16"],
}


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
@pytest.mark.parametrize("which", sorted(SOURCES))
def test_kernel_source_compiles_with_nvcc_for_hopper(which, tmp_path):
    src = tmp_path / f"{which}.cu"
    src.write_text(SOURCES[which])
    cubin = tmp_path / f"{which}.cubin"
    options = [o for o in warp_cupy.NVRTC_OPTIONS]
    run = subprocess.run(
        ["nvcc", "--cubin", "-arch=sm_90", *options, str(src), "-o", str(cubin)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "warning" not in run.stderr.lower(), run.stderr
    image = cubin.read_bytes()
    for name in KERNEL_NAMES[which]:
        assert name.encode() + b"\0" in image, f"{name} missing from the cubin"


def _cupy_nvrtc():
    """CuPy's NVRTC compile function, usable without a GPU, or a skip."""
    compiler = pytest.importorskip("cupy.cuda.compiler", reason="CuPy not installed")
    try:
        compiler._get_nvrtc_version()
    except Exception as exc:  # noqa: BLE001 - no libnvrtc here
        pytest.skip(f"NVRTC library not loadable: {exc}")
    return compiler


@pytest.mark.parametrize("which", sorted(SOURCES))
def test_kernel_source_compiles_with_nvrtc_as_cupy_does(which, monkeypatch):
    compiler = _cupy_nvrtc()
    # CuPy asks the device for its architecture; without a device, name it (H100: sm_90).
    monkeypatch.setattr(compiler, "_get_arch_for_options_for_nvrtc", lambda arch=None: (f"-arch=sm_{arch}", "cubin"))
    image, _ = compiler.compile_using_nvrtc(SOURCES[which], options=warp_cupy.NVRTC_OPTIONS, arch="90")
    for name in KERNEL_NAMES[which]:
        assert name.encode() + b"\0" in image


HOST_PRELUDE = r"""
#include <math.h>
#include <string.h>
#define __host__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
static inline float rs_host_half_to_float(unsigned short h) { _Float16 v; memcpy(&v, &h, 2); return (float)v; }
static inline unsigned short rs_host_float_to_half(float f) {
    _Float16 v = (_Float16)f;  /* round to nearest even, as cvt.rn.f16.f32 */
    unsigned short h;
    memcpy(&h, &v, 2);
    return h;
}
"""


@pytest.fixture(scope="module")
def host_build(tmp_path_factory):
    """The kernel sources compiled as C++ for this CPU: each kernel a C function running its whole grid."""
    cxx = shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler (g++ or clang++) on PATH")
    color_only = cc.KERNEL_SOURCE[len(warp_cupy.COMMON_SOURCE) :]  # both share COMMON_SOURCE: include it once
    d = tmp_path_factory.mktemp("host_build")
    (d / "kernels.cpp").write_text(HOST_PRELUDE + warp_cupy.KERNEL_SOURCE + color_only)
    lib = d / "kernels.so"
    run = subprocess.run(
        [cxx, "-std=c++17", "-O1", "-ffp-contract=off", "-fPIC", "-shared", str(d / "kernels.cpp"), "-o", str(lib)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if run.returncode != 0 and "_Float16" in run.stderr:
        pytest.skip(f"{cxx} has no _Float16: {run.stderr[:200]}")
    assert run.returncode == 0, run.stderr
    return ctypes.CDLL(str(lib))


class HostKernels:
    """Stands in for ``CupyKernels``: the same ``launch`` call, run by the host build of the same source."""

    _CTYPES = {np.int32: ctypes.c_int, np.int64: ctypes.c_longlong, np.float32: ctypes.c_float}

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.launched: list[str] = []

    def launch(self, name: str, device: torch.device, threads: int, args: tuple) -> None:
        assert device.type == "cpu"
        c_args = [ctypes.c_longlong(len(grid_threads(threads)))]  # the grid's thread count, tail included
        for a in args:
            if isinstance(a, torch.Tensor):
                c_args.append(ctypes.c_void_p(a.data_ptr()))
            else:
                c_args.append(self._CTYPES[type(a)](a))  # only the scalar types the kernels declare
        getattr(self.lib, name)(*c_args)
        self.launched.append(name)


@pytest.fixture
def host(host_build) -> HostKernels:
    return HostKernels(host_build)


@pytest.mark.parametrize("img_dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("flow_dtype", [torch.float32, torch.float16])
def test_launcher_and_kernel_source_on_cpu_match_torch_warp_and_blend(host, img_dtype, flow_dtype):
    n, c, h, w = 2, 3, 37, 53
    img0 = smooth_images(n, c, h, w, seed=12).to(img_dtype)
    img1 = smooth_images(n, c, h, w, seed=15).to(img_dtype)
    block_out = torch.cat((flows(n, 4, h, w, seed=13), mask_logits(n, h, w, seed=14)), dim=1).to(flow_dtype)
    flow, mask = block_out[:, 0:4], block_out[:, 4:5]
    tol = 1e-5 if img_dtype == torch.float32 else 1e-3
    warped = warp_cupy._warp_on(host, img0, flow[:, 2:4])
    assert warped.dtype == img_dtype
    assert (warped.float() - warp_torch(img0, flow[:, 2:4]).float()).abs().max().item() <= tol
    assert torch.equal(warped, emulate_warp(img0, flow[:, 2:4]))  # the emulation is the source, op for op
    blended = warp_cupy._warp_blend_on(host, img0, img1, flow, mask)
    ref = warp_mod.warp_blend_torch(img0, img1, flow, mask)
    assert (blended.float() - ref.float()).abs().max().item() <= tol
    tags = f"{warp_cupy.dtype_tag(img_dtype)}_{warp_cupy.dtype_tag(flow_dtype)}"
    assert host.launched == [f"warp_{tags}", f"warp_blend_{tags}"]


@pytest.mark.parametrize("spec", [cc.BT601, cc.YuvSpec("bt709", full_range=True)], ids=["bt601", "bt709-full"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_launcher_and_kernel_source_on_cpu_match_torch_colour(host, spec, dtype):
    h, w, hp, wp = 37, 53, 64, 64
    y, u, v = any_yuv(h, w, seed=16)
    ref = cc.yuv420_to_rgb_torch(y, u, v, (hp, wp), dtype, spec)
    for planes in ((pitched(y, 3), *cc.nv12_chroma(pitched(nv12_of(u, v), 6))), (y, pitched(u, 3), pitched(v, 7))):
        rgb = torch.full((1, 3, hp, wp), float("nan"), dtype=dtype)  # the padding must be written too
        cc._yuv420_to_rgb_on(host, *planes, rgb, spec)
        assert torch.equal(rgb, ref)

    src = (torch.rand(1, 3, hp, wp, generator=torch.Generator().manual_seed(17)) * 1.2 - 0.1).to(dtype)
    hc, wc = cc.chroma_size(h, w)
    y2 = pitched(torch.zeros(h, w, dtype=torch.uint8), 3)
    uv2 = pitched(torch.zeros(hc, 2 * wc, dtype=torch.uint8), 5)
    cc._rgb_to_yuv420_on(host, src, y2, *cc.nv12_chroma(uv2), spec)
    planar = [pitched(torch.zeros(hc, wc, dtype=torch.uint8), extra) for extra in (2, 9)]
    cc._rgb_to_yuv420_on(host, src[0, :, 1:, 2:], torch.zeros(h, w, dtype=torch.uint8), *planar, spec)
    ry, ru, rv = cc.rgb_to_yuv420_torch(src, h, w, spec)
    assert torch.equal(y2, ry) and torch.equal(cc.nv12_chroma(uv2)[0], ru) and torch.equal(cc.nv12_chroma(uv2)[1], rv)
    _, su, sv = cc.rgb_to_yuv420_torch(src[0, :, 1:, 2:], h, w, spec)  # an offset view of the RGB
    assert torch.equal(planar[0], su) and torch.equal(planar[1], sv)
    tag = warp_cupy.dtype_tag(dtype)
    assert host.launched == [f"yuv420_to_rgb_{tag}"] * 2 + [f"rgb_to_yuv420_{tag}"] * 2


# --------------------------------------------------------------------------------------------------
# The colour references: inverses of each other, and what FFmpeg (PyAV) does


@pytest.mark.parametrize("size", [(37, 53), (64, 96), (1, 1), (2, 3), (5, 2)])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.matrix}-{'full' if s.full_range else 'limited'}")
def test_decode_then_encode_gives_the_planes_back_exactly(size, spec):
    h, w = size
    y, u, v = in_gamut_yuv(h, w, seed=18)
    rgb = cc.yuv420_to_rgb_torch(y, u, v, (h + 5, w + 7), torch.float32, spec)
    picture = rgb[0, :, :h, :w]
    assert picture.min() > 0 and picture.max() < 1  # nothing clipped
    assert (rgb[0, :, h:, :] == 0).all() and (rgb[0, :, :, w:] == 0).all()  # padding is zeros
    for got, want in zip(cc.rgb_to_yuv420_torch(rgb, h, w, spec), (y, u, v), strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.matrix}-{'full' if s.full_range else 'limited'}")
def test_encode_then_decode_is_within_the_rounding_bound(spec):
    """RGB whose chroma is constant over each 2x2 block survives 8-bit 4:2:0 up to the quantisation step."""
    h, w = 36, 54
    y_off, y_scale, c_scale, r_cr, g_cb, g_cr, b_cb = spec.decode_coefficients()
    g = torch.Generator().manual_seed(19)
    yv = torch.rand(h, w, generator=g, dtype=torch.float64) * 0.5 + 0.25
    cb = ((torch.rand(h // 2, w // 2, generator=g, dtype=torch.float64) - 0.5) * 0.2).repeat_interleave(2, 0)
    cr = ((torch.rand(h // 2, w // 2, generator=g, dtype=torch.float64) - 0.5) * 0.2).repeat_interleave(2, 0)
    cb, cr = cb.repeat_interleave(2, 1), cr.repeat_interleave(2, 1)
    rgb = torch.stack((yv + r_cr * cr, yv - g_cb * cb - g_cr * cr, yv + b_cb * cb)).float()
    assert rgb.min() > 0 and rgb.max() < 1
    back = cc.yuv420_to_rgb_torch(*cc.rgb_to_yuv420_torch(rgb, h, w, spec), (h, w), torch.float32, spec)[0]
    # half a code of Y and of each chroma, through the decode matrix
    bound = 0.5 * y_scale + 0.5 * c_scale * max(r_cr, g_cb + g_cr, b_cb) + 1e-6
    err = (back - rgb).abs().max().item()
    assert err <= bound
    assert bound < 1.7 / 255


def _pyav_yuv420p_frame(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
    av = pytest.importorskip("av", reason="PyAV not installed")
    h, w = y.shape
    buf = torch.cat((y.reshape(-1), u.reshape(-1), v.reshape(-1))).numpy().reshape(h * 3 // 2, w)
    return av.VideoFrame.from_ndarray(buf, format="yuv420p")


def test_reference_decode_matches_ffmpeg_default_bt601_limited():
    h, w = 64, 96
    y, u, v = any_yuv(h, w, seed=20)
    frame = _pyav_yuv420p_frame(y, u, v)
    ffmpeg = frame.to_ndarray(format="rgb24").astype(np.int32)

    def ours(spec: cc.YuvSpec) -> np.ndarray:
        rgb = cc.yuv420_to_rgb_torch(y, u, v, (h, w), torch.float32, spec)[0]
        return (rgb * 255).round().to(torch.int32).permute(1, 2, 0).numpy()

    diff = np.abs(ours(cc.BT601) - ffmpeg)
    assert diff.max() <= 3 and diff.mean() < 1.0  # swscale's fast path has ~8-bit precision tables
    for other in (cc.BT709, cc.YuvSpec("bt601", full_range=True)):
        assert np.abs(ours(other) - ffmpeg).max() > 15  # the check tells the conventions apart


def test_nv12_interleave_order_matches_ffmpeg():
    """U first, then V. FFmpeg's NV12 -> RGB path filters chroma (its yuv420p path does not), so the chroma
    here is smooth: the upsampling methods then differ by a few levels, swapped planes by far more."""
    av = pytest.importorskip("av", reason="PyAV not installed")
    h, w = 64, 96
    y, _, _ = any_yuv(h, w, seed=24)
    cy, cx = np.mgrid[0 : h // 2, 0 : w // 2]
    u = torch.from_numpy(np.round(128 + 60 * np.sin(cx / 9 + cy / 13)).astype(np.uint8))
    v = torch.from_numpy(np.round(128 + 60 * np.cos(cx / 11 - cy / 7)).astype(np.uint8))
    out = torch.empty(1, 3, h, w)
    cc.nv12_to_rgb(*cc.frame_planes(torch.cat((y.reshape(-1), nv12_of(u, v).reshape(-1))), "nv12", h, w), out)
    ours = (out[0] * 255).round().to(torch.int32).permute(1, 2, 0).numpy()

    def ffmpeg(first: torch.Tensor, second: torch.Tensor) -> np.ndarray:
        packed = torch.cat((y.reshape(-1), nv12_of(first, second).reshape(-1))).numpy().reshape(h * 3 // 2, w)
        return av.VideoFrame.from_ndarray(packed, format="nv12").to_ndarray(format="rgb24").astype(np.int32)

    same = np.abs(ours - ffmpeg(u, v))
    assert same.max() <= 8 and same.mean() < 2
    assert np.abs(ours - ffmpeg(v, u)).max() > 100


def test_reference_encode_matches_ffmpeg_area_filter_bt601_limited():
    av = pytest.importorskip("av", reason="PyAV not installed")
    h, w = 64, 96
    y, u, v = in_gamut_yuv(h, w, seed=21)
    rgb = cc.yuv420_to_rgb_torch(y, u, v, (h, w), torch.float32, cc.BT601)[0]
    rgb8 = (rgb * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    frame = av.VideoFrame.from_ndarray(rgb8, format="rgb24")
    packed = frame.reformat(format="yuv420p", interpolation="AREA").to_ndarray().reshape(-1)
    fy, fu, fv = cc.frame_planes(torch.from_numpy(packed.copy()), "yuv420p", h, w)
    oy, ou, ov = cc.rgb_to_yuv420_torch(torch.from_numpy(rgb8).permute(2, 0, 1).float() / 255, h, w, cc.BT601)
    for a, b in ((oy, fy), (ou, fu), (ov, fv)):
        assert (a.int() - b.int()).abs().max().item() <= 1


def test_frame_planes_follow_pyav_packed_layout():
    h, w = 6, 8
    y, u, v = any_yuv(h, w, seed=22)
    frame = _pyav_yuv420p_frame(y, u, v)
    packed = torch.from_numpy(frame.to_ndarray().reshape(-1).copy())
    for a, b in zip(cc.frame_planes(packed, "yuv420p", h, w), (y, u, v), strict=True):
        assert torch.equal(a, b)
    yn, uvn = cc.frame_planes(torch.cat((y.reshape(-1), nv12_of(u, v).reshape(-1))), "nv12", h, w)
    assert torch.equal(cc.nv12_chroma(uvn)[0], u) and torch.equal(cc.nv12_chroma(uvn)[1], v)
    assert cc.frame_nbytes("yuv420p", 37, 53) == 37 * 53 + 2 * 19 * 27


def test_public_conversions_fall_back_to_the_references_on_cpu():
    h, w = 37, 53
    y, u, v = any_yuv(h, w, seed=23)
    out = torch.full((1, 3, 64, 64), 5.0)
    cc.nv12_to_rgb(y, nv12_of(u, v), out)
    assert torch.equal(out, cc.yuv420_to_rgb_torch(y, u, v, (64, 64)))
    yy = torch.zeros_like(y)
    uv = torch.zeros(u.shape[0], 2 * u.shape[1], dtype=torch.uint8)
    cc.rgb_to_nv12(out, yy, uv)
    ry, ru, rv = cc.rgb_to_yuv420_torch(out, h, w)
    assert torch.equal(yy, ry) and torch.equal(cc.nv12_chroma(uv)[0], ru) and torch.equal(cc.nv12_chroma(uv)[1], rv)
    with pytest.raises(ValueError, match="smaller than the picture"):
        cc.yuv420_to_rgb(y, u, v, torch.empty(1, 3, 32, 64))


def test_cupy_modules_import_and_explain_themselves_without_a_gpu():
    if warp_cupy.available():
        assert warp_cupy.unavailable_reason() is None
    else:
        assert warp_cupy.unavailable_reason()  # a reason the fallback warning can print
        assert cc.available() is False and cc.unavailable_reason()


def test_every_module_function_the_gpu_tests_call_exists():
    """The GPU tests cannot run here, but what they call can be checked: a name they use that the
    module lacks would fail every GPU case with AttributeError on the first GPU run."""
    import ast

    modules = {"warp_cupy": warp_cupy, "cc": cc, "warp_mod": warp_mod}
    used = {
        (node.value.id, node.attr)
        for node in ast.walk(ast.parse(open(__file__).read()))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
    }
    assert ("warp_mod", "warp_blend_torch") in used and len(used) > 10
    missing = sorted(f"{mod}.{attr}" for mod, attr in used if not hasattr(modules[mod], attr))
    assert missing == []


# --------------------------------------------------------------------------------------------------
# Level 3: on the GPU


def _require_kernels() -> None:
    """Skip without CUDA or CuPy; under RIFESTREAM_REQUIRE_GPU=1 (scripts/gpu_check.sh) fail instead."""
    missing = None
    if not torch.cuda.is_available():
        missing = "needs CUDA (PyTorch sees no CUDA device)"
    elif importlib.util.find_spec("cupy") is None:
        missing = "needs CuPy (pip install -e '.[cuda]')"
    elif not warp_cupy.available():
        missing = f"CuPy warp kernels unavailable: {warp_cupy.unavailable_reason()}"
    elif not cc.available():
        missing = f"CuPy colour kernels unavailable: {cc.unavailable_reason()}"
    if missing is None:
        return
    if os.environ.get("RIFESTREAM_REQUIRE_GPU") == "1":
        pytest.fail(missing)
    pytest.skip(missing)


GPU_SIZES = [(37, 53), (1080, 1920)]
TOL = {torch.float32: 1e-5, torch.float16: 1e-3}


@pytest.mark.gpu
@pytest.mark.parametrize("size", GPU_SIZES)
@pytest.mark.parametrize("img_dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("flow_dtype", [torch.float32, torch.float16])
def test_gpu_warp_matches_grid_sample(size, img_dtype, flow_dtype):
    _require_kernels()
    h, w = size
    img = smooth_images(2, 3, h, w, seed=30).cuda().to(img_dtype)
    flow4 = flows(2, 4, h, w, seed=31).cuda().to(flow_dtype)
    for flow in (flow4[:, 0:2], flow4[:, 2:4]):
        got = warp_cupy.warp(img, flow)
        ref = warp_torch(img, flow)
        assert got.dtype == img_dtype and got.shape == img.shape
        assert (got.float() - ref.float()).abs().max().item() <= TOL[img_dtype]


@pytest.mark.gpu
@pytest.mark.parametrize("size", GPU_SIZES)
def test_gpu_warp_on_noise_is_within_coordinate_precision(size):
    _require_kernels()
    h, w = size
    img = noise_images(1, 3, h, w, seed=32).cuda()
    flow = flows(1, 2, h, w, seed=33).cuda()
    ulp = float(np.spacing(np.float32(max(h, w))))  # one ulp of the largest coordinate
    err = (warp_cupy.warp(img, flow) - warp_torch(img, flow)).abs().max().item()
    assert err <= max(1e-4, 8 * ulp)  # torch's normalised-grid path is a few ulps off; 1 px costs ~0.3


@pytest.mark.gpu
@pytest.mark.parametrize("size", GPU_SIZES)
@pytest.mark.parametrize("img_dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("flow_dtype", [torch.float32, torch.float16])
def test_gpu_warp_blend_matches_reference(size, img_dtype, flow_dtype):
    _require_kernels()
    h, w = size
    img0 = smooth_images(1, 3, h, w, seed=34).cuda().to(img_dtype)
    img1 = smooth_images(1, 3, h, w, seed=35).cuda().to(img_dtype)
    block_out = torch.cat((flows(1, 4, h, w, seed=36), mask_logits(1, h, w, seed=37)), 1).cuda().to(flow_dtype)
    got = warp_cupy.warp_blend(img0, img1, block_out[:, 0:4], block_out[:, 4:5])
    ref = warp_mod.warp_blend_torch(img0, img1, block_out[:, 0:4], block_out[:, 4:5])
    assert got.dtype == img_dtype
    assert (got.float() - ref.float()).abs().max().item() <= TOL[img_dtype]


@pytest.mark.gpu
def test_gpu_warp_backend_dispatch_uses_the_kernel():
    _require_kernels()
    img = smooth_images(1, 3, 37, 53, seed=38).cuda()
    flow = flows(1, 2, 37, 53, seed=39).cuda()
    calls = []
    real = warp_cupy.warp

    def counted(*args):
        calls.append(args)
        return real(*args)

    warp_cupy.warp = counted
    try:
        got = warp_mod.warp(img, flow, backend="cupy")  # opted in: the kernel
        default = warp_mod.warp(img, flow)  # the default: torch ops
    finally:
        warp_cupy.warp = real
    assert len(calls) == 1
    assert (got - warp_torch(img, flow)).abs().max().item() <= 1e-5
    assert torch.equal(default, warp_torch(img, flow))


@pytest.mark.gpu
@pytest.mark.parametrize("size", GPU_SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "nv12"])
def test_gpu_decode_to_padded_rgb_matches_reference(size, dtype, pix_fmt):
    _require_kernels()
    h, w = size
    y, u, v = any_yuv(h, w, seed=40)
    ref = cc.yuv420_to_rgb_torch(y, u, v, (-(-h // 64) * 64, -(-w // 64) * 64), dtype)
    out = cc.padded_rgb(h, w, 64, dtype, torch.device("cuda"))
    out.fill_(float("nan"))  # the padding must be written, not assumed
    yd = pitched(y.cuda(), 64)
    if pix_fmt == "nv12":
        cc.nv12_to_rgb(yd, pitched(nv12_of(u, v).cuda(), 32), out)
    else:
        cc.yuv420_to_rgb(yd, pitched(u.cuda(), 16), v.cuda(), out)
    assert (out.cpu().float() - ref.float()).abs().max().item() <= TOL[dtype]


@pytest.mark.gpu
@pytest.mark.parametrize("size", GPU_SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "nv12"])
def test_gpu_encode_from_padded_rgb_matches_reference(size, dtype, pix_fmt):
    _require_kernels()
    h, w = size
    hc, wc = cc.chroma_size(h, w)
    rgb = (torch.rand(1, 3, h + 40, w + 24, generator=torch.Generator().manual_seed(41)) * 1.2 - 0.1).to(dtype)
    ref = cc.rgb_to_yuv420_torch(rgb, h, w)
    y = torch.empty(h, w, dtype=torch.uint8, device="cuda")
    if pix_fmt == "nv12":
        uv = torch.empty(hc, 2 * wc, dtype=torch.uint8, device="cuda")
        cc.rgb_to_nv12(rgb.cuda(), y, uv)
        got = (y, *cc.nv12_chroma(uv))
    else:
        u = torch.empty(hc, wc, dtype=torch.uint8, device="cuda")
        v = torch.empty(hc, wc, dtype=torch.uint8, device="cuda")
        cc.rgb_to_yuv420(rgb.cuda(), y, u, v)
        got = (y, u, v)
    for a, b in zip(got, ref, strict=True):
        diff = (a.cpu().int() - b.int()).abs()
        # same fp32 operations without FMA contraction: equal; a rounding tie may land one code apart
        assert diff.max().item() <= 1 and (diff > 0).float().mean().item() < 1e-4


@pytest.mark.gpu
def test_gpu_kernels_run_on_torch_stream_and_replay_in_a_cuda_graph():
    """Captured into a torch CUDA graph, the kernels re-read their inputs on every replay."""
    _require_kernels()
    h, w = 37, 53
    y, u, v = any_yuv(h, w, seed=42)
    yd, uvd = y.cuda(), nv12_of(u, v).cuda()
    rgb = torch.empty(1, 3, 64, 64, device="cuda")
    flow = flows(1, 4, 64, 64, seed=43).cuda()
    mask = mask_logits(1, 64, 64, seed=44).cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up (module load, context) outside the capture, on a side stream
        cc.nv12_to_rgb(yd, uvd, rgb)
        warp_cupy.warp_blend(rgb, rgb.flip(-1), flow, mask)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        cc.nv12_to_rgb(yd, uvd, rgb)
        out = warp_cupy.warp_blend(rgb, rgb.flip(-1).contiguous(), flow, mask)
    for seed in (45, 46):
        y2, u2, v2 = any_yuv(h, w, seed=seed)
        yd.copy_(y2.cuda())
        uvd.copy_(nv12_of(u2, v2).cuda())
        graph.replay()
        torch.cuda.synchronize()
        expect_rgb = cc.yuv420_to_rgb_torch(y2, u2, v2, (64, 64)).cuda()
        expect = warp_mod.warp_blend_torch(expect_rgb, expect_rgb.flip(-1), flow, mask)
        assert (out - expect).abs().max().item() <= 1e-4  # noise images: coordinate precision, see above
