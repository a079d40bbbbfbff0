"""What every source offers: stream info, a blocking iterator meant for a thread, and close()."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from rifestream.io.frames import SourceAudio, SourceFrame
from rifestream.io.stream_info import StreamInfo


@dataclass
class SourceStats:
    """Counters a source keeps while it reads (read them from any thread)."""

    frames: int = 0
    audio_packets: int = 0
    decode_errors: int = 0


class Source(ABC):
    """A video input. ``read()`` yields ``SourceFrame``s and, if the input has audio, ``SourceAudio``
    packets, in arrival order; it blocks, so run it in a thread (PyAV releases the GIL while it
    demuxes and decodes).

    A file or a test scene with an end simply stops. A live input that drops raises
    ``SourceLost``; ``close()`` (from any thread) makes a running ``read()`` return at its next
    frame, or within the read timeout while it waits on the network.
    """

    url: str
    info: StreamInfo

    def __init__(self) -> None:
        self.stats = SourceStats()
        self._stop = threading.Event()

    @abstractmethod
    def read(self) -> Iterator[SourceFrame | SourceAudio]:
        """Frames and audio packets until the input ends, ``close()`` is called, or it is lost."""

    def frames(self) -> Iterator[SourceFrame]:
        """Only the video frames of ``read()``."""
        for item in self.read():
            if isinstance(item, SourceFrame):
                yield item

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Stop reading and release the input; safe to call twice and from another thread."""
        self._stop.set()
        self._release()

    def _release(self) -> None:
        """Free what the source holds (subclasses); called by close() and when read() ends."""
        return None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
