"""The one source contract: how a kind opens, and what every source offers (stream info, a blocking
iterator meant for a thread, whether it delivers at its own pace, and close())."""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from rifestream.io.frames import SourceAudio, SourceFrame
from rifestream.io.kind import Kind
from rifestream.io.stream_info import StreamInfo


@dataclass(frozen=True)
class InputOptions:
    """How to open an input (see ``rifestream.io.sources.open_source``); kinds use what applies to them."""

    realtime: bool | None = None  # pace a file (or the test scene) to its timestamps; None: the kind's default
    audio: bool = True
    open_timeout: float = 10.0
    read_timeout: float = 5.0
    options: dict[str, str] | None = None  # FFmpeg's own, over ours
    format: str | None = None  # force an FFmpeg input format
    live: bool | None = None  # override the kind's guess (an HLS stream over https: its end is a loss)


@dataclass
class SourceStats:
    """Counters a source keeps while it reads (read them from any thread)."""

    frames: int = 0
    audio_packets: int = 0
    decode_errors: int = 0


class Source(Kind):
    """A video input. ``read()`` yields ``SourceFrame``s and, if the input has audio, ``SourceAudio``
    packets, in arrival order; it blocks, so run it in a thread (PyAV releases the GIL while it
    demuxes and decodes).

    A file or a test scene with an end simply stops. A live input that drops raises
    ``SourceLost``; ``close()`` (from any thread) makes a running ``read()`` return at its next
    frame, or within the read timeout while it waits on the network.
    """

    info: StreamInfo
    realtime: bool = False  # we pace it to its timestamps (a file read in real time)

    def __init__(self) -> None:
        self.stats = SourceStats()
        self._stop = threading.Event()

    @classmethod
    @abstractmethod
    def open(cls, url: str, options: InputOptions) -> Source:
        """Open ``url`` (``info`` filled, nothing consumed yet); ``RifestreamError`` for a bad path, URL,
        option or format, ``SourceLost`` for a server that cannot be reached now."""

    @property
    def own_pace(self) -> bool:
        """Whether it delivers at its own pace, as a camera does (a live job: drop frames when behind),
        rather than as fast as it is read (offline: back-pressure, no drops)."""
        return self.info.live or self.realtime

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
