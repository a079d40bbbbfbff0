"""``null``: a sink that takes frames and keeps only counts (benchmarks, dry runs)."""

from __future__ import annotations

from rifestream.io.frames import OutputFrame, SourceAudio
from rifestream.io.sink_base import Sink, SinkStats


class NullSink(Sink):
    def __init__(self, url: str = "null") -> None:
        self.url = url
        self.stats = SinkStats()
        self._closed = False

    def write(self, frame: OutputFrame) -> bool:
        if self._closed:
            return False
        self.stats.frames += 1
        return True

    def write_audio(self, audio: SourceAudio) -> None:
        self.stats.audio_packets += 1

    def close(self) -> None:
        self._closed = True
