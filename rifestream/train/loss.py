"""Training losses: Laplacian-pyramid L1 for images, L1 for flows with a known truth."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gauss_kernel(channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device, dtype=dtype)
    k2 = torch.outer(k1, k1)
    k2 = k2 / k2.sum()
    return k2.expand(channels, 1, 5, 5).contiguous()


def _blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels (finest first) and the low-pass residual last."""
    kernel = _gauss_kernel(x.shape[1], x.device, x.dtype)
    bands = []
    current = x
    for _ in range(levels):
        if min(current.shape[-2:]) < 6:
            break
        low = _blur(current, kernel)
        down = low[..., ::2, ::2]
        up = torch.zeros_like(current)
        up[..., ::2, ::2] = down * 4
        bands.append(current - _blur(up, kernel))
        current = down
    bands.append(current)
    return bands


def laplacian_l1(pred: torch.Tensor, target: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """Sum over pyramid levels of the mean L1 difference (per sample: shape (N,))."""
    total = pred.new_zeros(pred.shape[0])
    for a, b in zip(laplacian_pyramid(pred, levels), laplacian_pyramid(target, levels), strict=True):
        total = total + (a - b).abs().mean(dim=(1, 2, 3))
    return total


def _mean_over_weighted(per_sample: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The mean of per-sample values over the samples with weight 1 (0 when none has)."""
    return (per_sample * weight).sum() / weight.sum().clamp_min(1.0)


def flow_l1(pred: torch.Tensor, truth: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean end-point-style L1 (pixels) between predicted and true flows, over samples with weight 1."""
    return _mean_over_weighted((pred - truth).abs().mean(dim=(1, 2, 3)), weight)


def flow_mse(pred: torch.Tensor, truth: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean squared error (pixels squared) between predicted and true flows, over samples with weight 1."""
    return _mean_over_weighted((pred - truth).square().mean(dim=(1, 2, 3)), weight)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean PSNR in dB of images in [0, 1]."""
    mse = ((pred.clamp(0, 1) - target) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return (-10.0 * torch.log10(mse)).mean()


def multiscale_l1(pred: torch.Tensor, target: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Sum of the mean L1 difference of the images and of their 2x, 4x … box-downsampled copies (per sample).

    Weighs coarse errors like :func:`laplacian_l1` does, at a twentieth of its cost on a CPU (its
    reflect-padded 5x5 depthwise blurs dominate a small model's training step there).
    """
    total = (pred - target).abs().mean(dim=(1, 2, 3))
    for _ in range(levels - 1):
        if min(pred.shape[-2:]) < 2:
            break
        pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
        total = total + (pred - target).abs().mean(dim=(1, 2, 3))
    return total
