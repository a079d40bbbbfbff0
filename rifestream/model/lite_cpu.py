"""The CPU model's inference on a CPU: OpenCV and numpy on the planes of the frames.

:meth:`rifestream.model.lite.LiteNet.forward_all` is the reference (and what training runs);
this computes the same frame without torch ops. On a 2-core CPU that matters more than the
arithmetic: torch's OpenMP workers spin for a while after every op and take the cores from the
OpenCV threads that run next, and each small torch op on a frame costs about as much as the
OpenCV call beside it. The two directions of the pair (DIS, fixed-point steps) run at once
(:func:`rifestream.model.classical.both_directions`); every warp is a ``cv2.remap`` with a
two-channel map; the network (OpenVINO or torch) sees one array.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch

from rifestream.model import planes
from rifestream.model.classical import (
    OUTSIDE_MARGIN_PX,
    fixed_point_pair,
    occlusion_logits,
    searched_flows,
    shared_motion,
    take_inside,
)
from rifestream.model.frame_memo import FrameMemo
from rifestream.model.motion_history import Acceleration, MotionHistory, doubt_px, hedge_timing, quadratic_shift

Network = Callable[[torch.Tensor], torch.Tensor]

#: How the full-size warps may sample: a ``cv2.remap`` interpolation, or "measured" (:func:`kernel_for`).
WARP_MODES = (*planes.INTERPOLATIONS, "measured")


#: :func:`planes.cubic_ratio` (a pair's mean) above which its warps are bilinear. Near 1 the two kernels
#: fit alike and the cubic one's sharper samples still win: the held-out camera clip `carphone_0`,
#: whose pairs lie at 0.98-1.005, lost 0.08 dB with the line at 1. Rendered graphics lie at 1.05-1.09.
CUBIC_MISFIT = 1.02


def time_logit(t: float) -> float:
    """The mask logit that weighs frame 0 by 1 − t and frame 1 by t, where nothing else decides: the
    nearer frame's warp moves its content less, so it is the likelier one to be right (Super SloMo's
    temporal weights). 0 at t = 0.5. What a trained network learns from its t input; a model
    without one starts its mask here (held-out clips at t = 0.25 and 0.75: +0.1 to +0.6 dB a kind)."""
    t = min(max(float(t), 1e-3), 1.0 - 1e-3)
    return float(np.log((1.0 - t) / t))


def kernel_for(ratio0: float, ratio1: float) -> str:
    """The full-size warps' sampling for a pair whose frames have these :func:`planes.cubic_ratio`:
    bilinear where the cubic kernel clearly fits the frames' own pixels worse than the linear one
    (rendered graphics with hard pixel edges, where its overshoot at every step costs more than its
    sharpness gives: Freedoom +0.04 to +0.05 dB, XScreenSaver's hacks +0.09 to +0.25), bicubic
    elsewhere. On the held-out clips it chose bilinear for every pair of those six clips and for no
    pair of camera, film, sign-language, large-motion, SuperTux or Big Buck Bunny footage."""
    return "bilinear" if ratio0 + ratio1 > 2.0 * CUBIC_MISFIT else "bicubic"


def lite_frames(
    img0: torch.Tensor,
    img1: torch.Tensor,
    t: torch.Tensor,
    flows: torch.Tensor,
    *,
    net_level: int,
    flow_iters: int,
    flow_correction: bool,
    flow_norm: float,
    occlusion_prior: bool = False,
    shared: bool = False,
    search: bool = False,
    residual: bool = True,
    warp_mode: str = "bilinear",
    network: Network | None,
    history: MotionHistory | None = None,
    hedge: bool = False,
    edges: bool = False,
    memo: FrameMemo | None = None,
) -> torch.Tensor:
    """(N, 3, H, W) frames at times ``t`` (N, 1, 1, 1) from fp32 CPU frames (N, 3, H, W) and their
    DIS flows (N, 4, h, w) in pixels of the flow grid: what ``forward_all(...).frame`` gives. With a
    ``history`` each pair is looked up and remembered there by its pooled frames, and moved onto its
    quadratic path where the pair before vouches for it (:mod:`rifestream.model.motion_history`); with
    ``hedge`` too, each frame is then spread along the motion the pair before left in doubt. With
    ``edges``, a pixel whose sample from one frame falls outside it is taken from the other
    (:func:`rifestream.model.classical.take_inside`). Without a ``network`` the mask is the occlusion
    prior's and the time's (:func:`time_logit`); ``warp_mode`` "measured" chooses the full-size warps' kernel per pair
    (:func:`kernel_for`). What is made from each frame alone (its pooled
    planes, its interleaved pixels) is kept in ``memo`` (:mod:`rifestream.model.frame_memo`) for the
    next pair, and for this call's times of the same frame in any case."""
    n, _, h, w = img0.shape
    out = torch.empty((n, 3, h, w), dtype=torch.float32)
    times = t.reshape(-1).float().expand(n).tolist()
    made: dict[tuple, np.ndarray] = {}
    accelerations: dict[tuple[int, int], Acceleration | None] = {}  # and a pair looked up once
    for i, ti in enumerate(times):
        pair = flows[i].detach().float().permute(1, 2, 0).numpy()  # (h, w, 4)
        hs, ws = h // net_level, w // net_level
        if search:  # the motion is refined and chosen on the network's grid; the full-size flows come from there
            pair = planes.resize_flow(pair, hs, ws)
        own = fixed_point_pair(pair, ti, flow_iters)
        mid0, mid1 = shared_motion(*own, ti) if shared else own
        s0, s1 = (
            _derived(memo, made, frame, f"pool/{net_level}", lambda f: planes.pool(f, net_level))
            for frame in (img0[i], img1[i])
        )
        prior = occlusion_logits(pair, ti, (hs, ws)) if occlusion_prior else None
        if search:
            mid0, mid1 = searched_flows(s0, s1, (mid0, mid1), own, ti, prior)
        acceleration = None
        if history is not None:
            key = (id(s0), id(s1))
            if key not in accelerations:
                on_grid = pair if search else planes.resize_flow(pair, hs, ws)
                accelerations[key] = history.acceleration(s0, s1, on_grid, net_level)
            acceleration = accelerations[key]
            if acceleration is not None:
                mid0, mid1 = quadratic_shift(mid0, mid1, acceleration.trusted, ti)
        if search:
            m0, m1 = mid0, mid1
        else:
            m0, m1 = planes.resize_flow(mid0, hs, ws), planes.resize_flow(mid1, hs, ws)
        full0, full1 = planes.resize_flow(mid0, h, w), planes.resize_flow(mid1, h, w)
        if network is None:  # the mask is the prior's and the time's alone (no corrections, no residual)
            y = None
            logits = np.full((hs, ws), time_logit(ti), np.float32)
        else:
            x = _network_input(s0, s1, planes.warp(s0, m0), planes.warp(s1, m1), m0, m1, ti, flow_norm)
            y = network(torch.from_numpy(x)).detach().float().numpy()[0, :, :hs, :ws]
            logits = y[4]
        if prior is not None:
            logits += prior
        if flow_correction:  # corrections are in network-grid pixels / flow_norm
            for full, k in ((full0, 0), (full1, 2)):
                full[..., 0] += planes.upsample(y[k], h, w) * (w / ws * flow_norm)
                full[..., 1] += planes.upsample(y[k + 1], h, w) * (h / hs * flow_norm)
        mask = planes.sigmoid(planes.upsample(logits, h, w))
        if edges:
            reach = max(float(np.abs(mid0).max()), float(np.abs(mid1).max())) * max(h / hs, w / ws)
            take_inside(mask, full0, full1, edge_margin(acceleration, ti, h, w), reach + 1.0)
        # The full-size stage runs on interleaved pixels: a warp finds each sample's weights once for
        # the three colours, and the frame comes back to planes once
        pixels0, pixels1 = (_derived(memo, made, x, "interleaved", planes.interleaved) for x in (img0[i], img1[i]))
        mode = warp_mode
        if mode == "measured":
            r0, r1 = (_derived(memo, made, img, "cubic_ratio", _green_cubic_ratio) for img in (img0[i], img1[i]))
            mode = kernel_for(float(r0), float(r1))
        frame = planes.warp_interleaved(pixels0, full0, mode)
        w1 = planes.warp_interleaved(pixels1, full1, mode)
        cv2.subtract(frame, w1, dst=frame)  # w1 + mask·(w0 − w1) + residual / 10, in place
        cv2.multiply(frame, cv2.merge((mask, mask, mask)), dst=frame)
        cv2.add(frame, w1, dst=frame)
        if residual:
            cv2.scaleAdd(cv2.merge([planes.upsample(y[5 + k], h, w) for k in range(3)]), 0.1, frame, dst=frame)
        if hedge and acceleration is not None:
            hedge_timing([frame], acceleration.doubt, ti)
        cv2.split(frame, list(out[i].numpy()))
    return out


def edge_margin(acceleration: Acceleration | None, t: float, h: int, w: int) -> float | np.ndarray:
    """How far outside its frame a sample must fall for :func:`take_inside`: a pixel, plus twice how
    far the pixel's place at ``t`` is in doubt where the stream's past says (a game's per-tic steps
    leave it unknown which frame shows the rows at a border; SuperTux, scrolling steadily, gained
    0.25 dB from the rule and Freedoom lost 0.01-0.02, against 0.03-0.07 with a fixed pixel)."""
    if acceleration is None:
        return OUTSIDE_MARGIN_PX
    gh, gw = acceleration.doubt.shape[:2]
    on_grid = doubt_px(acceleration.doubt, t, max(h / gh, w / gw))  # scaled on the grid, then resized once
    return planes.upsample(cv2.add(cv2.multiply(on_grid, 2.0), OUTSIDE_MARGIN_PX), h, w)


def _derived(
    memo: FrameMemo | None,
    made: dict[tuple, np.ndarray],
    frame: torch.Tensor,
    what: str,
    make: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """``make`` of a frame's planes: once per frame of this call (``made``: a frame repeated for
    several times), and once per frame while ``memo`` keeps it."""
    key = (what, frame.data_ptr(), tuple(frame.shape))
    if key not in made:
        array = frame.detach().numpy()
        made[key] = make(array) if memo is None else memo.get(frame, what, lambda: make(array))
    return made[key]


def _green_cubic_ratio(frame: np.ndarray) -> np.ndarray:
    """:func:`planes.cubic_ratio` of a (3, H, W) frame's green plane, as a 0-d array."""
    return np.array(planes.cubic_ratio(frame[planes.GREEN]))


def _network_input(
    s0: np.ndarray,
    s1: np.ndarray,
    w0: np.ndarray,
    w1: np.ndarray,
    m0: np.ndarray,
    m1: np.ndarray,
    t: float,
    norm: float,
) -> np.ndarray:
    """The network's (1, 17, hp, wp) input: frames, warped frames, flows / norm and t, with the grid
    padded to a multiple of 4 by repeating its last row and column (the U-Net halves it twice)."""
    _, hs, ws = s0.shape
    hp, wp = hs + (-hs) % 4, ws + (-ws) % 4
    x = np.empty((1, 17, hp, wp), dtype=np.float32)
    inner = x[0, :, :hs, :ws]
    inner[0:3], inner[3:6], inner[6:9], inner[9:12] = s0, s1, w0, w1
    inner[12:14] = np.moveaxis(m0, 2, 0) / norm
    inner[14:16] = np.moveaxis(m1, 2, 0) / norm
    inner[16] = t
    x[0, :, hs:, :ws] = x[0, :, hs - 1 : hs, :ws]
    x[0, :, :, ws:] = x[0, :, :, ws - 1 : ws]
    return x
