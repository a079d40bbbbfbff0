"""End to end against real servers on loopback (DESIGN §6): ``rifestream run`` as a user runs it.

GStreamer's RTSP server plays the camera, nginx-rtmp the ingest, Xvfb the screen;
what comes out is read back with PyAV and the ZMQ subscriber. Blending is forced
(``--force-step blend``) so that 2 CPU cores keep up; the model path is covered
by tests/test_runner.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from rifestream.io.zmq_feed import REQUIRED_FIELDS, FeedSubscriber
from tests.servers import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def start_run(cwd: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "rifestream", "run", "--force-step", "blend", "--no-metrics", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 40) -> tuple[str, str]:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr[-3000:]
    return stdout, stderr


def summary_number(text: str, pattern: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in:\n{text}"
    return float(match.group(1))


def counts(text: str, line: str) -> dict[str, int]:
    """``{"source": 2}`` from a summary line like ``reconnects  source 2``."""
    match = re.search(rf"^\s*{line}\s+(.*)$", text, re.MULTILINE)
    assert match, text
    return {k: int(v) for k, v in re.findall(r"([\w/]+) (\d+)", match.group(1))}


class FeedReader(threading.Thread):
    """Reads a feed in the background: (header, frame, wall-clock arrival) per message."""

    def __init__(self, url: str, seconds: float) -> None:
        super().__init__(daemon=True)
        self.sub = FeedSubscriber(url, hwm=100)
        self.seconds = seconds
        self.messages: list[tuple[dict, np.ndarray, float]] = []

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with self.sub:
            while time.monotonic() < deadline:
                message = self.sub.recv(timeout=0.5)
                if message is not None:
                    self.messages.append((*message, time.monotonic()))


def read_rtmp(url: str, seconds: float, out: list[Fraction]) -> None:
    """Play ``url`` for up to ``seconds``, appending each decoded frame's time."""
    deadline = time.monotonic() + seconds
    options = {"probesize": "5000000", "analyzeduration": "1000000"}  # a lossless key frame is ~100 kB
    try:
        with av.open(url, options=options, timeout=(20, 5)) as container:
            for frame in container.decode(video=0):
                out.append(frame.pts * frame.time_base)
                if time.monotonic() > deadline:
                    break
    except av.error.FFmpegError:
        pass  # the publisher stopped: the stream ends


def wait_until_published(url: str) -> None:
    """Block until a player of ``url`` gets frames: the sink's connection is up (a fixed sleep
    raced the job's start-up on a slow machine and froze the server before the handshake)."""
    played: list[Fraction] = []
    read_rtmp(url, 0.5, played)
    assert played, f"{url}: no frames played; the sink never published"


def test_rtsp_camera_to_nginx_rtmp_and_zmq_feed(tmp_path, rtsp_server, nginx_rtmp):
    feed = f"zmq://127.0.0.1:{free_port()}"
    reader = FeedReader(feed, seconds=14)
    reader.start()
    proc = start_run(tmp_path, "--source", rtsp_server.url, "--sink", nginx_rtmp.url("up"), "--sink", feed,
                     "--duration", "10")  # fmt: skip
    times: list[Fraction] = []
    # join once the job runs steadily: at its start it skips (drops, counted) the frames the camera
    # queued while the job was still opening its sinks, which leaves a hole in the first timestamps
    time.sleep(4)
    player = threading.Thread(target=read_rtmp, args=(nginx_rtmp.url("up"), 12, times), daemon=True)
    player.start()
    stdout, _ = finish(proc)
    player.join(15)
    reader.join(15)

    camera_fps = rtsp_server.fps
    fps_in = summary_number(stdout, r"frames in\s+\d+\s+\(([\d.]+) fps\)")
    assert fps_in == pytest.approx(camera_fps, rel=0.05)  # received by wall clock (RTSP delivers a burst at first)
    # read back from nginx-rtmp: twice the input rate, timestamps strictly increasing
    assert len(times) > 200, f"only {len(times)} frames read back"
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    rate = (len(times) - 1) / float(times[-1] - times[0])
    assert rate == pytest.approx(2 * camera_fps, rel=0.03), stdout

    # the feed: documented header, frames that decode to the stream's size, t and interpolated agree
    messages = reader.messages
    assert len(messages) > 200
    for header, frame, _ in messages:
        assert set(REQUIRED_FIELDS) <= set(header)
        assert header["v"] == 1
        assert (header["width"], header["height"], header["pix_fmt"]) == (320, 240, "rgb24")
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
        assert header["interpolated"] == (header["t"] != 0.0)
        assert header["t"] in (0.0, 0.5)
        assert header["fallback"] == ("blend" if header["interpolated"] else None)
    seqs = [h["seq"] for h, _, _ in messages]
    pts = [Fraction(h["pts"]) * Fraction(h["time_base"]) for h, _, _ in messages]
    assert seqs == sorted(set(seqs)) and pts == sorted(set(pts))
    assert any(frame.std() > 5 for _, frame, _ in messages)  # real pictures, not blank buffers


def test_x11grab_under_xvfb_to_a_file(tmp_path, xvfb_display):
    """Screen capture stamps frames with the wall clock (an irregular rate): a fixed --fps grid smooths it."""
    out = tmp_path / "screen.mp4"
    source = f"capture:x11grab?display={xvfb_display.display}&fps=15&size=320x240"
    stdout, _ = finish(start_run(tmp_path, "--source", source, "--sink", str(out), "--fps", "30", "--duration", "4"))
    with av.open(str(out)) as container:
        frames = [(f.pts * f.time_base, f.to_ndarray(format="gray")) for f in container.decode(video=0)]
    assert len(frames) > 80  # ~4 s at 30 fps
    assert frames[0][1].shape == (240, 320)
    times = [t for t, _ in frames]
    steps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(step > 0 and (step * 30).denominator == 1 for step in steps)  # on the 30 fps grid, increasing
    assert steps.count(Fraction(1, 30)) > 0.9 * len(steps)
    assert any(np.abs(a.astype(int) - b).mean() > 0.5 for (_, a), (_, b) in zip(frames, frames[5:], strict=False))
    assert summary_number(stdout, r"frames in\s+(\d+)") > 40


def test_rtsp_server_killed_and_restarted_mid_stream_the_output_resumes(tmp_path, rtsp_server):
    feed = f"zmq://127.0.0.1:{free_port()}"
    out = tmp_path / "resumed.mp4"
    reader = FeedReader(feed, seconds=20)
    reader.start()
    proc = start_run(tmp_path, "--source", rtsp_server.url, "--sink", feed, "--sink", str(out), "--duration", "14")
    time.sleep(5)
    rtsp_server.kill()
    killed_at = time.monotonic()
    time.sleep(2)
    rtsp_server.start()
    restarted_at = time.monotonic()
    stdout, stderr = finish(proc)
    reader.join(25)

    assert counts(stdout, "reconnects").get("source", 0) >= 1
    assert "source lost" in stderr and "source back" in stderr
    arrivals = [when for _, _, when in reader.messages]
    before = [a for a in arrivals if a < killed_at]
    after = [a for a in arrivals if a > restarted_at + 2]
    assert len(before) > 60, "the stream did not run before the loss"
    assert len(after) > 60, "the stream did not resume after the server came back"
    # one timeline across the outage: strictly increasing, in the feed and in the file
    pts = [Fraction(h["pts"]) * Fraction(h["time_base"]) for h, _, _ in reader.messages]
    assert pts == sorted(set(pts))
    with av.open(str(out)) as container:
        times = [f.pts * f.time_base for f in container.decode(video=0)]
    assert len(times) > 200
    assert all(b > a for a, b in zip(times, times[1:], strict=False))


def test_a_restarted_rtsp_server_that_answers_404_for_a_while_is_waited_out(tmp_path, rtsp_server):
    """The server comes back without the stream's mount (404: "no such stream"), then with it: a source
    that worked before keeps retrying instead of ending the job as it would for a wrong URL at start."""
    out = tmp_path / "waited.mkv"
    (tmp_path / "job.toml").write_text(
        f'duration = 16\n[source]\nurl = "{rtsp_server.url}"\n[[sinks]]\nurl = "{out}"\n'
        "[reconnect]\nmax_delay_s = 1.0\n"
    )
    proc = start_run(tmp_path, "job.toml")
    time.sleep(4)
    rtsp_server.kill()
    rtsp_server.start(path="/elsewhere")
    time.sleep(4)
    rtsp_server.stop()
    rtsp_server.start()
    stdout, stderr = finish(proc)
    assert "no such stream (404)" in stderr and "source back" in stderr
    assert counts(stdout, "reconnects").get("source", 0) >= 2
    with av.open(str(out)) as container:
        times = [f.pts * f.time_base for f in container.decode(video=0)]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    # about 4 s streamed before the loss; the job ends 16 s in, some 5 s after the stream's return
    assert len(times) > 60 * (4 + 2)


def test_a_zmq_subscriber_that_never_reads_does_not_slow_the_stream(tmp_path):
    feed = f"zmq://127.0.0.1:{free_port()}"
    out = tmp_path / "steady.mp4"
    with FeedSubscriber(feed, hwm=2):  # connected and subscribed, never reads
        proc = start_run(tmp_path, "--source", "testsrc:?size=320x240&fps=30", "--sink", feed, "--sink", str(out),
                         "--duration", "6")  # fmt: skip
        stdout, _ = finish(proc)
    fps_out = summary_number(stdout, r"frames out\s+\d+\s+\(([\d.]+) fps\)")
    assert fps_out == pytest.approx(60, rel=0.03)
    drops = counts(stdout, "drops")
    assert drops.get("feed/queue_full", 0) > 100  # the feed dropped (counted) …
    emitted = summary_number(stdout, r"frames out\s+(\d+)")
    file_drops = drops.get("encode/queue_full", 0)  # only a CPU hiccup of the encoder itself, if any
    assert file_drops <= 0.01 * emitted  # … while the file got (nearly) every frame
    with av.open(str(out)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == emitted - file_drops > 330  # 6 s at 60 fps


def test_sigint_finishes_an_rtmp_stream_and_a_file(tmp_path, nginx_rtmp):
    out = tmp_path / "interrupted.mkv"
    proc = start_run(tmp_path, "--source", "testsrc:?size=320x240&fps=30", "--sink", nginx_rtmp.url("x"),
                     "--sink", str(out))  # fmt: skip
    wait_until_published(nginx_rtmp.url("x"))
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = finish(proc, timeout=30)
    assert "SIGINT: stopping" in stderr
    with av.open(str(out)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    file_drops = sum(n for key, n in counts(stdout, "drops").items() if key.startswith("encode2/"))  # 2nd sink
    assert frames == summary_number(stdout, r"frames out\s+(\d+)") - file_drops > 60


def test_rtmp_server_restarted_mid_stream_the_sink_reconnects_and_the_stream_resumes(tmp_path, nginx_rtmp):
    url = nginx_rtmp.url("back")
    proc = start_run(tmp_path, "--source", "testsrc:?size=320x240&fps=30", "--sink", url, "--duration", "14")
    wait_until_published(url)
    time.sleep(1)
    nginx_rtmp.stop()  # the ingest server goes away mid-stream …
    time.sleep(2)
    nginx_rtmp.start()  # … and comes back on the same port
    time.sleep(3)  # the job retries with backoff (0.5 s, 1 s, 2 s …) and publishes again
    times: list[Fraction] = []
    read_rtmp(url, 3, times)  # a player that joins after the restart gets the stream
    stdout, stderr = finish(proc)
    assert counts(stdout, "reconnects").get("sink", 0) >= 1
    assert counts(stdout, "drops").get("encode/disconnected", 0) > 0
    assert "sink rtmp://" in stderr and " back" in stderr
    assert len(times) > 60, f"only {len(times)} frames played after the server came back"
    assert all(b > a for a, b in zip(times, times[1:], strict=False))


def test_an_rtmp_server_that_stops_reading_costs_only_its_own_sink(tmp_path, nginx_rtmp):
    """nginx frozen (SIGSTOP) mid-stream: its TCP connection stays open but nothing is read, so the
    RTMP sink's writes block. The job drops that sink after the stall timeout, keeps writing the
    file, retries the frozen server without hanging, and ends on time with a complete file."""
    out = tmp_path / "kept.mkv"
    (tmp_path / "job.toml").write_text(
        "duration = 12\n"
        '[source]\nurl = "testsrc:?size=320x240&fps=30"\n'
        # lossless x264 puts megabytes a second on the wire: the socket buffers fill in seconds
        f'[[sinks]]\nurl = "{nginx_rtmp.url("frozen")}"\ncodec = "libx264"\ncrf = 0\n'
        'options = { preset = "ultrafast" }\n'
        f'[[sinks]]\nurl = "{out}"\n'
        "[reconnect]\nstall_timeout_s = 2.0\n"
    )
    started = time.monotonic()
    proc = start_run(tmp_path, "job.toml")
    wait_until_published(nginx_rtmp.url("frozen"))
    os.kill(nginx_rtmp.proc.pid, signal.SIGSTOP)
    try:
        stdout, stderr = finish(proc, timeout=45)
    finally:
        os.kill(nginx_rtmp.proc.pid, signal.SIGCONT)
    assert time.monotonic() - started < 12 + 20
    assert "no write progress for 2 s" in stderr
    assert "no RTMP handshake" in stderr  # the retries met the frozen server and gave up in time
    drops = counts(stdout, "drops")
    assert drops.get("encode/disconnected", 0) > 60 * 4  # at least the last 4 of the 12 s
    file_drops = sum(n for key, n in drops.items() if key.startswith("encode2/"))
    with av.open(str(out)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == summary_number(stdout, r"frames out\s+(\d+)") - file_drops > 60 * 10


def test_an_rtmp_server_that_resumes_reading_gets_the_stream_again(tmp_path, nginx_rtmp):
    """Frozen for 6 s, then thawed: the stuck connection is closed (freeing the stream key) and the
    sink publishes again on the same key; a player that joins afterwards gets frames in order."""
    url = nginx_rtmp.url("thawed")
    (tmp_path / "job.toml").write_text(
        "duration = 18\n"
        '[source]\nurl = "testsrc:?size=320x240&fps=30"\n'
        f'[[sinks]]\nurl = "{url}"\ncodec = "libx264"\ncrf = 0\noptions = {{ preset = "ultrafast" }}\n'
        "[reconnect]\nstall_timeout_s = 2.0\nmax_delay_s = 2.0\n"
    )
    proc = start_run(tmp_path, "job.toml")
    wait_until_published(url)
    os.kill(nginx_rtmp.proc.pid, signal.SIGSTOP)
    time.sleep(6)
    os.kill(nginx_rtmp.proc.pid, signal.SIGCONT)
    time.sleep(4)  # the stuck write drains, its connection closes, the retry publishes again
    times: list[Fraction] = []
    read_rtmp(url, 4, times)
    stdout, stderr = finish(proc)
    assert "no write progress for 2 s" in stderr
    assert counts(stdout, "reconnects").get("sink", 0) >= 1
    assert "sink rtmp://" in stderr and " back" in stderr
    assert len(times) > 40, f"only {len(times)} frames played after the server resumed"
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
