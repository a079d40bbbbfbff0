"""``open_source(url)``: one entry point for every input form (its kind is looked up in ``registry``).

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

from rifestream.io.registry import SOURCE_FORMS, source_kind
from rifestream.io.source_base import InputOptions, Source

__all__ = ["SOURCE_FORMS", "open_source"]


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
    kind = source_kind(url)
    url = url.strip()
    return kind.open(
        url,
        InputOptions(
            realtime=realtime,
            audio=audio,
            open_timeout=open_timeout,
            read_timeout=read_timeout,
            options=options,
            format=format,
            live=live,
        ),
    )
