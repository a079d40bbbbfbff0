"""An independent reference IFNet, structured like the official Practical-RIFE ``IFNet_HDv3.py``.

Written for the tests from the RIFE v4 architecture as published and a reading of the public RIFE code, not
from rifestream's model package (it imports nothing of rifestream). It keeps the
official calling convention so that the comparison also checks the conventions:

* ``forward(x, timestep, scale_list)`` with ``x = cat(img0, img1)`` on channels;
* ``timestep`` a float, or a tensor of shape (N, 1, 1, 1) that is repeated to H×W;
* ``scale_list`` given explicitly (the official ``[8/scale, 4/scale, …]``);
* the warp builds its identity grid with ``linspace(-1, 1)`` in (N, 2, H, W)
  layout, normalises the flow by (size − 1) / 2 and samples with
  ``grid_sample(bilinear, border, align_corners=True)``.

Parameter names are the official ones, so a prefix-stripped ``flownet.pkl``
state dict loads with ``load_state_dict`` directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_grids: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}


def reference_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp as the official ``warplayer.warp`` does it (grid cached per flow size)."""
    n, _, h, w = flow.shape
    key = (str(flow.device), tuple(flow.shape))
    if key not in _grids:
        horizontal = torch.linspace(-1.0, 1.0, w, device=flow.device).view(1, 1, 1, w).expand(n, -1, h, -1)
        vertical = torch.linspace(-1.0, 1.0, h, device=flow.device).view(1, 1, h, 1).expand(n, -1, -1, w)
        _grids[key] = torch.cat([horizontal, vertical], dim=1)
    normalised = torch.cat(
        [flow[:, 0:1] / ((image.shape[3] - 1.0) / 2.0), flow[:, 1:2] / ((image.shape[2] - 1.0) / 2.0)], dim=1
    )
    grid = (_grids[key] + normalised).permute(0, 2, 3, 1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), nn.LeakyReLU(0.2, True))


class RefResConv(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, c, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class RefIFBlock(nn.Module):
    def __init__(self, in_planes: int, c: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(in_planes, c // 2, 2), _conv(c // 2, c, 2))
        self.convblock = nn.Sequential(*(RefResConv(c) for _ in range(8)))
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * out_channels, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            small_flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
            x = torch.cat((x, small_flow * (1.0 / scale)), 1)
        tmp = self.lastconv(self.convblock(self.conv0(x)))
        tmp = F.interpolate(tmp, scale_factor=scale, mode="bilinear", align_corners=False)
        # channels: flow (4, rescaled to full-size pixels), mask (1), then features
        return torch.cat((tmp[:, :4] * scale, tmp[:, 4:]), 1)


def _split_and_timestep(x: torch.Tensor, timestep: float | torch.Tensor):
    channel = x.shape[1] // 2
    img0, img1 = x[:, :channel], x[:, channel:]
    if torch.is_tensor(timestep):
        t = timestep.repeat(1, 1, img0.shape[2], img0.shape[3])
    else:
        t = (x[:, :1].clone() * 0 + 1) * timestep
    return img0, img1, t


class RefIFNetV46(nn.Module):
    """RIFE v4.6: four blocks, no feature head; flow and mask both accumulate."""

    def __init__(self) -> None:
        super().__init__()
        self.block0 = RefIFBlock(7, 192, 6)
        self.block1 = RefIFBlock(8 + 4, 128, 6)
        self.block2 = RefIFBlock(8 + 4, 96, 6)
        self.block3 = RefIFBlock(8 + 4, 64, 6)

    def forward(self, x: torch.Tensor, timestep: float | torch.Tensor, scale_list: list[float]) -> torch.Tensor:
        img0, img1, t = _split_and_timestep(x, timestep)
        blocks = [self.block0, self.block1, self.block2, self.block3]
        flow = mask = None
        warped0, warped1 = img0, img1
        for i, block in enumerate(blocks):
            if flow is None:
                out = block(torch.cat((img0[:, :3], img1[:, :3], t), 1), None, scale_list[i])
                flow, mask = out[:, :4], out[:, 4:5]
            else:
                out = block(torch.cat((warped0[:, :3], warped1[:, :3], t, mask), 1), flow, scale_list[i])
                flow = flow + out[:, :4]
                mask = mask + out[:, 4:5]
            warped0 = reference_warp(img0, flow[:, :2])
            warped1 = reference_warp(img1, flow[:, 2:4])
        m = torch.sigmoid(mask)
        return warped0 * m + warped1 * (1 - m)


class RefHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, 4, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


class RefIFNetHead(nn.Module):
    """RIFE v4.2x with the ``encode`` head (v4.25 / v4.26 with widths 192…32; lite variants by ``widths``).

    Flow accumulates; mask and features are replaced by each block's output.
    """

    def __init__(self, widths: tuple[int, ...] = (192, 128, 96, 64, 32)) -> None:
        super().__init__()
        for i, c in enumerate(widths):
            in_planes = 7 + 8 if i == 0 else 8 + 4 + 8 + 8
            self.add_module(f"block{i}", RefIFBlock(in_planes, c, 13))
        self.encode = RefHead()
        self.n_blocks = len(widths)

    def forward(self, x: torch.Tensor, timestep: float | torch.Tensor, scale_list: list[float]) -> torch.Tensor:
        img0, img1, t = _split_and_timestep(x, timestep)
        f0 = self.encode(img0[:, :3])
        f1 = self.encode(img1[:, :3])
        flow = mask = feat = None
        warped0, warped1 = img0, img1
        for i in range(self.n_blocks):
            block = getattr(self, f"block{i}")
            if flow is None:
                out = block(torch.cat((img0[:, :3], img1[:, :3], f0, f1, t), 1), None, scale_list[i])
                flow = out[:, :4]
            else:
                wf0 = reference_warp(f0, flow[:, :2])
                wf1 = reference_warp(f1, flow[:, 2:4])
                parts = (warped0[:, :3], warped1[:, :3], wf0, wf1, t, mask, feat)
                out = block(torch.cat(parts, 1), flow, scale_list[i])
                flow = flow + out[:, :4]
            mask, feat = out[:, 4:5], out[:, 5:]
            warped0 = reference_warp(img0, flow[:, :2])
            warped1 = reference_warp(img1, flow[:, 2:4])
        m = torch.sigmoid(mask)
        return warped0 * m + warped1 * (1 - m)
