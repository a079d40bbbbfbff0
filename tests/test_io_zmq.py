"""The ZeroMQ feed: message format round trip, a stalled subscriber never blocks, the feed as a source."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import zmq

from rifestream.io.frames import OutputFrame
from rifestream.io.sinks import open_sink
from rifestream.io.sources import open_source
from rifestream.io.stream_errors import SourceLost
from rifestream.io.zmq_feed import FeedFormatError, FeedSubscriber, decode_message, read_feed

RNG = np.random.default_rng(7)


def frame_of(img: np.ndarray, time: Fraction, source_time: Fraction, t: float, fallback=None, seq=0) -> OutputFrame:
    video = av.VideoFrame.from_ndarray(img, format="rgb24")
    return OutputFrame(video, time, source_time, t, t != 0.0, fallback, 0.0, seq)


def publisher(width=64, height=48, **kw):
    url = "zmq://127.0.0.1:0" + ("?" + "&".join(f"{k}={v}" for k, v in kw.items()) if kw else "")
    return open_sink(
        url, width=width, height=height, rate=Fraction(60), time_base=Fraction(1, 60), source_time_base=Fraction(1, 30)
    )


def connected(pub, sub: FeedSubscriber, width: int = 64, height: int = 48, timeout: float = 5.0) -> None:
    """Publish probe frames until the subscriber gets one (a SUB joins a moment after it connects)."""
    probe = frame_of(np.zeros((height, width, 3), np.uint8), Fraction(0), Fraction(0), 0.0, seq=-1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pub.write(probe)
        if sub.recv(0.05) is not None:
            while sub.recv(0.05) is not None:  # drain the probes
                pass
            return
    raise AssertionError("subscriber never connected")


@pytest.fixture
def feed():
    pub = publisher()
    sub = FeedSubscriber(f"zmq://127.0.0.1:{pub.port}", hwm=64)
    connected(pub, sub)
    yield pub, sub
    sub.close()
    pub.close()


def test_round_trip_header_and_exact_pixels(feed):
    pub, sub = feed
    sent, got = [], []
    for k in range(6):  # one at a time: the publisher's queue is only 4 deep and it drops rather than wait
        img = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        t = 0.0 if k % 2 == 0 else 0.5
        fallback = "blend" if k == 3 else None
        assert pub.write(frame_of(img, Fraction(k + 10, 60), Fraction((k + 10) // 2, 30), t, fallback, seq=k))
        sent.append(img)
        got.append(sub.recv(2))
    for k, (header, pixels) in enumerate(got):
        assert header["v"] == 1 and header["seq"] == k
        assert header["pts"] == k + 10 and header["time_base"] == "1/60"
        assert header["source_pts"] == (k + 10) // 2 and header["source_time_base"] == "1/30"
        assert (header["width"], header["height"], header["pix_fmt"]) == (64, 48, "rgb24")
        assert header["interpolated"] is (k % 2 == 1) and header["t"] == (0.0 if k % 2 == 0 else 0.5)
        assert header["fallback"] == ("blend" if k == 3 else None)
        assert header["rate"] == "60/1" and header["time"] == pytest.approx((k + 10) / 60)
        assert pixels.shape == (48, 64, 3) and pixels.dtype == np.uint8
        assert np.array_equal(pixels, sent[k])


@pytest.mark.parametrize(("pix_fmt", "shape"), [("bgr24", (48, 64, 3)), ("gray", (48, 64)), ("yuv420p", (72, 64))])
def test_other_pixel_formats(pix_fmt, shape):
    pub = publisher(pix_fmt=pix_fmt)
    with FeedSubscriber(f"zmq://127.0.0.1:{pub.port}") as sub:
        connected(pub, sub)
        img = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        pub.write(frame_of(img, Fraction(1), Fraction(1), 0.0))
        header, pixels = sub.recv(2)
    pub.close()
    assert header["pix_fmt"] == pix_fmt and pixels.shape == shape
    if pix_fmt == "bgr24":
        assert np.array_equal(pixels, img[:, :, ::-1])


def test_wire_format_is_three_parts_with_a_json_header(feed):
    """Read with plain pyzmq, as a program without rifestream would."""
    pub, _ = feed
    ctx = zmq.Context.instance()
    with ctx.socket(zmq.SUB) as raw:
        raw.setsockopt(zmq.SUBSCRIBE, b"rifestream")
        raw.connect(f"tcp://127.0.0.1:{pub.port}")
        img = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        deadline = time.monotonic() + 5
        parts = None
        while parts is None and time.monotonic() < deadline:
            pub.write(frame_of(img, Fraction(1), Fraction(1), 0.0))
            if raw.poll(50):
                parts = raw.recv_multipart()
    assert parts is not None and len(parts) == 3 and parts[0] == b"rifestream"
    header = json.loads(parts[1])
    assert set(header) >= {"v", "seq", "pts", "time_base", "width", "height", "pix_fmt", "interpolated", "t"}
    assert np.frombuffer(parts[2], np.uint8).reshape(48, 64, 3).tobytes() == img.tobytes()


def test_malformed_messages_are_rejected():
    with pytest.raises(FeedFormatError, match="3 parts"):
        decode_message([b"rifestream", b"{}"])
    with pytest.raises(FeedFormatError, match="not JSON"):
        decode_message([b"rifestream", b"{nope", b""])
    header = dict(v=1, seq=0, pts=0, time_base="1/60", width=4, height=4, pix_fmt="rgb24", interpolated=False, t=0.0)
    with pytest.raises(FeedFormatError, match="lacks source_pts, fallback"):
        decode_message([b"rifestream", json.dumps(header).encode(), bytes(48)])
    header.update(source_pts=0, fallback=None)
    with pytest.raises(FeedFormatError, match="expected 48"):
        decode_message([b"rifestream", json.dumps(header).encode(), bytes(47)])


def test_a_subscriber_that_never_reads_does_not_block_the_publisher():
    """640x360 frames to a connected subscriber that never reads: every write returns at once,
    the excess is dropped and counted, nothing queues without bound."""
    pub = publisher(width=640, height=360, hwm=2)
    stalled = FeedSubscriber(f"zmq://127.0.0.1:{pub.port}", hwm=2)
    connected(pub, stalled, 640, 360)
    img = RNG.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    sent_before = pub.stats.frames
    n = 300
    start = time.monotonic()
    worst = 0.0
    for k in range(n):
        t0 = time.monotonic()
        pub.write(frame_of(img, Fraction(k + 100, 60), Fraction(0), 0.0, seq=k))
        worst = max(worst, time.monotonic() - t0)
    elapsed = time.monotonic() - start
    sent = pub.stats.frames - sent_before
    assert sent + pub.stats.dropped == n
    assert pub.stats.dropped >= n - 60  # a few frames fit in the queues and socket buffers, then drops
    assert elapsed < 5.0 and worst < 0.25
    stalled.close()
    pub.close()


def test_feed_as_a_source_and_read_feed():
    pub = publisher()
    images = [RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(40)]
    stop = threading.Event()

    def publish():  # keep publishing until the readers have what they need
        k = 0
        while not stop.is_set() and k < 2000:
            pub.write(frame_of(images[k % 40], Fraction(k, 60), Fraction(k // 2, 30), 0.0, seq=k))
            k += 1
            stop.wait(0.005)

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        src = open_source(f"zmq://127.0.0.1:{pub.port}", open_timeout=5, read_timeout=2)
        assert (src.info.width, src.info.height, src.info.time_base, src.info.rate) == (64, 48, Fraction(1, 60), 60)
        frames = []
        for f in src.frames():
            frames.append(f)
            if len(frames) == 20:
                break
        src.close()
        ks = [f.video.pts for f in frames]
        assert [f.time for f in frames] == [Fraction(k, 60) for k in ks]
        assert ks == sorted(ks)
        assert all(
            np.array_equal(f.video.to_ndarray(format="rgb24"), images[k % 40]) for f, k in zip(frames, ks, strict=True)
        )
        got = []
        for header, pixels in read_feed(f"zmq://127.0.0.1:{pub.port}", timeout=2):
            got.append((header["seq"], pixels))
            if len(got) == 5:
                break
        assert all(np.array_equal(p, images[s % 40]) for s, p in got)
    finally:
        stop.set()
        thread.join(10)
        pub.close()


def test_silent_feed_is_source_lost():
    pub = publisher()
    src_box = {}

    def opener():
        src_box["src"] = open_source(f"zmq://127.0.0.1:{pub.port}", open_timeout=5, read_timeout=0.5)

    thread = threading.Thread(target=opener)
    thread.start()
    deadline = time.monotonic() + 5
    while thread.is_alive() and time.monotonic() < deadline:
        pub.write(frame_of(np.zeros((48, 64, 3), np.uint8), Fraction(1), Fraction(1), 0.0))
        thread.join(0.02)
    src = src_box["src"]
    frames = src.frames()
    next(frames)
    start = time.monotonic()
    with pytest.raises(SourceLost, match="no feed message"):
        for _ in frames:  # whatever queued, then silence
            pass
    assert time.monotonic() - start < 3
    pub.close()
    with pytest.raises(SourceLost, match="is the publisher running"):
        open_source(f"zmq://127.0.0.1:{pub.port}", open_timeout=0.3)


def test_example_consumer_reads_the_feed():
    """examples/zmq_consumer.py, run as a user would, against a live publisher."""
    pub = publisher()
    example = Path(__file__).resolve().parent.parent / "examples" / "zmq_consumer.py"
    proc = subprocess.Popen(
        [sys.executable, str(example), f"zmq://127.0.0.1:{pub.port}", "--frames", "10", "--idle", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    img = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    k = 0
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            pub.write(frame_of(img, Fraction(k, 60), Fraction(k // 2, 30), 0.5 * (k % 2), seq=k))
            k += 1
            try:
                proc.wait(0.01)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if proc.poll() is None:
            proc.kill()
        out = proc.communicate(timeout=10)[0]
        pub.close()
    assert proc.returncode == 0, out
    lines = [line for line in out.splitlines() if line.startswith("seq=")]
    assert len(lines) == 10 and "64x48 rgb24" in lines[0]
    n_interp = sum(" interp " in line for line in lines)
    assert 4 <= n_interp <= 6  # every other frame was marked interpolated
    assert f"10 frames ({n_interp} interpolated)" in out


def test_subscribers_are_counted_and_frames_for_nobody_are_not_drops():
    pub = publisher()
    img = np.zeros((48, 64, 3), np.uint8)
    assert pub.write(frame_of(img, Fraction(0), Fraction(0), 0.0)) and pub.subscribers == 0
    subs = [FeedSubscriber(f"zmq://127.0.0.1:{pub.port}") for _ in range(2)]
    for sub in subs:
        connected(pub, sub)
    assert pub.subscribers == 2
    subs[0].close()
    k, deadline = 1, time.monotonic() + 5
    while pub.subscribers != 1 and time.monotonic() < deadline:  # the notice comes with a later write
        pub.write(frame_of(img, Fraction(k), Fraction(k), 0.0))
        subs[1].recv(0.02)
        k += 1
    assert pub.subscribers == 1
    subs[1].close()
    pub.close()
    assert pub.stats.dropped == 0


def test_subscribers_opened_and_closed_in_quick_succession_each_get_their_own_wake_pipe():
    """A closed subscriber's inproc wake endpoint is unbound later, by ZeroMQ's own thread; a new
    subscriber (often at the same address in memory) must not collide with it."""
    pub = publisher()
    try:
        for _ in range(300):
            sub = FeedSubscriber(f"zmq://127.0.0.1:{pub.port}")
            sub.wake()
            assert sub.recv(2) is None  # the wake pipe is this subscriber's own, and works
            sub.close()
            del sub
    finally:
        pub.close()
