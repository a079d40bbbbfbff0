"""End to end against real servers on loopback: ``rifestream run`` as a user runs it.

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
                     "--duration", "12")  # fmt: skip
    times: list[Fraction] = []
    # join once the job runs steadily: at its start it skips (drops, counted) the frames the camera
    # queued while the job was still opening its sinks, which leaves a hole in the first timestamps
    # (waiting for the stream, not a fixed sleep: the job's start-up takes seconds on a loaded machine)
    wait_until_published(nginx_rtmp.url("up"))
    time.sleep(1.5)
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
    reader = FeedArrivals(feed, seconds=60)
    reader.start()
    proc = start_run(tmp_path, "--source", rtsp_server.url, "--sink", feed, "--sink", str(out), "--duration", "14")
    # the job runs (its start-up takes seconds on a loaded machine: a fixed sleep raced it), then 3 s more
    streaming = reader.first_after(0.0, timeout=40)
    assert streaming is not None, "the stream never started"
    time.sleep(max(0.0, streaming + 3 - time.monotonic()))
    rtsp_server.kill()
    killed_at = time.monotonic()
    time.sleep(2)
    rtsp_server.start()
    restarted_at = time.monotonic()
    stdout, stderr = finish(proc)
    reader.join(25)

    assert counts(stdout, "reconnects").get("source", 0) >= 1
    assert "source lost" in stderr and "source back" in stderr
    arrivals = [when for _, when in reader.messages]
    before = [a for a in arrivals if a < killed_at]
    after = [a for a in arrivals if a > restarted_at + 2]
    assert len(before) > 60, "the stream did not run before the loss"
    assert len(after) > 60, "the stream did not resume after the server came back"
    # one timeline across the outage: strictly increasing, in the feed and in the file
    pts = [Fraction(h["pts"]) * Fraction(h["time_base"]) for h, _ in reader.messages]
    assert pts == sorted(set(pts))
    with av.open(str(out)) as container:
        times = [f.pts * f.time_base for f in container.decode(video=0)]
    assert len(times) > 200
    assert all(b > a for a, b in zip(times, times[1:], strict=False))


def test_a_restarted_rtsp_server_that_answers_404_for_a_while_is_waited_out(tmp_path, rtsp_server):
    """The server comes back without the stream's mount (404: "no such stream"), then with it: a source
    that worked before keeps retrying instead of ending the job as it would for a wrong URL at start."""
    out = tmp_path / "waited.mkv"
    feed = f"zmq://127.0.0.1:{free_port()}"
    (tmp_path / "job.toml").write_text(
        f'duration = 16\n[source]\nurl = "{rtsp_server.url}"\n[[sinks]]\nurl = "{out}"\n'
        f'[[sinks]]\nurl = "{feed}"\n[reconnect]\nmax_delay_s = 1.0\n'
    )
    reader = FeedArrivals(feed, seconds=60)
    reader.start()
    proc = start_run(tmp_path, "job.toml")
    streaming = reader.first_after(0.0, timeout=40)  # the job runs (a fixed sleep raced its start-up) …
    assert streaming is not None, "the stream never started"
    time.sleep(max(0.0, streaming + 3 - time.monotonic()))  # … for 3 s
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
    # about 3 s streamed before the loss; the job ends 16 s after its start, some 4-5 s after the stream's return
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
    assert frames == emitted - file_drops > 270  # 60 fps for the 6 s job less its start-up (the duration counts it)


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


# ----- reconnects and start-up (issue 19, items 3-5; docs/RELIABILITY.md "reconnect") -------------------
RESUME_BOUND_S = 2.0  # a live endpoint that accepts again is streaming again within this long


class FeedArrivals(threading.Thread):
    """Reads a feed in the background, keeping only (header, wall-clock arrival) per message;
    ``first_after(moment)`` waits for the first message that arrives after ``moment``."""

    def __init__(self, url: str, seconds: float) -> None:
        super().__init__(daemon=True)
        self.sub = FeedSubscriber(url, hwm=100)
        self.seconds = seconds
        self.messages: list[tuple[dict, float]] = []
        self.arrived = threading.Condition()

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with self.sub:
            while time.monotonic() < deadline:
                message = self.sub.recv(timeout=0.5)
                if message is not None:
                    with self.arrived:
                        self.messages.append((message[0], time.monotonic()))
                        self.arrived.notify_all()

    def first_after(self, moment: float, timeout: float) -> float | None:
        with self.arrived:
            self.arrived.wait_for(lambda: bool(self.messages) and self.messages[-1][1] > moment, timeout)
            return next((when for _, when in self.messages if when > moment), None)


@pytest.mark.parametrize("outages", [(2.0, 9.0, 4.0), (3.0, 12.0)], ids=["2s-9s-4s", "3s-12s"])
def test_an_rtsp_camera_that_comes_back_streams_again_within_2_s(tmp_path, rtsp_server, outages):
    """The RTSP server is killed (a crashed camera) and restarted on the same port, several times; the
    job's retries have backed off to their 8-10 s cap by the long outages. The feed has frames again
    within 2 s of the server accepting connections, for every outage (the retries look at the port
    every 0.25 s between full opens)."""
    feed = f"zmq://127.0.0.1:{free_port()}"
    arrivals = FeedArrivals(feed, seconds=80)
    arrivals.start()
    proc = start_run(tmp_path, "--source", rtsp_server.url, "--sink", feed)  # until SIGINT
    resumes = []
    try:
        assert arrivals.first_after(0.0, timeout=40) is not None, "the stream never started"
        for down in outages:
            time.sleep(1.0)
            rtsp_server.kill()
            time.sleep(down)
            rtsp_server.start()  # returns once the port accepts connections
            back = time.monotonic()
            first = arrivals.first_after(back, timeout=15)
            assert first is not None, f"no frame within 15 s of the server's return after a {down:g} s outage"
            resumes.append(round(first - back, 2))
    finally:
        proc.send_signal(signal.SIGINT)
    stdout, stderr = finish(proc)
    print(f"RTSP outages {outages} s: output resumed {resumes} s after the server accepted again")
    assert counts(stdout, "reconnects").get("source", 0) >= len(outages)
    assert max(resumes) <= RESUME_BOUND_S, resumes
    pts = [Fraction(h["pts"]) * Fraction(h["time_base"]) for h, _ in arrivals.messages]
    assert pts == sorted(set(pts))  # one timeline across every outage


class TimedRun:
    """A ``rifestream`` process whose stderr is read as it comes. ``wait()`` gives the seconds from its
    first log line (the job has started: imports and model loading are behind it) to its last line
    (the error or the summary's end): the job's own time, without the interpreter's start and teardown
    (importing and unloading torch alone takes 4-10 s on a loaded 2-core machine)."""

    def __init__(self, cwd: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "rifestream", *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.lines: list[str] = []
        self.first_line_at: float | None = None
        self.last_line_at: float | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.last_line_at = time.monotonic()
            if self.first_line_at is None:
                self.first_line_at = self.last_line_at
            self.lines.append(line.rstrip("\n"))

    def wait(self, timeout: float) -> tuple[int, float]:
        """(exit status, job time); kills the process if it outlives ``timeout``."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"still running after {timeout:g} s:\n" + "\n".join(self.lines[-20:]))
        self._reader.join(5)
        self.proc.stdout.close()
        assert self.first_line_at is not None, "the job logged nothing"
        return rc, self.last_line_at - self.first_line_at

    def error_lines(self, command: str) -> list[str]:
        assert not any("Traceback" in line for line in self.lines), "\n".join(self.lines)
        return [line for line in self.lines if line.startswith(f"rifestream {command}: error:")]


@pytest.mark.parametrize("scheme", ["rtsp", "rtmp"])
def test_a_source_that_never_connects_ends_at_the_duration_with_an_error(tmp_path, scheme):
    """``--duration`` bounds the whole job, connected or not: 3 s, then one error line and exit 2
    (not retried for ever past the duration, and not exit 0 when killed)."""
    url = f"{scheme}://127.0.0.1:{free_port()}/live/cam"
    job = TimedRun(tmp_path, "run", "--source", url, "--sink", "null", "--duration", "3", "--force-step", "blend",
                   "--no-metrics")  # fmt: skip
    rc, seconds = job.wait(timeout=45)
    errors = job.error_lines("run")
    assert rc == 2 and len(errors) == 1, job.lines
    assert "did not open within the duration, 3 s" in errors[0] and "127.0.0.1" in errors[0]
    print(f"{scheme} source never connecting, --duration 3: exit {rc} after {seconds:.2f} s of the job")
    assert 2.5 <= seconds <= 3 + 1.0, seconds  # the job's first log line comes just before its clock starts


def test_a_source_that_never_connects_ends_at_the_start_timeout(tmp_path):
    """No duration: ``[reconnect] start_timeout_s`` bounds the wait for a source that never opens."""
    (tmp_path / "job.toml").write_text(
        f'[source]\nurl = "rtsp://127.0.0.1:{free_port()}/cam"\n[[sinks]]\nurl = "null"\n'
        "[reconnect]\nstart_timeout_s = 4\n"
    )
    job = TimedRun(tmp_path, "run", "job.toml", "--force-step", "blend", "--no-metrics")
    rc, seconds = job.wait(timeout=45)
    errors = job.error_lines("run")
    assert rc == 2 and len(errors) == 1, job.lines
    assert "did not open within 4 s of the start" in errors[0] and "start_timeout_s" in errors[0]
    print(f"rtsp source never connecting, start_timeout_s = 4: exit {rc} after {seconds:.2f} s of the job")
    assert 3.5 <= seconds <= 4 + 1.0, seconds


def test_interpolate_of_an_unreachable_url_fails_after_the_start_timeout(tmp_path):
    """The offline command has no duration: the default start timeout (10 s) ends it, exit 2, no output."""
    out = tmp_path / "out.mp4"
    job = TimedRun(tmp_path, "interpolate", f"rtsp://127.0.0.1:{free_port()}/cam", str(out), "--no-progress")
    rc, seconds = job.wait(timeout=50)
    errors = job.error_lines("interpolate")
    assert rc == 2 and len(errors) == 1, job.lines
    assert "did not open within 10 s of the start" in errors[0]
    print(f"interpolate of an unreachable rtsp URL: exit {rc} after {seconds:.2f} s of the job")
    assert 9.5 <= seconds <= 10 + 1.0, seconds
    assert not out.exists()


def test_an_rtmp_sink_refused_at_the_start_ends_the_job_with_an_error(tmp_path):
    """The ingest server is not there: the job retries it for start_timeout_s (3 s here) while the other
    sinks get the stream, then ends with one error line and exit 2, its file finished and playable,
    instead of running its whole duration and exiting 0 having delivered nothing."""
    out = tmp_path / "kept.mkv"
    (tmp_path / "job.toml").write_text(
        'duration = 30\n[source]\nurl = "testsrc:?size=320x240&fps=30"\n'
        f'[[sinks]]\nurl = "rtmp://127.0.0.1:{free_port()}/live/key"\n[[sinks]]\nurl = "{out}"\n'
        "[reconnect]\nstart_timeout_s = 3\n"
    )
    job = TimedRun(tmp_path, "run", "job.toml", "--force-step", "blend", "--no-metrics")
    rc, seconds = job.wait(timeout=60)
    errors = job.error_lines("run")
    assert rc == 2 and len(errors) == 1, job.lines
    assert "the sink did not open within 3 s of the start" in errors[0]
    print(f"rtmp sink refused at the start, start_timeout_s = 3: exit {rc} after {seconds:.2f} s of the job")
    assert 2.5 <= seconds <= 3 + 1.5, seconds  # + draining and closing the file
    with av.open(str(out)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames > 60 * 2  # the file sink got the stream meanwhile


def play_rtmp(url: str, frames: int, out: list[tuple[Fraction, float]]) -> None:
    """Play ``url`` (waiting for its publisher if it has none yet) for ``frames`` frames, appending each
    decoded frame's (time, wall-clock arrival). A small probe: the first frame is seen as it comes."""
    options = {"probesize": "32768", "analyzeduration": "100000"}
    try:
        with av.open(url, options=options, timeout=(20, 5)) as container:
            for frame in container.decode(video=0):
                out.append((frame.pts * frame.time_base, time.monotonic()))
                if len(out) >= frames:
                    break
    except av.error.FFmpegError:
        pass  # the publisher stopped: the stream ends


def test_an_rtmp_server_that_comes_back_gets_the_stream_within_2_s_on_the_same_timeline(tmp_path, nginx_rtmp):
    """nginx-rtmp stopped for 8 s mid-stream, then started again. A player waiting on the stream key gets
    frames within 2 s of the server accepting connections again; their timestamps continue the job's
    timeline (the stream's time has advanced by the wall time that passed, it does not restart at 0);
    and the sink's reopen costs the source no frame: no ``interpolate`` drop from the moment the server
    is back until 2 s after the player's first frame (read from the job's /metrics; the PyAV connect
    holds the GIL for ~0.2 s, which cost 4 source frames before the engine queue made room for it)."""
    url = nginx_rtmp.url("cam")
    port = free_port()
    (tmp_path / "job.toml").write_text(
        f'[source]\nurl = "testsrc:?size=320x240&fps=30"\n[[sinks]]\nurl = "{url}"\n[metrics]\nport = {port}\n'
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rifestream", "run", "job.toml", "--force-step", "blend"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    before: list[tuple[Fraction, float]] = []
    after: list[tuple[Fraction, float]] = []
    try:
        play_rtmp(url, 30, before)  # joins the running stream
        assert before, "the sink never published"
        nginx_rtmp.stop()
        time.sleep(8)
        player = threading.Thread(target=play_rtmp, args=(url, 60, after), daemon=True)
        source_drops_before = source_drops(port)
        nginx_rtmp.start()  # returns once the port accepts connections
        back = time.monotonic()
        player.start()  # waits on the stream key until the job publishes again
        player.join(20)
        if after:
            time.sleep(max(0.0, after[0][1] + 2 - time.monotonic()))
        source_drops_at_reopen = source_drops(port) - source_drops_before
    finally:
        proc.send_signal(signal.SIGINT)
    stdout, stderr = finish(proc)
    assert after, f"no frame played after the server came back:\n{stderr[-2000:]}"
    resume = after[0][1] - back
    print(f"RTMP sink, 8 s outage: a waiting player had frames {resume:.2f} s after the server accepted again")
    assert resume <= RESUME_BOUND_S
    # the same timeline: stream time advanced as the wall clock did (within a player's buffering)
    (pts0, wall0), (pts1, wall1) = before[0], after[0]
    assert float(pts1 - pts0) == pytest.approx(wall1 - wall0, abs=0.5), (pts0, pts1, wall1 - wall0)
    times = [t for t, _ in after]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert counts(stdout, "reconnects").get("sink", 0) >= 1
    drops = counts(stdout, "drops") if "drops       none" not in stdout else {}
    assert drops.get("encode/disconnected", 0) > 0  # the frames made while it was away (counted) …
    assert source_drops_at_reopen == 0, drops  # … and not one source frame at the reopen


def source_drops(port: int) -> float:
    """The job's source frames dropped so far (``interpolate`` stage), from its /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(value) for value in re.findall(
        r'^rifestream_dropped_frames_total\{[^}]*stage="interpolate"[^}]*\} (\S+)$', text, re.MULTILINE))  # fmt: skip
