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
    times = (0.0, t, 1.0)
    blur = rng.random() < 0.35  # exposure: each frame averages sub-frames over a fraction of the interval
    exposure = float(rng.uniform(0.2, 0.6)) if blur else 0.0

    # Background: a pan (often large), slight zoom and rotation.
    margin = int(max_pan * 1.2) + 16
    bg = _texture((size + 2 * margin, size + 2 * margin), rng, photos)
    pan_dir = rng.uniform(0, 2 * math.pi)
    pan = np.array([math.cos(pan_dir), math.sin(pan_dir)]) * max_pan * rng.random() ** 0.8
    bg_zoom = float(rng.uniform(-0.06, 0.06))
    bg_spin = float(rng.uniform(-0.03, 0.03))
    origin_bg = np.array([bg.shape[1] / 2, bg.shape[0] / 2])
    centre = np.array([size / 2, size / 2])

    layers = []
    for _ in range(int(rng.integers(0, 4))):
        side = int(rng.uniform(0.2, 0.7) * size)
        tex = _texture((side, side), rng, photos)
        alpha = _blob(side, rng)
        speed = max_motion * rng.random() ** 0.7
        d = rng.uniform(0, 2 * math.pi)
        layers.append(
            (
                tex,
                alpha,
                rng.uniform(0, size, 2),
                np.array([math.cos(d), math.sin(d)]) * speed,
                float(rng.uniform(-math.pi, math.pi)),
                float(rng.uniform(-0.4, 0.4)),
                float(rng.uniform(-0.25, 0.25)),
            )
        )
    overlay = None
    if rng.random() < 0.3:  # a HUD / caption that stays put while the scene moves
        overlay = np.zeros((size, size, 3), np.uint8)
        mask = np.zeros((size, size), np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            letters = rng.choice(list("ABCDEFGHKMNPRSTUVWXYZ0123456789 :"), int(rng.integers(3, 10)))
            text = "".join(letters)
            org = (int(rng.integers(0, size // 2)), int(rng.integers(16, size)))
            scale = float(rng.uniform(0.4, 1.2))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.putText(overlay, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 2, cv2.LINE_AA)
            cv2.putText(mask, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 2, cv2.LINE_AA)
        overlay = (overlay, mask.astype(np.float32)[..., None] / 255.0)
    gain = float(rng.uniform(-0.08, 0.08)) if rng.random() < 0.2 else 0.0

    def render(tau: float) -> np.ndarray:
        s = tau - t  # parameters are defined at t, so the truth frame is exact
        m = _affine(centre, pan * s, bg_spin * s, math.exp(bg_zoom * s), origin_bg)
        img = cv2.warpAffine(bg, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(
            np.float32
        )
        for tex, alpha, pos, vel, ang, spin, zoom in layers:
            side = tex.shape[0]
            m = _affine(pos, vel * s, ang + spin * s, math.exp(zoom * s), np.array([side / 2, side / 2]))
            lt = cv2.warpAffine(tex, m, (size, size), flags=cv2.INTER_LINEAR).astype(np.float32)
            la = cv2.warpAffine(alpha, m, (size, size), flags=cv2.INTER_LINEAR)[..., None]
            img = img * (1 - la) + lt * la
        return img * (1.0 + gain * s)

    def frame(tau: float) -> np.ndarray:
        if not blur:
            img = render(tau)
        else:
            img = np.mean([render(tau + exposure * (k / 2 - 0.5)) for k in range(3)], axis=0)
        if overlay is not None:
            img = img * (1 - overlay[1]) + overlay[0].astype(np.float32) * overlay[1]
        return img.clip(0, 255).round().astype(np.uint8)

    img0, mid, img1 = (frame(tau) for tau in times)
    return img0, mid, img1, t
