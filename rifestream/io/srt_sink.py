"""``srt://HOST:PORT[?…]``: MPEG-TS over SRT, encoded for live (needs an FFmpeg built with libsrt)."""

from __future__ import annotations

from rifestream.io.encoder_sink import LiveEncoderSink


class SrtSink(LiveEncoderSink):
    """SRT in FFmpeg's terms: ``mode=listener`` waits for a receiver, the default calls one."""

    container_format = "mpegts"
