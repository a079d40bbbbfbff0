"""Which class handles a source or sink URL: the one table from scheme to kind.

A kind is a ``Source`` or ``Sink`` subclass (``source_base``, ``sink_base``)
that opens itself (``open``), checks the form of its URLs (``check_url``) and,
for sinks, says what the pipeline needs to know before opening one (``stage``,
``encodes``, ``reconnectable``). Adding a kind (SRT, WebRTC, NDI, a GStreamer
pipeline) is one new module with its class, plus its line in ``SOURCE_KINDS``
or ``SINK_KINDS`` below: nothing else in the package maps a URL to the class
that handles it (a kind may tell its own schemes apart, as ``AVSource`` does
live from file-like URLs).

The classes are imported when first asked for, so that looking a URL up (as the
config does to check it) does not load FFmpeg or ZeroMQ for kinds not in use.

Public API: ``source_kind(url)`` / ``sink_kind(url)`` (the class, or a one-line
``RifestreamError``), ``check_source_url(url)`` / ``check_sink_url(url)`` (the
URL, or ``BadUrl`` whose ``expected`` phrase the config quotes), ``scheme(url)``,
``source_schemes()`` / ``sink_schemes()``, and the ``SOURCE_FORMS`` /
``SINK_FORMS`` phrases for messages. Opening is ``rifestream.io.sources.open_source``
and ``rifestream.io.sinks.open_sink``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from rifestream.errors import RifestreamError
from rifestream.io.endpoint import BadUrl

if TYPE_CHECKING:
    from rifestream.io.kind import Kind
    from rifestream.io.sink_base import Sink
    from rifestream.io.source_base import Source

__all__ = [
    "SINK_FORMS",
    "SINK_KINDS",
    "SOURCE_FORMS",
    "SOURCE_KINDS",
    "BadUrl",
    "check_sink_url",
    "check_source_url",
    "scheme",
    "sink_kind",
    "sink_schemes",
    "source_kind",
    "source_schemes",
]

PATH = ""  # the scheme of a plain file path ("out.mp4", "C:\\video.mp4")
NULL = "null"  # the sink written "null" (or "null:")

# scheme → "module:Class". A scheme not listed is read by FFmpeg (``FFMPEG_SOURCE``), as a file would be.
FFMPEG_SOURCE = "rifestream.io.av_source:AVSource"
SOURCE_KINDS: dict[str, str] = {
    PATH: FFMPEG_SOURCE,
    "file": FFMPEG_SOURCE,
    **dict.fromkeys(("rtsp", "rtsps", "rtmp", "rtmps", "rtmpt", "srt", "udp", "rtp", "tcp"), FFMPEG_SOURCE),
    "http": FFMPEG_SOURCE,
    "https": FFMPEG_SOURCE,
    "capture": "rifestream.io.capture:CaptureSource",
    "testsrc": "rifestream.io.scene_source:SyntheticSceneSource",
    "zmq": "rifestream.io.feed_source:FeedSource",
}
SINK_KINDS: dict[str, str] = {
    PATH: "rifestream.io.file_sink:FileSink",
    "file": "rifestream.io.file_sink:FileSink",
    NULL: "rifestream.io.null_sink:NullSink",
    "rtmp": "rifestream.io.rtmp_sink:RtmpSink",
    "rtmps": "rifestream.io.rtmp_sink:RtmpSink",
    "srt": "rifestream.io.srt_sink:SrtSink",
    "udp": "rifestream.io.udp_sink:UdpSink",
    "zmq": "rifestream.io.zmq_feed:FeedPublisher",
}

SOURCE_FORMS = "a file path, rtsp://, rtmp://, udp://, http(s)://, capture:BACKEND, testsrc: or zmq://HOST:PORT"
SINK_FORMS = "a file path (.mp4, .mkv, .mov, .flv, .ts, .nut), rtmp://, udp://, zmq://HOST:PORT or null"
# The schemes written with a colon only (``testsrc:?size=…``, ``capture:x11grab?…``, ``file:PATH``).
_COLON_SCHEMES = ("testsrc", "capture", "file")


def scheme(url: str) -> str:
    """``url``'s scheme in lower case: "" for a plain path (Windows paths like C:\\video.mp4 too), "null"
    for the null sink, "testsrc"/"capture"/"file" for their colon forms."""
    text = url.strip()
    if text.lower() in ("null", "null:"):
        return NULL
    head, sep, _ = text.partition(":")
    if sep and head.lower() in _COLON_SCHEMES:
        return head.lower()
    if "://" not in text:
        return PATH
    return text.partition("://")[0].lower()


def _load(where: str) -> type:
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


def source_schemes() -> tuple[str, ...]:
    """The schemes with a kind of their own ("" is a plain file path); any other URL is handed to FFmpeg."""
    return tuple(SOURCE_KINDS)


def sink_schemes() -> tuple[str, ...]:
    """The schemes a sink can be (""/"file": a file by extension, "null": discard)."""
    return tuple(SINK_KINDS)


def source_kind(url: str) -> type[Source]:
    """The ``Source`` class that opens ``url``; ``RifestreamError`` for an empty one."""
    if not isinstance(url, str) or not url.strip():
        raise RifestreamError(f"no source given; use {SOURCE_FORMS}")
    return _load(SOURCE_KINDS.get(scheme(url), FFMPEG_SOURCE))


def sink_kind(url: str) -> type[Sink]:
    """The ``Sink`` class that opens ``url``; ``RifestreamError`` for an empty one or an unknown scheme."""
    if not isinstance(url, str) or not url.strip():
        raise RifestreamError(f"no sink given; use {SINK_FORMS}")
    kind = scheme(url)
    if kind not in SINK_KINDS:
        raise RifestreamError(f"{url.strip()}: cannot write to {kind}://; use {SINK_FORMS}")
    return _load(SINK_KINDS[kind])


def check_source_url(url: str) -> str:
    """``url`` if its kind takes its form (host, port, …; nothing is opened), else ``BadUrl``."""
    return _checked(url, source_kind, f"a source URL: {SOURCE_FORMS}")


def check_sink_url(url: str) -> str:
    """``url`` if it names a sink kind and that kind takes its form (nothing is opened), else ``BadUrl``."""
    return _checked(url, sink_kind, f"a sink URL: {SINK_FORMS}")


def _checked(url: str, kind_of: Callable[[str], type[Kind]], what: str) -> str:
    try:
        kind = kind_of(url)
    except RifestreamError:
        raise BadUrl(url, what) from None
    kind.check_url(url.strip())
    return url
