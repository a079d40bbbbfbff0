"""The CPU-class model: a classical DIS flow refined by a small network.

An IFNet spends most of its cost finding the motion. On a CPU, OpenCV's DIS finds
it in a few milliseconds on a half-size grid; what a classical method does badly
is everything after: the linear intermediate flows are wrong wherever the motion
varies (fixed-point steps, :func:`rifestream.model.classical.intermediate_flows`,
fix the second-order part; with ``motion_search`` each pixel then takes, among nearby motions, the one
under which the two frames agree, :func:`rifestream.model.classical.search_motion`, which mends a
flow DIS smoothed across a moving edge), and averaging two warped frames doubles whatever either
warp got wrong (occlusions, both sides of a moving edge). So the network here only
corrects: from both frames, both warped frames and the intermediate flows on a grid
``net_level`` times coarser than the frames, a small U-Net predicts an occlusion mask,
a colour residual and (with ``flow_correction``) a flow correction. The final warps
(bilinear or bicubic) and the blend run at full resolution.

The last layer starts at zero, so an untrained :class:`LiteNet` returns the
classical frame of its own DIS settings; training only has to learn the corrections.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rifestream.model.classical import (
    PRESETS,
    DISFlow,
    grey_u8,
    intermediate_flows,
    occlusion_logits,
    resize_flow,
    searched_flows,
    shared_motion,
    take_inside,
    upsample,
)
from rifestream.model.frame_memo import FrameMemo
from rifestream.model.lite_cpu import WARP_MODES, edge_margin, kernel_for, lite_frames, time_logit
from rifestream.model.motion_history import Acceleration, MotionHistory, hedge_timing, quadratic_shift
from rifestream.model.planes import GREEN, cubic_ratio
from rifestream.model.warp import warp

#: A flow in pixels of the network's grid is divided by this before entering the network.
FLOW_NORM = 16.0


@dataclass(frozen=True)
class LiteConfig:
    """Architecture of one :class:`LiteNet` and the DIS settings it was trained with."""

    name: str
    widths: tuple[int, int] = (32, 48)
    net_level: int = 4
    flow_level: int = 2
    dis_preset: str = "medium"
    flow_iters: int = 0  # fixed-point steps of the intermediate flows (classical.intermediate_flows)
    # DIS's finest pyramid level on the flow grid (None: the preset's). "fast" stops 2 levels above
    # its input; on a half grid, 1 gives the flow detail of full-size "fast" at less cost.
    dis_finest_scale: int | None = None
    # Whether the network's flow corrections are applied (False: it only masks and adds a residual,
    # so it chooses between the two warped frames and cannot move content)
    flow_correction: bool = True
    # Whether the mask starts from where each frame's forward splat leaves holes
    # (classical.occlusion_logits) instead of even odds; the network's mask logits are added to it
    occlusion_prior: bool = False
    # Whether the network's colour residual is added (False: it only moves the mask; a residual on
    # its quarter-size grid can shift colours but not restore detail)
    colour_residual: bool = True
    # Whether both intermediate flows come from one motion per pixel, the average of what each
    # direction's flow says (classical.shared_motion)
    shared_motion: bool = False
    # Whether each pixel's motion is then chosen on the network's grid among the shared one, each
    # direction's own and its neighbours' by how well the two frames agree under it
    # (classical.search_motion; needs shared_motion). The full-size warps follow the chosen motion.
    motion_search: bool = False
    # How the two frames are sampled by the full-size warps: "bicubic" reconstructs the fine detail
    # a bilinear sample between pixels blurs away (the held-out clips: +0.1 to +0.6 dB per kind but
    # games, -0.1 there; about 2 ms more an output frame at 640x360: 1.9 against 0.7 ms a warp);
    # "measured" takes bicubic unless the pair's frames fit the linear kernel better (rendered
    # graphics with hard pixel edges, where the cubic kernel overshoots: lite_cpu.kernel_for)
    warp_mode: str = "bilinear"
    # Whether a stream's pairs follow a quadratic path: the acceleration the pair before gives
    # each pixel moves both intermediate flows (rifestream.model.motion_history; it needs no frame
    # of latency, and a pair with no known pair before is linear, as in training)
    quadratic_motion: bool = False
    # Whether each frame is then spread along its motion by the acceleration the past did not vouch
    # for (motion_history.hedge_timing: the mean of where a point may be at t; needs quadratic_motion)
    timing_hedge: bool = False
    # Whether a pixel whose sample from one frame falls outside that frame is taken from the other
    # alone, at full resolution (classical.take_inside: content entering the picture in a pan; the
    # occlusion prior's quarter grid smears that band of a few pixels)
    edge_occlusion: bool = False
    # Whether the U-Net runs (False: the mask is the occlusion prior's and the time's, and the model is its
    # classical steps; flow_correction and colour_residual need the network)
    network: bool = True

    def __post_init__(self) -> None:
        if len(self.widths) != 2 or any(int(c) < 4 for c in self.widths):
            raise ValueError(f"{self.name}: widths must be two channel counts >= 4, got {self.widths}")
        if self.net_level not in (2, 4, 8) or self.flow_level not in (1, 2, 4) or self.flow_level > self.net_level:
            raise ValueError(
                f"{self.name}: net_level must be 2, 4 or 8 and flow_level 1, 2 or 4 (at most net_level), "
                f"got {self.net_level} and {self.flow_level}"
            )
        if self.dis_finest_scale is not None and not 0 <= int(self.dis_finest_scale) <= 3:
            raise ValueError(f"{self.name}: dis_finest_scale must be 0 to 3, got {self.dis_finest_scale}")
        if not 0 <= int(self.flow_iters) <= 4:
            raise ValueError(f"{self.name}: flow_iters must be 0 to 4, got {self.flow_iters}")
        if self.warp_mode not in WARP_MODES:
            raise ValueError(f"{self.name}: warp_mode must be one of {', '.join(WARP_MODES)}, got {self.warp_mode!r}")
        if self.timing_hedge and not self.quadratic_motion:
            raise ValueError(f"{self.name}: timing_hedge spreads by the stream's past; set quadratic_motion = true too")
        if self.motion_search and not self.shared_motion:
            raise ValueError(f"{self.name}: motion_search chooses among shared motions; set shared_motion = true too")
        if not self.network and (self.flow_correction or self.colour_residual):
            raise ValueError(f"{self.name}: flow_correction and colour_residual need the network; set network = true")
        if self.dis_preset not in PRESETS:
            raise ValueError(f"{self.name}: dis_preset must be one of {', '.join(PRESETS)}, got {self.dis_preset!r}")

    @property
    def pad(self) -> int:
        """Training crops are a multiple of this (the U-Net halves the network's grid twice); at run
        time frames only need a multiple of ``net_level`` (the network's grid is padded inside)."""
        return self.net_level * 4

    def to_json(self) -> str:
        return json.dumps({"family": "lite", **asdict(self)})

    @classmethod
    def from_json(cls, text: str) -> LiteConfig:
        """The config :meth:`to_json` wrote; keys added since default (older files lack them)."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["widths"] = tuple(int(c) for c in values["widths"])
        return cls(**values)


def _act() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class RefineUNet(nn.Module):
    """(N, 17, h, w) → (N, 8, h, w): flow corrections (4), mask logits (1), colour residual (3).

    Two stride-2 stages down and two up; the costly convolutions run at 1/2 and 1/4
    of the network's grid, only the last two at its full size.
    """

    IN = 17
    OUT = 8

    def __init__(self, widths: tuple[int, int]) -> None:
        super().__init__()
        c1, c2 = widths
        c0 = max(8, c1 // 2)
        self.down1 = nn.Sequential(nn.Conv2d(self.IN, c1, 3, 2, 1), _act(), nn.Conv2d(c1, c1, 3, 1, 1), _act())
        self.down2 = nn.Sequential(
            nn.Conv2d(c1, c2, 3, 2, 1), _act(), nn.Conv2d(c2, c2, 3, 1, 1), _act(), nn.Conv2d(c2, c2, 3, 1, 1), _act()
        )
        self.up2 = nn.Sequential(nn.ConvTranspose2d(c2, c1, 4, 2, 1), _act())
        self.fuse1 = nn.Sequential(nn.Conv2d(2 * c1, c1, 3, 1, 1), _act())
        self.up1 = nn.Sequential(nn.ConvTranspose2d(c1, c0, 4, 2, 1), _act())
        self.fuse0 = nn.Sequential(nn.Conv2d(c0 + self.IN, c0, 3, 1, 1), _act())
        self.last = nn.Conv2d(c0, self.OUT, 3, 1, 1)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(x)
        d2 = self.down2(d1)
        u1 = self.fuse1(torch.cat((self.up2(d2), d1), 1))
        u0 = self.fuse0(torch.cat((self.up1(u1), x), 1))
        return self.last(u0)


@dataclass
class LiteOutput:
    """A forward pass's frame and what training looks at."""

    frame: torch.Tensor
    flow: torch.Tensor
    mask: torch.Tensor


class LiteNet(nn.Module):
    """The CPU model. ``model(img0, img1, timestep, scale, flows=None)`` → the frame at ``timestep``.

    ``flows`` are the pair's DIS flows (N, 4, h, w) in pixels of their own grid (see
    :meth:`prior`); when omitted they are computed here from the frames. With ``quadratic_motion``
    the model keeps a stream's last pairs (:attr:`history`): a stream's pairs are to come in order.
    """

    def __init__(self, config: LiteConfig) -> None:
        super().__init__()
        self.config = config
        self.refine = RefineUNet(config.widths)
        self._dis: DISFlow | None = None
        self._history: MotionHistory | None = None
        self.memo = FrameMemo()  # what each frame of the last pairs gave (grey, pooled, interleaved)
        self._runner: Callable[[torch.Tensor], torch.Tensor] | None = None

    def use_runner(self, runner: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        """Run the U-Net through ``runner`` (e.g. a compiled copy; None: the module itself)."""
        self._runner = None if runner is self.refine else runner

    def pad_multiple(self, scale: float = 1.0) -> int:
        """Frames are padded (by the caller, edge pixels repeated) to a multiple of this: the network's grid."""
        return self.levels(scale)[1]

    def levels(self, scale: float = 1.0) -> tuple[int, int]:
        """The (DIS, network) grid levels for a user ``scale`` (0.5 halves both grids again)."""
        f = max(1, round(1 / scale)) if scale < 1 else 1
        return self.config.flow_level * f, self.config.net_level * f

    def warp_mode(self, scale: float = 1.0) -> str:
        """The full-size warps' sampling at a user ``scale``: the config's at full scale, bilinear below
        it. A lower scale is the latency ladder's cheaper step; bicubic warps are about 2 of its 9 ms
        on a 640x360 frame (2-core CPU)."""
        return self.config.warp_mode if scale >= 1 else "bilinear"

    def prior(self, img0: torch.Tensor, img1: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """DIS flows (1, 4, h, w) of one (1, 3, H, W) pair on this model's flow grid."""
        if self._dis is None:
            self._dis = DISFlow(self.config.dis_preset, self.config.flow_level, self.config.dis_finest_scale)
        flow_level, _ = self.levels(scale)
        if img0.device.type != "cpu" or img0.dtype != torch.float32:
            return self._dis(img0, img1, flow_level).to(img0.device)
        g0, g1 = (self.memo.get(x, f"grey/{flow_level}", lambda x=x: grey_u8(x, flow_level)) for x in (img0, img1))
        return self._dis.flows(g0, g1)

    @property
    def history(self) -> MotionHistory | None:
        """The stream's last pairs, with ``quadratic_motion`` (None without): inference outside
        autograd on a CPU and the torch reference each find a pair's pair before in it."""
        if not self.config.quadratic_motion:
            return None
        if self._history is None:
            self._history = MotionHistory()
        return self._history

    def forward(
        self,
        img0: torch.Tensor,
        img1: torch.Tensor,
        timestep: float | torch.Tensor = 0.5,
        scale: float = 1.0,
        flows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`forward_all`'s frame alone (same arguments). Outside autograd on a CPU it is
        computed by :func:`rifestream.model.lite_cpu.lite_frames` (the same frame, no torch ops)."""
        cpu_inference = img0.device.type == "cpu" and img0.dtype == torch.float32 and not torch.is_grad_enabled()
        if not cpu_inference:
            return self.forward_all(img0, img1, timestep, scale, flows).frame
        return lite_frames(
            img0,
            img1,
            self._times(timestep, img0),
            self._pair_flows(img0, img1, scale, flows),
            net_level=self.levels(scale)[1],
            flow_iters=self.config.flow_iters,
            flow_correction=self.config.flow_correction,
            occlusion_prior=self.config.occlusion_prior,
            shared=self.config.shared_motion,
            search=self.config.motion_search,
            residual=self.config.colour_residual,
            warp_mode=self.warp_mode(scale),
            flow_norm=FLOW_NORM,
            network=(self._runner or self.refine) if self.config.network else None,
            history=self.history,
            hedge=self.config.timing_hedge,
            edges=self.config.edge_occlusion,
            memo=self.memo,
        )

    def _pair_flows(
        self, img0: torch.Tensor, img1: torch.Tensor, scale: float, flows: torch.Tensor | None
    ) -> torch.Tensor:
        """The given DIS flows, or each pair's own (:meth:`prior`), one per batch item."""
        n = img0.shape[0]
        if flows is None:
            flows = torch.cat([self.prior(img0[i : i + 1], img1[i : i + 1], scale) for i in range(n)])
        return flows.expand(n, -1, -1, -1)

    @staticmethod
    def _occlusion_logits(flows: torch.Tensor, t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(N, 1, h, w) :func:`rifestream.model.classical.occlusion_logits` of each item (no gradient:
        they come from the DIS flows alone)."""
        times = t.reshape(-1).tolist()
        pairs = flows.detach().float().cpu().permute(0, 2, 3, 1).numpy()
        logits = [torch.from_numpy(occlusion_logits(p, ti, size)) for p, ti in zip(pairs, times, strict=True)]
        return torch.stack(logits)[:, None]

    @staticmethod
    def _searched(
        small0: torch.Tensor,
        small1: torch.Tensor,
        mid: torch.Tensor,
        own: torch.Tensor,
        t: torch.Tensor,
        prior: torch.Tensor | None,
    ) -> torch.Tensor:
        """(N, 4, h, w) :func:`rifestream.model.classical.searched_flows` of each item, on the
        network's grid (no gradient: the motion is chosen, not learned)."""
        out = []
        for i, ti in enumerate(t.reshape(-1).tolist()):
            chosen = searched_flows(
                _numpy(small0[i]),
                _numpy(small1[i]),
                (_field(mid[i, 0:2]), _field(mid[i, 2:4])),
                (_field(own[i, 0:2]), _field(own[i, 2:4])),
                ti,
                None if prior is None else _numpy(prior[i, 0]),
            )
            out.append(torch.from_numpy(np.concatenate(chosen, axis=2)).permute(2, 0, 1))
        return torch.stack(out).to(mid)

    def _quadratic(
        self,
        small0: torch.Tensor,
        small1: torch.Tensor,
        grid_flows: torch.Tensor,
        mid: torch.Tensor,
        t: torch.Tensor,
        level: int,
    ) -> tuple[torch.Tensor, list[Acceleration | None]]:
        """(N, 4, h, w) intermediate flows ``mid`` moved onto each pair's quadratic path where
        :attr:`history` vouches for it (:mod:`rifestream.model.motion_history`; no gradient): the
        pairs looked up and remembered by their pooled frames, with their DIS flows ``grid_flows`` on
        the network's grid (``level`` frame pixels a cell); and each item's acceleration."""
        out, found, last = [], [], None
        for i, ti in enumerate(t.reshape(-1).tolist()):
            frames = (_numpy(small0[i]).copy(), _numpy(small1[i]).copy())  # kept by the history
            if last is None or not all(np.array_equal(a, b) for a, b in zip(frames, last[0], strict=True)):
                last = frames, self.history.acceleration(*frames, _field(grid_flows[i]), level)  # once a pair
            m = _field(mid[i])
            if last[1] is not None:
                m = np.concatenate(quadratic_shift(m[..., 0:2], m[..., 2:4], last[1].trusted, ti), axis=2)
            out.append(torch.from_numpy(m).permute(2, 0, 1))
            found.append(last[1])
        return torch.stack(out).to(mid), found

    @staticmethod
    def _times(timestep: float | torch.Tensor, img0: torch.Tensor) -> torch.Tensor:
        """``timestep`` (a float, or a tensor with one value per batch item) as (N, 1, 1, 1)."""
        n = img0.shape[0]
        if isinstance(timestep, torch.Tensor):
            return timestep.to(img0.device, img0.dtype).reshape(n, -1)[:, :1].view(n, 1, 1, 1)
        return img0.new_full((n, 1, 1, 1), float(timestep))

    def forward_all(
        self,
        img0: torch.Tensor,
        img1: torch.Tensor,
        timestep: float | torch.Tensor = 0.5,
        scale: float = 1.0,
        flows: torch.Tensor | None = None,
    ) -> LiteOutput:
        n, _, h, w = img0.shape
        flows = self._pair_flows(img0, img1, scale, flows)
        t = self._times(timestep, img0)
        _, net_level = self.levels(scale)
        hs, ws = h // net_level, w // net_level
        # Outside autograd on a CPU every warp is cv2.remap (several times faster than grid_sample
        # there); training (autograd) and other devices take the torch reference.
        search = self.config.motion_search
        if search:  # the motion is refined and chosen on the network's grid; the full-size flows come from there
            flows = resize_flow(flows, (hs, ws))
        own = intermediate_flows(flows.to(img0.dtype), t, self.config.flow_iters, "opencv")
        mid_fine = torch.cat(shared_motion(own[:, 0:2], own[:, 2:4], t), 1) if self.config.shared_motion else own
        small0 = F.avg_pool2d(img0, net_level)
        small1 = F.avg_pool2d(img1, net_level)
        mid = resize_flow(mid_fine, (hs, ws))
        prior = self._occlusion_logits(flows, t, (hs, ws)).to(img0) if self.config.occlusion_prior else None
        if search:
            mid = mid_fine = self._searched(small0, small1, mid, own, t, prior)
        found: list[Acceleration | None] = []
        if self.history is not None and not torch.is_grad_enabled():  # training draws single triplets
            mid_fine, found = self._quadratic(small0, small1, resize_flow(flows, (hs, ws)), mid_fine, t, net_level)
            mid = resize_flow(mid_fine, (hs, ws))
        if self.config.network:
            sw0 = warp(small0, mid[:, 0:2], "opencv")
            sw1 = warp(small1, mid[:, 2:4], "opencv")
            x = torch.cat((small0, small1, sw0, sw1, mid / FLOW_NORM, t.expand(n, 1, hs, ws)), 1)
            # The U-Net halves its grid twice: pad the small grid, not the frames. Padding the frames
            # made DIS see a still border under a moving picture (-1.8 dB on a large pan, zero padding).
            ph, pw = (-hs) % 4, (-ws) % 4
            if ph or pw:
                x = F.pad(x, (0, pw, 0, ph), mode="replicate")
            out = (self._runner or self.refine)(x)[:, :, :hs, :ws]
        else:  # the mask starts from the time's weights (lite_cpu.time_logit)
            out = img0.new_zeros((n, RefineUNet.OUT, hs, ws))
            out[:, 4] = torch.tensor([time_logit(ti) for ti in t.reshape(-1).tolist()], dtype=out.dtype).view(n, 1, 1)
        if prior is not None:
            out = torch.cat((out[:, :4], out[:, 4:5] + prior, out[:, 5:]), 1)
        flow = resize_flow(mid_fine, (h, w))
        # Scales are applied on the network's grid, before the (linear) upsampling: 16 times fewer
        # pixels. The corrections are in network-grid pixels / FLOW_NORM; the residual is a tenth.
        grid_to_full = [w / ws * FLOW_NORM, h / hs * FLOW_NORM] * 2
        r = 0.1 if self.config.colour_residual else 0.0
        scales = torch.tensor([*grid_to_full, 1.0, r, r, r], dtype=out.dtype, device=out.device).view(1, 8, 1, 1)
        if self.config.flow_correction:
            up = upsample(out * scales, (h, w))
            flow = flow + up[:, 0:4]
            up = up[:, 4:8]
        else:
            up = upsample(out[:, 4:8] * scales[:, 4:8], (h, w))
        mask = torch.sigmoid(up[:, 0:1])
        if self.config.edge_occlusion:
            mask = _inside(mask, flow, found, t)
        modes = [self.warp_mode(scale)] * n
        if modes[0] == "measured":
            ratios = [(cubic_ratio(_numpy(img0[i, GREEN])), cubic_ratio(_numpy(img1[i, GREEN]))) for i in range(n)]
            modes = [kernel_for(*pair) for pair in ratios]
        if len(set(modes)) == 1:
            w0 = warp(img0, flow[:, 0:2], "opencv", modes[0])
            w1 = warp(img1, flow[:, 2:4], "opencv", modes[0])
        else:  # a batch whose items chose differently
            w0 = torch.cat([warp(img0[i : i + 1], flow[i : i + 1, 0:2], "opencv", m) for i, m in enumerate(modes)])
            w1 = torch.cat([warp(img1[i : i + 1], flow[i : i + 1, 2:4], "opencv", m) for i, m in enumerate(modes)])
        frame = _mask_blend(w0, w1, mask, up[:, 1:4])
        if self.config.timing_hedge and any(a is not None for a in found):
            frame = _hedged(frame, found, t)
        return LiteOutput(frame=frame, flow=flow, mask=mask)


def _numpy(x: torch.Tensor) -> np.ndarray:
    """A tensor's values as a float32 numpy array (a view where it can be)."""
    return x.detach().float().cpu().numpy()


def _field(x: torch.Tensor) -> np.ndarray:
    """A (C, h, w) tensor as a contiguous (h, w, C) float32 array: OpenCV's layout of a flow."""
    return np.ascontiguousarray(_numpy(x).transpose(1, 2, 0))


def _inside(mask: torch.Tensor, flow: torch.Tensor, found: list[Acceleration | None], t: torch.Tensor) -> torch.Tensor:
    """``mask`` (N, 1, H, W) with :func:`rifestream.model.classical.take_inside` of each item, with its
    full-size flows ``flow`` (N, 4, H, W) and the margin its acceleration gives: the pixels it decides
    take 0 or 1, the others keep the mask and its gradient (training learns the rest)."""
    fields = flow.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    decided = np.full((mask.shape[0], *mask.shape[-2:]), np.nan, dtype=np.float32)
    h, w = decided.shape[-2:]
    for i, ti in enumerate(t.reshape(-1).tolist()):
        full0, full1 = np.ascontiguousarray(fields[i, ..., 0:2]), np.ascontiguousarray(fields[i, ..., 2:4])
        acceleration = found[i] if i < len(found) else None
        take_inside(decided[i], full0, full1, edge_margin(acceleration, ti, h, w))
    forced = torch.from_numpy(decided)[:, None].to(mask)
    return torch.where(torch.isnan(forced), mask, forced)


def _hedged(frame: torch.Tensor, found: list[Acceleration | None], t: torch.Tensor) -> torch.Tensor:
    """``frame`` with each item whose acceleration is known spread by its doubt
    (:func:`rifestream.model.motion_history.hedge_timing`; OpenCV on a CPU copy: no gradient)."""
    planes = frame.detach().float().cpu().numpy().copy()
    for i, (acceleration, ti) in enumerate(zip(found, t.reshape(-1).tolist(), strict=True)):
        if acceleration is not None:
            hedge_timing(list(planes[i]), acceleration.doubt, ti)
    return torch.from_numpy(planes).to(frame)


def _mask_blend(w0: torch.Tensor, w1: torch.Tensor, mask: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``w1 + mask·(w0 − w1) + residual``; outside autograd in place on ``w0`` (a fresh full-size
    temporary per operation costs about as much as the arithmetic on a CPU)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (w0, w1, mask, residual)):
        return w1 + mask * (w0 - w1) + residual
    return w0.sub_(w1).mul_(mask).add_(w1).add_(residual)
