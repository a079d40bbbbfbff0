"""What a source or sink URL must name before anything is opened: a host, a port in range, an RTMP stream key.

File paths, ``testsrc:``, ``capture:`` and ``null`` have no authority to check here; they are
checked when opened.
"""

from __future__ import annotations

import ipaddress
import re

from rifestream.io.url_redact import STREAM_KEY_SCHEMES

# Schemes whose URL must name a host (a listener form such as srt://:9000?mode=listener or
# udp://@:1234 needs none); every scheme's port, when given, must be a port number.
HOST_SCHEMES = ("rtsp", "rtsps", *STREAM_KEY_SCHEMES, "http", "https", "zmq")


class BadUrl(ValueError):
    """A URL that cannot be right; the message is what was expected (``expected …``)."""


def split_authority(url: str) -> tuple[str, str, str | None, str]:
    """``(scheme, host, port or None, path)`` of ``scheme://[user@]host[:port]/path``."""
    scheme, _, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    path = rest[len(authority) :].split("?", 1)[0].split("#", 1)[0]
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise BadUrl(f"an IPv6 host in brackets, like {scheme}://[::1]:PORT")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BadUrl(f"an IPv6 address in the brackets, like {scheme}://[::1]:PORT") from None
        port = after[1:] if after else None
    else:
        host, colon, port = hostport.partition(":")
        port = port if colon else None
    return scheme.lower(), host, port, path


def _check_zmq(host: str, port: str | None, role: str) -> None:
    lowest = 0 if role == "sink" else 1  # a feed may bind port 0 (any free port); a reader must name one
    if not host or port is None or not port.isdigit() or not lowest <= int(port) <= 65535:
        raise BadUrl(f"zmq://HOST:PORT with a port from {lowest} to 65535, e.g. zmq://127.0.0.1:5555")
    if ":" in host:
        raise BadUrl("zmq://HOST:PORT with an IPv4 address or a host name (0.0.0.0: every interface); no IPv6")
    if re.fullmatch(r"[\d.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise BadUrl("zmq://HOST:PORT with a valid IPv4 address, like zmq://127.0.0.1:5555") from None


def check_url(url: str, role: str) -> str:
    """``url`` if its host, port and (for an RTMP sink) stream key can be right; ``role``: "source" or "sink"."""
    if "://" not in url:
        return url
    scheme, host, port, path = split_authority(url.strip())
    if scheme == "zmq":
        _check_zmq(host, port, role)
        return url
    # (the examples show no path: the redaction of error lines would mask an RTMP one as a stream key)
    example = f"{scheme}://HOST[:PORT]"
    if scheme in HOST_SCHEMES and not host:
        raise BadUrl(f"a URL with a host, like {example}")
    if port is not None and (not port.isdigit() or not 1 <= int(port) <= 65535):
        raise BadUrl(f"a port from 1 to 65535 in the URL, like {example}")
    if scheme in STREAM_KEY_SCHEMES and role == "sink" and len([p for p in path.split("/") if p]) < 2:
        raise BadUrl(f"an RTMP URL naming an application and a stream key: {scheme}://HOST[:PORT]/APP/ and the key")
    return url
