"""The ZeroMQ frame feed: one multipart message per output frame.

Wire format, three frames per message::

    [topic, header, pixels]

- ``topic``: bytes, ``b"rifestream"`` unless configured (subscribers filter on it);
- ``header``: UTF-8 JSON object (``FEED_VERSION`` = 1) with at least ``v``,
  ``seq``, ``pts``, ``time_base`` ("1/60"), ``width``, ``height``, ``pix_fmt``,
  ``interpolated``, ``t``, ``source_pts``, ``fallback``; also ``source_time_base``,
  ``time`` and ``source_time`` (seconds, float), ``rate`` ("60/1" or null) and
  ``wall_time`` (sender's ``time.time()`` at publish);
- ``pixels``: the raw frame, C order, no padding: ``rgb24``/``bgr24`` are
  height×width×3 bytes, ``gray`` height×width, ``yuv420p`` the Y plane then U
  then V (height×3/2 rows of width bytes).

The publisher binds a TCP port that any ZeroMQ SUB socket connects to, and gives
each subscriber its own queue of ``hwm`` frames (``zmtp_publisher``). Sending
never blocks the pipeline and one subscriber never costs another its frames: when
a subscriber's queue is full (slow, stalled, or gone without closing its
connection) that subscriber misses the frame, counted for it alone
(``FeedPublisher.drops_by_subscriber``, by subscriber slot). ``stats.dropped``
counts frames that no subscriber got while some were subscribed; ``stats.frames``
the others. ``lossy`` is still accepted and changes nothing (every mode drops per
subscriber and counts).
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import numpy as np
import zmq
from av.video.reformatter import VideoReformatter

from rifestream.errors import RifestreamError
from rifestream.io.endpoint import BadUrl, check_zmq_url, split_endpoint
from rifestream.io.frames import OutputFrame, SourceAudio
from rifestream.io.sink_base import Encoding, OutputStream, Sink, SinkStats
from rifestream.io.url_query import parse_bool, parse_number, split_query
from rifestream.io.url_redact import redact_url
from rifestream.io.write_guard import WriteGuard
from rifestream.io.zmtp_publisher import PerSubscriberPublisher, encode_wire_message

log = logging.getLogger(__name__)
# Names of the subscribers' inproc wake endpoints: never reused in a process, as id() would be
# (a closed socket's inproc name is released later, by ZeroMQ's own thread).
_WAKE_IDS = itertools.count()

FEED_VERSION = 1
DEFAULT_TOPIC = b"rifestream"
PIX_FMTS = {"rgb24": 3, "bgr24": 3, "gray": 1, "yuv420p": None}
REQUIRED_FIELDS = (
    "v", "seq", "pts", "time_base", "width", "height", "pix_fmt", "interpolated", "t", "source_pts", "fallback",
)  # fmt: skip
FEED_SINK_OPTIONS = {"topic", "hwm", "pix_fmt", "lossy"}
FEED_SOURCE_OPTIONS = {"topic", "hwm"}
SUBSCRIBER_SLOTS = 8  # subscribers with their own drop counter; later ones share "overflow"


class FeedFormatError(ValueError):
    """A message that does not follow the feed format (wrong part count, bad header, wrong size)."""


def zmq_endpoint(url: str, allowed: set[str], *, bind: bool = False) -> tuple[str, dict[str, str]]:
    """``zmq://HOST:PORT?opts`` → (``tcp://HOST:PORT``, opts); port 0 (any free port) only to ``bind``."""
    if not url.startswith("zmq://"):
        raise RifestreamError(f"{url}: a feed URL looks like zmq://HOST:PORT")
    try:
        end = split_endpoint(url)
    except BadUrl:
        end = None
    port = None if end is None else end.port_number()
    if end is None or not end.host or port is None or not (0 if bind else 1) <= port < 65536:
        raise RifestreamError(f"{url}: a feed URL needs a host and a port, like zmq://127.0.0.1:5555")
    _, opts = split_query(f"zmq:?{end.query}", allowed)
    host = f"[{end.host}]" if ":" in end.host else end.host
    return f"tcp://{host}:{port}", opts


def frame_shape(pix_fmt: str, width: int, height: int) -> tuple[int, ...]:
    """The ndarray shape of a raw frame in ``pix_fmt``."""
    if pix_fmt not in PIX_FMTS:
        raise FeedFormatError(f"unsupported pix_fmt {pix_fmt!r}; one of {', '.join(PIX_FMTS)}")
    channels = PIX_FMTS[pix_fmt]
    if pix_fmt == "yuv420p":
        return (height * 3 // 2, width)
    return (height, width) if channels == 1 else (height, width, channels)


def _ratio(value: Fraction) -> str:
    """``Fraction(1, 60)`` → ``"1/60"``, ``Fraction(60)`` → ``"60/1"`` (always both parts)."""
    value = Fraction(value)
    return f"{value.numerator}/{value.denominator}"


def _ticks(seconds: Fraction, time_base: Fraction) -> int:
    return round(seconds / time_base)


def encode_message(
    frame: OutputFrame,
    *,
    time_base: Fraction,
    source_time_base: Fraction,
    rate: Fraction | None,
    pix_fmt: str = "rgb24",
    topic: bytes = DEFAULT_TOPIC,
    reformatter: VideoReformatter | None = None,
) -> list[Any]:
    """The three message parts for one output frame (the pixel part is a contiguous ndarray).

    ``reformatter``: the caller's own converter (one per sink thread); ``frame.to_ndarray(format=)``
    would use one cached on the frame, shared with the other sinks' threads (concurrent use hangs).
    """
    converter = reformatter or VideoReformatter()
    pixels = np.ascontiguousarray(converter.reformat(frame.video, format=pix_fmt).to_ndarray())
    header = {
        "v": FEED_VERSION,
        "seq": frame.seq,
        "pts": _ticks(frame.time, time_base),
        "time_base": _ratio(time_base),
        "width": frame.video.width,
        "height": frame.video.height,
        "pix_fmt": pix_fmt,
        "interpolated": bool(frame.interpolated),
        "t": float(frame.t),
        "source_pts": _ticks(frame.source_time, source_time_base),
        "source_time_base": _ratio(source_time_base),
        "fallback": frame.fallback,
        "time": float(frame.time),
        "source_time": float(frame.source_time),
        "rate": None if rate is None else _ratio(rate),
        "wall_time": time.time(),
    }
    return [topic, json.dumps(header, separators=(",", ":")).encode(), pixels]


def decode_message(parts: list[bytes | zmq.Frame]) -> tuple[dict[str, Any], np.ndarray]:
    """``(header, pixels)`` of one feed message; raises ``FeedFormatError`` if it is malformed."""
    if len(parts) != 3:
        raise FeedFormatError(f"a feed message has 3 parts (topic, header, pixels), got {len(parts)}")
    _, raw_header, raw_pixels = (p.buffer if isinstance(p, zmq.Frame) else p for p in parts)
    try:
        header = json.loads(bytes(raw_header))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeedFormatError(f"feed header is not JSON: {exc}") from None
    missing = [k for k in REQUIRED_FIELDS if k not in header]
    if missing:
        raise FeedFormatError(f"feed header lacks {', '.join(missing)}")
    if header["v"] != FEED_VERSION:
        raise FeedFormatError(f"feed version {header['v']} is not supported (this reader knows {FEED_VERSION})")
    shape = frame_shape(header["pix_fmt"], int(header["width"]), int(header["height"]))
    pixels = np.frombuffer(raw_pixels, dtype=np.uint8)
    if pixels.size != int(np.prod(shape)):
        raise FeedFormatError(f"feed pixels have {pixels.size} bytes, expected {int(np.prod(shape))} for {shape}")
    return header, pixels.reshape(shape)


class FeedPublisher(Sink):
    """The ``zmq://HOST:PORT`` sink: binds the port and publishes each ``OutputFrame`` to every subscriber.

    ``write`` never blocks: a subscriber whose queue is full misses the frame,
    counted per subscriber slot (``drops_by_subscriber``; ``take_subscriber_drops``
    gives the new ones). Audio is not carried on the feed (``write_audio`` ignores it).
    """

    stage = "feed"
    encodes = False

    def __init__(
        self,
        url: str,
        *,
        time_base: Fraction,
        source_time_base: Fraction | None = None,
        rate: Fraction | None = None,
        hwm: int = 4,
        pix_fmt: str = "rgb24",
        topic: bytes = DEFAULT_TOPIC,
        lossy: bool = False,
        context: zmq.Context | None = None,
    ) -> None:
        endpoint, opts = zmq_endpoint(url, FEED_SINK_OPTIONS, bind=True)
        hwm = int(parse_number(url, "hwm", opts["hwm"], int)) if "hwm" in opts else hwm
        pix_fmt = opts.get("pix_fmt", pix_fmt)
        topic = opts["topic"].encode() if "topic" in opts else topic
        if "lossy" in opts:  # accepted for old pipelines; every mode drops per subscriber now
            parse_bool(url, "lossy", opts["lossy"])
        if pix_fmt not in PIX_FMTS:
            raise RifestreamError(f"{url}: pix_fmt must be one of {', '.join(PIX_FMTS)}, got {pix_fmt!r}")
        self.url, self.endpoint = url, endpoint
        self.time_base = Fraction(time_base)
        self.source_time_base = Fraction(source_time_base or time_base)
        self.rate = rate
        self.pix_fmt, self.topic = pix_fmt, topic
        self.stats = SinkStats()
        self._reformatter = VideoReformatter()  # this sink's own (see encode_message)
        try:
            self._publisher = PerSubscriberPublisher(
                context or zmq.Context.instance(), endpoint, topic=topic, hwm=hwm, slots=SUBSCRIBER_SLOTS
            )
        except zmq.ZMQError as exc:
            hint = (
                "the port is in use; pick another"
                if exc.errno == errno.EADDRINUSE
                else "give an address of this machine: 0.0.0.0 or * (every interface), 127.0.0.1, or an interface name"
            )
            raise RifestreamError(f"{redact_url(url)}: cannot bind {endpoint} ({exc.strerror}); {hint}") from None
        self.port = self._publisher.port  # the real port for :0
        self._closed = False
        self._guard = WriteGuard(self._close_socket)  # sockets are not thread-safe: its lock guards the socket

    @classmethod
    def check_url(cls, url: str) -> None:
        check_zmq_url(url, lowest_port=0)  # port 0: any free port (the publisher binds)

    @classmethod
    def open(cls, url: str, stream: OutputStream, encoding: Encoding) -> FeedPublisher:
        pix_fmt = encoding.get("pix_fmt")
        return cls(
            url,
            time_base=stream.time_base,
            source_time_base=stream.source_time_base,
            rate=stream.rate,
            **({"pix_fmt": pix_fmt} if pix_fmt else {}),
        )

    @property
    def subscribers(self) -> int:
        """Connected subscribers to this feed's topic (as of the last ``write``)."""
        with self._guard.lock:
            return self._publisher.subscribers

    @property
    def drops_by_subscriber(self) -> dict[str, int]:
        """Frames missed per subscriber slot (``"0"`` … ``"7"``, ``"overflow"``) since the start."""
        with self._guard.lock:
            return dict(self._publisher.drops_by_slot)

    def subscriber_stats(self) -> list[tuple[str, int, int]]:
        """``(slot, frames sent, frames dropped)`` of each connected subscriber."""
        with self._guard.lock:
            return self._publisher.subscriber_stats()

    def take_subscriber_drops(self) -> dict[str, int]:
        """Frames missed per subscriber slot since the previous call (for metrics)."""
        with self._guard.lock:
            return self._publisher.take_drops()

    def write(self, frame: OutputFrame) -> bool:
        """Publish one frame; False if no subscriber got it although some are subscribed.

        With no subscriber the frame is not even converted (nobody would receive it).
        """
        with self._guard.writing():
            if self._closed:
                return False
            self._publisher.poll()
            if self._publisher.subscribers <= 0:
                self.stats.frames += 1
                return True
            parts = encode_message(
                frame,
                time_base=self.time_base,
                source_time_base=self.source_time_base,
                rate=self.rate,
                pix_fmt=self.pix_fmt,
                topic=self.topic,
                reformatter=self._reformatter,
            )
            delivered, _ = self._publisher.publish(encode_wire_message(parts))
            if delivered == 0:
                self.stats.dropped += 1
                return False
            self.stats.frames += 1
            return True

    def write_audio(self, audio: SourceAudio) -> None:
        """The feed carries video only."""
        return None

    def close(self) -> None:
        """Close the socket; from a signal handler that interrupted this publisher's own send, right
        after that send (a half-sent multipart message would be lost anyway)."""
        self._guard.close()

    def _close_socket(self) -> None:
        if not self._closed:
            self._closed = True
            self._publisher.close()


class FeedSubscriber:
    """Connects to a feed and returns ``(header, ndarray)`` per message.

    ``url`` is ``zmq://HOST:PORT`` (or a raw ``tcp://`` endpoint). Messages that
    arrive while nobody reads queue up to ``hwm``, then the publisher drops.
    """

    def __init__(
        self,
        url: str,
        *,
        topic: bytes = DEFAULT_TOPIC,
        hwm: int = 4,
        context: zmq.Context | None = None,
    ) -> None:
        if url.startswith("tcp://"):
            endpoint, opts = url, {}
        else:
            endpoint, opts = zmq_endpoint(url, FEED_SOURCE_OPTIONS)
        topic = opts["topic"].encode() if "topic" in opts else topic
        hwm = int(parse_number(url, "hwm", opts["hwm"], int)) if "hwm" in opts else hwm
        self.url, self.endpoint, self.topic = url, endpoint, topic
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, max(1, hwm))
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, topic)
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close(0)
            raise RifestreamError(
                f"{url}: cannot connect to {endpoint} ({exc}); give the publisher's host and port"
            ) from None
        # wake(): another thread ends a waiting recv() through this inproc pair (sockets are not thread-safe)
        self._wake_endpoint = f"inproc://rifestream-feed-wake-{next(_WAKE_IDS)}"
        self._wake = self._context.socket(zmq.PULL)
        self._wake.bind(self._wake_endpoint)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._poller.register(self._wake, zmq.POLLIN)

    def recv(self, timeout: float | None = None) -> tuple[dict[str, Any], np.ndarray] | None:
        """The next message, or None if none arrived within ``timeout`` seconds (None: wait forever)
        or ``wake()`` was called. The array is a read-only view of the message (no copy); ``.copy()``
        it to draw on it."""
        wait_ms = None if timeout is None else max(0, int(timeout * 1000))
        ready = dict(self._poller.poll(wait_ms))
        if self._wake in ready:
            self._wake.recv()
            return None
        if self._socket not in ready:
            return None
        return decode_message(self._socket.recv_multipart(copy=False))

    def wake(self) -> None:
        """Make a recv() waiting in another thread return None now (thread-safe)."""
        with self._context.socket(zmq.PUSH) as push:
            push.setsockopt(zmq.LINGER, 1000)
            push.connect(self._wake_endpoint)
            push.send(b"", zmq.NOBLOCK)

    def __iter__(self) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
        while (message := self.recv()) is not None:
            yield message

    def close(self) -> None:
        self._socket.close(0)
        self._wake.close(0)

    def __enter__(self) -> FeedSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_feed(
    url: str, *, timeout: float | None = None, topic: bytes = DEFAULT_TOPIC
) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """Iterate over a feed's messages; stops when none arrives within ``timeout`` seconds."""
    with FeedSubscriber(url, topic=topic) as sub:
        while (message := sub.recv(timeout)) is not None:
            yield message
