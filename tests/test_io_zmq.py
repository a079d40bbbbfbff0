"""The ZeroMQ feed: message format round trip, a stalled subscriber never blocks, the feed as a source."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import zmq
from prometheus_client import CollectorRegistry, generate_latest

from rifestream.io.frames import OutputFrame
from rifestream.io.sinks import open_sink
from rifestream.io.sources import open_source
from rifestream.io.stream_errors import SourceLost
from rifestream.io.zmq_feed import SUBSCRIBER_SLOTS, FeedFormatError, FeedSubscriber, decode_message, read_feed
from rifestream.io.zmtp_publisher import PerSubscriberPublisher
from rifestream.metrics import FEED_SUBSCRIBER_SLOTS, PipelineMetrics
from tests.servers import free_port

RNG = np.random.default_rng(7)
REPO = Path(__file__).resolve().parents[1]


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


# ----- one subscriber never costs another its frames (issue 19, item 1) --------------------------------------

FEED_FPS = 60
SUBSCRIBER_SCRIPT = """
import sys, zmq
sock = zmq.Context().socket(zmq.SUB)
sock.setsockopt(zmq.RCVHWM, 4)
sock.setsockopt(zmq.SUBSCRIBE, b"rifestream")
sock.connect(sys.argv[1])
while True:  # reads until it is stopped or killed; never closes
    sock.recv_multipart()
"""


def raw_subscriber(port: int, hwm: int = 4) -> zmq.Socket:
    """A plain pyzmq SUB socket, as a program without rifestream would open one."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"rifestream")
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


def wait_for_subscribers(pub, n: int, width: int = 640, height: int = 360, timeout: float = 5.0) -> None:
    """Publish probe frames (seq -1) until the publisher counts ``n`` subscribers to its topic."""
    probe = frame_of(np.zeros((height, width, 3), np.uint8), Fraction(0), Fraction(0), 0.0, seq=-1)
    deadline = time.monotonic() + timeout
    while pub.subscribers != n and time.monotonic() < deadline:
        pub.write(probe)
        time.sleep(0.02)
    assert pub.subscribers == n


class Reader(threading.Thread):
    """Reads a feed with ``FeedSubscriber`` until stopped; keeps (arrival, seq) of each frame;
    ``pause`` seconds per frame makes it a slow reader."""

    def __init__(self, port: int, pause: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.sub = FeedSubscriber(f"zmq://127.0.0.1:{port}")
        self.pause = pause
        self.got: list[tuple[float, int]] = []
        self.last_header: dict = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            message = self.sub.recv(0.5)
            if message is not None and message[0]["seq"] >= 0:
                self.got.append((time.monotonic(), message[0]["seq"]))
                self.last_header = message[0]
                if self.pause:
                    self.stopping.wait(self.pause)

    def fps(self, since: float, until: float) -> float:
        """Frames per second that arrived in [since, until)."""
        return sum(1 for t, _ in self.got if since <= t < until) / (until - since)

    def stop(self) -> None:
        self.stopping.set()
        self.sub.wake()
        self.join(5)
        self.sub.close()


def publish_at_output_rate(pub, seconds: float, on_frame=None) -> list[float]:
    """640x360 frames at 60 fps for ``seconds`` (seq 0, 1, …); ``on_frame(k)`` before frame k.
    Returns when each frame was written (a loaded machine may write fewer than 60 a second)."""
    img = RNG.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    start, sent_at = time.monotonic(), []
    for seq in range(round(seconds * FEED_FPS)):
        if on_frame is not None:
            on_frame(seq)
        sent_at.append(time.monotonic())
        pub.write(frame_of(img, Fraction(seq, FEED_FPS), Fraction(seq // 2, 30), 0.5 * (seq % 2), seq=seq))
        time.sleep(max(0.0, start + (seq + 1) / FEED_FPS - time.monotonic()))
    return sent_at


def share_received(reader: Reader, sent_at: list[float], since: float, until: float) -> float:
    """The part of the frames written in [since, until) that the reader got."""
    sent = {seq for seq, t in enumerate(sent_at) if since <= t < until}
    return len(sent & {seq for _, seq in reader.got}) / len(sent)


def test_a_dead_and_a_slow_subscriber_cost_a_reader_nothing_and_their_drops_are_their_own():
    """The default mode (no lossy): a pyzmq SUB that never reads, one that reads 10 frames a second
    and a reader, at 640x360, 60 fps for 5 s. Before the per-subscriber queues the reader got the
    first frames, then nothing (one full queue made every send fail)."""
    pub = publisher(width=640, height=360)
    dead = raw_subscriber(pub.port)
    wait_for_subscribers(pub, 1)
    slow = Reader(pub.port, pause=0.1)
    slow.start()
    wait_for_subscribers(pub, 2)
    reader = Reader(pub.port)
    reader.start()
    wait_for_subscribers(pub, 3)
    try:
        time.sleep(0.2)  # the probes drain
        drops_before = pub.drops_by_subscriber
        sent_at = publish_at_output_rate(pub, 5.0)
        time.sleep(0.3)  # the last frames arrive
    finally:
        reader.stop()
        slow.stop()
        dead.close()
    n = round(5.0 * FEED_FPS)
    drops = {slot: count - drops_before[slot] for slot, count in pub.drops_by_subscriber.items()}
    pub.close()
    start, end = sent_at[0], sent_at[-1] + 1 / FEED_FPS
    written_fps = n / (end - start)  # 60, or less where the machine could not keep up
    assert reader.fps(start, end + 0.1) >= 0.9 * written_fps, (reader.fps(start, end + 0.1), written_fps)
    assert len(reader.got) >= n - 3 and drops["2"] <= 3  # the reader: (nearly) every frame, drops its own
    assert drops["0"] >= n - 40  # the dead one: its queue and socket buffers, then counted drops
    slow_seen = len(slow.got)
    assert slow_seen <= 0.25 * n and drops["1"] >= n - slow_seen - 40  # the slow one misses what it cannot take
    assert drops["overflow"] == 0 and all(drops[s] == 0 for s in "34567")
    assert pub.stats.dropped == 0  # every frame reached someone


def test_subscribers_killed_or_frozen_without_closing_cost_a_reader_nothing():
    """Two subscriber processes: one is frozen (SIGSTOP: connected, never reads, never closes), the
    other killed (SIGKILL) mid-stream; a reader keeps the output rate throughout, the frozen one's
    drops are its own, and the killed one is forgotten (its slot freed)."""
    pub = publisher(width=640, height=360)
    endpoint = f"tcp://127.0.0.1:{pub.port}"
    procs = [subprocess.Popen([sys.executable, "-c", SUBSCRIBER_SCRIPT, endpoint]) for _ in range(2)]
    frozen, killed = procs
    reader = None
    try:
        wait_for_subscribers(pub, 2, timeout=20)  # two Python start-ups on a busy machine
        frozen.send_signal(signal.SIGSTOP)
        reader = Reader(pub.port)
        reader.start()
        wait_for_subscribers(pub, 3)
        time.sleep(0.2)
        assert sorted(slot for slot, _, _ in pub.subscriber_stats()) == ["0", "1", "2"]
        reader_slot = "2"  # slots go by order of joining, lowest free first: the reader joined last
        drops_before = pub.drops_by_subscriber

        def kill_at_two_seconds(seq: int) -> None:
            if seq == 2 * FEED_FPS:
                killed.kill()
                killed.wait(5)

        sent_at = publish_at_output_rate(pub, 5.0, on_frame=kill_at_two_seconds)
        time.sleep(0.3)
        stats = pub.subscriber_stats()
        drops = {slot: count - drops_before[slot] for slot, count in pub.drops_by_subscriber.items()}
    finally:
        if reader is not None:
            reader.stop()
        for proc in procs:
            proc.kill()
            proc.wait(5)
        pub.close()
    n = round(5.0 * FEED_FPS)
    start, killed_at, end = sent_at[0], sent_at[2 * FEED_FPS], sent_at[-1] + 1 / FEED_FPS
    assert share_received(reader, sent_at, start, killed_at) >= 0.9  # before the kill (with one frozen) …
    assert share_received(reader, sent_at, killed_at, end) >= 0.9  # … and after it
    assert reader.fps(start, end + 0.1) >= 0.9 * n / (end - start)
    assert len(reader.got) >= n - 3 and drops[reader_slot] <= 3
    assert len(stats) == 2  # the killed process's connection is gone; the frozen one's is still open
    frozen_slot = next(slot for slot, _, _ in stats if slot != reader_slot)
    assert drops[frozen_slot] >= n - 40
    killed_drops = sum(v for slot, v in drops.items() if slot not in (frozen_slot, reader_slot))
    assert killed_drops <= 40  # the killed one read until it died; a closed connection is no drop


@pytest.mark.slow
def test_rifestream_run_keeps_a_reader_at_the_output_rate_beside_a_dead_subscriber(tmp_path):
    """The issue's command, as an operator runs it: ``rifestream run`` at 640x360 30→60 fps into the feed,
    one pyzmq SUB that never reads and one reader. The reader keeps 60 fps; the dead one's drops
    are counted for its slot (summary and Prometheus), none for the reader's."""
    port, metrics_port, duration = free_port(), free_port(), 10
    dead = raw_subscriber(port)
    reader = Reader(port)
    reader.start()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rifestream", "run", "--source", "testsrc:?size=640x360&fps=30",
         "--sink", f"zmq://127.0.0.1:{port}", "--force-step", "blend", "--threads", "1",
         "--duration", str(duration), "--metrics-port", str(metrics_port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    metrics_text = ""
    try:
        deadline = time.monotonic() + 60
        while not reader.got and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)  # the job starts (imports, binding)
        time.sleep(duration - 2)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            metrics_text = response.read().decode()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        reader.stop()
        dead.close()
    assert proc.returncode == 0, stderr[-3000:]
    frames_out = int(re.search(r"frames out\s+(\d+)", stdout).group(1))
    assert len(reader.got) >= frames_out - 10, stdout  # every frame but those of the first moments
    job_fps = float(re.search(r"frames out\s+\d+\s+\(([\d.]+) fps\)", stdout).group(1))  # 60 unless overloaded
    first, last = reader.got[0][0], reader.got[-1][0]
    reader_fps = (len(reader.got) - 1) / (last - first)
    per_second = [round(reader.fps(t, t + 1)) for t in np.arange(first, last - 1)]
    assert reader_fps >= 0.9 * job_fps, (reader_fps, per_second, stdout)
    assert reader_fps >= 0.6 * FEED_FPS, (reader_fps, stdout)  # the job itself kept (roughly) its rate
    by_slot = {k: int(v) for k, v in re.findall(r"feed/(\w+) (\d+)", stdout.split("feed subscriber drops", 1)[1])}
    assert len(by_slot) == 1 and next(iter(by_slot.values())) >= frames_out - 60, stdout  # the dead one only
    dead_slot = next(iter(by_slot))
    scraped = re.search(
        rf'rifestream_feed_subscriber_dropped_frames_total{{queue="feed",stream="main",subscriber="{dead_slot}"}} '
        r"([\d.e+]+)",
        metrics_text,
    )
    assert scraped and float(scraped.group(1)) >= 0.5 * frames_out, metrics_text
    assert not re.search(r'rifestream_feed_subscriber_dropped_frames_total{queue="feed",stream="main",subscriber="(?!'
                         + dead_slot + r'")[^"]*"} [1-9]', metrics_text)  # fmt: skip
    drops_line = re.search(r"^\s*drops\s+(.*)$", stdout, re.MULTILINE).group(1)
    assert "feed/queue_full" not in drops_line  # the reader got every frame: none was lost for all
    # the header carries times and layout, never a URL (so never a credential)
    assert not [v for v in reader.last_header.values() if isinstance(v, str) and ("://" in v or "@" in v)]


def test_subscriber_slots_are_bounded_reused_and_overflow_is_counted():
    """Ten subscribers that never read: eight numbered slots, the rest share "overflow"; a slot
    freed by a subscriber that leaves goes to the next one that joins."""
    pub = publisher(width=640, height=360, hwm=2)
    subs = []
    try:
        for n in range(1, 11):
            subs.append(raw_subscriber(pub.port, hwm=2))
            wait_for_subscribers(pub, n)
        slots = sorted(slot for slot, _, _ in pub.subscriber_stats())
        assert slots == [*"01234567", "overflow", "overflow"]
        img = RNG.integers(0, 256, (360, 640, 3), dtype=np.uint8)
        for k in range(60):
            pub.write(frame_of(img, Fraction(k, 60), Fraction(0), 0.0, seq=k))
        drops = pub.drops_by_subscriber
        assert all(drops[slot] >= 20 for slot in "01234567") and drops["overflow"] >= 40
        subs.pop(3).close()  # the fourth to join held slot 3
        wait_for_subscribers(pub, 9)
        subs.append(raw_subscriber(pub.port))
        wait_for_subscribers(pub, 10)
        assert sorted(slot for slot, _, _ in pub.subscriber_stats()) == slots
        assert set(pub.take_subscriber_drops()) <= set(drops)  # bounded keys
    finally:
        for sub in subs:
            sub.close()
        pub.close()


ZMTP3_NULL_GREETING = b"\xff" + bytes(8) + b"\x7f\x03\x01" + b"NULL".ljust(20, b"\x00") + bytes(32)
PUSH_READY = b"\x05READY\x0bSocket-Type" + (4).to_bytes(4, "big") + b"PUSH"


@pytest.mark.parametrize(
    "hello",
    [
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\xff" + bytes(8) + b"\x7f\x01\x03",  # ZMTP 2.0 (libzmq 3.x)
        ZMTP3_NULL_GREETING[:12] + b"CURVE".ljust(20, b"\x00") + bytes(32),
        ZMTP3_NULL_GREETING + bytes((0x04, len(PUSH_READY))) + PUSH_READY,
        ZMTP3_NULL_GREETING + bytes((0x00, 11)) + b"\x01rifestream",  # a message before READY
    ],
    ids=["http", "zmtp2", "curve", "push-socket", "no-ready"],
)
def test_a_connection_that_is_not_a_zmq_subscriber_is_closed_and_costs_a_reader_nothing(hello):
    pub = publisher()
    sub = FeedSubscriber(f"zmq://127.0.0.1:{pub.port}")
    connected(pub, sub)
    stranger = socket.create_connection(("127.0.0.1", pub.port), timeout=5)
    try:
        stranger.sendall(hello)
        img = np.zeros((48, 64, 3), np.uint8)
        received, closed = b"", False
        for k in range(100):
            pub.write(frame_of(img, Fraction(k), Fraction(k), 0.0, seq=k))
            assert sub.recv(2)[0]["seq"] == k  # the reader goes on
            stranger.settimeout(0.02)
            try:
                data = stranger.recv(4096)
            except TimeoutError:
                continue
            if not data:
                closed = True
                break
            received += data
        assert closed and received.startswith(b"\xff")  # it got our greeting, then the door
        assert pub.subscribers == 1
    finally:
        stranger.close()
        sub.close()
        pub.close()


def _read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def _read_zmtp_frame(conn: socket.socket) -> tuple[int, bytes]:
    flags = _read_exact(conn, 1)[0]
    size = int.from_bytes(_read_exact(conn, 8 if flags & 0x02 else 1), "big")
    return flags, _read_exact(conn, size)


def test_a_zmtp_3_0_subscriber_on_a_raw_socket_gets_the_documented_message_bytes():
    """A subscriber speaking ZMTP 3.0 byte by byte (subscriptions as messages, as libzmq 4.1/4.2 and
    other ZeroMQ stacks send them): it gets PONG for PING and the three documented parts."""
    pub = publisher()
    conn = socket.create_connection(("127.0.0.1", pub.port), timeout=5)
    try:
        greeting = b"\xff" + bytes(8) + b"\x7f\x03\x00" + b"NULL".ljust(20, b"\x00") + bytes(32)
        ready_body = b"\x05READY\x0bSocket-Type" + (3).to_bytes(4, "big") + b"SUB"
        conn.sendall(greeting + bytes((0x04, len(ready_body))) + ready_body)
        conn.sendall(bytes((0x00, 11)) + b"\x01rifestream")  # subscribe, ZMTP 3.0 style
        conn.sendall(bytes((0x04, 11)) + b"\x04PING\x00\x0aabcd")  # TTL 1 s, context "abcd"
        wait_for_subscribers(pub, 1, width=64, height=48)
        theirs = _read_exact(conn, 64)
        assert theirs[0] == 0xFF and theirs[9] == 0x7F and theirs[10] == 3 and theirs[12:16] == b"NULL"
        flags, body = _read_zmtp_frame(conn)
        assert flags == 0x04 and body.startswith(b"\x05READY") and body.endswith(b"Socket-Type\x00\x00\x00\x03PUB")
        flags, body = _read_zmtp_frame(conn)
        assert (flags, body) == (0x04, b"\x04PONGabcd")
        img = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        pub.write(frame_of(img, Fraction(7, 60), Fraction(3, 30), 0.5, "blend", seq=7))
        parts = []
        while not parts or parts[-1][0] & 0x01:  # a probe (seq -1) may come first
            parts.append(_read_zmtp_frame(conn))
            if len(parts) == 3 and json.loads(parts[1][1])["seq"] == -1:
                parts = []
        assert [flags & 0x05 for flags, _ in parts] == [0x01, 0x01, 0x00]  # messages: more, more, last
        header, pixels = decode_message([body for _, body in parts])
        assert parts[0][1] == b"rifestream" and header["seq"] == 7 and header["fallback"] == "blend"
        assert np.array_equal(pixels, img)
    finally:
        conn.close()
        pub.close()


def test_a_connection_that_never_completes_its_handshake_is_closed_after_the_timeout():
    """An idle TCP connection (a port scanner, a client that hung at once) holds no slot and is
    closed once its handshake is overdue, as libzmq's own ZMQ_HANDSHAKE_IVL would."""
    pub = PerSubscriberPublisher(
        zmq.Context.instance(), "tcp://127.0.0.1:0", topic=b"rifestream", hwm=4, handshake_timeout=0.5
    )
    idle = socket.create_connection(("127.0.0.1", pub.port), timeout=0.05)
    try:
        start, received, closed = time.monotonic(), b"", False
        while not closed and time.monotonic() - start < 5:
            pub.poll()
            try:
                data = idle.recv(4096)
            except TimeoutError:
                continue
            received += data
            closed = not data
        assert closed and received.startswith(b"\xff")
        assert 0.5 <= time.monotonic() - start < 2.0
        assert pub.subscribers == 0 and pub.subscriber_stats() == []
    finally:
        idle.close()
        pub.close()


def test_subscriber_drop_metric_has_bounded_labels_and_passes_promtool():
    metrics = PipelineMetrics(CollectorRegistry(), queues=("interpolate", "feed", "feed2"))
    metrics.feed_subscriber_drop("feed", "0", 3)
    metrics.feed_subscriber_drop("feed2", "overflow")
    text = generate_latest(metrics.registry).decode()
    name = "rifestream_feed_subscriber_dropped_frames_total"
    assert f'{name}{{queue="feed",stream="main",subscriber="0"}} 3.0' in text
    assert f'{name}{{queue="feed2",stream="main",subscriber="overflow"}} 1.0' in text
    assert text.count("rifestream_feed_subscriber_dropped_frames_total{") == 2 * len(FEED_SUBSCRIBER_SLOTS)
    for queue, slot in (("feed", "8"), ("feed", "alice"), ("interpolate", "0"), ("feed3", "0")):
        with pytest.raises(ValueError):
            metrics.feed_subscriber_drop(queue, slot)
    assert FEED_SUBSCRIBER_SLOTS == (*(str(k) for k in range(SUBSCRIBER_SLOTS)), "overflow")
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        assert check.returncode == 0 and "feed_subscriber" not in check.stdout + check.stderr, check.stderr


def test_an_xsub_subscriber_is_served_and_its_unsubscribe_is_honoured():
    pub = publisher()
    xsub = zmq.Context.instance().socket(zmq.XSUB)
    xsub.setsockopt(zmq.LINGER, 0)
    xsub.connect(f"tcp://127.0.0.1:{pub.port}")
    try:
        xsub.send(b"\x01rifestream")
        wait_for_subscribers(pub, 1, width=64, height=48)
        img = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        pub.write(frame_of(img, Fraction(1), Fraction(1), 0.0, seq=1))
        header, pixels = None, None
        while xsub.poll(2000):
            header, pixels = decode_message(xsub.recv_multipart())
            if header["seq"] == 1:
                break
        assert header["seq"] == 1 and np.array_equal(pixels, img)
        xsub.send(b"\x00rifestream")
        deadline = time.monotonic() + 5
        while pub.subscribers and time.monotonic() < deadline:
            pub.write(frame_of(img, Fraction(2), Fraction(2), 0.0, seq=2))
            time.sleep(0.02)
        assert pub.subscribers == 0
    finally:
        xsub.close()
        pub.close()
