"""Fast synthetic triplets for the CPU model: camera pans, moving layers, motion blur, overlays.

:mod:`rifestream.train.synthetic` renders scenes with their true flows through
``grid_sample``, which costs about a second per triplet on a loaded 2-core CPU; the
CPU model needs no flow truth (its flow comes from DIS), so these scenes are drawn
with OpenCV affine warps instead, some fifty times faster. What they add to real
footage is what the shared clips lack: large motion (pans of 20–60 px per frame and
layers up to ``max_motion`` px between the two end frames), occlusion, zoom and
rotation, motion blur, brightness changes and fixed text/HUD overlays that do not move
with the scene (as in games and broadcasts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np


def _texture(size: tuple[int, int], rng: np.random.Generator, photos: Sequence[np.ndarray]) -> np.ndarray:
    """An (h, w, 3) uint8 texture: a crop of a real frame (resized) or coloured multi-octave noise."""
    h, w = size
    if photos and rng.random() < 0.75:
        src = photos[int(rng.integers(len(photos)))]
        sh, sw, _ = src.shape
        k = float(rng.uniform(0.6, 1.6))
        ch, cw = min(sh, max(8, int(h / k))), min(sw, max(8, int(w / k)))
        y, x = int(rng.integers(sh - ch + 1)), int(rng.integers(sw - cw + 1))
        crop = src[y : y + ch, x : x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=cv2.INTER_LINEAR)
    tex = np.zeros((h, w, 3), np.float32)
    amp = 1.0
    for cells in (2, 4, 8, 16, 32, 64)[: int(rng.integers(3, 7))]:
        noise = rng.random((cells + 1, cells + 1, 3), dtype=np.float32)
        tex += amp * cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
        amp *= float(rng.uniform(0.4, 0.8))
    tex -= tex.min(axis=(0, 1))
    tex /= np.maximum(tex.max(axis=(0, 1)), 1e-6)
    return (tex * 255).clip(0, 255).astype(np.uint8)


def _mosaic(size: tuple[int, int], rng: np.random.Generator, photos: Sequence[np.ndarray]) -> np.ndarray:
    """An (h, w, 3) background tiled with crops of the photos at their own scale (full detail, hard edges)."""
    h, w = size
    out = np.zeros((h, w, 3), np.uint8)
    y = 0
    while y < h:
        rows = int(rng.integers(120, 300))
        x = 0
        while x < w:
            cols = int(rng.integers(160, 400))
            src = photos[int(rng.integers(len(photos)))]
            ch, cw = min(rows, src.shape[0], h - y), min(cols, src.shape[1], w - x)
            sy, sx = int(rng.integers(src.shape[0] - ch + 1)), int(rng.integers(src.shape[1] - cw + 1))
            out[y : y + ch, x : x + cw] = src[sy : sy + ch, sx : sx + cw]
            x += cw
        y += rows
    return out


def _blob(size: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size) float alpha in [0, 1]: an irregular soft-edged shape or a rounded rectangle."""
    a = np.zeros((size, size), np.float32)
    c = size / 2
    if rng.random() < 0.4:
        w, h = rng.uniform(0.3, 0.48, 2) * size
        cv2.rectangle(a, (int(c - w), int(c - h)), (int(c + w), int(c + h)), 1.0, -1)
    else:
        angles = np.sort(rng.uniform(0, 2 * math.pi, int(rng.integers(5, 12))))
        radii = rng.uniform(0.2, 0.48, len(angles)) * size
        pts = np.stack((c + radii * np.cos(angles), c + radii * np.sin(angles)), 1).astype(np.int32)
        cv2.fillPoly(a, [pts], 1.0)
    return cv2.GaussianBlur(a, (0, 0), float(rng.uniform(0.5, 1.5)))


def _affine(centre: np.ndarray, shift: np.ndarray, angle: float, zoom: float, origin: np.ndarray) -> np.ndarray:
    """2x3 matrix mapping layer pixels (centred at ``origin``) to image pixels: rotate, zoom, then place."""
    cos, sin = math.cos(angle) * zoom, math.sin(angle) * zoom
    m = np.array([[cos, -sin, 0.0], [sin, cos, 0.0]])
    m[:, 2] = centre + shift - m[:, :2] @ origin
    return m


class Scene:
    """One random scene: a background pan with slight zoom and spin, up to three moving layers, maybe
    motion blur, a fixed text overlay and a brightness drift. ``frame(tau)`` renders it at time ``tau``,
    where one unit of time moves the background by ``max_pan`` px at most and a layer by
    ``max_motion`` px at most; ``t0`` is the time the parameters are defined at (rendered exactly).
    ``turn`` scales the zoom, rotation and brightness rates (a clip of many units wants them small)."""

    def __init__(
        self,
        size: tuple[int, int],
        rng: np.random.Generator,
        photos: Sequence[np.ndarray] = (),
        max_motion: float = 90.0,
        max_pan: float = 60.0,
        t0: float = 0.0,
        min_pan: float = 0.0,
        layers: tuple[int, int] = (0, 4),
        mosaic: bool = False,
        turn: float = 1.0,
    ) -> None:
        h, w = size
        self.size, self.t0 = size, t0
        self.blur = rng.random() < 0.35  # exposure: each frame averages sub-frames over a fraction of a unit
        self.exposure = float(rng.uniform(0.2, 0.6)) if self.blur else 0.0
        margin = int(max_pan * 1.2) + 16
        self.bg = (_mosaic if mosaic and photos else _texture)((h + 2 * margin, w + 2 * margin), rng, photos)
        pan_dir = rng.uniform(0, 2 * math.pi)
        speed = min_pan + (max_pan - min_pan) * rng.random() ** 0.8
        self.pan = np.array([math.cos(pan_dir), math.sin(pan_dir)]) * speed
        self.bg_zoom = float(rng.uniform(-0.06, 0.06)) * turn
        self.bg_spin = float(rng.uniform(-0.03, 0.03)) * turn
        self.layers = []
        for _ in range(int(rng.integers(*layers))):
            side = int(rng.uniform(0.2, 0.7) * min(h, w))
            d = rng.uniform(0, 2 * math.pi)
            self.layers.append(
                (
                    _texture((side, side), rng, photos),
                    _blob(side, rng),
                    rng.uniform(0, 1, 2) * (w, h),
                    np.array([math.cos(d), math.sin(d)]) * max_motion * rng.random() ** 0.7,
                    float(rng.uniform(-math.pi, math.pi)),
                    float(rng.uniform(-0.4, 0.4)) * turn,
                    float(rng.uniform(-0.25, 0.25)) * turn,
                )
            )
        self.overlay = None
        if rng.random() < 0.3:  # a HUD / caption that stays put while the scene moves
            overlay = np.zeros((h, w, 3), np.uint8)
            mask = np.zeros((h, w), np.uint8)
            for _ in range(int(rng.integers(1, 4))):
                letters = rng.choice(list("ABCDEFGHKMNPRSTUVWXYZ0123456789 :"), int(rng.integers(3, 10)))
                org = (int(rng.integers(0, w // 2)), int(rng.integers(16, h)))
                scale = float(rng.uniform(0.4, 1.2))
                colour = tuple(int(c) for c in rng.integers(0, 256, 3))
                cv2.putText(overlay, "".join(letters), org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 2, cv2.LINE_AA)
                cv2.putText(mask, "".join(letters), org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 2, cv2.LINE_AA)
            self.overlay = (overlay.astype(np.float32), mask.astype(np.float32)[..., None] / 255.0)
        self.gain = float(rng.uniform(-0.08, 0.08)) * turn if rng.random() < 0.2 else 0.0

    def _render(self, tau: float) -> np.ndarray:
        h, w = self.size
        s = tau - self.t0
        origin = np.array([self.bg.shape[1] / 2, self.bg.shape[0] / 2])
        m = _affine(np.array([w / 2, h / 2]), self.pan * s, self.bg_spin * s, math.exp(self.bg_zoom * s), origin)
        img = cv2.warpAffine(self.bg, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        img = img.astype(np.float32)
        for tex, alpha, pos, vel, ang, spin, zoom in self.layers:
            side = tex.shape[0]
            m = _affine(pos, vel * s, ang + spin * s, math.exp(zoom * s), np.array([side / 2, side / 2]))
            lt = cv2.warpAffine(tex, m, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32)
            la = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR)[..., None]
            img = img * (1 - la) + lt * la
        return img * (1.0 + self.gain * s)

    def frame(self, tau: float) -> np.ndarray:
        """The (H, W, 3) uint8 RGB frame at ``tau``."""
        if not self.blur:
            img = self._render(tau)
        else:
            img = np.mean([self._render(tau + self.exposure * (k / 2 - 0.5)) for k in range(3)], axis=0)
        if self.overlay is not None:
            img = img * (1 - self.overlay[1]) + self.overlay[0] * self.overlay[1]
        return img.clip(0, 255).round().astype(np.uint8)


def make_scene_triplet(
    size: int,
    rng: np.random.Generator,
    photos: Sequence[np.ndarray] = (),
    t: float | None = None,
    max_motion: float = 90.0,
    max_pan: float = 60.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """One (img0, frame at t, img1, t) of ``size``×``size`` uint8 RGB; displacements are between img0 and img1."""
    if t is None:
        t = 0.5 if rng.random() < 0.6 else float(rng.uniform(0.15, 0.85))
    scene = Scene((size, size), rng, photos, max_motion, max_pan, t0=t)
    return scene.frame(0.0), scene.frame(t), scene.frame(1.0), t
