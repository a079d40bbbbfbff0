"""A moving test scene drawn in numpy: a textured background panning under moving shapes.

It stands in for a camera (the default job uses it) and gives tests exact
timestamps (frame k is at k / fps) and content with real motion: a detailed,
tileable background that pans a few pixels per frame, a ball on a Lissajous
path, a rotating bar and a square bouncing across. Each frame also carries its
index as a 16-bit block code in the bottom-left corner (``read_frame_index``),
which survives lossy encoding, so end-to-end tests can tell which source frame
an output frame came from.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

INDEX_BITS = 16
_TILE = 256  # background tile size (px); the texture repeats with this period
_PAN_PER_FRAME = (3, 1)  # background motion in px/frame (x, y)


def _tileable_texture(rng: np.random.Generator) -> np.ndarray:
    """A tileable RGB texture: color waves, smoothed noise and a grid, uint8 (TILE, TILE, 3)."""
    n = _TILE
    y, x = np.mgrid[0:n, 0:n].astype(np.float32) / n
    two_pi = 2 * np.pi
    base = np.stack(
        [
            0.5 + 0.25 * np.sin(two_pi * (2 * x + y)) + 0.1 * np.sin(two_pi * 7 * y),
            0.5 + 0.25 * np.sin(two_pi * (x - 3 * y) + 1.0) + 0.1 * np.cos(two_pi * 5 * x),
            0.5 + 0.25 * np.cos(two_pi * (3 * x + 2 * y) + 2.0),
        ],
        axis=-1,
    )
    noise = rng.random((n, n, 3), dtype=np.float32)
    for _ in range(2):  # box blur with wrap-around keeps the noise tileable
        noise = sum(np.roll(noise, (dy, dx), axis=(0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9
    tex = 0.75 * base + 0.6 * (noise - 0.5)
    grid = ((np.arange(n) % 32) < 2).astype(np.float32)
    tex *= 1 - 0.5 * np.maximum(grid[:, None], grid[None, :])[..., None]
    return (np.clip(tex, 0, 1) * 255).astype(np.uint8)


def _index_cell(width: int, height: int) -> int:
    """Side of one frame-index code cell in px."""
    return max(3, min(width // 40, height // 40))


class SyntheticScene:
    """Renders frame k of the scene at ``width``×``height`` as an RGB uint8 array."""

    def __init__(self, width: int, height: int, fps: Fraction, seed: int = 0) -> None:
        if width < 64 or height < 48:
            raise ValueError(f"test scene needs at least 64x48 pixels, got {width}x{height}")
        self.width, self.height, self.fps = width, height, Fraction(fps)
        tile = _tileable_texture(np.random.default_rng(seed))
        reps_y = -(-height // _TILE) + 1
        reps_x = -(-width // _TILE) + 1
        self._background = np.tile(tile, (reps_y, reps_x, 1))
        self._cell = _index_cell(width, height)

    def render(self, k: int) -> np.ndarray:
        w, h = self.width, self.height
        seconds = float(k / self.fps)
        ox = (k * _PAN_PER_FRAME[0]) % _TILE
        oy = (k * _PAN_PER_FRAME[1]) % _TILE
        img = self._background[oy : oy + h, ox : ox + w].copy()
        self._draw_ball(img, seconds)
        self._draw_bar(img, seconds)
        self._draw_square(img, seconds)
        self._draw_index(img, k)
        return img

    def _draw_ball(self, img: np.ndarray, s: float) -> None:
        h, w = img.shape[:2]
        r = max(6, h // 8)
        cx = w / 2 + (w / 2 - r - 2) * math.sin(2 * math.pi * s / 3.0)
        cy = h / 2 + (h / 2 - r - 2) * math.sin(2 * math.pi * s / 2.0)
        y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 1)
        x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        inside = d2 <= r * r
        stripes = ((xx - cx + yy - cy) // max(2, r // 4)) % 2 == 0  # stripes move with the ball
        patch = img[y0:y1, x0:x1]
        patch[inside & stripes] = (230, 60, 40)
        patch[inside & ~stripes] = (250, 200, 60)

    def _draw_bar(self, img: np.ndarray, s: float) -> None:
        h, w = img.shape[:2]
        cx, cy = w * 0.25, h * 0.5
        length, half_width = min(w, h) * 0.3, max(2, h // 40)
        angle = 2 * math.pi * s / 4.0
        c, sn = math.cos(angle), math.sin(angle)
        y0, y1 = max(0, int(cy - length)), min(h, int(cy + length) + 1)
        x0, x1 = max(0, int(cx - length)), min(w, int(cx + length) + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        along = (xx - cx) * c + (yy - cy) * sn
        across = -(xx - cx) * sn + (yy - cy) * c
        mask = (np.abs(along) <= length) & (np.abs(across) <= half_width)
        img[y0:y1, x0:x1][mask] = (40, 90, 230)

    def _draw_square(self, img: np.ndarray, s: float) -> None:
        h, w = img.shape[:2]
        side = max(8, h // 6)
        travel = w - side
        phase = (s / 2.5) % 2.0  # there and back in 5 s
        x0 = int(travel * (phase if phase <= 1 else 2 - phase))
        y0 = int(h * 0.7 - side / 2)
        img[y0 : y0 + side, x0 : x0 + side] = (60, 200, 90)
        img[y0 + side // 4 : y0 + 3 * side // 4, x0 + side // 4 : x0 + 3 * side // 4] = (250, 250, 250)

    def _draw_index(self, img: np.ndarray, k: int) -> None:
        c = self._cell
        h = img.shape[0]
        top = h - 2 * c
        img[top - c : h, 0 : (INDEX_BITS + 2) * c] = 128
        for bit in range(INDEX_BITS):
            value = 255 if (k >> bit) & 1 else 0
            img[top : top + c, (bit + 1) * c : (bit + 2) * c] = value


def read_frame_index(rgb: np.ndarray) -> int:
    """The frame index drawn by ``SyntheticScene`` (mod 2**16), read back from an RGB (or gray) frame.

    Reads the centre of each code cell, so it survives scaling-free lossy encoding.
    """
    h, w = rgb.shape[:2]
    cell = _index_cell(w, h)
    gray = rgb.mean(axis=-1) if rgb.ndim == 3 else rgb
    top = h - 2 * cell
    k = 0
    for bit in range(INDEX_BITS):
        y = top + cell // 2
        x = (bit + 1) * cell + cell // 2
        if gray[y, x] > 128:
            k |= 1 << bit
    return k
