"""What every sink offers: write output frames, accept the input's audio, close (flush) safely."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from rifestream.io.frames import OutputFrame, SourceAudio


@dataclass
class SinkStats:
    """Counters a sink keeps (read them from any thread)."""

    frames: int = 0
    dropped: int = 0  # frames not written: full queue (feed) or a timestamp not after the last one
    audio_packets: int = 0
    audio_dropped: int = 0


class Sink(ABC):
    """An output. ``write`` may block while it encodes (run it in a thread); the feed never blocks.

    ``close()`` flushes and finalises (a file is playable after it); it is
    idempotent, thread-safe and never raises for a sink that already failed,
    so the shutdown path can always call it.
    """

    url: str
    stats: SinkStats

    @abstractmethod
    def write(self, frame: OutputFrame) -> bool:
        """Encode/send one frame; False if it was dropped (and counted)."""

    def write_audio(self, audio: SourceAudio) -> None:
        """Take one input audio packet, timed on the video's timeline; sinks without audio ignore it."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Flush and release; safe to call twice, from any thread."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
