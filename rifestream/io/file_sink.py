"""``PATH.mp4`` (or ``file:PATH``): a video file, its container picked by the extension."""

from __future__ import annotations

import os

from rifestream.errors import RifestreamError
from rifestream.io.encoder_sink import EncoderSink
from rifestream.io.sink_base import Encoding, OutputStream

FILE_EXTENSIONS = (".mp4", ".mkv", ".mov", ".flv", ".ts", ".nut")


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


class FileSink(EncoderSink):
    """A file; ``codec="ffv1"`` for lossless. A file that never got a frame is removed again."""

    @classmethod
    def open(cls, url: str, stream: OutputStream, encoding: Encoding) -> FileSink:
        path = url[len("file:") :] if url.startswith("file:") else url
        check_file_path(path)
        if not os.path.splitext(path)[1]:
            raise RifestreamError(f"{path}: give the file an extension ({', '.join(FILE_EXTENSIONS)}) for its format")
        return cls(url, stream, file=path, format=None, live=False, **encoding)
