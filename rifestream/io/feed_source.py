"""``zmq://HOST:PORT`` as a source: subscribe to another rifestream feed and take its frames."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import av

from rifestream.io.endpoint import check_zmq_url
from rifestream.io.frames import SourceAudio, SourceFrame
from rifestream.io.source_base import InputOptions, Source
from rifestream.io.stream_errors import SourceLost
from rifestream.io.stream_info import StreamInfo
from rifestream.io.zmq_feed import FeedFormatError, FeedSubscriber


class FeedSource(Source):
    """Frames of a feed, timed by their header (``pts`` × ``time_base``); live, video only.

    Open waits up to ``open_timeout`` for the first message (to learn the size);
    a feed silent for ``read_timeout`` raises ``SourceLost``. ZeroMQ itself
    reconnects to a publisher that comes back.
    """

    @classmethod
    def check_url(cls, url: str) -> None:
        check_zmq_url(url, lowest_port=1)

    @classmethod
    def open(cls, url: str, options: InputOptions) -> FeedSource:
        return cls(url, open_timeout=options.open_timeout, read_timeout=options.read_timeout)

    def __init__(self, url: str, *, open_timeout: float = 10.0, read_timeout: float = 5.0) -> None:
        super().__init__()
        self.url = url
        self.read_timeout = read_timeout
        self._lock = threading.RLock()  # re-entrant: close() may come from a signal handler in this thread
        self._reading = False
        self._socket_closed = False
        self._subscriber = FeedSubscriber(url)
        try:
            first = self._subscriber.recv(open_timeout)
            if first is None:
                raise SourceLost(url, f"no feed message within {open_timeout:g} s; is the publisher running?")
            self._first = self._to_frame(*first)
        except BaseException:
            self._subscriber.close()
            raise
        header = first[0]
        self.info = StreamInfo(
            url=url,
            width=int(header["width"]),
            height=int(header["height"]),
            pix_fmt=header["pix_fmt"],
            rate=Fraction(header["rate"]) if header.get("rate") else None,
            time_base=Fraction(header["time_base"]),
            live=True,
        )

    def _to_frame(self, header: dict, pixels) -> SourceFrame:
        time_base = Fraction(header["time_base"])
        video = av.VideoFrame.from_ndarray(pixels, format=header["pix_fmt"])
        video.pts = int(header["pts"])
        video.time_base = time_base
        return SourceFrame(video, int(header["pts"]) * time_base, time.monotonic())

    def read(self) -> Iterator[SourceFrame | SourceAudio]:
        try:
            yield from self._messages()
        finally:
            with self._lock:
                self._reading = False
                self._stop.set()
                if not self._socket_closed:
                    self._socket_closed = True
                    self._subscriber.close()

    def _messages(self) -> Iterator[SourceFrame]:
        with self._lock:
            if self._socket_closed:
                return
            self._reading = True
        if self._first is not None:
            first, self._first = self._first, None
            self.stats.frames += 1
            yield first
        while not self._stop.is_set():
            try:
                message = self._subscriber.recv(self.read_timeout)
            except FeedFormatError:
                self.stats.decode_errors += 1
                continue
            if self._stop.is_set():
                return
            if message is None:
                raise SourceLost(self.url, f"no feed message for {self.read_timeout:g} s")
            self.stats.frames += 1
            yield self._to_frame(*message)

    def _release(self) -> None:
        with self._lock:
            if self._reading:
                self._subscriber.wake()  # the reading thread closes the socket when read() returns
            elif not self._socket_closed:
                self._socket_closed = True
                self._subscriber.close()
