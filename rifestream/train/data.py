"""Training triplets from video files: (frame0, frame_t, frame1, t), decoded once into memory.

Two kinds of triplet, as in the RIFE paper:

* t = 0.5: frames (i, i+g, i+2g) for gaps g in ``gaps``;
* arbitrary t (RIFEm): three of seven consecutive frames, i0 < it < i1,
  with t = (it - i0) / (i1 - i0).

Triplets that cross a scene cut (a large jump between two consecutive frames)
or that barely move (frame0 ≈ frame1) are left out. Sampling favours triplets
with more motion, because large motion is what the model finds hardest, and
gives every clip the same share, so that one long clip does not dominate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rifestream.errors import RifestreamError
from rifestream.io.video_file import read_rgb_frames

#: Mean absolute difference (0..255, on a 1/4-size grey image) above which two consecutive frames are a cut.
SCENE_CUT_DIFF = 40.0
#: Mean absolute difference between frame0 and frame1 under which a triplet counts as static.
STATIC_DIFF = 0.6


@dataclass(frozen=True)
class TripletIndex:
    """Where one triplet lives: clip number, three frame numbers, t and its motion score."""

    clip: int
    i0: int
    it: int
    i1: int
    t: float
    motion: float


def decode_clip(path: str | Path, max_frames: int | None = None) -> list[np.ndarray]:
    """All frames (or the first ``max_frames``) of a training clip as H×W×3 uint8 RGB arrays."""
    frames = read_rgb_frames(path, max_frames)
    if len(frames) < 3:
        raise RifestreamError(f"{path}: only {len(frames)} frames; a training clip needs at least 3")
    return frames


def small_grey(frame: np.ndarray) -> np.ndarray:
    """A 1/4-size grey copy used only to measure motion."""
    return frame[::4, ::4].astype(np.float32).mean(axis=2)


def triplet_indices(
    frames: Sequence[np.ndarray],
    clip: int,
    gaps: Sequence[int] = (1, 2, 3),
    window: int = 7,
) -> list[TripletIndex]:
    """Every usable triplet of one clip (t = 0.5 at each gap, and RIFEm triplets within ``window`` frames)."""
    grey = [small_grey(f) for f in frames]
    n = len(frames)
    step_diff = np.array([np.abs(grey[i + 1] - grey[i]).mean() for i in range(n - 1)])
    cut_before = np.concatenate([[0], np.cumsum(step_diff > SCENE_CUT_DIFF)])  # cuts in [0, i)

    def usable(i0: int, i1: int) -> float | None:
        if cut_before[i1] != cut_before[i0]:
            return None
        motion = float(np.abs(grey[i1] - grey[i0]).mean())
        return None if motion < STATIC_DIFF else motion

    out: list[TripletIndex] = []
    for g in gaps:
        for i in range(n - 2 * g):
            motion = usable(i, i + 2 * g)
            if motion is not None:
                out.append(TripletIndex(clip, i, i + g, i + 2 * g, 0.5, motion))
    for i0 in range(n - 2):
        for i1 in range(i0 + 2, min(i0 + window, n)):
            motion = usable(i0, i1)
            if motion is None:
                continue
            for it in range(i0 + 1, i1):
                t = (it - i0) / (i1 - i0)
                if t != 0.5:
                    out.append(TripletIndex(clip, i0, it, i1, t, motion))
    return out


class VideoTriplets:
    """Triplets from a set of clips held in memory; :meth:`sample` draws random crops."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        gaps: Sequence[int] = (1, 2, 3),
        max_frames: int | None = None,
        half_t_share: float = 0.6,
    ) -> None:
        if not paths:
            raise RifestreamError("no training clips given; name at least one video file")
        self.paths = [Path(p) for p in paths]
        self._index([decode_clip(p, max_frames) for p in self.paths], gaps, half_t_share)

    @classmethod
    def from_frames(
        cls, clips: Sequence[list[np.ndarray]], gaps: Sequence[int] = (1, 2, 3), half_t_share: float = 0.6
    ) -> VideoTriplets:
        """The same over clips already decoded (e.g. frame ranges, downscaled)."""
        triplets = cls.__new__(cls)
        triplets.paths = []
        triplets._index(list(clips), gaps, half_t_share)
        return triplets

    def _index(self, clips: list[list[np.ndarray]], gaps: Sequence[int], half_t_share: float) -> None:
        self.clips = clips
        self.triplets: list[TripletIndex] = []
        for k, frames in enumerate(self.clips):
            self.triplets.extend(triplet_indices(frames, k, gaps))
        if not self.triplets:
            raise RifestreamError("the training clips hold no usable triplets (all static or cut)")
        half = np.array([tr.t == 0.5 for tr in self.triplets])
        clip = np.array([tr.clip for tr in self.triplets])
        weight = np.sqrt(np.array([tr.motion for tr in self.triplets]))
        # Every clip gets the same share of the draws (a long clip must not drown the others), and
        # within a clip the t = 0.5 triplets (what 2x conversion needs) get a fixed share.
        for k in range(len(self.clips)):
            for mask, share in ((half, half_t_share), (~half, 1.0 - half_t_share)):
                mine = mask & (clip == k)
                if mine.any():
                    weight[mine] *= share / weight[mine].sum()
        self.weights = weight / weight.sum()

    def __len__(self) -> int:
        return len(self.triplets)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """One random triplet at full resolution: (img0, gt, img1, t)."""
        tr = self.triplets[int(rng.choice(len(self.triplets), p=self.weights))]
        frames = self.clips[tr.clip]
        return frames[tr.i0], frames[tr.it], frames[tr.i1], tr.t
