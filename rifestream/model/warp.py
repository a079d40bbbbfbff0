"""Backward warp: sample ``img`` at ``pixel + flow`` (bilinear, border padding, align_corners=True).

One function, two backends with identical semantics: a CuPy kernel for CUDA
tensors outside autograd (``rifestream.model.warp_cupy``) and
``torch.nn.functional.grid_sample`` everywhere else. Sampling coordinates are
always computed in fp32, also for fp16 images (fp16 coordinates are off by
about half a pixel at 1920 wide).
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "cupy"]

_MAX_GRIDS = 16  # distinct (device, H, W) kept; a stream uses one or two
_base_grids: dict[tuple[str, int, int], torch.Tensor] = {}
_backend: Backend = "auto"
_cupy_unavailable_logged = False


def set_backend(backend: Backend) -> None:
    """Force a warp backend for the whole process ("auto" picks CuPy on CUDA when importable)."""
    global _backend
    if backend not in ("auto", "torch", "cupy"):
        raise ValueError(f"unknown warp backend {backend!r}; expected auto, torch or cupy")
    _backend = backend


def base_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """The identity sampling grid (1, H, W, 2) in normalised coordinates, fp32, cached per shape."""
    key = (str(device), h, w)
    grid = _base_grids.get(key)
    if grid is None:
        xs = torch.linspace(-1.0, 1.0, w, device=device, dtype=torch.float32)
        ys = torch.linspace(-1.0, 1.0, h, device=device, dtype=torch.float32)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).unsqueeze(0)
        if len(_base_grids) >= _MAX_GRIDS:
            _base_grids.pop(next(iter(_base_grids)))
        _base_grids[key] = grid
    return grid


def warp_torch(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Reference backend: ``grid_sample`` with fp32 coordinates."""
    _, _, h, w = img.shape
    f = flow.float()
    norm = torch.stack((f[:, 0] / ((w - 1.0) / 2.0), f[:, 1] / ((h - 1.0) / 2.0)), dim=-1)
    grid = base_grid(h, w, img.device) + norm
    src = img if img.dtype == torch.float32 else img.float()
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out if img.dtype == torch.float32 else out.to(img.dtype)


def warp_blend_torch(
    img0: torch.Tensor, img1: torch.Tensor, flow: torch.Tensor, mask_logits: torch.Tensor
) -> torch.Tensor:
    """Reference of the fused final step: ``w0 * m + w1 * (1 - m)`` with ``m = sigmoid(mask)``,
    flow[:, 0:2] warping img0 and flow[:, 2:4] img1; fp32 arithmetic, one rounding to the images' dtype."""
    w0 = warp_torch(img0.float(), flow[:, 0:2])
    w1 = warp_torch(img1.float(), flow[:, 2:4])
    m = torch.sigmoid(mask_logits.float())
    return (w0 * m + w1 * (1 - m)).to(img0.dtype)


def _cupy_op(name: str):
    """The CuPy backend's function ``name``, or None (logged once) when CuPy cannot run here."""
    global _cupy_unavailable_logged
    try:
        from rifestream.model import warp_cupy

        if warp_cupy.available():
            return getattr(warp_cupy, name)
        reason = warp_cupy.unavailable_reason()
    except ImportError as exc:  # pragma: no cover - depends on the install
        reason = str(exc)
    if not _cupy_unavailable_logged:
        log.warning("CuPy warp kernel unavailable (%s); using torch grid_sample", reason)
        _cupy_unavailable_logged = True
    return None


def _cupy_or_none(name: str, *tensors: torch.Tensor):
    """The CuPy op to use for these tensors: CUDA, fp16/fp32, outside autograd, backend not forced to torch."""
    if _backend == "torch" or not tensors[0].is_cuda:
        return None
    if any(t.dtype not in (torch.float16, torch.float32) for t in tensors):
        return None
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return None
    fn = _cupy_op(name)
    if fn is None and _backend == "cupy":
        raise RuntimeError("warp backend 'cupy' was requested but CuPy cannot run here")
    return fn


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp (N, C, H, W) ``img`` backwards by (N, 2, H, W) ``flow`` in pixels."""
    fn = _cupy_or_none("warp", img, flow)
    return fn(img, flow) if fn is not None else warp_torch(img, flow)


def warp_blend(img0: torch.Tensor, img1: torch.Tensor, flow: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """Both backward warps by (N, 4, H, W) ``flow`` and the sigmoid-mask blend, fused on CUDA."""
    fn = _cupy_or_none("warp_blend", img0, img1, flow, mask_logits)
    return fn(img0, img1, flow, mask_logits) if fn is not None else warp_blend_torch(img0, img1, flow, mask_logits)
