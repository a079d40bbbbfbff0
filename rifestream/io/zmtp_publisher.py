"""The publishing side of ZeroMQ PUB/SUB, with one bounded queue per subscriber and counted drops.

A libzmq PUB/XPUB socket cannot drop for one subscriber and count it: with
``XPUB_NODROP`` one full subscriber queue makes every send fail (a subscriber
that stops reading stalls the feed for all), without it libzmq drops silently.
So the feed speaks the subscriber-facing protocol itself, ZMTP 3.0/3.1 with the
NULL mechanism (rfc.zeromq.org 23 and 37), over a ``ZMQ_STREAM`` socket: libzmq
does the TCP I/O in its own threads and keeps one pipe of ``hwm`` messages per
connection, and a send to a connection whose pipe is full fails at once with
``EAGAIN`` for that connection only. Any ZMTP 3 SUB or XSUB socket (libzmq 4.x,
pyzmq, JeroMQ, NetMQ) connects to it as to a PUB socket.

Connection events, handshakes and subscriptions are handled by ``poll``; the
owner calls it (``publish`` does) from the one thread that uses the publisher.
A subscriber occupies one of ``slots`` numbered slots from its handshake until it
disconnects (``"0"``, ``"1"``, …; later ones share ``"overflow"``), so drop counters
keyed by slot stay bounded however many subscribers come and go. A connection that
has not completed its handshake within ``handshake_timeout`` seconds is closed (as
libzmq's own ``ZMQ_HANDSHAKE_IVL`` does), so idle strangers hold nothing for long.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import zmq

log = logging.getLogger(__name__)

OVERFLOW_SLOT = "overflow"
GREETING_SIZE = 64
MAX_INBOUND_BYTES = 64 * 1024  # unparsed bytes a subscriber may have pending (greeting, commands, subscriptions)
MAX_POLL_EVENTS = 256  # inbound messages handled per ``poll`` call
SUBSCRIBER_SOCKET_TYPES = (b"SUB", b"XSUB")
HANDSHAKE_TIMEOUT = 30.0  # seconds, libzmq's default ZMQ_HANDSHAKE_IVL

_MORE, _LONG, _COMMAND = 0x01, 0x02, 0x04
# signature (0xFF, 8 padding bytes, 0x7F), version 3.1, mechanism NULL, as-server 0, filler
_GREETING = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x01" + b"NULL".ljust(20, b"\x00") + b"\x00" + bytes(31)


def frame_head(size: int, flags: int = 0) -> bytes:
    """The ZMTP 3 header of one frame of ``size`` bytes (short form up to 255 bytes)."""
    if size <= 255:
        return bytes((flags, size))
    return bytes((flags | _LONG,)) + size.to_bytes(8, "big")


def encode_wire_message(parts: Sequence[bytes | memoryview]) -> bytes:
    """One multipart message as ZMTP 3 frames, ready to be written to every subscriber's connection."""
    pieces: list[bytes | memoryview] = []
    for k, part in enumerate(parts):
        view = memoryview(part).cast("B")
        pieces += [frame_head(view.nbytes, _MORE if k < len(parts) - 1 else 0), view]
    return b"".join(pieces)


def _command(name: bytes, data: bytes = b"") -> bytes:
    body = bytes((len(name),)) + name + data
    return frame_head(len(body), _COMMAND) + body


def _ready_command(socket_type: bytes) -> bytes:
    prop_name = b"Socket-Type"
    return _command(b"READY", bytes((len(prop_name),)) + prop_name + len(socket_type).to_bytes(4, "big") + socket_type)


def _properties(data: bytes) -> dict[bytes, bytes]:
    """The name → value properties of a READY command's body; raises ValueError when malformed."""
    props, pos = {}, 0
    while pos < len(data):
        name_len = data[pos]
        name = data[pos + 1 : pos + 1 + name_len]
        pos += 1 + name_len
        if pos + 4 > len(data):
            raise ValueError("truncated property")
        value_len = int.from_bytes(data[pos : pos + 4], "big")
        value = data[pos + 4 : pos + 4 + value_len]
        if len(value) != value_len:
            raise ValueError("truncated property value")
        props[name.lower()] = value
        pos += 4 + value_len
    return props


class ProtocolError(ValueError):
    """A peer that does not speak ZMTP 3 with the NULL mechanism as a subscriber."""


@dataclass
class Subscriber:
    """One connection: its handshake state, its subscriptions to our topic, its counters."""

    routing_id: bytes
    since: float  # time.monotonic() of its connect
    slot: str = ""  # its drop counter's slot, from its READY on
    inbox: bytearray = field(default_factory=bytearray)
    greeted: bool = False  # its greeting has arrived
    ready: bool = False  # its READY has arrived (a SUB or XSUB)
    matching: int = 0  # its live subscriptions that match our topic (a prefix of it)
    in_multipart: bool = False  # inside a multipart message (only single-frame messages subscribe)
    sent: int = 0
    dropped: int = 0

    @property
    def wants(self) -> bool:
        return self.ready and self.matching > 0


class PerSubscriberPublisher:
    """Binds ``endpoint`` (``tcp://HOST:PORT``) and publishes multipart messages to ZMTP 3 subscribers.

    ``publish`` never blocks: a subscriber whose queue (``hwm`` messages, plus the
    socket buffers) is full loses that message, counted for it alone.
    """

    def __init__(
        self,
        context: zmq.Context,
        endpoint: str,
        *,
        topic: bytes,
        hwm: int,
        slots: int = 8,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self.topic = topic
        self.handshake_timeout = handshake_timeout
        self.slot_names = tuple(str(k) for k in range(slots))
        self._socket = context.socket(zmq.STREAM)
        self._socket.setsockopt(zmq.SNDHWM, max(1, hwm))
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError:
            self._socket.close(0)
            raise
        self.port = int(self._socket.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1])
        self._peers: dict[bytes, Subscriber] = {}
        self.drops_by_slot: dict[str, int] = dict.fromkeys((*self.slot_names, OVERFLOW_SLOT), 0)
        self._untaken: dict[str, int] = dict.fromkeys(self.drops_by_slot, 0)

    # ----- state ------------------------------------------------------------------------------
    @property
    def subscribers(self) -> int:
        """Connected subscribers that subscribe to our topic."""
        return sum(1 for peer in self._peers.values() if peer.wants)

    def subscriber_stats(self) -> list[tuple[str, int, int]]:
        """``(slot, sent, dropped)`` of each connected subscriber (its handshake done)."""
        return [(peer.slot, peer.sent, peer.dropped) for peer in self._peers.values() if peer.ready]

    def take_drops(self) -> dict[str, int]:
        """Drops per slot since the previous call (only slots with some)."""
        taken = {slot: n for slot, n in self._untaken.items() if n}
        for slot in taken:
            self._untaken[slot] = 0
        return taken

    # ----- connections ------------------------------------------------------------------------
    def poll(self) -> None:
        """Handle pending connects, disconnects, handshakes and subscriptions (bounded per call);
        close connections whose handshake is overdue."""
        for _ in range(MAX_POLL_EVENTS):
            try:
                routing_id, data = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            peer = self._peers.get(routing_id)
            if not data:  # a connect notice for a new id, a disconnect for a known one
                if peer is None:
                    self._connected(routing_id)
                else:
                    self._forget(peer)
                continue
            if peer is None:  # data before its connect notice: not expected from libzmq
                continue
            try:
                self._receive(peer, data)
            except ProtocolError as exc:
                log.info("feed: dropping a connection that is not a ZMTP 3 subscriber (%s)", exc)
                self._disconnect(peer)
        overdue = time.monotonic() - self.handshake_timeout
        for peer in [p for p in self._peers.values() if not p.ready and p.since < overdue]:
            log.info("feed: dropping a connection that did not complete its handshake in %g s", self.handshake_timeout)
            self._disconnect(peer)

    def _connected(self, routing_id: bytes) -> None:
        peer = self._peers[routing_id] = Subscriber(routing_id, time.monotonic())
        if not self._send_raw(peer, _GREETING + _ready_command(b"PUB")):
            self._disconnect(peer)

    def _take_slot(self, peer: Subscriber) -> None:
        used = {other.slot for other in self._peers.values()}
        peer.slot = next((name for name in self.slot_names if name not in used), OVERFLOW_SLOT)

    def _forget(self, peer: Subscriber) -> None:
        self._peers.pop(peer.routing_id, None)

    def _disconnect(self, peer: Subscriber) -> None:
        """Close the connection (a zero-length send to a STREAM peer closes it) and forget it."""
        self._forget(peer)
        try:
            self._socket.send(peer.routing_id, zmq.SNDMORE | zmq.NOBLOCK)
            self._socket.send(b"", zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # already gone

    def _send_raw(self, peer: Subscriber, data: bytes) -> bool:
        """Queue ``data`` on the peer's connection; False if its queue is full (or it is gone)."""
        try:
            self._socket.send(peer.routing_id, zmq.SNDMORE | zmq.NOBLOCK)
        except zmq.Again:
            return False
        except zmq.ZMQError:  # EHOSTUNREACH: it disconnected and the notice is still queued
            self._forget(peer)
            return False
        self._socket.send(data, zmq.NOBLOCK, copy=False)
        return True

    # ----- inbound protocol -------------------------------------------------------------------
    def _receive(self, peer: Subscriber, data: bytes) -> None:
        peer.inbox += data
        if len(peer.inbox) > MAX_INBOUND_BYTES:
            raise ProtocolError(f"more than {MAX_INBOUND_BYTES} bytes pending")
        if not peer.greeted:
            if peer.inbox[:1] not in (b"", b"\xff"):
                raise ProtocolError("no ZMTP signature")
            if len(peer.inbox) > 10 and (not peer.inbox[9] & 0x01 or peer.inbox[10] < 3):
                raise ProtocolError(f"ZMTP version {peer.inbox[10]} (3 is needed: libzmq 4 or later)")
            if len(peer.inbox) < GREETING_SIZE:
                return
            greeting = bytes(peer.inbox[:GREETING_SIZE])
            del peer.inbox[:GREETING_SIZE]
            if greeting[12:32].rstrip(b"\x00") != b"NULL":
                raise ProtocolError("a security mechanism other than NULL")
            peer.greeted = True
        while (frame := self._next_frame(peer)) is not None:
            flags, body = frame
            if flags & _COMMAND:
                self._command(peer, body)
            elif not peer.ready:
                raise ProtocolError("a message before READY")
            else:
                single = not peer.in_multipart and not flags & _MORE
                peer.in_multipart = bool(flags & _MORE)
                if single and body[:1] in (b"\x00", b"\x01"):  # ZMTP 3.0 (un)subscribe message
                    self._subscription(peer, body[0] == 1, body[1:])

    @staticmethod
    def _next_frame(peer: Subscriber) -> tuple[int, bytes] | None:
        """The next complete frame ``(flags, body)`` of the inbox, removed from it; None if incomplete."""
        inbox = peer.inbox
        if len(inbox) < 2:
            return None
        flags = inbox[0]
        if flags & ~(_MORE | _LONG | _COMMAND):
            raise ProtocolError(f"reserved frame flags {flags:#x}")
        head = 9 if flags & _LONG else 2
        if len(inbox) < head:
            return None
        size = int.from_bytes(inbox[1:head], "big")
        if size > MAX_INBOUND_BYTES:
            raise ProtocolError(f"a {size}-byte frame")
        if len(inbox) < head + size:
            return None
        body = bytes(inbox[head : head + size])
        del inbox[: head + size]
        return flags, body

    def _command(self, peer: Subscriber, body: bytes) -> None:
        if not body or len(body) < 1 + body[0]:
            raise ProtocolError("a malformed command")
        name, data = body[1 : 1 + body[0]], body[1 + body[0] :]
        if not peer.ready:
            if name != b"READY":
                raise ProtocolError(f"{name!r} before READY")
            try:
                socket_type = _properties(data).get(b"socket-type", b"")
            except ValueError as exc:
                raise ProtocolError(f"a malformed READY ({exc})") from None
            if socket_type not in SUBSCRIBER_SOCKET_TYPES:
                raise ProtocolError(f"a {socket_type.decode(errors='replace') or 'nameless'} socket, not SUB")
            peer.ready = True
            self._take_slot(peer)
        elif name == b"SUBSCRIBE":  # ZMTP 3.1
            self._subscription(peer, True, data)
        elif name == b"CANCEL":
            self._subscription(peer, False, data)
        elif name == b"PING":  # answer with PONG and the ping's context (after its 2-byte TTL)
            self._send_raw(peer, _command(b"PONG", data[2:]))
        elif name == b"ERROR":
            raise ProtocolError("the peer reported an error")

    def _subscription(self, peer: Subscriber, subscribe: bool, prefix: bytes) -> None:
        if self.topic.startswith(prefix):
            peer.matching = peer.matching + 1 if subscribe else max(0, peer.matching - 1)

    # ----- publishing -------------------------------------------------------------------------
    def publish(self, wire: bytes) -> tuple[int, int]:
        """Queue one message (``encode_wire_message``) for every subscriber that wants it:
        ``(delivered, dropped)`` counts of subscribers. Never blocks."""
        self.poll()
        delivered = dropped = 0
        for peer in list(self._peers.values()):
            if not peer.wants:
                continue
            if self._send_raw(peer, wire):
                peer.sent += 1
                delivered += 1
            elif peer.routing_id in self._peers:  # its queue is full
                peer.dropped += 1
                self.drops_by_slot[peer.slot] += 1
                self._untaken[peer.slot] += 1
                dropped += 1
        return delivered, dropped

    def close(self) -> None:
        self._peers.clear()
        self._socket.close(0)
