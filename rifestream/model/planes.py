"""OpenCV operations on frames held as numpy planes: the CPU fast paths' building blocks.

Frames are (C, H, W) float32 planes (a CPU tensor's memory, seen by numpy without a copy);
flows are (H, W, 2) float32 arrays, the layout ``cv2.remap`` takes as a map. Every call here is
threaded by OpenCV or cheap; none is a torch op (see :mod:`rifestream.model.lite_cpu` for why).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np


@functools.lru_cache(maxsize=8)
def pixel_grid(h: int, w: int) -> np.ndarray:
    """Each pixel's (x, y) as an (h, w, 2) float32 array, read only: ``pixel_grid + flow`` is a
    ``cv2.remap`` map (a stream has one or two grids)."""
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    grid = np.stack((gx, gy), axis=2)
    grid.flags.writeable = False
    return grid


def pool(img: np.ndarray, level: int) -> np.ndarray:
    """(C, H, W) planes area-averaged by ``level``: ``avg_pool2d`` (rows and columns past the last
    whole block dropped). The planes are resized as one (C·H, W) image: no block straddles two
    planes, and one call costs less than C. An even level above 2 is taken as halvings: OpenCV's
    halving has a vector path its other factors lack (640x360 by 4: 0.09 against 0.21 ms), and the
    blocks are the same."""
    if level > 2 and level % 2 == 0:
        return pool(pool(img, 2), level // 2)
    c, h, w = img.shape
    hs, ws = h // level, w // level
    stacked = np.ascontiguousarray(img[:, : hs * level, : ws * level]).reshape(c * hs * level, ws * level)
    return cv2.resize(stacked, (ws, c * hs), interpolation=cv2.INTER_AREA).reshape(c, hs, ws)


#: Rec. 601 luma weights of (R, G, B): the grey image DIS and the motion search see.
LUMA = (0.299, 0.587, 0.114)


def luma(img: np.ndarray) -> np.ndarray:
    """The (H, W) luma of (3, H, W) RGB planes, as OpenCV's threaded weighted sums (a new array)."""
    r, g, b = (np.ascontiguousarray(plane) for plane in img)
    return cv2.scaleAdd(b, LUMA[2], cv2.addWeighted(r, LUMA[0], g, LUMA[1], 0.0))


def direction(pair: np.ndarray, k: int) -> np.ndarray:
    """Flow ``k`` of an (h, w, 4) pair of flows (0: F(0→1), 1: F(1→0)) as a new contiguous (h, w, 2)
    float32 array. Each flow vector is read as one complex64 number, so numpy copies whole 8-byte
    elements instead of gathering two floats of every four (0.02 against 0.26 ms at 320x180)."""
    pair = np.ascontiguousarray(pair, dtype=np.float32)
    vectors = np.ascontiguousarray(pair.view(np.complex64)[..., k])
    return vectors.view(np.float32).reshape(*pair.shape[:2], 2)


def scale_flow(flow: np.ndarray, sx: float, sy: float | None = None) -> np.ndarray:
    """An (h, w, 2) flow or (h, w, 4) pair of flows with each x component times ``sx`` and each y
    component times ``sy`` (default ``sx``), as a new float32 array: one ``cv2.multiply`` with a
    per-channel scalar (numpy's broadcast over a last axis of 2 costs 20x more)."""
    sy = sx if sy is None else sy
    return cv2.multiply(np.ascontiguousarray(flow, dtype=np.float32), (sx, sy, sx, sy))  # a scalar per channel


def resize_flow(flow: np.ndarray, h: int, w: int, times: float = 1.0) -> np.ndarray:
    """An (h0, w0, 2) flow (or an (h0, w0, 4) pair of them) in pixels of its grid, resized bilinearly
    to (h, w), its values rescaled to the new grid and multiplied by ``times`` (on the smaller grid:
    resizing is linear). A new array."""
    h0, w0 = flow.shape[:2]
    scaled = scale_flow(flow, w / w0 * times, h / h0 * times)
    if (h0, w0) == (h, w):
        return scaled
    return cv2.resize(scaled, (w, h), interpolation=cv2.INTER_LINEAR)


def upsample(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    """One plane resized bilinearly to (h, w) (half-pixel centres, as ``align_corners=False``)."""
    return cv2.resize(np.ascontiguousarray(plane), (w, h), interpolation=cv2.INTER_LINEAR)


#: ``cv2.remap``'s interpolation for each sampling mode (the names ``grid_sample`` gives them).
INTERPOLATIONS = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}

# A pixel predicted from its row's (or column's) neighbours 1 and 3 px away, as each kernel samples
# the point halfway between two pixels 2 px apart: OpenCV's cubic (a = -0.75) and the linear one.
_LINEAR_HALF = np.array([[0.5, 0.0, 0.5]], np.float32)
_CUBIC_HALF = np.array([[-0.09375, 0.0, 0.59375, 0.0, 0.59375, 0.0, -0.09375]], np.float32)
#: The plane :func:`cubic_ratio` reads of an RGB frame: green, most of its luma.
GREEN = 1
#: Every this many rows (and columns) :func:`cubic_ratio` reads: a quarter of the work, the same verdicts.
RATIO_STEP = 4


def cubic_ratio(plane: np.ndarray) -> float:
    """How well the cubic kernel fits an (H, W) float32 plane against the linear one: the squared error
    of predicting each pixel from its neighbours as the cubic kernel samples, over the linear kernel's
    (along every :data:`RATIO_STEP`-th row and column). Under 1 where the picture is smooth at the
    pixel scale (camera and film footage: 0.7 to 1.0); over 1 on rendered graphics with hard pixel
    edges (pixel-art textures, flat-shaded 3D: 1.05 to 1.09), where the cubic kernel overshoots every
    step and a bilinear sample is nearer the truth."""
    errors = []
    for kernel in (_LINEAR_HALF, _CUBIC_HALF):
        total = 0.0
        for lines, k in ((plane[::RATIO_STEP], kernel), (plane[:, ::RATIO_STEP], kernel.T)):
            lines = np.ascontiguousarray(lines)
            miss = cv2.subtract(cv2.filter2D(lines, -1, k, borderType=cv2.BORDER_REFLECT), lines)
            inner = miss[:, 3:-3] if k.shape[0] == 1 else miss[3:-3]  # the reflected border left out
            total += float(cv2.mean(cv2.multiply(inner, inner))[0])
        errors.append(total)
    return errors[1] / max(errors[0], 1e-12)


#: ``cv2.remap`` flag (OpenCV 4.10 and later): the map holds each pixel's motion, not where it
#: samples. The same samples as ``pixel_grid + flow``, without making that full-size map first.
RELATIVE = cv2.WARP_RELATIVE_MAP


def warp(planes: np.ndarray, flow: np.ndarray, dst: np.ndarray | None = None, mode: str = "bilinear") -> np.ndarray:
    """Backward warp of (C, H, W) planes by an (H, W, 2) flow, edge pixels repeated; ``mode``
    "bilinear" or "bicubic" (OpenCV's cubic kernel, a = −0.75, as ``grid_sample``'s)."""
    out = np.empty(planes.shape, dtype=np.float32) if dst is None else dst
    flow = np.ascontiguousarray(flow, dtype=np.float32)
    for k in range(planes.shape[0]):
        src = np.ascontiguousarray(planes[k])
        cv2.remap(src, flow, None, INTERPOLATIONS[mode] | RELATIVE, dst=out[k], borderMode=cv2.BORDER_REPLICATE)
    return out


def interleaved(planes: np.ndarray) -> np.ndarray:
    """(C, H, W) planes as one (H, W, C) image (C ≤ 4): a new array."""
    return cv2.merge(list(planes))


def warp_interleaved(image: np.ndarray, flow: np.ndarray, mode: str = "bilinear") -> np.ndarray:
    """:func:`warp` of an (H, W, C) image (C ≤ 4), a new array: one ``cv2.remap`` for every channel,
    which finds each sample's position and weights once (three channels bicubic at 640x360: 1.3 ms,
    against 1.9 for three planes; the same values)."""
    flow = np.ascontiguousarray(flow, dtype=np.float32)
    return cv2.remap(image, flow, None, INTERPOLATIONS[mode] | RELATIVE, borderMode=cv2.BORDER_REPLICATE)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^−x) in place, with OpenCV's threaded exp."""
    cv2.exp(np.negative(x, out=x), dst=x)
    x += 1.0
    return cv2.divide(1.0, x, dst=x)
