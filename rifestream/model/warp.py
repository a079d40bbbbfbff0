"""Backward warp: sample ``img`` at ``pixel + flow`` (bilinear or bicubic, border padding, align_corners=True).

One function, three backends with the same semantics: ``torch.nn.functional.grid_sample``
(the default everywhere); backend ``"opencv"``, ``cv2.remap`` for fp32 CPU tensors outside
autograd, which a caller names where speed on a CPU matters more than the last bit (it is
several times faster than CPU ``grid_sample``; OpenCV quantises sampling positions to 1/32
pixel, so it differs from the reference by at most a 64th of the local gradient); and, opted
in with backend ``"cupy"``, a CuPy kernel for CUDA tensors outside autograd
(``rifestream.model.warp_cupy``). The CuPy kernels have not yet
run on a GPU, so they are never the default (``CUPY_KERNELS_BY_DEFAULT``, the one place that
says so; the engine's ``cupy_kernels`` setting follows it). Sampling coordinates are
always computed in fp32, also for fp16 images (fp16 coordinates are off by
about half a pixel at 1920 wide).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from rifestream.model import planes

log = logging.getLogger(__name__)

Backend = Literal["torch", "cupy", "opencv"]
Mode = Literal["bilinear", "bicubic"]

CUPY_KERNELS_BY_DEFAULT = False
"""Whether the CuPy kernels are the default on CUDA: not until a GPU run has verified them."""

_MAX_GRIDS = 16  # distinct (device, H, W) kept, least recently used dropped first; a stream uses a few
_base_grids: OrderedDict[tuple[str, int, int], torch.Tensor] = OrderedDict()
_backend: Backend = "cupy" if CUPY_KERNELS_BY_DEFAULT else "torch"
_cupy_unavailable_logged = False


def set_backend(backend: Backend) -> None:
    """The warp backend of calls that name none (a model whose ``warp_backend`` is None), process-wide."""
    global _backend
    if backend not in ("torch", "cupy", "opencv"):
        raise ValueError(f"unknown warp backend {backend!r}; expected torch, cupy or opencv")
    _backend = backend


def default_backend() -> Backend:
    return _backend


def base_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """The identity sampling grid (1, H, W, 2) in normalised coordinates, fp32, cached per shape.

    A CUDA graph captured through this function reads the grid by address: whoever captures keeps
    the grids it used alive (:func:`cached_grids`), since the cache may drop them later.
    """
    key = (str(device), h, w)
    grid = _base_grids.get(key)
    if grid is None:
        xs = torch.linspace(-1.0, 1.0, w, device=device, dtype=torch.float32)
        ys = torch.linspace(-1.0, 1.0, h, device=device, dtype=torch.float32)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).unsqueeze(0)
        while len(_base_grids) >= _MAX_GRIDS:
            _base_grids.popitem(last=False)
        _base_grids[key] = grid
    else:
        _base_grids.move_to_end(key)
    return grid


def cached_grids(device: torch.device) -> list[torch.Tensor]:
    """The grids cached now for ``device`` (a CUDA-graph capture holds on to these)."""
    return [g for (dev, _, _), g in _base_grids.items() if dev == str(device)]


def warp_torch(img: torch.Tensor, flow: torch.Tensor, mode: Mode = "bilinear") -> torch.Tensor:
    """Reference backend: ``grid_sample`` with fp32 coordinates."""
    _, _, h, w = img.shape
    f = flow.float()
    norm = torch.stack((f[:, 0] / ((w - 1.0) / 2.0), f[:, 1] / ((h - 1.0) / 2.0)), dim=-1)
    grid = base_grid(h, w, img.device) + norm
    src = img if img.dtype == torch.float32 else img.float()
    out = F.grid_sample(src, grid, mode=mode, padding_mode="border", align_corners=True)
    return out if img.dtype == torch.float32 else out.to(img.dtype)


def opencv_applies(backend: Backend, img: torch.Tensor, flow: torch.Tensor) -> bool:
    """Whether a warp runs ``cv2.remap``: backend "opencv", fp32 CPU tensors, no autograd."""
    if backend != "opencv" or img.device.type != "cpu" or img.dtype != torch.float32:
        return False
    return not (torch.is_grad_enabled() and (img.requires_grad or flow.requires_grad))


def warp_opencv(img: torch.Tensor, flow: torch.Tensor, mode: Mode = "bilinear") -> torch.Tensor:
    """``cv2.remap`` per image and channel plane (edge pixels repeated: border padding),
    through :func:`rifestream.model.planes.warp`.

    The maps are made without torch ops: torch's OpenMP workers spin for a while after each op and
    take the cores from the OpenCV threads that follow (the two full-size warps of a 640x360 frame
    took 4.7 ms after a torch add, 2.2 ms without)."""
    src = img.contiguous()
    out = torch.empty_like(src)
    for i in range(img.shape[0]):
        xy = np.ascontiguousarray(flow[i].detach().float().permute(1, 2, 0).numpy())
        planes.warp(src[i].numpy(), xy, dst=out[i].numpy(), mode=mode)
    return out


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


def kernel_applies(backend: Backend, device_type: str, dtypes: Iterable[torch.dtype], needs_grad: bool) -> bool:
    """Whether a warp runs the CuPy kernel: opted in (backend "cupy"), CUDA, fp16/fp32, no autograd.

    The whole dispatch decision, from plain facts, so that it is tested without a GPU: with the
    default backend ("torch") it is False on every device and CuPy is never imported.
    """
    if backend != "cupy" or device_type != "cuda" or needs_grad:
        return False
    return all(d in (torch.float16, torch.float32) for d in dtypes)


def _cupy_or_none(name: str, backend: Backend | None, *tensors: torch.Tensor):
    """The CuPy op to use for these tensors, or None for the torch op (see :func:`kernel_applies`)."""
    backend = _backend if backend is None else backend
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    if not kernel_applies(backend, tensors[0].device.type, (t.dtype for t in tensors), needs_grad):
        return None
    fn = _cupy_op(name)
    if fn is None:
        raise RuntimeError("warp backend 'cupy' was requested but CuPy cannot run here")
    return fn


def warp(
    img: torch.Tensor, flow: torch.Tensor, backend: Backend | None = None, mode: Mode = "bilinear"
) -> torch.Tensor:
    """Warp (N, C, H, W) ``img`` backwards by (N, 2, H, W) ``flow`` in pixels (``backend`` None: the
    default). ``mode`` "bicubic" runs on OpenCV or torch (the CuPy kernel is bilinear)."""
    if opencv_applies(_backend if backend is None else backend, img, flow):
        return warp_opencv(img, flow, mode)
    fn = _cupy_or_none("warp", backend, img, flow) if mode == "bilinear" else None
    return fn(img, flow) if fn is not None else warp_torch(img, flow, mode)


def warp_blend(
    img0: torch.Tensor,
    img1: torch.Tensor,
    flow: torch.Tensor,
    mask_logits: torch.Tensor,
    backend: Backend | None = None,
) -> torch.Tensor:
    """Both backward warps by (N, 4, H, W) ``flow`` and the sigmoid-mask blend (one fused kernel with CuPy)."""
    fn = _cupy_or_none("warp_blend", backend, img0, img1, flow, mask_logits)
    return fn(img0, img1, flow, mask_logits) if fn is not None else warp_blend_torch(img0, img1, flow, mask_logits)
