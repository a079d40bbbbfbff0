"""``testsrc:?size=WxH&fps=F`` — the built-in moving test scene as a source (exact timestamps k / fps)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from fractions import Fraction

import av

from rifestream.errors import RifestreamError
from rifestream.io.frames import SourceAudio, SourceFrame
from rifestream.io.source_base import InputOptions, Source
from rifestream.io.stream_info import StreamInfo
from rifestream.io.synthetic_scene import SyntheticScene
from rifestream.io.url_query import parse_bool, parse_number, parse_rate, parse_size, split_query

SCENE_OPTIONS = {"size", "fps", "frames", "duration", "seed", "realtime"}


class SyntheticSceneSource(Source):
    """Frames of ``SyntheticScene`` with pts k in time base 1/fps.

    Paced like a camera (frame k handed over at start + k / fps) unless
    ``realtime`` is false; endless unless ``frames`` or ``duration`` is given.
    ``info.live`` is true either way (it stands in for a camera); whether it
    delivers at its own pace is ``realtime``.
    """

    def __init__(
        self,
        url: str,
        *,
        width: int = 640,
        height: int = 360,
        fps: Fraction = Fraction(30),
        frames: int | None = None,
        realtime: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.url = url
        self.realtime = realtime
        self.max_frames = frames
        self.scene = SyntheticScene(width, height, fps, seed=seed)
        self.info = StreamInfo(
            url=url,
            width=width,
            height=height,
            pix_fmt="rgb24",
            rate=Fraction(fps),
            time_base=1 / Fraction(fps),
            live=True,
            frames=frames,
        )

    @classmethod
    def open(cls, url: str, options: InputOptions) -> SyntheticSceneSource:
        return cls.from_url(url, realtime=options.realtime)

    @property
    def own_pace(self) -> bool:
        return self.realtime

    @classmethod
    def from_url(cls, url: str, *, realtime: bool | None = None) -> SyntheticSceneSource:
        _, opts = split_query(url, SCENE_OPTIONS)
        width, height = parse_size(url, opts["size"]) if "size" in opts else (640, 360)
        fps = parse_rate(url, opts["fps"]) if "fps" in opts else Fraction(30)
        frames = None
        if "frames" in opts:
            frames = int(parse_number(url, "frames", opts["frames"], int))
        if "duration" in opts:
            frames = int(parse_number(url, "duration", opts["duration"]) * fps)
        if realtime is None:
            realtime = parse_bool(url, "realtime", opts["realtime"]) if "realtime" in opts else True
        seed = int(parse_number(url, "seed", opts.get("seed", "0"), int))
        try:
            return cls(url, width=width, height=height, fps=fps, frames=frames, realtime=realtime, seed=seed)
        except ValueError as exc:
            raise RifestreamError(f"{url}: {exc}") from None

    def read(self) -> Iterator[SourceFrame | SourceAudio]:
        fps, tb = self.info.rate, self.info.time_base
        start = time.monotonic()
        k = 0
        while not self._stop.is_set() and (self.max_frames is None or k < self.max_frames):
            if self.realtime:
                due = start + float(k / fps)
                wait = due - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
            video = av.VideoFrame.from_ndarray(self.scene.render(k), format="rgb24")
            video.pts = k
            video.time_base = tb
            self.stats.frames += 1
            yield SourceFrame(video=video, time=k * tb, arrival=time.monotonic())
            k += 1
