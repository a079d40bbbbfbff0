"""The input's audio in an output container: copied when the container takes its codec, else AAC.

Timestamps stay those of the input, shifted by the same origin as the video
(the time of the first video frame written), so audio and video stay in sync.
Packets that arrive before the first video frame wait in a small bounded
buffer; packets from before the origin are dropped.
"""

from __future__ import annotations

import logging
from collections import deque
from fractions import Fraction

import av

from rifestream.io.frames import SourceAudio
from rifestream.io.stream_info import AudioInfo

log = logging.getLogger(__name__)

AAC_RATES = {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000}
_EARLY_PACKETS = 512  # audio waiting for the first video frame (≈10 s of AAC at 48 kHz)


class AudioTrack:
    """One audio output stream of an ``av`` output container.

    ``copy_codecs``: codecs the destination takes as they are (None: whatever
    the container format supports).
    """

    def __init__(
        self, container: av.container.OutputContainer, info: AudioInfo, *, copy_codecs: set[str] | None = None
    ) -> None:
        self.info = info
        allowed = container.supported_codecs if copy_codecs is None else copy_codecs
        template = info.template()
        self.copy = template is not None and info.codec in allowed
        self.packets = 0
        self.dropped = 0
        self._early: deque[SourceAudio] = deque(maxlen=_EARLY_PACKETS)
        self._origin: Fraction | None = None
        self._last_pts: int | None = None  # copy mode, input time base
        self._last_time: Fraction | None = None  # re-encode mode, seconds
        if self.copy:
            self.stream = container.add_stream_from_template(template)
        else:
            self._decoder = av.CodecContext.create(info.codec, "r")
            self._decoder.sample_rate = info.sample_rate
            self._decoder.layout = info.layout
            if info.extradata:
                self._decoder.extradata = info.extradata
            rate = info.sample_rate if info.sample_rate in AAC_RATES else 48000
            layout = "mono" if info.channels == 1 else "stereo"
            self.stream = container.add_stream("aac", rate=rate)
            self.stream.layout = layout
            self.stream.bit_rate = 128_000 if layout == "stereo" else 64_000
            self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate, frame_size=1024)
        self._container = container

    def start(self, origin: Fraction) -> None:
        """The first video frame is at ``origin``: write what waited, from there on."""
        self._origin = origin
        while self._early:
            self._write(self._early.popleft())

    def write(self, item: SourceAudio) -> None:
        if self._origin is None:
            if len(self._early) == self._early.maxlen:
                self.dropped += 1
            self._early.append(item)
            return
        self._write(item)

    def _write(self, item: SourceAudio) -> None:
        if item.time < self._origin:
            self.dropped += 1
            return
        if self.copy:
            self._copy(item)
        else:
            self._reencode(item)

    def _copy(self, item: SourceAudio) -> None:
        src = item.packet
        tb = Fraction(src.time_base)
        pts = round((item.time - self._origin) / tb)
        if self._last_pts is not None and pts <= self._last_pts:
            self.dropped += 1
            return
        packet = av.Packet(bytes(src))  # our own copy: the same input packet may go to several sinks
        packet.pts = packet.dts = pts
        packet.duration = src.duration
        packet.time_base = tb
        packet.stream = self.stream
        self._last_pts = pts
        self._container.mux(packet)
        self.packets += 1

    def _reencode(self, item: SourceAudio) -> None:
        src = item.packet
        packet = av.Packet(bytes(src))
        packet.pts, packet.dts, packet.time_base = src.pts, src.dts, src.time_base
        try:
            frames = self._decoder.decode(packet)
        except av.error.FFmpegError as exc:
            log.debug("audio decode: %s", exc)
            self.dropped += 1
            return
        start = item.time - self._origin
        for frame in frames:
            if self._last_time is not None and start <= self._last_time:
                self.dropped += 1
                continue
            self._last_time = start
            frame.pts = round(start * frame.sample_rate)
            frame.time_base = Fraction(1, frame.sample_rate)
            for out in self._resampler.resample(frame):
                self._encode(out)
            start += Fraction(frame.samples, frame.sample_rate)
        self.packets += 1

    def _encode(self, frame: av.AudioFrame | None) -> None:
        for packet in self.stream.encode(frame):
            self._container.mux(packet)

    def flush(self) -> None:
        """Encode what the resampler and encoder still hold (re-encode mode)."""
        if self.copy or self._origin is None:
            return
        for out in self._resampler.resample(None):
            self._encode(out)
        self._encode(None)
