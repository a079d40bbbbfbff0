"""Bilateral block matching: a motion prior added to the coarsest block's flow.

For every pixel x of the frame between the two it finds the half-displacement d, in whole
cells of a grid ``level`` times coarser than the frames, that makes frame 0 at x - d look
like frame 1 at x + d, comparing windows of ``window`` cells. A small cost per cell of
displacement (``PENALTY``) keeps flat and still areas at d = 0. With ``subcell`` a parabola
through the best candidate's cost and its neighbours' along each axis refines d to a
fraction of a cell. Why: a model trained on little data can fail to learn large motion in
its coarse blocks (docs/MODEL_HISTORY.md); a search finds a fast hand that the blocks miss, and
the blocks then refine around it. Official RIFE checkpoints do not use it (radius 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW = 11  # grid cells compared around each pixel unless a model says otherwise (22 px at level 2)
PENALTY = 0.01  # mean absolute difference added per grid cell of displacement


def _window_mean(x: torch.Tensor, dim: int, window: int) -> torch.Tensor:
    """Mean over the ``window`` cells centred on each cell along ``dim`` (fewer at the edges).

    From a running sum: a few operations per cell, where avg_pool2d costs ``window`` (and is
    most of the search's time on a CPU).
    """
    r, n = window // 2, x.shape[dim]
    pad = (r + 1, r) if dim == -1 else (0, 0, r + 1, r)
    c = F.pad(x, pad).cumsum(dim)
    total = c.narrow(dim, 2 * r + 1, n) - c.narrow(dim, 0, n)
    j = torch.arange(n, device=x.device)
    count = (torch.clamp(j + r, max=n - 1) - torch.clamp(j - r, min=0) + 1).to(x.dtype)
    return total / (count if dim == -1 else count.view(-1, 1))


def _parabola_offset(before: torch.Tensor, best: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Where a parabola through costs at -1, 0, +1 has its minimum, in [-0.5, 0.5]; 0 without both
    neighbours (``inf``: the edge of the search) or without a curve to fit."""
    curve = before - 2 * best + after
    usable = (curve > 1e-9) & torch.isfinite(curve)
    offset = (before - after) / (2 * torch.where(usable, curve, torch.ones_like(curve)))
    return torch.where(usable, offset, torch.zeros_like(offset)).clamp(-0.5, 0.5)


def bilateral_flow(
    img0: torch.Tensor,
    img1: torch.Tensor,
    timestep: torch.Tensor,
    radius: int,
    level: int,
    window: int = WINDOW,
    subcell: bool = False,
) -> torch.Tensor:
    """The prior flows (F(t->0), F(t->1)) as (N, 4, H, W), in pixels, for (N, 3, H, W) frames.

    ``timestep`` is (N, 1, H, W); with linear motion F(t->0) = -2t d and F(t->1) = 2(1-t) d.
    H and W must be multiples of ``level``; the search covers |d| <= ``radius`` cells along
    each axis (2 * radius * level pixels of motion between the frames).
    """
    a = F.avg_pool2d(img0.float(), level)
    b = F.avg_pool2d(img1.float(), level)
    n, _, h, w = a.shape
    r = radius
    ap = F.pad(a, (r, r, r, r), mode="replicate")
    bp = F.pad(b, (r, r, r, r), mode="replicate")
    dxs = torch.arange(-r, r + 1, device=a.device, dtype=torch.float32)
    inf = torch.full((n, 1, h, w), float("inf"), device=a.device)
    best_cost, best_idx = inf, torch.zeros((n, 1, h, w), dtype=torch.long, device=a.device)
    best_dy = torch.zeros_like(inf)
    # With subcell: the costs beside the best candidate (dx -1 / +1 in its row, dy -1 / +1 at its dx).
    left = right = up = down = inf
    previous: torch.Tensor | None = None
    for dy in range(-r, r + 1):
        rows0 = ap[:, :, r - dy : r - dy + h]
        rows1 = bp[:, :, r + dy : r + dy + h]
        # Views (N, 3, h, 2r+1, w) of every horizontal shift; candidate i is dx = i - r, so frame 0
        # is read at x - dx (shift 2r - i: flipped) and frame 1 at x + dx (shift i).
        shifted0 = rows0.unfold(-1, w, 1).flip(-2)
        shifted1 = rows1.unfold(-1, w, 1)
        cost = (shifted0 - shifted1).abs().mean(1).transpose(1, 2)
        cost = _window_mean(_window_mean(cost, -1, window), -2, window)
        cost = cost + PENALTY * torch.sqrt(dxs * dxs + dy * dy).view(1, -1, 1, 1)
        row_cost, row_idx = cost.min(1, keepdim=True)
        better = row_cost < best_cost  # ties keep the row met first; the penalty makes them rare
        if subcell:
            if previous is not None:  # this row is the one below the previous rows' best
                down = torch.where(best_dy == dy - 1, cost.gather(1, best_idx), down)
                above = previous.gather(1, row_idx)
            else:
                above = inf
            row_left = torch.where(row_idx > 0, cost.gather(1, (row_idx - 1).clamp(min=0)), inf)
            row_right = torch.where(row_idx < 2 * r, cost.gather(1, (row_idx + 1).clamp(max=2 * r)), inf)
            left = torch.where(better, row_left, left)
            right = torch.where(better, row_right, right)
            up = torch.where(better, above, up)
            down = torch.where(better, inf, down)
            previous = cost
        best_cost = torch.where(better, row_cost, best_cost)
        best_idx = torch.where(better, row_idx, best_idx)
        best_dy = torch.where(better, torch.full_like(best_dy, float(dy)), best_dy)
    best_dx = dxs[best_idx]
    if subcell:
        best_dx = best_dx + _parabola_offset(left, best_cost, right)
        best_dy = best_dy + _parabola_offset(up, best_cost, down)
    d = torch.cat((best_dx, best_dy), 1) * level
    d = F.interpolate(d, scale_factor=level, mode="bilinear", align_corners=False).to(img0.dtype)
    t = timestep.to(img0.dtype)
    return torch.cat((-2 * t * d, 2 * (1 - t) * d), 1)
