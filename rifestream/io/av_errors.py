"""Turning FFmpeg (PyAV) errors into the user's terms: a fixable ``RifestreamError`` or a retryable loss."""

from __future__ import annotations

import errno
import os

import av

from rifestream.errors import RifestreamError
from rifestream.io.url_redact import redact_text

# errno values that mean "the other end is not there (now)": worth a reconnect with backoff.
_TRANSIENT_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EPIPE,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
    errno.EIO,
    errno.EAGAIN,
}


def is_transient(exc: BaseException) -> bool:
    """Whether a PyAV/OS error on a network stream is a loss of the peer (retry), not a bad request."""
    if isinstance(exc, (av.error.ExitError, av.error.EOFError, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, av.error.HTTPServerError):
        return True
    if isinstance(exc, (av.error.HTTPClientError, av.error.InvalidDataError, av.error.ProtocolNotFoundError)):
        return False
    return isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS


def reason(exc: BaseException) -> str:
    """A short description of an FFmpeg error (its strerror, without the Python class noise)."""
    if isinstance(exc, av.error.ExitError):
        return "timed out waiting for data"
    if isinstance(exc, av.error.EOFError):
        return "the stream ended (the server closed it)"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.rstrip(".")


def open_error(url: str, exc: BaseException, what: str) -> RifestreamError:
    """A user-facing error for a URL or path that cannot be opened (``what``: 'read' or 'write'), the URL redacted."""
    return RifestreamError(redact_text(str(_open_error(url, exc, what))))


def _open_error(url: str, exc: BaseException, what: str) -> RifestreamError:
    if isinstance(exc, FileNotFoundError):
        if what == "read":
            return RifestreamError(f"no such file: {url}; check the path, or give a URL such as rtsp://HOST/PATH")
        folder = os.path.dirname(os.path.abspath(url))
        if "://" not in url and os.path.isdir(folder):  # e.g. /proc: the folder is there but takes no new files
            return RifestreamError(
                f"cannot write {url}: folder {folder} does not take new files; choose another folder"
            )
        return RifestreamError(f"cannot write {url}: its folder does not exist; create it or choose another path")
    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        return RifestreamError(f"cannot {what} {url}: it is on a read-only file system; choose another folder")
    if isinstance(exc, IsADirectoryError):
        return RifestreamError(f"{url} is a folder; give a video file path")
    if isinstance(exc, PermissionError) and what == "write" and "://" not in url and not os.path.exists(url):
        folder = os.path.dirname(os.path.abspath(url))
        return RifestreamError(f"cannot write {url}: permission denied in folder {folder}; choose another folder")
    if isinstance(exc, PermissionError):
        return RifestreamError(f"cannot {what} {url}: permission denied; check the file's permissions")
    if isinstance(exc, av.error.ProtocolNotFoundError):
        scheme = url.split("://", 1)[0] if "://" in url else url
        return RifestreamError(
            f"{url}: the FFmpeg in this PyAV build cannot open {scheme}:// URLs; use a file path, rtsp://, "
            "rtmp://, http(s)://, udp://, capture:, testsrc: or zmq:// (or a PyAV built with that protocol)"
        )
    if isinstance(exc, av.error.HTTPNotFoundError):
        return RifestreamError(f"{url}: the server has no such stream (404); check the stream path")
    if isinstance(exc, (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError)):
        return RifestreamError(f"{url}: the server refused access ({reason(exc)}); check the credentials in the URL")
    if what == "read" and isinstance(exc, av.error.FFmpegError) and "://" not in url:
        why = "it ends too early" if isinstance(exc, av.error.EOFError) else reason(exc)
        return RifestreamError(
            f"{url}: FFmpeg cannot read this as video ({why}); check that it is a whole, undamaged video file"
        )
    if isinstance(exc, av.error.InvalidDataError):
        return RifestreamError(f"{url}: FFmpeg cannot {what} this as video ({reason(exc)}); check the file or format")
    if isinstance(exc, av.error.OptionNotFoundError):
        return RifestreamError(f"{url}: an FFmpeg option was not accepted ({reason(exc)}); check the options")
    return RifestreamError(f"cannot {what} {url}: {reason(exc)}; check the URL or path and that FFmpeg can {what} it")
