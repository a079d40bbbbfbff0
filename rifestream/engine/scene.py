"""A cheap scene-cut test: how different two frames are once motion detail is pooled away."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Pooled to at most this many cells, motion of a few percent of the frame blurs out
# while a cut (new content everywhere) still changes most cells.
_POOL_CELLS = (18, 32)
_LUMA = (0.299, 0.587, 0.114)


def scene_features(img: torch.Tensor) -> torch.Tensor:
    """Per cell of an 18×32 grid: mean luma and mean gradient magnitude (how textured it is)."""
    rgb = img[:1].float()
    # the weights as scalars (kernel arguments): no host→device copy per frame on CUDA
    y = rgb[:, 0:1] * _LUMA[0] + rgb[:, 1:2] * _LUMA[1] + rgb[:, 2:3] * _LUMA[2]
    grad = F.pad((y[..., :, 1:] - y[..., :, :-1]).abs(), (0, 1)) + F.pad(
        (y[..., 1:, :] - y[..., :-1, :]).abs(), (0, 0, 0, 1)
    )
    size = (min(_POOL_CELLS[0], y.shape[2]), min(_POOL_CELLS[1], y.shape[3]))
    return F.adaptive_avg_pool2d(torch.cat([y, grad], 1), size)


def scene_score(f0: torch.Tensor, f1: torch.Tensor) -> torch.Tensor:
    """The scene-change score of two frames from their :func:`scene_features`, as a 0-d tensor on
    their device (reading it waits for the device; :func:`compare_scene_features` does)."""
    return (f0 - f1).abs().mean(dim=(0, 2, 3)).max()


def compare_scene_features(f0: torch.Tensor, f1: torch.Tensor) -> float:
    """The scene-change score of two frames from their :func:`scene_features`."""
    return float(scene_score(f0, f1))


def scene_change_score(img0: torch.Tensor, img1: torch.Tensor) -> float:
    """How unlike two (1, 3, H, W) frames in [0, 1] are, in [0, 1]: the larger of the mean absolute
    change of cell brightness and of cell texture, on an 18×32 grid.

    Typical values: under 0.03 within a shot, up to about 0.10 for fast pans of strong texture,
    above 0.15 at cuts. A stream computes each frame's features once (:func:`scene_features`)
    and compares neighbours with :func:`compare_scene_features`.
    """
    return compare_scene_features(scene_features(img0), scene_features(img1))
