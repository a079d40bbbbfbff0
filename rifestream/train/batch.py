"""Mini-batches for training: random crops of real triplets mixed with synthetic ones, augmented."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rifestream.train.augment import random_augment
from rifestream.train.data import VideoTriplets
from rifestream.train.synthetic import make_triplet


def crop_real(
    frames: tuple[np.ndarray, np.ndarray, np.ndarray],
    t: float,
    crop: int,
    min_downscale: float,
    rng: np.random.Generator,
) -> dict:
    """A random ``crop``×``crop`` window of a real triplet, at full or (half the time) reduced size."""
    h, w, _ = frames[0].shape
    scale = 1.0 if rng.random() < 0.5 else float(rng.uniform(min_downscale, 1.0))
    side = min(h, w, max(crop, int(round(crop / scale))))
    y = int(rng.integers(h - side + 1))
    x = int(rng.integers(w - side + 1))
    stack = np.stack([f[y : y + side, x : x + side] for f in frames])
    images = torch.from_numpy(stack).permute(0, 3, 1, 2).float() / 255.0
    if side != crop:
        images = F.interpolate(images, size=(crop, crop), mode="bilinear", align_corners=False, antialias=True)
    return {
        "img0": images[0],
        "gt": images[1],
        "img1": images[2],
        "t": t,
        "flow": torch.zeros(4, crop, crop),
        "has_flow": 0.0,
    }


class BatchMaker:
    """Draws batches of (img0, gt, img1, t, flow, has_flow); ``synthetic_share`` of each batch is synthetic."""

    def __init__(
        self,
        videos: VideoTriplets | None,
        crop: int,
        synthetic_share: float,
        rng: np.random.Generator,
        min_downscale: float = 0.5,
        max_motion: float = 80.0,
        texture_frames: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.videos = videos
        self.crop = crop
        self.synthetic_share = 1.0 if videos is None else synthetic_share
        self.rng = rng
        self.min_downscale = min_downscale
        self.max_motion = max_motion
        if texture_frames is None and videos is not None:
            texture_frames = [f for clip in videos.clips for f in clip[:: max(1, len(clip) // 20)]]
        self.texture_frames = list(texture_frames or [])

    def sample(self, synthetic: bool) -> dict:
        if synthetic:
            s = make_triplet(self.crop, self.rng, self.texture_frames, max_motion=self.max_motion)
            sample = {"img0": s.img0, "gt": s.gt, "img1": s.img1, "t": s.t, "flow": s.flow, "has_flow": 1.0}
        else:
            img0, gt, img1, t = self.videos.sample(self.rng)
            sample = crop_real((img0, gt, img1), t, self.crop, self.min_downscale, self.rng)
        return random_augment(sample, self.rng)

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        n_syn = int(round(size * self.synthetic_share))
        samples = [self.sample(i < n_syn) for i in range(size)]
        out = {k: torch.stack([s[k] for s in samples]) for k in ("img0", "gt", "img1", "flow")}
        out["t"] = torch.tensor([s["t"] for s in samples], dtype=torch.float32).view(-1, 1, 1, 1)
        out["has_flow"] = torch.tensor([s["has_flow"] for s in samples], dtype=torch.float32)
        return out
