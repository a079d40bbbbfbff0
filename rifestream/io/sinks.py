"""``open_sink(url, …)``: one entry point for every output form (its kind is looked up in ``registry``).

| form | what |
|---|---|
| ``PATH.mp4``, ``.mkv``, ``.mov``, ``.flv``, ``.ts``, ``.nut`` | a file by extension; ``codec="ffv1"``: lossless |
| ``rtmp://HOST/APP/KEY``, ``rtmps://`` | FLV over RTMP, ``libx264`` ``tune=zerolatency`` or ``h264_nvenc`` |
| ``udp://``, ``srt://`` | MPEG-TS over UDP or SRT (SRT needs an FFmpeg with libsrt), encoded as for RTMP |
| ``zmq://HOST:PORT[?hwm=4&pix_fmt=rgb24&topic=rifestream&lossy=0]`` | the ZeroMQ frame feed (binds) |
| ``null`` | discard (counts only) |
"""

from __future__ import annotations

from fractions import Fraction
from typing import Unpack

from rifestream.io.registry import SINK_FORMS, sink_kind
from rifestream.io.sink_base import Encoding, OutputStream, Sink
from rifestream.io.stream_info import AudioInfo

__all__ = ["SINK_FORMS", "open_sink"]


def open_sink(
    url: str,
    *,
    width: int,
    height: int,
    rate: Fraction | None,
    time_base: Fraction,
    audio: AudioInfo | None = None,
    source_time_base: Fraction | None = None,
    **encoding: Unpack[Encoding],
) -> Sink:
    """Open an output for frames of ``width``×``height`` at nominal ``rate`` (None: variable),
    timestamped in ``time_base`` (every ``OutputFrame.time`` should be a whole number of ticks).

    ``audio``: the source's ``info.audio``, to carry its audio (copy when the
    container takes the codec, else AAC). ``source_time_base``: the input's time
    base, for the feed's ``source_pts``. ``codec``: video encoder (default
    ``h264_nvenc`` when usable, else ``libx264``; ``ffv1`` for lossless);
    ``pix_fmt`` (for the feed: rgb24, bgr24, gray or yuv420p), ``crf``, ``preset``
    and ``bitrate`` (bit/s) tune it; the ``*_options`` are FFmpeg's own.

    Raises ``RifestreamError`` for a bad URL, path, extension or codec and
    ``SinkLost`` (a subclass) when a live server cannot be reached now.
    """
    kind = sink_kind(url)
    stream = OutputStream(width, height, rate, time_base, audio, source_time_base)
    return kind.open(url.strip(), stream, encoding)
