"""``udp://`` as a sink kind (``rifestream.io.udp_sink``, one line in the registry): the MPEG-TS datagrams
received on 127.0.0.1 hold every frame sent, in order, one frame interval apart."""

from __future__ import annotations

import io
import socket
import threading
import time
from fractions import Fraction

import av
import pytest

from rifestream.io.frames import OutputFrame
from rifestream.io.registry import check_sink_url, sink_kind
from rifestream.io.sinks import open_sink
from rifestream.io.sources import open_source
from rifestream.io.synthetic_scene import read_frame_index
from rifestream.io.udp_sink import UdpSink

pytestmark = pytest.mark.timeout(60)

TS_PACKET = 188
FPS = 30


class DatagramReceiver:
    """A UDP socket bound on 127.0.0.1 (a free port the OS picks) whose thread keeps every datagram."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        deadline = time.monotonic() + 30  # bounded whatever happens
        while time.monotonic() < deadline:
            try:
                self.datagrams.append(self.sock.recv(65536))
            except TimeoutError:
                if self._done.is_set():  # the sender has closed and nothing more came for 0.1 s
                    return

    def finish(self) -> bytes:
        self._done.set()
        self._thread.join(35)
        self.sock.close()
        return b"".join(self.datagrams)


def test_udp_is_a_network_sink_kind_of_its_own():
    url = "udp://127.0.0.1:5000?pkt_size=1316"
    assert sink_kind(url) is UdpSink
    assert (UdpSink.stage, UdpSink.encodes, UdpSink.reconnectable) == ("encode", True, True)
    assert check_sink_url(url) == url
    assert check_sink_url("udp://@:1234") == "udp://@:1234"  # a form with no host (FFmpeg's listener)


def test_udp_sink_sends_every_frame_in_order_one_interval_apart_to_a_loopback_receiver():
    n, start = 45, 90  # source frames 90..134: the stream starts at 3 s; the sink's timeline starts at its first
    with open_source(f"testsrc:?size=160x96&fps={FPS}&frames={start + n}", realtime=False) as src:
        frames = list(src.frames())[start:]
    receiver = DatagramReceiver()
    sink = open_sink(
        f"udp://127.0.0.1:{receiver.port}?pkt_size=1316",
        width=160,
        height=96,
        rate=Fraction(FPS),
        time_base=Fraction(1, FPS),
        codec="libx264",
    )
    try:
        assert isinstance(sink, UdpSink)
        for k, f in enumerate(frames):
            assert sink.write(OutputFrame(f.video, f.time, f.time, 0.0, False, None, f.arrival, k))
    finally:
        sink.close()
    data = receiver.finish()

    assert sink.stats.frames == n
    assert receiver.datagrams and all(len(d) % TS_PACKET == 0 and d[0] == 0x47 for d in receiver.datagrams)
    assert all(len(d) <= 1316 for d in receiver.datagrams)  # pkt_size from the URL reached FFmpeg
    with av.open(io.BytesIO(data), format="mpegts") as container:
        stream = container.streams.video[0]
        decoded = list(container.decode(stream))
        time_base = Fraction(stream.time_base)
    assert len(decoded) == n
    assert [read_frame_index(f.to_ndarray(format="rgb24")) for f in decoded] == list(range(start, start + n))
    times = [f.pts * time_base for f in decoded]
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == [Fraction(1, FPS)] * (n - 1)
    assert times[0] < 1  # the sink's own timeline (plus the muxer's small delay), not the source's 3 s
