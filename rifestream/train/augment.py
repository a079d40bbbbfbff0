"""Geometric augmentations of a triplet that keep its true flow consistent.

A sample is a dict of (C, H, W) tensors ``img0``, ``gt``, ``img1``, ``flow``
(F(t→0) in 0:2, F(t→1) in 2:4; zeros where unknown) and the float ``t``.
"""

from __future__ import annotations

import numpy as np
import torch

IMAGES = ("img0", "gt", "img1")


def hflip(s: dict) -> dict:
    out = {k: s[k].flip(-1) for k in (*IMAGES, "flow")}
    out["flow"] = out["flow"] * torch.tensor([-1.0, 1.0, -1.0, 1.0])[:, None, None]
    return {**s, **out}


def vflip(s: dict) -> dict:
    out = {k: s[k].flip(-2) for k in (*IMAGES, "flow")}
    out["flow"] = out["flow"] * torch.tensor([1.0, -1.0, 1.0, -1.0])[:, None, None]
    return {**s, **out}


def rot90(s: dict) -> dict:
    """Rotate by 90° (torch.rot90 over H, W); a displacement (u, v) becomes (v, -u)."""
    out = {k: torch.rot90(s[k], 1, (-2, -1)) for k in (*IMAGES, "flow")}
    f = out["flow"]
    out["flow"] = torch.stack((f[1], -f[0], f[3], -f[2]))
    return {**s, **out}


def reverse(s: dict) -> dict:
    """Swap the end frames: t becomes 1 - t and the two flows swap."""
    f = s["flow"]
    return {**s, "img0": s["img1"], "img1": s["img0"], "t": 1.0 - s["t"], "flow": torch.cat((f[2:4], f[0:2]))}


def random_augment(s: dict, rng: np.random.Generator) -> dict:
    if rng.random() < 0.5:
        s = hflip(s)
    if rng.random() < 0.5:
        s = vflip(s)
    if rng.random() < 0.5:
        s = rot90(s)
    if rng.random() < 0.5:
        s = reverse(s)
    return s
