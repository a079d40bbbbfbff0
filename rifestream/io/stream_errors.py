"""Exceptions for a live input or output that went away: the runner reconnects with backoff.

They subclass ``RifestreamError`` so that one left unhandled still prints as one
line naming the URL; a runner that retries must catch them *before*
``RifestreamError`` (which otherwise means: bad URL, path, option or format).
"""

from __future__ import annotations

from rifestream.errors import RifestreamError
from rifestream.io.url_redact import redact_url


class StreamLost(RifestreamError):
    """A network stream or device stopped delivering (or accepting) data; retrying may help.

    ``url`` is kept as given (to reconnect with); the message shows it redacted.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{redact_url(url)}: {reason}")


class SourceLost(StreamLost):
    """The source could not be reached, or dropped mid-stream (closed, reset, timed out)."""


class SinkLost(StreamLost):
    """The sink's server could not be reached, or went away mid-stream."""
