"""A cheap readiness look at a network endpoint: does its TCP port accept a connection now?

Reconnecting to a lost server by full opens alone is either slow (a backoff that
has grown to seconds between tries) or heavy (an RTSP DESCRIBE/SETUP, an RTMP
handshake and an encoder start several times a second). Between full opens the
runner looks at the server's port instead: a connect that a down server refuses
at once (or that times out), and that an up server accepts and sees closed
straight away. The look costs one TCP connection and no protocol work, so it
can run a few times a second without hammering anyone; the moment a port that
refused accepts again, the next full open starts.

UDP-based inputs and outputs (``udp://``, ``srt://``, ``rtp://``) have no port
to look at: they are retried by their backoff alone.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from rifestream.io.endpoint import BadUrl, split_endpoint

# Default TCP ports by scheme, for URLs that name none.
TCP_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "rtmps": 443, "rtmpt": 80, "http": 80, "https": 443}
LOOK_TIMEOUT_S = 0.5  # a host that drops the connection attempt silently counts as down after this long


def tcp_endpoint(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of a TCP-based network URL; None for anything else (files, UDP, capture, a bad URL)."""
    if "://" not in url:
        return None
    try:
        end = split_endpoint(url)
    except BadUrl:  # the open itself reports it
        return None
    if not end.host:
        return None
    if not end.port:  # none given (or an empty one): the scheme's own
        port = TCP_PORTS.get(end.scheme)
    elif end.port_number() is None or not 0 <= end.port_number() <= 65535:
        return None  # a port that is not a number or out of range: the open itself reports it
    elif end.scheme not in TCP_PORTS and end.scheme != "tcp":
        return None
    else:
        port = end.port_number()
    return None if port is None else (end.host.lower(), port)


def port_accepts(host: str, port: int, timeout: float = LOOK_TIMEOUT_S) -> bool:
    """Whether ``host:port`` accepts a TCP connection within ``timeout`` seconds (closed again at once)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:  # refused, unreachable, timed out, or a name that does not resolve (yet)
        return False


def readiness_probe(url: str, timeout: float = LOOK_TIMEOUT_S) -> Callable[[], bool] | None:
    """A callable that looks at ``url``'s port (True: it accepts), or None when ``url`` has no TCP port."""
    endpoint = tcp_endpoint(url)
    if endpoint is None:
        return None
    host, port = endpoint
    return lambda: port_accepts(host, port, timeout)
