"""``rifestream fleet``: the fleet file's checks, streams run together into real files, a stream whose
source cannot be opened fails alone (exit status 2), the shared engine batches, SIGTERM closes every
stream, one /metrics and /healthz for all of them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from fractions import Fraction
from pathlib import Path

import av
import pytest

from rifestream.config import load_fleet
from rifestream.pipeline.fleet import Fleet

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frame_times(path: Path) -> list[Fraction]:
    """Presentation times (seconds) of every video frame in ``path``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [frame.pts * stream.time_base for frame in container.decode(stream)]


def assert_doubled(path: Path, source_frames: int) -> None:
    """2x of ``source_frames`` at 30 fps: 2n - 1 frames (the last source frame ends it), 1/60 s apart
    (to the millisecond in a container that keeps milliseconds, .mkv)."""
    times = frame_times(path)
    assert len(times) == 2 * source_frames - 1, (path.name, len(times))
    for k, when in enumerate(times):
        assert abs(when - times[0] - Fraction(k, 60)) <= Fraction(1, 1000), (path.name, k, when)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def run_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rifestream", "fleet", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ----- the fleet file (its rules: tests/test_fleet_config.py) -----------------------------------
def test_the_cli_refuses_a_bad_file_with_one_line_and_exit_2(tmp_path: Path) -> None:
    body = '[[streams]]\nname = "a"\nsource = { url = "testsrc:" }\nsinks = ["a.mp4"]\n'
    body += '[[streams]]\nname = "b"\nsource = { url = "testsrc:" }\nsinks = [{ url = "b.mp4", crf = "high" }]\n'
    result = run_cli(str(write(tmp_path / "fleet.toml", body)), cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("rifestream fleet: error:") and "streams[1].sinks[0].crf" in line
    assert not (tmp_path / "a.mp4").exists()  # nothing ran


# ----- running -----------------------------------------------------------------------------
@pytest.mark.slow
def test_streams_run_together_and_a_source_that_cannot_open_fails_alone(tmp_path: Path) -> None:
    dead = f"rtsp://127.0.0.1:{free_port()}/nothing"  # a refused port: the stream's start-up rule applies
    path = write(
        tmp_path / "fleet.toml",
        f"""
[defaults]
latency = {{ force_step = "blend" }}
reconnect = {{ start_timeout_s = 2 }}
metrics = {{ enabled = false }}

[[streams]]
name = "one"
source = {{ url = "testsrc:?size=96x64&fps=30&frames=45" }}
sinks = ["one.mp4"]

[[streams]]
name = "dead"
source = {{ url = "{dead}" }}
sinks = ["dead.mp4"]

[[streams]]
name = "two"
source = {{ url = "testsrc:?size=128x72&fps=30&frames=60" }}
sinks = ["two.mp4"]
""",
    )
    started = time.monotonic()
    result = run_cli(str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "rifestream fleet: stream dead: error:" in result.stderr
    assert "127.0.0.1" in result.stderr and "start_timeout_s" in result.stderr
    assert "fleet: 2 of 3 streams ended cleanly" in result.stdout
    assert_doubled(tmp_path / "one.mp4", 45)
    assert_doubled(tmp_path / "two.mp4", 60)
    assert not (tmp_path / "dead.mp4").exists()
    # the live streams kept their rate: 2 s of input took about 2 s, not 2 s after the dead one gave up
    assert time.monotonic() - started < 60


@pytest.mark.slow
def test_streams_of_one_model_share_its_engine_and_batch(tmp_path: Path, one_torch_thread) -> None:
    """Three unpaced streams (offline: every pair from the model) on the CPU model: one engine, pairs
    batched when they meet, every file 2x its input at the right times."""
    body = '[defaults]\nmetrics = { enabled = false }\nengine = { device = "cpu" }\n'
    for name, frames in (("a", 20), ("b", 25), ("c", 30)):
        body += (
            f'[[streams]]\nname = "{name}"\n'
            f'source = {{ url = "testsrc:?size=160x96&fps=30&frames={frames}&realtime=0" }}\n'
            f'sinks = ["{tmp_path / name}.mp4"]\n'
        )
    streams = load_fleet(write(tmp_path / "fleet.toml", body)).streams
    outcome = asyncio.run(Fleet(streams, max_batch=4).run())
    assert not outcome.failed
    ((group, batches),) = outcome.batches.items()
    assert group == "rifestream-lite on cpu"
    assert batches["pairs"] >= 19 + 24 + 29  # every in-between frame (plus the warm-up's) from the one engine
    assert batches["largest"] >= 2 and batches["calls"] < batches["pairs"]
    for s in outcome.streams:
        assert s.summary is not None and s.summary.frames_out.get("interpolated", 0) > 0
    for name, frames in (("a", 20), ("b", 25), ("c", 30)):
        assert_doubled(tmp_path / f"{name}.mp4", frames)


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.slow
def test_sigterm_drains_and_closes_every_stream_and_metrics_carry_each_name(tmp_path: Path) -> None:
    port = free_port()
    path = write(
        tmp_path / "fleet.toml",
        """
[defaults]
latency = { force_step = "blend" }

[[streams]]
name = "cam-a"
source = { url = "testsrc:?size=96x64&fps=30" }
sinks = ["a.mp4"]

[[streams]]
name = "cam_b"
source = { url = "testsrc:?size=128x72&fps=30" }
sinks = ["b.mkv"]
""",
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rifestream", "fleet", str(path), "--metrics-port", str(port), "--duration", "60"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status, health = 0, {}
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, health = get_json(f"http://127.0.0.1:{port}/healthz")
            except (urllib.error.URLError, ConnectionError):
                status = 0
            if status == 200:
                break
            time.sleep(0.2)
        assert status == 200, health
        assert health["streams_total"] == 2 and set(health["streams"]) == {"cam-a", "cam_b"}
        status, one = get_json(f"http://127.0.0.1:{port}/healthz?stream=cam_b")
        assert status == 200 and one["stream"] == "cam_b" and one["source_up"] is True
        assert get_json(f"http://127.0.0.1:{port}/healthz?stream=nope")[0] == 503
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        for name in ("cam-a", "cam_b"):
            assert f'rifestream_input_frames_total{{stream="{name}"}}' in text
            assert f'rifestream_stream_running{{stream="{name}"}} 1.0' in text
        time.sleep(1.0)  # a second of frames into both files
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "fleet: 2 of 2 streams ended cleanly" in out
    for name in ("a.mp4", "b.mkv"):
        times = frame_times(tmp_path / name)
        assert len(times) >= 30, (name, len(times))  # playable to the end, every frame 1/60 s after the last
        steps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert all(abs(step - Fraction(1, 60)) <= Fraction(1, 1000) for step in steps), set(steps)  # mkv: 1 ms


@pytest.mark.slow
def test_a_source_lost_mid_run_reconnects_while_the_other_stream_keeps_its_rate(rtsp_server, tmp_path: Path) -> None:
    """A camera (GStreamer's RTSP server) killed mid-run and brought back: its stream reconnects on
    its own; the test-scene stream beside it never stops making 60 frames a second."""
    import threading

    from rifestream.metrics import FleetMetrics

    body = f"""
[defaults]
latency = {{ force_step = "blend" }}

[[streams]]
name = "cam"
source = {{ url = "{rtsp_server.url}" }}
sinks = ["{tmp_path}/cam.mkv"]

[[streams]]
name = "scene"
source = {{ url = "testsrc:?size=96x64&fps=30" }}
sinks = ["{tmp_path}/scene.mp4"]
"""
    streams = load_fleet(write(tmp_path / "fleet.toml", body)).streams
    metrics = FleetMetrics()
    fleet = Fleet(streams, metrics=metrics, duration=12)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(outcome=asyncio.run(fleet.run())))
    runner.start()

    def sample(name: str, stream: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, {"stream": stream, **labels}) or 0.0

    def wait_until(what: str, check, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            assert time.monotonic() < deadline, what
            time.sleep(0.1)

    try:
        wait_until("camera frames", lambda: sample("rifestream_input_frames_total", "cam") >= 30, 30)
        rtsp_server.kill()
        wait_until("the loss seen", lambda: sample("rifestream_source_up", "cam") == 0, 15)
        lost_at = sample("rifestream_input_frames_total", "cam")
        time.sleep(1.5)
        rtsp_server.start()
        wait_until("frames again", lambda: sample("rifestream_input_frames_total", "cam") >= lost_at + 30, 30)
    finally:
        fleet.stop()
        runner.join(60)
    outcome = result["outcome"]
    assert not outcome.failed, outcome.format()
    cam, scene = outcome.streams
    assert cam.summary.reconnects.get("source", 0) >= 1
    # the scene stream kept its rate through the camera's outage: 60 fps, no gap in its timeline
    assert 54 < scene.summary.output_fps < 66, scene.summary.format()
    times = frame_times(tmp_path / "scene.mp4")
    assert len(times) >= 0.9 * 60 * scene.summary.seconds - 60  # the warm-up second is not counted
    assert {b - a for a, b in zip(times, times[1:], strict=False)} == {Fraction(1, 60)}
