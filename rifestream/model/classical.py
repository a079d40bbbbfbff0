"""Classical optical flow (OpenCV's DIS) and the frame it gives without any learned part.

DIS (dense inverse search) estimates a dense flow between two grey images in a few
milliseconds on a CPU. Used two ways:

* the *classical* frame: flows both ways, the intermediate flows by the linear
  approximation F(t→0) ≈ −t·F(0→1) and F(t→1) ≈ −(1−t)·F(1→0), both frames
  backward-warped and averaged. It is the latency ladder's step between the model
  and a blend, and the anchor every CPU model is measured against;
* the prior of the CPU model (:mod:`rifestream.model.lite`), which refines these
  flows and learns the blend.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from rifestream.model import planes
from rifestream.model.planes import pixel_grid
from rifestream.model.warp import Backend, opencv_applies, warp

T = TypeVar("T")
A = TypeVar("A", np.ndarray, torch.Tensor)

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def grey_u8(img: torch.Tensor, level: int) -> np.ndarray:
    """A (1, 3, H, W) image in [0, 1] as an (H/level, W/level) uint8 grey array (area-averaged).

    On a CPU the luma sum and the area average are OpenCV calls on the planes (no torch op: torch's
    OpenMP workers keep spinning after each op and slow the OpenCV threads that follow); elsewhere
    one strided convolution."""
    if img.device.type == "cpu" and img.dtype == torch.float32:
        luma = planes.luma(img[0].detach().numpy())
        if level > 1:
            luma = cv2.resize(luma, (luma.shape[1] // level, luma.shape[0] // level), interpolation=cv2.INTER_AREA)
        return cv2.convertScaleAbs(luma, alpha=255.0)  # rounded and saturated: luma is never negative
    weights = torch.tensor(planes.LUMA, dtype=torch.float32, device=img.device).view(1, 3, 1, 1) / (level * level)
    grey = F.conv2d(img[:1].float(), weights.expand(1, 3, level, level), stride=level)[0, 0]
    return grey.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()


@functools.cache
def _helper() -> ThreadPoolExecutor:
    """Threads that run one direction of a pair while the caller runs the other. DIS is
    single-threaded and OpenCV lets go of the GIL, so both directions at once take about half the
    time on two cores (5.7 against 10.4 ms for a 320x184 pair)."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="rifestream-flow")


def both_directions(forward: Callable[[], T], backward: Callable[[], T]) -> tuple[T, T]:
    """``forward()`` here and ``backward()`` on a helper thread, at the same time."""
    pending = _helper().submit(backward)
    return forward(), pending.result()


class DISFlow:
    """Forward and backward DIS flow of a pair, on a grid ``level`` times coarser than the frames.

    One OpenCV DIS object per instance (it keeps buffers between calls, so an instance
    is not shared between threads).
    """

    def __init__(self, preset: str = "fast", level: int = 1, finest_scale: int | None = None) -> None:
        if preset not in PRESETS:
            raise ValueError(f"DIS preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        if level not in (1, 2, 4, 8):
            raise ValueError(f"DIS level must be 1, 2, 4 or 8, got {level!r}")
        self.preset = preset
        self.level = level
        self._dis = [cv2.DISOpticalFlow_create(PRESETS[preset]) for _ in range(2)]  # one per direction
        # The pyramid level DIS stops at (0: the given grid; the presets say 1 or 2). OpenCV lowers it
        # for good when an image is too small for it (a 32x32 grid sets it to 0), and every later
        # flow of the object, on any size, then costs several times more: it is set again each call.
        self.finest_scale = self._dis[0].getFinestScale() if finest_scale is None else int(finest_scale)

    def __call__(self, img0: torch.Tensor, img1: torch.Tensor, level: int | None = None) -> torch.Tensor:
        """(1, 4, H/level, W/level) float32 on the CPU: F(0→1) in 0:2, F(1→0) in 2:4, in pixels of that grid."""
        level = self.level if level is None else level
        return self.flows(grey_u8(img0, level), grey_u8(img1, level))

    def flows(self, grey0: np.ndarray, grey1: np.ndarray) -> torch.Tensor:
        """:meth:`pair` of two uint8 grey arrays as a (1, 4, h, w) CPU tensor (a view of it)."""
        return torch.from_numpy(self.pair(grey0, grey1)).permute(2, 0, 1)[None]

    def pair(self, grey0: np.ndarray, grey1: np.ndarray) -> np.ndarray:
        """(h, w, 4) float32 flows of two uint8 grey arrays: F(0→1), then F(1→0), computed at once."""
        for dis in self._dis:
            dis.setFinestScale(self.finest_scale)
        f01, f10 = both_directions(
            lambda: self._dis[0].calc(grey0, grey1, None), lambda: self._dis[1].calc(grey1, grey0, None)
        )
        return cv2.merge((f01, f10))  # a sixth of np.concatenate's time on a last axis


def upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (N, C, h, w) to ``size`` (half-pixel centres, as ``align_corners=False``).

    Outside autograd on a CPU each plane goes through ``cv2.resize`` (same values to ~1e-6, several
    times faster than CPU ``F.interpolate`` for the many-channel, full-size upsamplings here)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.device.type != "cpu" or x.dtype != torch.float32 or (torch.is_grad_enabled() and x.requires_grad):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    src = x.contiguous()
    out = x.new_empty((*x.shape[:2], *size))
    for i in range(x.shape[0]):
        for k in range(x.shape[1]):
            cv2.resize(src[i, k].numpy(), (size[1], size[0]), dst=out[i, k].numpy(), interpolation=cv2.INTER_LINEAR)
    return out


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A flow field (N, 2k, h, w) in pixels of its own grid, resized to ``size`` with its values rescaled."""
    h, w = flow.shape[-2:]
    if (h, w) == tuple(size):
        return flow
    scale = torch.tensor([size[1] / w, size[0] / h], dtype=flow.dtype, device=flow.device)
    return upsample(flow * scale.repeat(flow.shape[1] // 2).view(1, -1, 1, 1), size)  # scaled on the smaller grid


def linear_intermediate(flows: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """F(t→0) ≈ −t·F(0→1) and F(t→1) ≈ −(1−t)·F(1→0) from (N, 4, H, W) flows and (N, 1, 1, 1) times."""
    return torch.cat((-t * flows[:, 0:2], -(1.0 - t) * flows[:, 2:4]), 1)


def intermediate_flows(
    flows: torch.Tensor, t: torch.Tensor, iters: int = 0, backend: Backend | None = None
) -> torch.Tensor:
    """F(t→0), F(t→1) from (N, 4, H, W) pair flows: the linear approximation, then ``iters`` fixed-point steps.

    The linear approximation reads the motion at the pixel's own position in frame 0 (or 1), but a
    pixel at time t came from ``x + F(t→0)(x)``. Each step reads the pair flow there instead,
    F(t→0)(x) ← −t·F(0→1)(x + F(t→0)(x)) (alike for frame 1): exact for a pan, and for a zoom,
    rotation or the smooth flow DIS gives across a moving edge the error shrinks by t·|∇F| a step.
    (Where one side is occluded, neither frame holds the pixel: that is the network's mask's job.)
    Measured on the held-out clips (DIS fast, finest level 1, half grid; docs/MODEL_CARD_LITE.md):
    two steps gave +0.5 dB on large synthetic motion and +0.05 to +0.1 dB on other kinds.
    """
    if iters and opencv_applies(backend, flows, flows):
        return _intermediate_flows_opencv(flows, t, iters)
    mid = linear_intermediate(flows, t)
    for _ in range(iters):
        mid = torch.cat(
            (-t * warp(flows[:, 0:2], mid[:, 0:2], backend), -(1.0 - t) * warp(flows[:, 2:4], mid[:, 2:4], backend)),
            1,
        )
    return mid


def shared_motion(mid0: A, mid1: A, t: float | torch.Tensor) -> tuple[A, A]:
    """F(t→0), F(t→1) from one motion per pixel: the average of the velocity each says, F(t→0)/(−t)
    and F(t→1)/(1 − t) (numpy arrays or tensors; ``t`` in (0, 1), a float or broadcastable).

    Each direction's DIS flow is an estimate of the same motion with its own errors; averaging
    them halves the noise and puts both warped frames on one path, so they agree where they would
    have disagreed by the two flows' errors (at t = 0.5: F(t→0) = (F(t→0) − F(t→1)) / 2 = −F(t→1)).
    Where one frame is occluded the two differ for a reason; the occlusion prior's mask takes the
    frame that shows the pixel. Measured on the held-out windows (both flows with two fixed-point
    steps, bicubic warps, the occlusion prior's mask; docs/MODEL_CARD_LITE.md): +0.07 to +0.09 dB
    on sign language, camera, film and animation, +0.01 on games, +1.3 on large motion."""
    to0 = t / (1.0 - t + 1e-6)  # the velocity F(t→1) says, in units of F(t→0)
    to1 = (1.0 - t) / (t + 1e-6)
    return (mid0 - mid1 * to0) * 0.5, (mid1 - mid0 * to1) * 0.5


#: Where the occlusion prior's log-odds are at least this far from even, one frame does not show the
#: pixel and its two samples need not agree: :func:`searched_flows` leaves its motion alone there.
OCCLUDED_LOGIT = 1.0


def search_motion(
    grey0: np.ndarray,
    grey1: np.ndarray,
    velocity: np.ndarray,
    candidates: Sequence[np.ndarray],
    t: float,
    free: np.ndarray | None = None,
    radius: int = 1,
    steps: Sequence[int] = (2,),
) -> np.ndarray:
    """Per pixel, the motion among several under which the two frames agree best at ``t``: an (h, w, 2)
    velocity (frame 0 to frame 1, in pixels of the grey images' grid) from ``velocity``, whole
    ``candidates`` fields (e.g. what each direction's flow says alone), and then, for each of
    ``steps``, the velocity of the pixels that far left, right, above and below (a motion that is
    right spreads to its neighbours, step by step).

    A candidate v is scored by bilateral matching, as TV frame-rate converters choose between motion
    vectors: the absolute grey difference |G0(x − t·v) − G1(x + (1 − t)·v)| summed over a
    (2·radius + 1)² window. A wrong motion near a moving edge, where a flow is smoothed across two
    objects, samples two different things; the neighbour's motion that belongs to the pixel's object
    makes them agree. ``free`` (a boolean (h, w) array) marks where a pixel may change: where a frame
    does not show the pixel (an occlusion) no motion makes the two agree, and the flow's own stays."""
    h, w = velocity.shape[:2]
    grid = pixel_grid(h, w)
    box = (2 * radius + 1, 2 * radius + 1)
    chosen = np.empty((h, w), dtype=np.uint8)
    free_u8 = None if free is None else free.astype(np.uint8)

    def cost(v: np.ndarray) -> np.ndarray:
        at0 = cv2.remap(grey0, cv2.scaleAdd(v, -t, grid), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        at1 = cv2.remap(grey1, cv2.scaleAdd(v, 1.0 - t, grid), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return cv2.boxFilter(cv2.absdiff(at0, at1), -1, box, normalize=False)

    best = np.ascontiguousarray(velocity, dtype=np.float32).copy()
    best_cost = cost(best)

    def consider(v: np.ndarray) -> None:
        c = cost(v)
        cv2.compare(c, best_cost, cv2.CMP_LT, dst=chosen)  # 255 where v is better
        if free_u8 is not None:
            cv2.multiply(chosen, free_u8, dst=chosen)
        cv2.copyTo(c, chosen, best_cost)
        cv2.copyTo(v, chosen, best)

    for v in candidates:
        consider(np.ascontiguousarray(v, dtype=np.float32))
    for d in steps:
        for dx, dy in ((d, 0), (-d, 0), (0, d), (0, -d)):
            consider(_neighbours(best, dx, dy))
    return best


def _neighbours(field: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``field`` read (dx, dy) pixels away from each pixel, edge pixels repeated past the border."""
    h, w = field.shape[:2]
    ax, ay = abs(dx), abs(dy)
    padded = cv2.copyMakeBorder(field, ay, ay, ax, ax, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(padded[ay + dy : ay + dy + h, ax + dx : ax + dx + w])


def searched_flows(
    small0: np.ndarray,
    small1: np.ndarray,
    shared: tuple[np.ndarray, np.ndarray],
    own: tuple[np.ndarray, np.ndarray],
    t: float,
    prior: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """F(t→0), F(t→1) on the grid of the (3, h, w) frames ``small0``, ``small1``: the
    :func:`shared_motion` flows ``shared`` after :func:`search_motion` among them, what each
    direction's own flow says (``own``: the fixed-point flows before sharing) and the neighbours'
    motion, all on that grid. ``prior``: the occlusion prior's logits on that grid (None: search
    everywhere); where it says one frame does not show a pixel, the pixel keeps the shared motion.

    Measured on the held-out windows (docs/MODEL_CARD_LITE.md), the CPU model without its network
    on a quarter-size grid: +0.1 to +0.3 dB on film, animation, games and large motion, within 0.03
    on camera and sign language, for 7 cost evaluations on that grid (0.8 ms at 640x360, 2 threads)."""
    t = min(max(float(t), 1e-3), 1.0 - 1e-3)
    velocity = cv2.subtract(shared[1], shared[0])  # F(t→1) − F(t→0) = (1 − t)·v + t·v
    candidates = (planes.scale_flow(own[0], -1.0 / t), planes.scale_flow(own[1], 1.0 / (1.0 - t)))  # each direction's
    free = None if prior is None else np.abs(prior) < OCCLUDED_LOGIT
    v = search_motion(planes.luma(small0), planes.luma(small1), velocity, candidates, t, free)
    return planes.scale_flow(v, -t), planes.scale_flow(v, 1.0 - t)


def _intermediate_flows_opencv(flows: torch.Tensor, t: torch.Tensor, iters: int) -> torch.Tensor:
    """:func:`intermediate_flows` on OpenCV (:func:`fixed_point_flow` per direction)."""
    n = flows.shape[0]
    times = t.reshape(-1).float().expand(n).tolist()
    pair = flows.float().permute(0, 2, 3, 1).contiguous().numpy()  # (N, h, w, 4)
    out = np.empty_like(pair)
    for i, ti in enumerate(times):
        out[i, :, :, 0:2], out[i, :, :, 2:4] = fixed_point_pair(pair[i], ti, iters)
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(flows.dtype)


def fixed_point_pair(pair: np.ndarray, t: float, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """F(t→0) and F(t→1), each (h, w, 2), from (h, w, 4) pair flows: :func:`fixed_point_flow` of
    both directions at once (:func:`both_directions`)."""
    return both_directions(
        lambda: fixed_point_flow(planes.direction(pair, 0), -t, iters),
        lambda: fixed_point_flow(planes.direction(pair, 1), -(1.0 - t), iters),
    )


def fixed_point_flow(field: np.ndarray, scale: float, iters: int) -> np.ndarray:
    """One direction of :func:`intermediate_flows` on an (h, w, 2) pair flow: ``scale`` is −t for
    F(0→1), −(1 − t) for F(1→0). The flow is one two-channel array, so a step is one ``cv2.remap``
    of both components with a two-channel map (a tenth of the torch version's overhead here)."""
    field = np.ascontiguousarray(field, dtype=np.float32)
    mid = field * np.float32(scale)
    grid = pixel_grid(*field.shape[:2])
    for _ in range(iters):
        sampled = cv2.remap(field, grid + mid, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mid = np.multiply(sampled, np.float32(scale), out=sampled)
    return mid


def classical_frames(img0: torch.Tensor, img1: torch.Tensor, flows: torch.Tensor, ts: Sequence[float]) -> torch.Tensor:
    """The classical frames at each of ``ts``: (len(ts), 3, H, W) from (1, 3, H, W) frames and their DIS flows."""
    n = len(ts)
    _, _, h, w = img0.shape
    if opencv_applies("opencv", img0, flows):
        return _classical_frames_planes(img0[0].numpy(), img1[0].numpy(), flows[0].float().permute(1, 2, 0).numpy(), ts)
    flows = resize_flow(flows.to(img0.device, img0.dtype), (h, w)).expand(n, -1, -1, -1)
    t = torch.tensor(list(ts), dtype=img0.dtype, device=img0.device).view(n, 1, 1, 1)
    mid = linear_intermediate(flows, t)
    w0 = warp(img0.expand(n, -1, -1, -1), mid[:, 0:2], "opencv")
    w1 = warp(img1.expand(n, -1, -1, -1), mid[:, 2:4], "opencv")
    return (w0 + w1) * 0.5


def _classical_frames_planes(a: np.ndarray, b: np.ndarray, pair: np.ndarray, ts: Sequence[float]) -> torch.Tensor:
    """:func:`classical_frames` on (3, H, W) planes and (h, w, 4) flows, with OpenCV only."""
    _, h, w = a.shape
    out = torch.empty((len(ts), 3, h, w), dtype=torch.float32)
    for i, t in enumerate(ts):
        frame = out[i].numpy()
        w0, w1 = both_directions(
            lambda t=t, dst=frame: planes.warp(a, planes.resize_flow(planes.direction(pair, 0), h, w, -t), dst=dst),
            lambda t=t: planes.warp(b, planes.resize_flow(planes.direction(pair, 1), h, w, -(1.0 - t))),
        )
        cv2.addWeighted(w0.reshape(3 * h, w), 0.5, w1.reshape(3 * h, w), 0.5, 0.0, dst=frame.reshape(3 * h, w))
    return out


def splat_coverage(flow: np.ndarray, t: float) -> np.ndarray:
    """How much of a frame lands on each pixel at time ``t``: every pixel p of an (h, w, 2) flow's
    grid splatted bilinearly to p + t·flow(p). About 1 where the frame's content is seen at t, 0 in
    the holes its moving parts leave (content the other frame has to fill), more where it folds."""
    h, w = flow.shape[:2]
    xy = cv2.scaleAdd(np.ascontiguousarray(flow, dtype=np.float32), float(t), pixel_grid(h, w))
    x, y = xy[..., 0], xy[..., 1]
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    gx, gy = 1.0 - fx, 1.0 - fy
    # One bincount over the four corners, on the grid with a one-cell border: a corner outside the
    # grid is clamped into the border and dropped with it (no masks; 0.33 against 0.55 ms at 90x160)
    padded = w + 2
    cols = [np.clip(c, -1, w).astype(np.int64) + 1 for c in (x0, x0 + 1)]
    rows = [np.clip(r, -1, h).astype(np.int64) * padded + padded for r in (y0, y0 + 1)]
    cells = np.concatenate([(r + c).ravel() for r in rows for c in cols])
    weights = np.concatenate([(wy * wx).ravel() for wy in (gy, fy) for wx in (gx, fx)])
    coverage = np.bincount(cells, weights=weights, minlength=(h + 2) * padded).reshape(h + 2, padded)
    return coverage[1 : h + 1, 1 : w + 1].astype(np.float32)


def occlusion_logits(pair: np.ndarray, t: float, size: tuple[int, int]) -> np.ndarray:
    """Log-odds that the frame at ``t`` takes a pixel from frame 0 rather than frame 1, from where
    each frame's forward splat leaves holes: (h, w) = ``size`` from (h0, w0, 4) pair flows, the
    splat made on that grid (the network's: on the flow grid it took 4.0 against 2.2 ms a pair, for
    0.3 dB more on large motion).

    Where both frames cover a pixel the odds are even (the classical average); where one leaves a
    hole, the other fills it. The holes that matter most lie at the frame's edges during a pan:
    content entering the picture is in one frame only, and the other frame's backward sample falls
    outside it and repeats its edge. Measured on the held-out windows (docs/MODEL_CARD_LITE.md):
    the model with it (bilinear warps, a flow per direction) scored 30.86 against 29.55 dB without
    it on large synthetic motion, within 0.06 dB on the other kinds."""
    seen = []
    for k, at in ((0, t), (1, 1.0 - t)):
        small = planes.resize_flow(planes.direction(pair, k), *size)  # a quarter of the splat's cost
        cover = np.clip((splat_coverage(small, at) - 0.02) / 0.18, 0.0, 1.0)
        seen.append(cv2.GaussianBlur(cover, (0, 0), 1.0))
    share0 = (seen[0] + 1e-3) / (seen[0] + seen[1] + 2e-3)
    return np.log(share0 / (1.0 - share0))


#: How far (frame pixels) a warp's sample must fall outside its frame, beyond any doubt about its
#: place, before the other frame alone gives the pixel: DIS's flow near a border is about a pixel off.
OUTSIDE_MARGIN_PX = 1.0


def take_inside(
    mask: np.ndarray,
    full0: np.ndarray,
    full1: np.ndarray,
    margin: float | np.ndarray,
    reach: float | None = None,
) -> None:
    """In place on ``mask``, the (H, W) share of frame 0 in the frame at t: 0 where frame 0's sample
    (each pixel moved by the (H, W, 2) flow ``full0``) falls more than ``margin`` pixels outside frame 0
    and frame 1's (by ``full1``) does not, 1 the other way round. ``margin``: a number, or an (H, W)
    array (a wider one where the place at t is in doubt).

    This is the occlusion prior's main case at full resolution: during a pan, content entering the
    picture is in one frame only, and the other frame's sample repeats its edge. The prior's splat
    on the network's quarter grid smears that band, which is a few pixels wide, over its cells: on a
    SuperTux level scrolling 11 px between input frames it gave the last 9 columns a share of about
    0.5 and an error 50 times the rest of the frame's. Only the bands along the borders as wide as
    the largest flow (``reach`` pixels, when the caller knows it) are looked at."""
    h, w = mask.shape
    if reach is None:
        reach = max(float(np.abs(full0).max(initial=0.0)), float(np.abs(full1).max(initial=0.0)))
    band = min(int(np.ceil(reach)), (h + 1) // 2, (w + 1) // 2)
    if band <= 0:
        return
    grid = pixel_grid(h, w)
    for rows, cols, axis, size in (  # each band tests the one coordinate that leaves through its border
        (slice(0, band), slice(None), 1, h),
        (slice(h - band, h), slice(None), 1, h),
        (slice(None), slice(0, band), 0, w),
        (slice(None), slice(w - band, w), 0, w),
    ):
        at = grid[rows, cols, axis]
        room = margin if np.isscalar(margin) else margin[rows, cols]
        out0 = _outside(at + full0[rows, cols, axis], size, room)
        out1 = _outside(at + full1[rows, cols, axis], size, room)
        part = mask[rows, cols]
        part[out0 & ~out1] = 0.0
        part[out1 & ~out0] = 1.0


def _outside(at: np.ndarray, size: int, margin: float | np.ndarray) -> np.ndarray:
    """Whether each coordinate lies more than ``margin`` pixels outside ``size`` pixel centres."""
    return (at < -margin) | (at > size - 1 + margin)
