"""``null``: a sink that takes frames and keeps only counts (benchmarks, dry runs)."""

from __future__ import annotations

from rifestream.io.frames import OutputFrame, SourceAudio
from rifestream.io.sink_base import Encoding, OutputStream, Sink, SinkStats


class NullSink(Sink):
    stage = "sink"
    encodes = False

    def __init__(self, url: str = "null") -> None:
        self.url = url
        self.stats = SinkStats()
        self._closed = False

    @classmethod
    def check_url(cls, url: str) -> None:
        return None

    @classmethod
    def open(cls, url: str, stream: OutputStream, encoding: Encoding) -> NullSink:
        return cls(url)

    def write(self, frame: OutputFrame) -> bool:
        if self._closed:
            return False
        self.stats.frames += 1
        return True

    def write_audio(self, audio: SourceAudio) -> None:
        self.stats.audio_packets += 1

    def close(self) -> None:
        self._closed = True
