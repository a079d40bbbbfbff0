"""The input's audio in an output container: copied when the container takes its codec, else AAC.

Timestamps stay those of the input, shifted by the same origin as the video
(the time of the first video frame written), so audio and video stay in sync.
Packets that arrive before the first video frame wait in a small bounded
buffer; packets from before the origin are dropped.

Damaged audio is never passed on: every packet is decoded, also when it is
copied, and a packet that does not decode is dropped (counted in ``damaged``,
with a warning). A stream whose codec needs a configuration the input does not
carry (AAC without its AudioSpecificConfig, after a damaged header) is
re-encoded rather than copied, since a muxer cannot describe it.
"""

from __future__ import annotations

import logging
from collections import deque
from fractions import Fraction

import av
import av.logging

from rifestream.io import av_errors
from rifestream.io.frames import SourceAudio
from rifestream.io.stream_info import AudioInfo

log = logging.getLogger(__name__)

AAC_RATES = {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000}
_EARLY_PACKETS = 512  # audio waiting for the first video frame (≈10 s of AAC at 48 kHz)
# codecs a container can only describe with the stream's configuration (extradata) at hand
_NEEDS_EXTRADATA = {"aac", "alac", "vorbis", "opus", "flac"}


def open_decoder(info: AudioInfo) -> av.audio.codeccontext.AudioCodecContext:
    """A decoder for the stream ``info`` describes (raises an ``av`` error or ValueError if none opens)."""
    decoder = av.CodecContext.create(info.codec, "r")
    decoder.sample_rate = info.sample_rate
    decoder.layout = info.layout
    if info.extradata:
        decoder.extradata = info.extradata
    decoder.open()
    if av.logging.get_level() is None:
        # PyAV drops FFmpeg's log lines by default; from PANIC on it counts the error lines without
        # showing them, which is how a packet that decodes "with concealment" is told from a good one.
        av.logging.set_level(av.logging.PANIC)
    return decoder


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
        described = bool(info.extradata) or info.codec not in _NEEDS_EXTRADATA
        self.copy = template is not None and info.codec in allowed and described
        self.packets = 0
        self.dropped = 0
        self.damaged = 0  # packets that did not decode: dropped, never passed on
        self._decoder = open_decoder(info)  # also when copying: each packet is checked before it goes out
        self._early: deque[SourceAudio] = deque(maxlen=_EARLY_PACKETS)
        self._origin: Fraction | None = None
        self._last_pts: int | None = None  # copy mode, input time base
        self._last_time: Fraction | None = None  # re-encode mode, seconds
        if self.copy:
            self.stream = container.add_stream_from_template(template)
        else:
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

    def _decode(self, src: av.Packet) -> list[av.AudioFrame] | None:
        """``src`` decoded; None (and counted, with a warning the first time) when it is damaged."""
        packet = av.Packet(bytes(src))  # our own copy: the same input packet may go to several sinks
        packet.pts, packet.dts, packet.time_base = src.pts, src.dts, src.time_base
        errors_before = av.logging.get_last_error()[0]
        try:
            frames = self._decoder.decode(packet)
        except (av.error.FFmpegError, ValueError) as exc:
            return self._damaged(av_errors.reason(exc))
        errors, last = av.logging.get_last_error()
        if errors != errors_before and last is not None and last[1] == self._decoder.codec.name:
            return self._damaged(last[2].strip())  # decoded only by concealing an error FFmpeg logged
        return frames

    def _damaged(self, why: str) -> None:
        self.damaged += 1
        self.dropped += 1
        if self.damaged == 1:
            log.warning("damaged audio in the input (%s): such packets are dropped, not passed on", why)

    def _copy(self, item: SourceAudio) -> None:
        src = item.packet
        tb = Fraction(src.time_base)
        pts = round((item.time - self._origin) / tb)
        if self._last_pts is not None and pts <= self._last_pts:
            self.dropped += 1
            return
        if self._decode(src) is None:
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
        frames = self._decode(item.packet)
        if frames is None:
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
        if self.damaged:
            log.warning("%d damaged audio packets dropped", self.damaged)
        if self.copy or self._origin is None:
            return
        for out in self._resampler.resample(None):
            self._encode(out)
        self._encode(None)
