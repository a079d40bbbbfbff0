"""The one sink contract: what the pipeline knows of a kind before opening it, how it opens, and what
every sink offers (write output frames, accept the input's audio, close and flush safely)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar, TypedDict

from rifestream.io.frames import OutputFrame, SourceAudio
from rifestream.io.kind import Kind
from rifestream.io.stream_info import AudioInfo


@dataclass(frozen=True)
class OutputStream:
    """The stream a sink is opened for: frames of ``width``×``height`` at nominal ``rate`` (None: variable),
    timestamped in ``time_base``; ``audio``: the source's, to carry; ``source_time_base``: the input's."""

    width: int
    height: int
    rate: Fraction | None
    time_base: Fraction
    audio: AudioInfo | None = None
    source_time_base: Fraction | None = None


class Encoding(TypedDict, total=False):
    """How a sink encodes; every key optional (see ``rifestream.io.sinks.open_sink``)."""

    codec: str | None
    pix_fmt: str | None
    crf: int | None
    preset: str | None
    bitrate: int | None
    container_options: dict[str, str] | None
    codec_options: dict[str, str] | None


@dataclass
class SinkStats:
    """Counters a sink keeps (read them from any thread)."""

    frames: int = 0
    dropped: int = 0  # frames not written: full queue (feed) or a timestamp not after the last one
    audio_packets: int = 0
    audio_dropped: int = 0


class Sink(Kind):
    """An output. ``write`` may block while it encodes (run it in a thread); the feed never blocks.

    ``close()`` flushes and finalises (a file is playable after it); it is
    idempotent, thread-safe and never raises for a sink that already failed,
    so the shutdown path can always call it.

    A kind states what the pipeline needs to know before opening one (class
    attributes, read from the class the registry gives for a URL): the metrics
    ``stage`` its writes are timed as, whether it ``encodes`` (and so takes the
    ``[encoder]`` settings), and whether it is ``reconnectable`` (a network
    output: a lost or stalled server is given up and reopened with backoff).
    """

    stage: ClassVar[str] = "encode"  # "encode" (files, streams), "feed" (zmq://) or "sink" (null)
    encodes: ClassVar[bool] = True
    reconnectable: ClassVar[bool] = False

    stats: SinkStats

    @classmethod
    @abstractmethod
    def open(cls, url: str, stream: OutputStream, encoding: Encoding) -> Sink:
        """Open ``url`` for ``stream``; ``RifestreamError`` for a bad URL or setting, ``SinkLost`` for a
        server that cannot be reached now."""

    def continue_timeline(self, origin: Fraction) -> None:
        """Stamp frames from ``origin`` instead of this sink's first frame: a sink reopened after a loss
        resumes on the timeline of the one it replaces. Call before the first write; sinks that stamp
        no timeline of their own ignore it."""
        return None

    def take_subscriber_drops(self) -> dict[str, int]:
        """Frames that single subscribers missed since the last call, by subscriber (the feed); {} for others."""
        return {}

    @abstractmethod
    def write(self, frame: OutputFrame) -> bool:
        """Encode/send one frame; False if it was dropped (and counted)."""

    def write_audio(self, audio: SourceAudio) -> None:
        """Take one input audio packet, timed on the video's timeline; sinks without audio ignore it."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Flush and release; safe to call twice, from any thread."""
