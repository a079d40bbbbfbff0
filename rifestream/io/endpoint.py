"""The one parser of ``scheme://[user@]host[:port]/path?query`` URLs, and the checks of their form.

Every place that needs a URL's host or port (the registry's checks of source and
sink URLs, the readiness probe, the RTMP handshake, the ZeroMQ endpoint) splits
it here, so that a URL means the same host and port everywhere. A malformed URL
raises ``BadUrl``, whose ``expected`` phrase names the form that would be taken
(the config quotes it: ``FILE: sinks[0].url: expected …, got …``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from rifestream.errors import RifestreamError
from rifestream.io.url_redact import redact_url


class BadUrl(RifestreamError):
    """``url`` is not in a form its kind takes; ``expected`` says what would be (a phrase, no URL in it)."""

    def __init__(self, url: str, expected: str) -> None:
        self.url = url
        self.expected = expected
        super().__init__(f"{redact_url(url)}: expected {expected}")


@dataclass(frozen=True)
class Endpoint:
    """The parts of a ``scheme://…`` URL. ``port`` is the text as written (None: not given)."""

    scheme: str  # lower case
    host: str  # without IPv6 brackets; "" when the URL names none
    port: str | None
    path: str  # "/APP/KEY" (no query, no fragment)
    query: str

    def port_number(self) -> int | None:
        """The port as a number, None if not given or not a whole number."""
        return int(self.port) if self.port is not None and self.port.isdigit() else None


def split_endpoint(url: str) -> Endpoint:
    """``url``'s scheme, host, port, path and query; ``BadUrl`` for a malformed IPv6 host in brackets."""
    scheme, _, rest = url.strip().partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    after = rest[len(authority) :]
    path, _, query = after.split("#", 1)[0].partition("?")
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        host, bracket, tail = hostport[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise BadUrl(url, f"an IPv6 host in brackets, like {scheme}://[::1]:PORT")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BadUrl(url, f"an IPv6 address in the brackets, like {scheme}://[::1]:PORT") from None
        port = tail[1:] if tail else None
    else:
        host, colon, port = hostport.partition(":")
        port = port if colon else None
    return Endpoint(scheme.lower(), host, port, path, query)


def check_network_url(url: str, *, needs_host: bool = False) -> Endpoint:
    """The endpoint of ``url`` once its form is right: a host when ``needs_host`` (a listener form such as
    ``srt://:9000?mode=listener`` or ``udp://@:1234`` needs none), a port from 1 to 65535 when one is given."""
    end = split_endpoint(url)
    # (the examples show no path: the redaction of error lines would mask an RTMP one as a stream key)
    example = f"{end.scheme}://HOST[:PORT]"
    if needs_host and not end.host:
        raise BadUrl(url, f"a URL with a host, like {example}")
    if end.port is not None and not (end.port.isdigit() and 1 <= int(end.port) <= 65535):
        raise BadUrl(url, f"a port from 1 to 65535 in the URL, like {example}")
    return end


def check_zmq_url(url: str, *, lowest_port: int) -> Endpoint:
    """``zmq://HOST:PORT``: an IPv4 address or a host name and a port from ``lowest_port`` (0: any free
    port, for a publisher that binds) to 65535; ZeroMQ's TCP endpoints here take no IPv6."""
    end = split_endpoint(url)
    port = end.port_number()
    if not end.host or port is None or not lowest_port <= port <= 65535:
        raise BadUrl(url, f"zmq://HOST:PORT with a port from {lowest_port} to 65535, e.g. zmq://127.0.0.1:5555")
    if ":" in end.host:
        raise BadUrl(url, "zmq://HOST:PORT with an IPv4 address or a host name (0.0.0.0: every interface); no IPv6")
    if re.fullmatch(r"[\d.]+", end.host):
        try:
            ipaddress.IPv4Address(end.host)
        except ValueError:
            raise BadUrl(url, "zmq://HOST:PORT with a valid IPv4 address, like zmq://127.0.0.1:5555") from None
    return end
