"""``open_source(url)``: one entry point for every input form.

| form | what |
|---|---|
| ``PATH`` or ``file:PATH`` | a video file; ``realtime=True`` paces it to its timestamps |
| ``rtsp://``, ``rtsps://`` | a camera; TCP transport, socket timeouts |
| ``rtmp://``, ``udp://``, ``srt://`` (with libsrt), any URL FFmpeg reads | live network streams |
| ``capture:BACKEND?…`` | screen/game capture (see ``rifestream.io.capture``) |
| ``testsrc:?size=640x360&fps=30`` | the built-in moving test scene (``frames=``/``duration=`` to end it) |
| ``zmq://HOST:PORT`` | another rifestream feed |
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from rifestream.errors import RifestreamError
from rifestream.io.av_source import LIVE_SCHEMES, AVSource, live_input_options
from rifestream.io.capture import capture_input, check_available
from rifestream.io.feed_source import FeedSource
from rifestream.io.scene_source import TestSceneSource
from rifestream.io.source_base import Source

SOURCE_FORMS = "a file path, rtsp://, rtmp://, udp://, http(s)://, capture:BACKEND, testsrc: or zmq://HOST:PORT"


def open_source(
    url: str,
    *,
    realtime: bool | None = None,
    audio: bool = True,
    open_timeout: float = 10.0,
    read_timeout: float = 5.0,
    options: dict[str, str] | None = None,
    format: str | None = None,
    live: bool | None = None,
) -> Source:
    """Open an input and return its ``Source`` (``info`` filled, nothing consumed yet).

    ``realtime``: pace a file to its frame timestamps, as a live source would
    deliver (default: files unpaced, the test scene paced; live inputs are
    always read as they arrive). ``audio``: also hand out the input's audio
    packets. ``open_timeout``/``read_timeout`` (seconds) bound connecting and
    each wait for data on live inputs. ``options`` are extra FFmpeg options
    that override ours; ``format`` forces an FFmpeg input format. ``live``
    overrides the guess from the scheme (e.g. ``True`` for an HLS stream over
    https, so that its end is a loss to reconnect, not the end of the job).

    Raises ``RifestreamError`` for a bad path, URL, option or format, and
    ``SourceLost`` (a subclass) when a live server cannot be reached now.
    """
    if not isinstance(url, str) or not url.strip():
        raise RifestreamError(f"no source given; use {SOURCE_FORMS}")
    url = url.strip()
    scheme = _scheme(url)
    if scheme == "testsrc":
        return TestSceneSource.from_url(url, realtime=realtime)
    if scheme == "zmq":
        return FeedSource(url, open_timeout=open_timeout, read_timeout=read_timeout)
    if scheme == "capture":
        cap = capture_input(url)
        check_available(url, cap)
        return AVSource(
            url,
            file=cap.file,
            format=cap.format,
            options={**cap.options, **(options or {})},
            live=True,
            audio=False,
            device=True,
            open_timeout=open_timeout,
            read_timeout=read_timeout,
        )
    is_live = scheme in LIVE_SCHEMES if live is None else live
    if is_live:
        return AVSource(
            url,
            file=url,
            format=format,
            options={**live_input_options(scheme, read_timeout), **(options or {})},
            live=True,
            audio=audio,
            open_timeout=open_timeout,
            read_timeout=read_timeout,
        )
    path = url[len("file:") :] if scheme == "file" else url
    if scheme in ("", "file") and not os.path.exists(path):
        raise RifestreamError(f"no such file: {path}; check the path, or give {SOURCE_FORMS}")
    return AVSource(
        url,
        file=path,
        format=format,
        options=options,
        live=False,
        realtime=bool(realtime),
        audio=audio,
        open_timeout=open_timeout,
        read_timeout=read_timeout,
    )


def _scheme(url: str) -> str:
    """The URL scheme, or '' for a plain path (also Windows paths like C:\\video.mp4)."""
    if url.startswith(("testsrc:", "capture:", "file:")):
        return url.split(":", 1)[0]
    if "://" not in url:
        return ""
    return urlsplit(url).scheme.lower()
