"""What a source tells its consumers about its streams (size, rate, time base, audio)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av


@dataclass(frozen=True)
class AudioInfo:
    """The input's audio stream, enough for a sink to copy its packets or decode and re-encode them.

    The codec parameters are a snapshot (they outlive the source); ``template``
    returns the live input stream for a stream copy, or None once the source is
    closed (a sink then re-encodes from the snapshot).
    """

    codec: str
    sample_rate: int
    layout: str
    channels: int
    time_base: Fraction
    extradata: bytes | None = None
    bit_rate: int = 0
    template: Callable[[], av.audio.stream.AudioStream | None] = field(default=lambda: None, repr=False, compare=False)


@dataclass(frozen=True)
class StreamInfo:
    """The video stream of a source.

    ``rate`` is the nominal frame rate, None when the input does not declare a
    plausible one (some live streams): timestamps are what counts.
    ``live`` is true for inputs that deliver at their own pace (network,
    capture, the test scene); ``time_base`` is that of ``SourceFrame`` pts.
    ``frames``: how many frames the input holds, where that is known exactly
    (a test scene given ``frames`` or ``duration``); None otherwise.
    """

    url: str
    width: int
    height: int
    pix_fmt: str
    rate: Fraction | None
    time_base: Fraction
    live: bool
    audio: AudioInfo | None = None
    frames: int | None = None
