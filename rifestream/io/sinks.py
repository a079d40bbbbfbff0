"""``open_sink(url, …)``: one entry point for every output form.

| form | what |
|---|---|
| ``PATH.mp4``, ``.mkv``, ``.mov``, ``.flv``, ``.ts``, ``.nut`` | a file by extension; ``codec="ffv1"``: lossless |
| ``rtmp://HOST/APP/KEY``, ``rtmps://`` | FLV over RTMP, ``libx264`` ``tune=zerolatency`` or ``h264_nvenc`` |
| ``udp://``, ``srt://`` | MPEG-TS over UDP or SRT (SRT needs an FFmpeg with libsrt), encoded as for RTMP |
| ``zmq://HOST:PORT[?hwm=4&pix_fmt=rgb24&topic=rifestream&lossy=0]`` | the ZeroMQ frame feed (binds) |
| ``null`` | discard (counts only) |
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Unpack
from urllib.parse import urlsplit

from rifestream.errors import RifestreamError
from rifestream.io.encoder_sink import EncoderSink, Encoding
from rifestream.io.null_sink import NullSink
from rifestream.io.sink_base import Sink
from rifestream.io.stream_info import AudioInfo
from rifestream.io.zmq_feed import FeedPublisher

LIVE_SINK_FORMATS = {"rtmp": "flv", "rtmps": "flv", "srt": "mpegts", "udp": "mpegts"}
SINK_FORMS = "a file path (.mp4, .mkv, .mov, .flv, .ts, .nut), rtmp://, udp://, zmq://HOST:PORT or null"


def _scheme(url: str) -> str:
    """``url``'s scheme in lower case; "" for a plain path."""
    return urlsplit(url.strip()).scheme.lower() if "://" in url else ""


def is_network_sink(url: str) -> bool:
    """Whether ``url`` streams to a server over the network (rtmp://, rtmps://, srt://, udp://)."""
    return _scheme(url) in LIVE_SINK_FORMATS


def check_file_path(path: str) -> None:
    """Raise a one-line ``RifestreamError`` naming what keeps ``path`` from being an output file: it is
    a folder, a part of its folder path is a file, or its folder does not exist."""
    if os.path.isdir(path):
        raise RifestreamError(
            f"cannot write {path}: it is a folder; give a file path, e.g. {os.path.join(path, 'out.mp4')}"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(folder):
        return
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise RifestreamError(f"cannot write {path}: {existing} is a file, not a folder; choose another path")
    raise RifestreamError(f"cannot write {path}: folder {folder} does not exist; create it or choose another path")


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
    if not isinstance(url, str) or not url.strip():
        raise RifestreamError(f"no sink given; use {SINK_FORMS}")
    url = url.strip()
    if url in ("null", "null:"):
        return NullSink(url)
    scheme = _scheme(url)
    if scheme == "zmq":
        pix_fmt = encoding.get("pix_fmt")
        return FeedPublisher(
            url,
            time_base=time_base,
            source_time_base=source_time_base,
            rate=rate,
            **({"pix_fmt": pix_fmt} if pix_fmt else {}),
        )
    common = dict(width=width, height=height, rate=rate, time_base=time_base, audio=audio, **encoding)
    if scheme in LIVE_SINK_FORMATS:
        return EncoderSink(url, file=url, format=LIVE_SINK_FORMATS[scheme], live=True, **common)
    if scheme and scheme != "file":
        raise RifestreamError(f"{url}: cannot write to {scheme}://; use {SINK_FORMS}")
    path = url[len("file:") :] if url.startswith("file:") else url
    check_file_path(path)
    if not os.path.splitext(path)[1]:
        raise RifestreamError(f"{path}: give the file an extension (.mp4, .mkv, .mov, .flv, .ts, .nut) for its format")
    return EncoderSink(url, file=path, format=None, live=False, **common)
