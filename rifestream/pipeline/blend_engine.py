"""The engine used when no model is needed or none is available: the frame loop's blend and repeat steps.

``FrameLoop`` asks its engine for ``to_tensor``, ``to_numpy``, ``blend``,
``scene_score`` and ``scale``; with the ladder pinned to ``blend`` or
``repeat`` that is all it uses, so a job that forces those steps (or a fresh
checkout without the default weights) runs without loading an IFNet.
"""

from __future__ import annotations

import numpy as np
import torch

from rifestream.engine.interpolator import resolve_device
from rifestream.engine.scene import _cell_features  # the scene score's per-frame half (cached below)


class BlendOnlyEngine:
    """Tensors on ``device`` in fp32; ``synthesize`` is refused (there is no model)."""

    scale = 1.0

    def __init__(self, device: str | torch.device = "auto") -> None:
        self.device = resolve_device(device)
        self.dtype = torch.float32
        self._features: list[tuple[torch.Tensor, torch.Tensor]] = []  # (frame, its cell features), last two

    def to_tensor(self, frame: np.ndarray) -> torch.Tensor:
        """An H×W×3 uint8 RGB array as a contiguous (1, 3, H, W) tensor in [0, 1] on the device.

        Contiguous (planar), not a permuted view of the interleaved array: the scene score's
        per-pixel luma sums over the channel axis, which on interleaved (channels-last) strides
        runs 2–3x slower, and it sits on every frame's critical path.
        """
        t = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device)
        planar = t.permute(2, 0, 1).unsqueeze(0).to(self.dtype, memory_format=torch.contiguous_format)
        return planar.div_(255.0)

    @staticmethod
    def to_numpy(frames: torch.Tensor) -> np.ndarray:
        """(N, 3, H, W) in [0, 1] → (N, H, W, 3) uint8, rounded: ``Interpolator.to_numpy``'s result with
        fewer passes over the frame (scale, round and clamp in place)."""
        u8 = frames.float().mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
        return u8.permute(0, 2, 3, 1).contiguous().cpu().numpy()

    def blend(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        return torch.lerp(img0, img1, float(t))

    def scene_score(self, img0: torch.Tensor, img1: torch.Tensor) -> float:
        """``scene_change_score(img0, img1)``, computing each frame's cell features once: the frame loop
        scores (prev, cur) then (cur, next), so every frame is scored twice."""
        diff = (self._cell_features(img0) - self._cell_features(img1)).abs().mean(dim=(0, 2, 3))
        return float(diff.max())

    def _cell_features(self, img: torch.Tensor) -> torch.Tensor:
        for frame, features in self._features:
            if frame is img:
                return features
        features = _cell_features(img)
        self._features = [*self._features[-1:], (img, features)]
        return features

    def synthesize(self, *args: object, **kwargs: object) -> torch.Tensor:
        raise RuntimeError("no model loaded: this engine only blends or repeats (force_step blend/repeat)")
