"""What flows between stages: decoded source frames in, timed output frames out."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av


@dataclass
class SourceFrame:
    """One decoded input frame.

    ``time`` is its presentation time in seconds (pts × time_base, exact);
    ``arrival`` is ``time.monotonic()`` when the source handed it over, the
    start of its end-to-end latency.
    """

    video: av.VideoFrame
    time: Fraction
    arrival: float


@dataclass
class OutputFrame:
    """One frame of the upconverted stream.

    ``t`` is 0 for a frame taken from the source, else its position between
    the two source frames; ``interpolated`` is true for every frame not taken
    from the source; ``fallback`` is None or how a late or cut frame was made
    (``scale``, ``blend``, ``repeat``, ``scene_cut``). ``arrival`` is the
    arrival time of the newest source frame it depends on.
    """

    video: av.VideoFrame
    time: Fraction
    source_time: Fraction
    t: float
    interpolated: bool
    fallback: str | None
    arrival: float
    seq: int = 0


@dataclass
class SourceAudio:
    """One compressed audio packet of the input, on the same timeline as the video.

    ``packet`` keeps the input's codec, pts and ``time_base``; ``time`` is its
    pts in seconds (exact), comparable with ``SourceFrame.time``. Sinks copy it
    or re-encode it, keeping the timestamp.
    """

    packet: av.Packet
    time: Fraction
    arrival: float


def media_kind(item: object) -> str | None:
    """``"video"`` for a source or output frame, ``"audio"`` for an audio packet, None for anything else
    (the pipeline's control markers): the bounded queues keep a room of their own for each."""
    if isinstance(item, SourceFrame | OutputFrame):
        return "video"
    if isinstance(item, SourceAudio):
        return "audio"
    return None
