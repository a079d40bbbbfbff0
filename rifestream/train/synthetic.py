"""Synthetic triplets with known motion, made on the fly.

A scene is a textured background and one to three textured foreground layers
(crops of real frames or procedural textures, cut out by soft irregular
shapes). Every layer follows its own similarity motion (translation, rotation,
zoom) over time; layers occlude each other and the background, which moves
too. Frames are rendered at τ = 0, t and 1 by inverse mapping, so the true
backward flows F(t→0) and F(t→1) of the visible layer are known exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class SyntheticTriplet:
    """Images (3, S, S) in [0, 1]; ``flow`` (4, S, S): F(t→0) in 0:2, F(t→1) in 2:4, in pixels."""

    img0: torch.Tensor
    gt: torch.Tensor
    img1: torch.Tensor
    t: float
    flow: torch.Tensor


@dataclass
class Motion:
    """Similarity motion of one layer: centre, angle and log-zoom at time t, and their rates over 0→1."""

    centre: np.ndarray
    velocity: np.ndarray
    angle: float
    spin: float
    log_zoom: float
    zoom_rate: float

    def params(self, tau: float, t: float) -> tuple[np.ndarray, float, float]:
        dt = tau - t
        return (
            self.centre + dt * self.velocity,
            self.angle + dt * self.spin,
            math.exp(self.log_zoom + dt * self.zoom_rate),
        )


def to_canonical(xy: torch.Tensor, motion: Motion, tau: float, t: float) -> torch.Tensor:
    """Layer coordinates u of image points ``xy`` (…, 2) at time tau: u = R(-θ)(x - c) / s."""
    c, a, s = motion.params(tau, t)
    cos, sin = math.cos(a), math.sin(a)
    dx = xy[..., 0] - float(c[0])
    dy = xy[..., 1] - float(c[1])
    return torch.stack(((cos * dx + sin * dy) / s, (-sin * dx + cos * dy) / s), dim=-1)


def to_image(u: torch.Tensor, motion: Motion, tau: float, t: float) -> torch.Tensor:
    """Image points of layer coordinates ``u`` at time tau: x = c + s R(θ) u."""
    c, a, s = motion.params(tau, t)
    cos, sin = math.cos(a), math.sin(a)
    return torch.stack(
        (float(c[0]) + s * (cos * u[..., 0] - sin * u[..., 1]), float(c[1]) + s * (sin * u[..., 0] + cos * u[..., 1])),
        dim=-1,
    )


def sample_texture(texture: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Sample a (3, h, w) texture centred on u = 0 at layer coordinates ``u`` (H, W, 2); border padding."""
    _, h, w = texture.shape
    grid = torch.stack((u[..., 0] / ((w - 1) / 2.0), u[..., 1] / ((h - 1) / 2.0)), dim=-1)
    return F.grid_sample(texture[None], grid[None], mode="bilinear", padding_mode="border", align_corners=True)[0]


def procedural_texture(size: int, rng: np.random.Generator) -> torch.Tensor:
    """A (3, size, size) texture: coloured multi-octave noise, stripes or a checkerboard."""
    kind = rng.integers(3)
    if kind == 0:
        tex = torch.zeros(3, size, size)
        amp = 1.0
        for cells in (2, 4, 8, 16, 32)[: rng.integers(3, 6)]:
            noise = torch.from_numpy(rng.random((1, 3, cells + 1, cells + 1), dtype=np.float32))
            tex += amp * F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=True)[0]
            amp *= float(rng.uniform(0.4, 0.8))
        tex -= tex.amin(dim=(1, 2), keepdim=True)
        tex /= tex.amax(dim=(1, 2), keepdim=True).clamp_min(1e-6)
        return tex.clamp(0, 1)
    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    a = float(rng.uniform(0, math.pi))
    period = float(rng.uniform(4, size / 3))
    phase = (xs * math.cos(a) + ys * math.sin(a)) * (2 * math.pi / period)
    if kind == 1:
        pattern = 0.5 + 0.5 * torch.sin(phase)
    else:
        other = (-xs * math.sin(a) + ys * math.cos(a)) * (2 * math.pi / period)
        pattern = ((torch.sin(phase) > 0) ^ (torch.sin(other) > 0)).float()
    c0 = torch.from_numpy(rng.random(3, dtype=np.float32))[:, None, None]
    c1 = torch.from_numpy(rng.random(3, dtype=np.float32))[:, None, None]
    return c0 + (c1 - c0) * pattern[None]


def photo_texture(frames: Sequence[np.ndarray], size: int, rng: np.random.Generator) -> torch.Tensor:
    """A (3, size, size) crop of a random real frame (resized when the frame is smaller)."""
    frame = frames[int(rng.integers(len(frames)))]
    h, w, _ = frame.shape
    side = min(h, w, int(size * rng.uniform(0.7, 1.5)))
    y = int(rng.integers(h - side + 1))
    x = int(rng.integers(w - side + 1))
    crop = torch.from_numpy(np.ascontiguousarray(frame[y : y + side, x : x + side])).permute(2, 0, 1).float() / 255.0
    if side != size:
        crop = F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return crop


def shape_alpha(u: torch.Tensor, radii: tuple[float, float], wobble: list[tuple[int, float, float]]) -> torch.Tensor:
    """Soft (about one pixel) alpha of an irregular blob: an ellipse whose radius wobbles with angle."""
    rx, ry = radii
    rho = torch.sqrt((u[..., 0] / rx) ** 2 + (u[..., 1] / ry) ** 2)
    phi = torch.atan2(u[..., 1], u[..., 0])
    edge = torch.ones_like(rho)
    for k, amp, phase in wobble:
        edge = edge + amp * torch.sin(k * phi + phase)
    return ((edge - rho) * min(rx, ry)).clamp(0, 1)


def make_triplet(
    size: int,
    rng: np.random.Generator,
    frames: Sequence[np.ndarray] | None = None,
    t: float | None = None,
    max_motion: float = 80.0,
    max_background_motion: float = 24.0,
) -> SyntheticTriplet:
    """One synthetic triplet of ``size``×``size``; ``max_motion`` bounds a layer's displacement from frame 0 to 1."""
    if t is None:
        t = 0.5 if rng.random() < 0.5 else float(rng.uniform(0.15, 0.85))

    def texture(side: int) -> torch.Tensor:
        if frames and rng.random() < 0.6:
            return photo_texture(frames, side, rng)
        return procedural_texture(side, rng)

    def random_motion(centre: np.ndarray, max_shift: float, max_spin: float, max_zoom: float) -> Motion:
        direction = rng.uniform(0, 2 * math.pi)
        speed = max_shift * rng.random() ** 0.7
        return Motion(
            centre=centre,
            velocity=np.array([math.cos(direction), math.sin(direction)]) * speed,
            angle=float(rng.uniform(-math.pi, math.pi)) if max_spin else 0.0,
            spin=float(rng.uniform(-max_spin, max_spin)),
            log_zoom=0.0,
            zoom_rate=float(rng.uniform(-max_zoom, max_zoom)),
        )

    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    pix = torch.stack((xs, ys), dim=-1)
    times = (0.0, t, 1.0)

    # Background: a larger texture, gently moving, never leaving the view (border padding).
    bg_tex = texture(size + 2 * int(max_background_motion) + 8)
    centre = np.array([(size - 1) / 2.0, (size - 1) / 2.0])
    bg_motion = random_motion(centre, max_background_motion, 0.05, 0.05)
    bg_motion.angle = 0.0
    images = []
    for tau in times:
        images.append(sample_texture(bg_tex, to_canonical(pix, bg_motion, tau, t)))
    u_bg = to_canonical(pix, bg_motion, t, t)
    flow0 = to_image(u_bg, bg_motion, 0.0, t) - pix
    flow1 = to_image(u_bg, bg_motion, 1.0, t) - pix

    for _ in range(int(rng.integers(1, 4))):
        radii = (float(rng.uniform(size / 10, size / 3)), float(rng.uniform(size / 10, size / 3)))
        wobble = [
            (int(rng.integers(2, 7)), float(rng.uniform(0, 0.25)), float(rng.uniform(0, 2 * math.pi))) for _ in range(2)
        ]
        tex = texture(int(2 * max(radii) * 1.4) + 4)
        motion = random_motion(rng.uniform(0, size - 1, 2), max_motion, 0.3, 0.2)
        for k, tau in enumerate(times):
            u = to_canonical(pix, motion, tau, t)
            alpha = shape_alpha(u, radii, wobble)[None]
            images[k] = images[k] * (1 - alpha) + sample_texture(tex, u) * alpha
            if tau == t:
                visible = (alpha[0] > 0.5)[..., None]
                flow0 = torch.where(visible, to_image(u, motion, 0.0, t) - pix, flow0)
                flow1 = torch.where(visible, to_image(u, motion, 1.0, t) - pix, flow1)

    flow = torch.cat((flow0.permute(2, 0, 1), flow1.permute(2, 0, 1)), dim=0)
    img0, gt, img1 = (im.clamp(0, 1) for im in images)
    return SyntheticTriplet(img0=img0, gt=gt, img1=img1, t=float(t), flow=flow.contiguous())
