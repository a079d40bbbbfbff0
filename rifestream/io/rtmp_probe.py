"""Check that an RTMP server answers before FFmpeg connects to it.

PyAV opens an output with ``avio_open`` while it holds the GIL, and with no I/O
timeout. Pointing FFmpeg at a host that accepts the TCP connection but never
answers (a server process that is stopped or hung, a firewall, another service
on the port) would therefore freeze the whole process, not just the sink's
thread: no frames, no metrics, no reaction to Ctrl-C. A handshake of our own
with a deadline (RTMP's C0+C1, answered by S0+S1) turns that into ``SinkLost``,
which the runner retries with backoff.
"""

from __future__ import annotations

import os
import socket
import time

from rifestream.errors import RifestreamError
from rifestream.io.endpoint import BadUrl, split_endpoint
from rifestream.io.stream_errors import SinkLost
from rifestream.io.url_redact import redact_url

RTMP_PORT = 1935
RTMP_VERSION = 3
HANDSHAKE_BYTES = 1536
ANSWER_TIMEOUT_S = 5.0


def check_rtmp_server(url: str, timeout: float = ANSWER_TIMEOUT_S) -> None:
    """Return once ``url``'s server has answered the first half of an RTMP handshake within ``timeout`` seconds.

    Raises ``SinkLost`` when nothing answers in time (or the connection is refused or
    reset) and ``RifestreamError`` when something answers that is not an RTMP server.
    A host name that does not resolve is left for FFmpeg to report.
    """
    try:
        end = split_endpoint(url)
    except BadUrl:
        end = None
    if end is None or (end.port and (end.port_number() is None or end.port_number() > 65535)):
        raise RifestreamError(f"{redact_url(url)}: the port must be a number from 1 to 65535")
    host, port = end.host.lower(), end.port_number() or RTMP_PORT
    if not host:
        raise RifestreamError(f"{redact_url(url)}: no host in the URL; use rtmp://HOST[:PORT]/APP/ and the stream key")
    deadline = time.monotonic() + timeout
    hello = bytes([RTMP_VERSION]) + bytes(8) + os.urandom(HANDSHAKE_BYTES - 8)  # C0, then C1: time, zero, random
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(hello)
            answer = _receive(sock, 1 + HANDSHAKE_BYTES, deadline)
    except socket.gaierror:
        return
    except TimeoutError:
        raise SinkLost(
            url, f"no RTMP handshake from {host}:{port} within {timeout:g} s; is the RTMP server running and answering?"
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SinkLost(url, f"cannot connect to {host}:{port} ({reason}); is the server running?") from None
    if answer and answer[0] != RTMP_VERSION:
        raise RifestreamError(
            f"{redact_url(url)}: {host}:{port} answered, but not as an RTMP server (first byte {answer[0]}); "
            "check the host and port"
        )
    if len(answer) < 1 + HANDSHAKE_BYTES:
        raise SinkLost(url, f"{host}:{port} closed the connection during the RTMP handshake")


def _receive(sock: socket.socket, size: int, deadline: float) -> bytes:
    """Up to ``size`` bytes (fewer if the peer closes); ``TimeoutError`` once ``deadline`` passes."""
    data = bytearray()
    while len(data) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)
