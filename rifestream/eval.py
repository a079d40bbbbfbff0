"""The team's frame-interpolation quality protocol, as project code.

For each clip: take the busiest ``frames``-long window (odd length) of its
first ``scan`` frames (motion = mean absolute difference between frames i and
i + 2 on a 1/4-size copy), keep its even frames as the half-rate input, rebuild
the frame between each pair of neighbours, and score the rebuilt frames against
the real odd frames: PSNR on RGB, SSIM (7×7 uniform window, as scikit-image's
default) on luma. The last pair is left out, as the shared tool does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rifestream.errors import RifestreamError
from rifestream.io.video_file import read_rgb_frames

Rebuild = Callable[[np.ndarray, np.ndarray], np.ndarray]
LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class Score:
    clip: str
    method: str
    psnr: float
    ssim: float
    frames: int


def busiest_window_start(frames: Sequence[np.ndarray], n: int) -> int:
    """Start of the n consecutive frames with the most motion between frames i and i + 2."""
    if len(frames) <= n:
        return 0
    small = [f[::4, ::4].astype(np.int16) for f in frames]
    motion = np.array([np.abs(small[i + 2] - small[i]).mean() for i in range(len(small) - 2)])
    window = np.convolve(motion, np.ones(n - 2), mode="valid")
    return int(np.argmax(window))


def split_window(window: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(half-rate input = even frames, truths = the odd frames scored: one per pair but the last)."""
    if len(window) % 2 == 0:
        window = window[:-1]
    half = list(window[0::2])
    truth = list(window[1::2])[: max(0, len(half) - 2)]
    return half, truth


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _box7(x: np.ndarray) -> np.ndarray:
    """Mean over each full 7×7 window (the 'valid' part), via a summed-area table."""
    s = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (s[7:, 7:] - s[:-7, 7:] - s[7:, :-7] + s[:-7, :-7]) / 49.0


def ssim_luma(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of the luma of two RGB uint8 frames (7×7 uniform window, sample covariance, K1 0.01, K2 0.03)."""
    x = a.astype(np.float64) @ LUMA
    y = b.astype(np.float64) @ LUMA
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    cov_norm = 49.0 / 48.0
    ux, uy = _box7(x), _box7(y)
    vx = cov_norm * (_box7(x * x) - ux * ux)
    vy = cov_norm * (_box7(y * y) - uy * uy)
    vxy = cov_norm * (_box7(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(s.mean())


def repeat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a


def blend(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a.astype(np.uint16) + b + 1) // 2).astype(np.uint8)


def model_rebuild(
    model: str | Path | None, device: str = "auto", precision: str = "fp32", scale: float = 1.0, ensemble: int = 1
) -> Rebuild:
    """A rebuild function running an IFNet (a shipped or official name, a path, or None for the default)
    at ``scale``, averaging ``ensemble`` passes per frame (see ``rifestream.engine.Interpolator``)."""
    from rifestream.engine.interpolator import Interpolator

    interp = Interpolator(model, device=device, precision=precision, scale=scale, ensemble=ensemble)
    return lambda a, b: interp.interpolate(a, b, 0.5)


def score_clip(path: str | Path, methods: dict[str, Rebuild], frames: int = 41, scan: int = 900) -> list[Score]:
    """Scores of every method on one clip's busiest window."""
    n = frames if frames % 2 else frames + 1
    clip = read_rgb_frames(path, scan)
    if len(clip) < 5:
        raise RifestreamError(f"{path}: {len(clip)} frames; the protocol needs at least 5")
    start = busiest_window_start(clip, n)
    half, truth = split_window(clip[start : start + n])
    out = []
    for name, rebuild in methods.items():
        mids = [rebuild(half[i], half[i + 1]) for i in range(len(truth))]
        out.append(
            Score(
                clip=Path(path).name,
                method=name,
                psnr=float(np.mean([psnr(m, t) for m, t in zip(mids, truth, strict=True)])),
                ssim=float(np.mean([ssim_luma(m, t) for m, t in zip(mids, truth, strict=True)])),
                frames=len(truth),
            )
        )
    return out


def format_table(scores: Sequence[Score], methods: Sequence[str]) -> str:
    """One row per clip (PSNR dB / SSIM for each method) and a mean row."""
    clips = list(dict.fromkeys(s.clip for s in scores))
    width = max([len("clip"), len("mean"), *(len(c) for c in clips)])
    col = max(16, *(len(m) for m in methods))
    lines = [f"{'clip':<{width}}  " + "  ".join(f"{m:>{col}}" for m in methods)]
    by = {(s.clip, s.method): s for s in scores}
    for clip in clips:
        cells = [f"{by[clip, m].psnr:7.2f} / {by[clip, m].ssim:.4f}" for m in methods]
        lines.append(f"{clip:<{width}}  " + "  ".join(f"{c:>{col}}" for c in cells))
    means = []
    for m in methods:
        mine = [s for s in scores if s.method == m]
        means.append(f"{np.mean([s.psnr for s in mine]):7.2f} / {np.mean([s.ssim for s in mine]):.4f}")
    lines.append(f"{'mean':<{width}}  " + "  ".join(f"{c:>{col}}" for c in means))
    return "\n".join(lines)
