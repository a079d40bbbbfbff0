"""Quadratic motion from a stream's past: the acceleration the pair before gives each pixel.

Two frames fix where a point starts and where it ends, not when it passes in between: the linear
intermediate flows assume it moves at a constant speed, so a hand that slows down is drawn short
of where it is at t = 0.5. A stream has already computed the DIS flows of the pair before, and
with them the acceleration (the quadratic model of QVI, Xu et al. 2019, with the past frame only,
so no frame of latency is added): a point p0 of frame 0 moves by F(0→1)(p0) to frame 1 and by
F(0→−1)(p0) to frame −1, so its velocity at frame 0 is (F(0→1) − F(0→−1)) / 2 and its acceleration
a = F(0→1) + F(0→−1). At time t it stands (t² − t) / 2 · a off the linear path; both intermediate
flows move by (t − t²) / 2 · a (:func:`quadratic_shift`).

Two frames cannot tell which is right (the shift moves both samples together: they agree as
well), so the acceleration is only trusted where the past vouches for it. It is let go, smoothly:

* where either flow fails its forward-backward check (occlusions, wrong flows, scene cuts);
* where it disagrees with the acceleration the pair before gave the same point: motion that jerks
  from pair to pair (a game's per-tic steps, a shaking camera) is not predictable from the past,
  and the linear path is the safer guess;
* beyond |F(0→1)|, so that at t = 0.5 the point moves at most an eighth of its path.

Measured on the held-out windows (docs/MODEL_CARD_LITE.md): +0.2 dB on sign language, 0 to
+0.06 on the other kinds.

Where the past does not vouch for it, the acceleration is still evidence: the point's place at t
is uncertain along its motion, by about the part of the acceleration left out. A game's per-tic
steps are like that everywhere: the middle frame stands nearer one input or the other, and two
frames cannot tell which. Drawing the point at one guessed place scores worse, on average, than
the mean of the places it may be, so :func:`hedge_timing` averages the frame with itself moved
both ways along the motion by that doubt (what minterpolate's overlapped blocks do by accident,
and why they beat sharper methods on such footage). Steady motion, or an acceleration the past
vouches for, leaves no doubt and the frame as it is.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from rifestream.model import planes

#: Pairs remembered: a few streams (or an ensemble's passes) can share one model; an engine shared by
#: more streams makes room for two pairs a stream (:meth:`MotionHistory.make_room`).
HISTORY = 4
#: Forward-backward error (frame pixels, both flows together) at which the weight is 1/e.
CONSISTENT_PX = 4.0
#: Change of acceleration from the pair before (frame pixels) at which the weight is 1/e.
STEADY_PX = 12.0


@dataclass(frozen=True)
class _Pair:
    frame0: np.ndarray
    frame1: np.ndarray
    flows: np.ndarray  # (h, w, 4): F(0→1), F(1→0)
    acceleration: np.ndarray | None  # F(0→1) + F(0→−1) at frame 0's pixels, before any gate


@dataclass(frozen=True)
class Acceleration:
    """What the pair before says of a pair's motion, at frame 0's pixels of its grid (h, w, 2)."""

    trusted: np.ndarray  # the acceleration the path follows (:func:`quadratic_shift`)
    # The part left out, turned along F(0→1) and at most twice its length: how far the point's place
    # at t is in doubt along its motion (:func:`hedge_timing`)
    doubt: np.ndarray


class MotionHistory:
    """The DIS flows of the last :data:`HISTORY` pairs, found again by their frames: a pair
    continues the one whose second frame equals its first (the frames as the caller keeps them,
    e.g. the network's pooled planes, compared byte for byte), so nothing needs to say where a
    stream starts, skips or ends. Bounded: a few small frames and flow fields."""

    def __init__(self, size: int = HISTORY) -> None:
        self._pairs: deque[_Pair] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._pairs)

    @property
    def room(self) -> int:
        """Pairs remembered at most."""
        return self._pairs.maxlen or 0

    def make_room(self, pairs: int) -> None:
        """Remember at least ``pairs`` pairs: streams whose pairs interleave through one model each need
        theirs kept until their next pair comes (about 0.7 MB a pair at 640x360, 9 times that at 1080p)."""
        if pairs > self.room:
            self._pairs = deque(self._pairs, maxlen=pairs)

    def acceleration(
        self, frame0: np.ndarray, frame1: np.ndarray, flows: np.ndarray, level: int
    ) -> Acceleration | None:
        """The acceleration at frame 0's pixels of the pair (``frame0``, ``frame1``) with its (h, w, 4)
        DIS ``flows``, in pixels of their grid (``level`` frame pixels each): the part trusted and the
        doubt; None until two pairs before it are known (the path stays linear). Remembers the pair,
        unless its two frames are the same: a repeated source frame (telecine's cadence, a stalled
        capture) carries no motion, and the pair after it continues the pair before it."""
        if np.array_equal(frame0, frame1):
            return None
        before = self._before(frame0, frame1)
        raw = found = None
        if before is not None and before.flows.shape == flows.shape:
            raw = cv2.add(planes.direction(flows, 0), planes.direction(before.flows, 1))
            if before.acceleration is not None:
                trusted = _trusted(raw, flows, before, level)
                found = Acceleration(trusted, _doubt(cv2.subtract(raw, trusted), planes.direction(flows, 0)))
        self._pairs.append(_Pair(frame0, frame1, flows, raw))
        return found

    def _before(self, frame0: np.ndarray, frame1: np.ndarray) -> _Pair | None:
        """The remembered pair that ends where this one starts (not this pair reversed: an ensemble's
        mirrored pass)."""
        for pair in reversed(self._pairs):
            if pair.frame1 is frame0 or (pair.frame1.shape == frame0.shape and np.array_equal(pair.frame1, frame0)):
                if not np.array_equal(pair.frame0, frame1):
                    return pair
        return None


def _trusted(raw: np.ndarray, flows: np.ndarray, before: _Pair, level: int) -> np.ndarray:
    """``raw`` weighted by the two flows' forward-backward agreement and by its agreement with the
    acceleration of the pair before, then limited to |F(0→1)| (module docstring)."""
    grid = planes.pixel_grid(*raw.shape[:2])
    f01, f10 = planes.direction(flows, 0), planes.direction(flows, 1)
    back = planes.direction(before.flows, 1)  # F(0→−1)
    at_back = cv2.add(grid, back)  # where each pixel of frame 0 was in frame −1
    ahead_miss = cv2.add(f01, _read(f10, cv2.add(grid, f01)))
    back_miss = cv2.add(back, _read(planes.direction(before.flows, 0), at_back))
    accel = _times(raw, _weight(_squared(ahead_miss) + _squared(back_miss), CONSISTENT_PX / level))
    change = _squared(cv2.subtract(accel, _read(before.acceleration, at_back)))
    accel = _times(accel, _weight(change, STEADY_PX / level))
    limit = cv2.divide(cv2.sqrt(_squared(f01)), cv2.add(cv2.sqrt(_squared(accel)), 1e-6))
    return _times(accel, cv2.min(limit, 1.0))


def _doubt(left_out: np.ndarray, f01: np.ndarray) -> np.ndarray:
    """|``left_out``| along F(0→1), at most 2·|F(0→1)| (a still pixel has no doubt). Along the motion,
    not along the acceleration: the held-out Freedoom demos gained 0.26 dB from spreading along the
    acceleration, 0.33 along the motion."""
    speed = cv2.sqrt(_squared(f01))
    length = cv2.min(cv2.sqrt(_squared(left_out)), cv2.multiply(speed, 2.0))
    return _times(f01, cv2.divide(length, cv2.add(speed, 1e-3)))


def _read(field: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """An (h, w, C) ``field`` read bilinearly at the (h, w, 2) positions ``xy``, edges repeated."""
    return cv2.remap(field, xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _squared(flow: np.ndarray) -> np.ndarray:
    """|v|² of each vector of an (h, w, 2) field, as an (h, w) array (numpy: 5x faster here than a
    ``cv2.transform`` over the two channels)."""
    x, y = flow[..., 0], flow[..., 1]
    return x * x + y * y


def _weight(squared: np.ndarray, scale: float) -> np.ndarray:
    """exp(−squared / scale²)."""
    return cv2.exp(cv2.multiply(squared, -1.0 / (scale * scale)))


def _times(flow: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """An (h, w, 2) field times an (h, w) weight."""
    return cv2.multiply(flow, cv2.merge((weight, weight)))


def path_offset(t: float) -> float:
    """(t − t²) / 2: how far, in units of the acceleration, a point at ``t`` stands off the linear path."""
    return (t - t * t) / 2.0


def quadratic_shift(
    mid0: np.ndarray, mid1: np.ndarray, acceleration: np.ndarray, t: float
) -> tuple[np.ndarray, np.ndarray]:
    """F(t→0), F(t→1) (each (h, w, 2)) moved onto the quadratic path: both by (t − t²) / 2 · a, the
    acceleration (on its own grid, resized to theirs) read where each pixel came from in frame 0."""
    h, w = mid0.shape[:2]
    accel = planes.resize_flow(acceleration, h, w, path_offset(t))  # a multiply when on their grid
    shift = _read(accel, cv2.add(planes.pixel_grid(h, w), mid0))
    return cv2.add(mid0, shift), cv2.add(mid1, shift)


def doubt_px(doubt: np.ndarray, t: float, cell_px: float) -> np.ndarray:
    """How far (frame pixels) each point at ``t`` may stand off its place, on the doubt's own grid
    (``cell_px`` frame pixels a cell): the length of (t − t²) / 2 · ``doubt`` (:class:`Acceleration`)."""
    return cv2.sqrt(_squared(doubt)) * np.float32(path_offset(t) * cell_px)


#: Largest move (frame pixels) of a doubt below which :func:`hedge_timing` leaves the frame alone.
HEDGE_MIN_PX = 0.1


def hedge_timing(images: list[np.ndarray], doubt: np.ndarray, t: float) -> None:
    """In place: each of ``images`` (the frame at ``t``, as (H, W) planes or one (H, W, C) image)
    averaged with itself moved both ways by (t − t²) / 2 · ``doubt`` (:class:`Acceleration`, on its
    own grid, resized to the frame's): where the doubted acceleration would have moved each point
    (bilinear samples, edges repeated). Nothing is done where no pixel would move :data:`HEDGE_MIN_PX`."""
    h, w = images[0].shape[:2]
    gh, gw = doubt.shape[:2]
    factor = path_offset(t)
    if float(np.abs(doubt).max(initial=0.0)) * factor * max(h / gh, w / gw) < HEDGE_MIN_PX:
        return
    ahead = planes.resize_flow(doubt, h, w, factor)
    behind = np.negative(ahead)
    for image in images:
        a = cv2.remap(image, ahead, None, cv2.INTER_LINEAR | planes.RELATIVE, borderMode=cv2.BORDER_REPLICATE)
        b = cv2.remap(image, behind, None, cv2.INTER_LINEAR | planes.RELATIVE, borderMode=cv2.BORDER_REPLICATE)
        cv2.addWeighted(a, 1.0 / 3.0, b, 1.0 / 3.0, 0.0, dst=a)
        cv2.scaleAdd(image, 1.0 / 3.0, a, dst=image)
