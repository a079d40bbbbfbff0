"""The IFNet family (RIFE v4.x) as one parametric module.

Every official v4 checkpoint and the project's own configurations are instances
of :class:`IFNetConfig`; parameter names match the official ``flownet.pkl``
files once their ``module.`` prefix is stripped, so official weights load as they are.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rifestream.model.bilateral import WINDOW, bilateral_flow
from rifestream.model.warp import Backend, warp, warp_blend


@dataclass(frozen=True)
class IFNetConfig:
    """Architecture of one IFNet: block widths, per-block scales, optional feature head.

    ``search_radius`` > 0 adds a bilateral block-matching prior to the coarsest block's flow
    (:mod:`rifestream.model.bilateral`, searched on a grid ``search_level`` times coarser than
    the frames, divided by the user's ``scale``, comparing windows of ``search_window`` cells,
    refined to a fraction of a cell with ``search_subcell``); it has no parameters, and official
    checkpoints leave it at 0.
    """

    name: str
    channels: tuple[int, ...]
    scales: tuple[float, ...]
    head: bool
    pad: int
    search_radius: int = 0
    search_level: int = 2
    search_window: int = WINDOW
    search_subcell: bool = False

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.scales) or not self.channels:
            raise ValueError(f"{self.name}: channels and scales must be non-empty and of equal length")
        if any(c % 2 for c in self.channels):
            raise ValueError(f"{self.name}: block widths must be even, got {self.channels}")
        if self.search_radius < 0 or self.search_level < 1 or self.pad % self.search_level:
            raise ValueError(
                f"{self.name}: search_radius must be >= 0 and search_level >= 1 dividing pad ({self.pad}), "
                f"got {self.search_radius} and {self.search_level}"
            )
        if not isinstance(self.search_window, int) or self.search_window < 1 or self.search_window % 2 == 0:
            raise ValueError(f"{self.name}: search_window must be an odd number of cells, got {self.search_window!r}")
        if not isinstance(self.search_subcell, bool):
            raise ValueError(f"{self.name}: search_subcell must be true or false, got {self.search_subcell!r}")

    @property
    def k_out(self) -> int:
        """Channels each block predicts: flow (4) + mask (1) [+ feat (8) with a head]."""
        return 13 if self.head else 6

    @property
    def first_in(self) -> int:
        return 15 if self.head else 7

    @property
    def later_in(self) -> int:
        # w0, w1, t, mask (+ warped f0, f1, feat with a head) + 4 flow channels
        return 28 if self.head else 12

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> IFNetConfig:
        data = json.loads(text)
        return cls(
            name=str(data["name"]),
            channels=tuple(int(c) for c in data["channels"]),
            scales=tuple(float(s) for s in data["scales"]),
            head=bool(data["head"]),
            pad=int(data["pad"]),
            search_radius=int(data.get("search_radius", 0)),
            search_level=int(data.get("search_level", 2)),
            search_window=int(data.get("search_window", WINDOW)),
            search_subcell=bool(data.get("search_subcell", False)),
        )


OFFICIAL_ARCHS: dict[str, IFNetConfig] = {
    "v4.6": IFNetConfig("v4.6", (192, 128, 96, 64), (8, 4, 2, 1), head=False, pad=32),
    "v4.22.lite": IFNetConfig("v4.22.lite", (192, 128, 64, 32), (8, 4, 2, 1), head=True, pad=32),
    "v4.25": IFNetConfig("v4.25", (192, 128, 96, 64, 32), (16, 8, 4, 2, 1), head=True, pad=64),
    "v4.25.lite": IFNetConfig("v4.25.lite", (192, 128, 96, 64, 24), (32, 16, 8, 4, 1), head=True, pad=128),
    "v4.26": IFNetConfig("v4.26", (192, 128, 96, 64, 32), (16, 8, 4, 2, 1), head=True, pad=64),
}


def conv(i: int, o: int, k: int = 3, s: int = 1, p: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, k, s, p, bias=True), nn.LeakyReLU(0.2, inplace=True))


class ResConv(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, c, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    """One coarse-to-fine stage: predicts a flow update, a mask and (with a head) features."""

    def __init__(self, in_planes: int, c: int, k_out: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(conv(in_planes, c // 2, 3, 2, 1), conv(c // 2, c, 3, 2, 1))
        self.convblock = nn.Sequential(*[ResConv(c) for _ in range(8)])
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * k_out, 4, 2, 1), nn.PixelShuffle(2))

    def forward(
        self, x: torch.Tensor, flow: torch.Tensor | None, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        out = self.lastconv(self.convblock(self.conv0(x)))
        out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
        return out[:, 0:4] * scale, out[:, 4:5], out[:, 5:]


class Head(nn.Module):
    """Per-frame feature encoder of the v4.2x models (key prefix ``encode.``)."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, 4, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


@dataclass
class IFNetOutput:
    """Everything a forward pass produces; training needs the per-block flows."""

    frame: torch.Tensor
    flows: list[torch.Tensor]
    mask: torch.Tensor
    warped0: torch.Tensor
    warped1: torch.Tensor


class IFNet(nn.Module):
    """RIFE's intermediate flow network for any :class:`IFNetConfig`.

    ``model(img0, img1, timestep, scale=1.0)`` takes (N, 3, H, W) images in
    [0, 1] with H and W multiples of :meth:`pad_multiple` and returns the
    frame at ``timestep`` (a float or an (N, 1, H, W) tensor).

    ``warp_backend`` picks the warp op's backend (None: the process default, torch ops; "cupy":
    the CuPy kernels on CUDA, opt-in through the engine's ``cupy_kernels`` setting).
    """

    def __init__(self, config: IFNetConfig) -> None:
        super().__init__()
        self.config = config
        self.warp_backend: Backend | None = None
        k = config.k_out
        for i, c in enumerate(config.channels):
            self.add_module(f"block{i}", IFBlock(config.first_in if i == 0 else config.later_in, c, k))
        if config.head:
            self.encode = Head()

    @property
    def blocks(self) -> list[IFBlock]:
        return [getattr(self, f"block{i}") for i in range(len(self.config.channels))]

    def pad_multiple(self, scale: float = 1.0) -> int:
        """H and W must be multiples of this for the given user ``scale``."""
        return max(self.config.pad, int(self.config.pad / scale))

    def forward(
        self,
        img0: torch.Tensor,
        img1: torch.Tensor,
        timestep: float | torch.Tensor = 0.5,
        scale: float = 1.0,
    ) -> torch.Tensor:
        """The frame at ``timestep``; the last warps and the mask blend run as one fused op."""
        img0, img1 = img0.clamp(0.0, 1.0), img1.clamp(0.0, 1.0)
        flows, mask_logits = self._estimate(img0, img1, timestep, scale)
        return warp_blend(img0, img1, flows[-1], mask_logits, self.warp_backend)

    def forward_all(
        self,
        img0: torch.Tensor,
        img1: torch.Tensor,
        timestep: float | torch.Tensor = 0.5,
        scale: float = 1.0,
    ) -> IFNetOutput:
        """Full forward pass with the per-block flows, mask and warped frames (for training)."""
        img0, img1 = img0.clamp(0.0, 1.0), img1.clamp(0.0, 1.0)
        flows, mask_logits = self._estimate(img0, img1, timestep, scale)
        warped0 = warp(img0, flows[-1][:, 0:2], self.warp_backend)
        warped1 = warp(img1, flows[-1][:, 2:4], self.warp_backend)
        m = torch.sigmoid(mask_logits)
        frame = warped0 * m + warped1 * (1 - m)
        return IFNetOutput(frame=frame, flows=flows, mask=m, warped0=warped0, warped1=warped1)

    def _estimate(
        self, img0: torch.Tensor, img1: torch.Tensor, timestep: float | torch.Tensor, scale: float
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The coarse-to-fine flow estimate: every block's accumulated flow and the final mask logits.

        The flow is accumulated in fp32 also in fp16 (fp16 steps are 0.25 px past 512 px at 4K);
        each block reads it in the images' dtype.
        """
        n, _, h, w = img0.shape
        if isinstance(timestep, torch.Tensor):
            t = timestep.to(img0.device, img0.dtype)
            if t.dim() != 4 or t.shape[2:] != (h, w):
                t = t.reshape(-1, 1, 1, 1).expand(n, 1, h, w)
        else:
            t = img0.new_full((n, 1, h, w), float(timestep))
        cfg = self.config
        f0 = f1 = None
        if cfg.head:
            f0, f1 = self.encode(img0), self.encode(img1)
        flow: torch.Tensor | None = None
        mask: torch.Tensor | None = None
        feat: torch.Tensor | None = None
        flows: list[torch.Tensor] = []
        for block, block_scale in zip(self.blocks, cfg.scales, strict=True):
            s = block_scale / scale
            if flow is None:
                parts = [img0, img1, f0, f1, t] if cfg.head else [img0, img1, t]
                flow, mask, feat = block(torch.cat(parts, 1), None, s)
                flow = flow.float()
                if cfg.search_radius:  # on a grid as much coarser as the blocks' inputs (scale 0.5: 2x)
                    level = max(1, round(cfg.search_level / scale))
                    flow = flow + bilateral_flow(
                        img0, img1, t, cfg.search_radius, level, cfg.search_window, cfg.search_subcell
                    )
            else:
                backend = self.warp_backend
                warped0 = warp(img0, flow[:, 0:2], backend)
                warped1 = warp(img1, flow[:, 2:4], backend)
                if cfg.head:
                    wf0 = warp(f0, flow[:, 0:2], backend)
                    wf1 = warp(f1, flow[:, 2:4], backend)
                    parts = [warped0, warped1, wf0, wf1, t, mask, feat]
                else:
                    parts = [warped0, warped1, t, mask]
                d_flow, d_mask, feat = block(torch.cat(parts, 1), flow.to(img0.dtype), s)
                flow = flow + d_flow.float()
                mask = d_mask if cfg.head else mask + d_mask
            flows.append(flow)
        return flows, mask
