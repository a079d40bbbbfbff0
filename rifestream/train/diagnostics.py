"""Two checks of a student's health that PSNR alone hides.

``block_activity``: the mean magnitude and positive share of each IFBlock's
features (the output of its residual stack). RIFE's ResConv applies LeakyReLU
after each residual add, so a feature that turns negative shrinks five-fold per
layer; a block whose features have collapsed (|a| of 1e-3, a few per cent
positive) gets gradients below Adam's epsilon and stops learning. This is how
rifestream-v1's two coarse blocks ended up: they estimate no motion.

``translation_probe``: shift a real frame by d pixels and ask for the frame
halfway. The true flow F(t→0) is d/2 everywhere; the median estimate on the
textured pixels shows how much motion the model can follow at all, and the
estimate after each block which blocks carry it.

``static_flow``: a frame paired with itself. The true flow is zero everywhere; a
block that answers motion there (one trained only on scenes that always move)
puts it into every still background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rifestream.model.ifnet import IFNet
from rifestream.quality_eval import LUMA, blend, psnr


@dataclass(frozen=True)
class BlockActivity:
    mean_abs: float
    positive: float  # share of features above zero


@dataclass(frozen=True)
class ProbeRow:
    axis: str  # "x" or "y"
    shift: int  # pixels between the two frames
    by_block: tuple[float, ...]  # median F(t→0) along the axis on textured pixels after each block
    psnr_model: float
    psnr_blend: float

    @property
    def estimated(self) -> float:
        """The model's answer, after its last block (truth: shift / 2)."""
        return self.by_block[-1]


@torch.no_grad()
def block_activity(student: IFNet, img0: torch.Tensor, img1: torch.Tensor) -> list[BlockActivity]:
    """Per block, the features its residual stack hands to its output layer for this pair (t = 0.5);
    (N, 3, H, W) in [0, 1], cropped to the model's size multiple."""
    m = student.pad_multiple()
    h, w = img0.shape[-2] // m * m, img0.shape[-1] // m * m
    img0, img1 = img0[..., :h, :w], img1[..., :h, :w]
    seen: dict[int, torch.Tensor] = {}
    hooks = [
        block.convblock.register_forward_hook(lambda _m, _i, out, k=k: seen.__setitem__(k, out.detach()))
        for k, block in enumerate(student.blocks)
    ]
    try:
        student.forward_all(img0, img1, 0.5)
    finally:
        for hook in hooks:
            hook.remove()
    return [BlockActivity(float(seen[k].abs().mean()), float((seen[k] > 0).float().mean())) for k in range(len(seen))]


def _frame_tensor(frame: np.ndarray, device: torch.device) -> torch.Tensor:
    """An H×W×3 uint8 frame as a (1, 3, H, W) float tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float().to(device) / 255


def _textured(img: np.ndarray, threshold: float = 8.0) -> np.ndarray:
    """Pixels whose luma differs by more than ``threshold`` from a neighbour (where a shift is visible)."""
    y = img.astype(np.float32) @ LUMA.astype(np.float32)
    gx = np.abs(np.diff(y, axis=1, append=y[:, -1:]))
    gy = np.abs(np.diff(y, axis=0, append=y[-1:, :]))
    return np.maximum(gx, gy) > threshold


@torch.no_grad()
def translation_probe(student: IFNet, frame: np.ndarray, shifts: tuple[int, ...] = (4, 8, 16)) -> list[ProbeRow]:
    """Shift ``frame`` (H×W×3 uint8) by each (even) shift along x and y; the model's answer against the truth."""
    margin = max(shifts)
    m = student.pad_multiple()
    h, w = (frame.shape[0] - margin) // m * m, (frame.shape[1] - margin) // m * m
    if h < 2 * margin + m or w < 2 * margin + m:
        raise ValueError(f"frame {frame.shape[1]}x{frame.shape[0]} is too small for shifts up to {margin} px")
    device = next(student.parameters()).device
    inner = (slice(margin, h - margin), slice(margin, w - margin))
    rows = []
    for axis in ("x", "y"):
        for d in shifts:
            dy, dx = (d, 0) if axis == "y" else (0, d)
            a, b = frame[:h, :w], frame[dy : dy + h, dx : dx + w]
            truth = frame[dy // 2 : dy // 2 + h, dx // 2 : dx // 2 + w]
            out = student.forward_all(_frame_tensor(a, device), _frame_tensor(b, device), 0.5)
            where = _textured(truth)[inner]
            along = [f[0, 0 if axis == "x" else 1].float().cpu().numpy()[inner] for f in out.flows]
            by_block = tuple(float(np.median(f[where])) if where.any() else 0.0 for f in along)
            middle = (out.frame[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            blended = blend(a, b)
            rows.append(
                ProbeRow(
                    axis=axis,
                    shift=d,
                    by_block=by_block,
                    psnr_model=psnr(middle[inner], truth[inner]),
                    psnr_blend=psnr(blended[inner], truth[inner]),
                )
            )
    return rows


@dataclass(frozen=True)
class StaticFlow:
    mean_abs: float  # mean |F| over the flow's four channels, px (truth 0)
    max_abs: float


@torch.no_grad()
def static_flow(student: IFNet, frame: np.ndarray) -> list[StaticFlow]:
    """Per block, the accumulated flow it answers for ``frame`` (H×W×3 uint8) paired with itself (t = 0.5)."""
    m = student.pad_multiple()
    h, w = frame.shape[0] // m * m, frame.shape[1] // m * m
    if not h or not w:
        raise ValueError(f"frame {frame.shape[1]}x{frame.shape[0]} is smaller than the model's {m} px multiple")
    x = _frame_tensor(frame[:h, :w], next(student.parameters()).device)
    magnitudes = [f.float().abs() for f in student.forward_all(x, x, 0.5).flows]
    return [StaticFlow(float(a.mean()), float(a.max())) for a in magnitudes]


def health_summary(student: IFNet, img0: torch.Tensor, img1: torch.Tensor, shift: int = 8) -> str:
    """One log line: each block's feature activity on this pair (1, 3, H, W), and the motion it
    estimates for a ``shift``-pixel translation of ``img0`` (truth: shift / 2)."""
    blocks = block_activity(student, img0, img1)
    frame = (img0[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    probe = {row.axis: row.estimated for row in translation_probe(student, frame, (shift,))}
    activity = " ".join(f"{a.mean_abs:.1e}/{100 * a.positive:.0f}%" for a in blocks)
    return (
        f"block features |a|/positive: {activity}; "
        f"{shift} px shift: flow x {probe['x']:.2f} y {probe['y']:.2f} (truth {shift / 2:g})"
    )
