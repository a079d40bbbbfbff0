"""The asyncio runner, in process and as the ``rifestream run`` program.

Inputs are the built-in test scene (exact timestamps k / fps); outputs are real
sinks (files decoded back with PyAV, the ZMQ feed, null).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from rifestream.engine import FrameEngine, Interpolator
from rifestream.errors import RifestreamError
from rifestream.io.endpoint_probe import readiness_probe
from rifestream.io.sinks import open_sink
from rifestream.io.sources import open_source
from rifestream.io.zmq_feed import FeedSubscriber
from rifestream.model import IFNet, IFNetConfig, save_model
from rifestream.pipeline.backoff import wait_to_retry
from rifestream.pipeline.budget import LatencyBudget
from rifestream.pipeline.clock import OutputClock
from rifestream.pipeline.run_stats import RunStats
from rifestream.pipeline.runner import Runner, SinkSpec, run_blocking
from tests.servers import free_port

REPO = Path(__file__).resolve().parents[1]
TINY = IFNetConfig("tiny", (16, 8), (2, 1), head=False, pad=32)


def tiny_engine() -> Interpolator:
    """A random-weights two-block IFNet: the real model path, fast on a CPU."""
    import torch

    torch.manual_seed(0)
    return Interpolator(IFNet(TINY), device="cpu")


def decoded(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def make_runner(source_url: str, sinks: list[SinkSpec], engine=None, **kwargs) -> Runner:
    clock = kwargs.pop("clock", OutputClock(factor=2))
    return Runner(
        open_source=lambda: open_source(source_url),
        sinks=sinks,
        engine=engine or FrameEngine("cpu"),
        clock=clock,
        budget=kwargs.pop("budget", LatencyBudget(None, "blend")),
        **kwargs,
    )


# ----- timing: frame counts and exact timestamps ---------------------------------------------------
def test_2x_with_the_model_gives_every_output_time_exactly_and_a_playable_file(tmp_path):
    out = tmp_path / "out.mp4"
    runner = make_runner(
        "testsrc:?size=128x72&fps=30&frames=30&realtime=0",
        [SinkSpec(str(out)), SinkSpec("null")],
        engine=tiny_engine(),
        budget=LatencyBudget(None),  # offline: the full model for every frame
    )
    summary = run_blocking(runner)
    assert runner.source_info.rate == 30
    # 29 pairs × 2 frames, plus the last source frame itself
    assert summary.frames_in == 30
    assert summary.frames_out == {"passed_through": 30, "interpolated": 29}
    assert summary.drops == {} and summary.fallbacks == {}
    frames = decoded(out)
    assert [f.pts * f.time_base for f in frames] == [Fraction(k, 60) for k in range(59)]
    assert summary.latency["end_to_end"].count == 59
    assert {"upload", "interpolate", "encode", "end_to_end"} <= set(summary.latency)


def test_24_to_60_puts_frames_on_the_60_grid_with_the_right_t(tmp_path):
    port = free_port()
    out = tmp_path / "out.nut"
    with FeedSubscriber(f"zmq://127.0.0.1:{port}", hwm=1000) as sub:
        runner = make_runner(
            "testsrc:?size=128x72&fps=24&frames=24",  # paced like a camera (1 s)
            [SinkSpec(str(out), codec="ffv1"), SinkSpec(f"zmq://127.0.0.1:{port}")],
            clock=OutputClock(fps=60),
        )
        summary = run_blocking(runner)
        headers = []
        while (message := sub.recv(timeout=2.0)) is not None and len(headers) < 58:
            headers.append(message[0])
    # output times k/60 < 23/24 → k = 0 … 57; the last source frame (23/24) is not on the grid
    assert summary.total_out == 58
    frames = decoded(out)
    assert [f.pts * f.time_base for f in frames] == [Fraction(k, 60) for k in range(58)]
    assert len(headers) > 40, "the feed lost more than its first frames (a subscriber joining late)"
    for h in headers:
        assert Fraction(h["pts"]) * Fraction(h["time_base"]) == Fraction(h["seq"], 60)
        source_time = Fraction(h["source_pts"]) * Fraction(h["source_time_base"])
        expected_t = float((Fraction(h["seq"], 60) - source_time) * 24)
        assert h["t"] == pytest.approx(expected_t)
        assert h["interpolated"] == (h["t"] != 0.0)
        assert h["fallback"] == ("blend" if h["interpolated"] else None)
        assert h["t"] == pytest.approx([0.0, 0.4, 0.8, 0.2, 0.6][h["seq"] % 5])  # 24 → 60: a 5-frame cycle


def test_offline_mode_waits_for_a_slow_sink_and_reports_progress():
    writes: list[int] = []

    def slow_null(spec, info, clock):
        sink = open_sink("null", width=info.width, height=info.height, rate=None, time_base=Fraction(1, 60))
        write = sink.write

        def slow_write(frame):
            time.sleep(0.02)
            writes.append(frame.seq)
            return write(frame)

        sink.write = slow_write
        return sink

    progress: list[tuple[int, int | None]] = []
    runner = make_runner(
        "testsrc:?size=96x64&fps=30&frames=20&realtime=0",
        [SinkSpec("null", queue=2)],
        open_sink=slow_null,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    summary = run_blocking(runner)
    assert writes == list(range(39))  # back-pressure: nothing dropped, in order
    assert summary.drops == {}
    assert [done for done, _ in progress] == list(range(1, 21))


# ----- trouble: a slow sink under a live source -----------------------------------------------------
def test_a_slow_sink_drops_its_oldest_frames_and_never_holds_up_a_live_source():
    written: list[int] = []
    release = threading.Event()

    def stalled_null(spec, info, clock):
        sink = open_sink("null", width=info.width, height=info.height, rate=None, time_base=Fraction(1, 60))
        write = sink.write

        def stalled_write(frame):
            release.wait(5.0)  # stuck until the source has finished
            written.append(frame.seq)
            return write(frame)

        sink.write = stalled_write
        return sink

    stats = RunStats()
    runner = make_runner(
        "testsrc:?size=96x64&fps=30&frames=45",  # 1.5 s, paced like a camera
        [SinkSpec("null", queue=3), SinkSpec("null")],
        open_sink=lambda spec, info, clock: (
            stalled_null(spec, info, clock)
            if spec.queue == 3
            else open_sink("null", width=1, height=1, rate=None, time_base=Fraction(1, 60))
        ),
        budget=LatencyBudget(0.5, "blend"),
        stats=stats,
    )

    arrivals: list[float] = []
    original = stats.frame_in

    def frame_in(arrival: float) -> None:
        arrivals.append(arrival)
        if len(arrivals) == 45:
            threading.Timer(0.3, release.set).start()  # unstick the sink once the source is done
        original(arrival)

    stats.frame_in = frame_in
    summary = run_blocking(runner)
    # the source kept its pace: 45 frames over ~1.47 s, none dropped before the engine
    assert summary.frames_in == 45
    assert arrivals[-1] - arrivals[0] == pytest.approx(44 / 30, abs=0.15)
    assert "interpolate/queue_full" not in summary.drops
    # the stalled sink kept the newest frames: the one it was writing, then the last 3
    total = summary.total_out
    assert total == 89
    assert summary.drops["sink/queue_full"] == total - len(written)
    assert written[-3:] == [total - 3, total - 2, total - 1]
    assert len(written) <= 5
    # the other sink was not held up: it emitted every frame, so every frame has an end-to-end latency
    assert summary.latency["end_to_end"].count == total


def test_stop_from_another_thread_drains_and_finishes_the_file(tmp_path):
    out = tmp_path / "live.mp4"
    runner = make_runner("testsrc:?size=128x72&fps=30", [SinkSpec(str(out))])  # endless, paced
    threading.Timer(1.0, runner.stop).start()
    summary = run_blocking(runner)
    frames = decoded(out)
    assert 25 <= summary.frames_in <= 33  # 1 s at 30 fps
    assert len(frames) == summary.total_out - sum(summary.drops.values())
    times = [f.pts * f.time_base for f in frames]
    assert times == sorted(set(times))


def test_a_bad_sink_fails_at_start_with_its_message():
    from rifestream.errors import RifestreamError

    runner = make_runner("testsrc:?size=96x64&fps=30&frames=5", [SinkSpec("/no/such/folder/out.mp4")])
    with pytest.raises(RifestreamError, match="does not exist"):
        run_blocking(runner)


# ----- the program -----------------------------------------------------------------------------------
def program_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def frames_out(summary_text: str) -> int:
    match = re.search(r"frames out\s+(\d+)", summary_text)
    assert match, summary_text
    return int(match.group(1))


def test_sigterm_leaves_a_file_that_decodes_to_the_end(tmp_path):
    out = tmp_path / "stream.mp4"
    model = tmp_path / "tiny.safetensors"
    save_model(IFNet(TINY), model)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rifestream", "run", "--source", "testsrc:?size=160x96&fps=30", "--sink", str(out),
         "--model", str(model), "--device", "cpu", "--budget-ms", "200", "--no-metrics"],
        cwd=tmp_path, env=program_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not (out.exists() and out.stat().st_size > 2000):
            try:
                proc.wait(timeout=0.2)  # an early exit shows at once
                break
            except subprocess.TimeoutExpired:
                continue
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "SIGTERM: stopping" in stderr
    frames = decoded(out)
    emitted = frames_out(stdout)
    drops = sum(int(n) for n in re.findall(r"encode/\w+ (\d+)", stdout))
    assert len(frames) == emitted - drops > 30
    times = [f.pts * f.time_base for f in frames]
    assert times == sorted(set(times))  # strictly increasing
    assert all((t * 60).denominator == 1 for t in times)  # on the 60 fps grid


def test_run_stream_py_runs_the_default_job_and_prints_the_summary(tmp_path):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(REPO / "run_stream.py"), "--duration", "3", "--metrics-port", "0"],
        cwd=tmp_path, env=program_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 40
    text = result.stdout
    assert "rifestream summary" in text
    for field in ("frames in", "frames out", "latency end-to-end", "fallbacks", "drops", "reconnects"):
        assert field in text
    frames_in = int(re.search(r"frames in\s+(\d+)", text).group(1))
    assert 80 <= frames_in <= 95  # 3 s of a 30 fps scene
    fps_in = float(re.search(r"frames in\s+\d+\s+\(([\d.]+) fps\)", text).group(1))
    assert fps_in == pytest.approx(30, rel=0.05)
    frames = decoded(tmp_path / "rifestream-default.mp4")
    assert len(frames) == frames_out(text) - sum(int(n) for n in re.findall(r"encode/\w+ (\d+)", text))
    assert frames[0].width == 640 and frames[0].height == 360


def test_run_help_is_enough_to_use_it():
    result = subprocess.run(
        [sys.executable, "-m", "rifestream", "run", "--help"], env=program_env(), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0
    flags = "--source --sink --factor --fps --model --scale --budget-ms --force-step --metrics-port --duration"
    for flag in [*flags.split(), "--realtime", "--device", "--fp16", "--preset", "examples:"]:
        assert flag in result.stdout


def test_a_bad_flag_value_fails_at_start_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "rifestream", "run", "--budget-ms", "-3"], env=program_env(), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "rifestream run: error: command line: latency.budget_ms: expected a positive number, got -3.0"
    )


def test_uvloop_is_chosen_by_the_entry_point_only():
    from rifestream.cli.run import loop_factory

    factory = loop_factory()
    if factory is None:
        pytest.skip("uvloop is not installed")
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
    assert "uvloop" not in type(asyncio.get_event_loop_policy()).__module__  # no global policy was set


def test_offline_interpolate_file_keeps_every_frame_and_the_audio(tmp_path):
    from rifestream.pipeline.offline import interpolate_file

    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as container:  # 24 fps video (the test scene) with a 440 Hz tone
        from rifestream.io.synthetic_scene import SyntheticScene

        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 128, 72, "yuv420p"
        audio = container.add_stream("aac", rate=48000)
        scene = SyntheticScene(128, 72, Fraction(24))
        for k in range(24):
            for packet in video.encode(av.VideoFrame.from_ndarray(scene.render(k), format="rgb24")):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        t = np.arange(48000) / 48000
        tone = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="fltp",
                                          layout="mono")  # fmt: skip
        tone.sample_rate = 48000
        for packet in [*audio.encode(tone), *audio.encode(None)]:
            container.mux(packet)
    out = tmp_path / "out.mp4"
    progress: list[int] = []
    summary = interpolate_file(str(clip), str(out), factor=None, fps=60, engine=tiny_engine(),
                               progress=lambda done, total: progress.append(done))  # fmt: skip
    assert summary.frames_in == 24 and summary.drops == {}
    assert progress == list(range(1, 25))
    with av.open(str(out)) as container:
        assert container.streams.audio, "the audio was not carried over"
        times = [f.pts * f.time_base for f in container.decode(video=0)]
    # 24 → 60 over 23/24 s: output times k/60 < 23/24 → k = 0 … 57
    assert times == [Fraction(k, 60) for k in range(58)]


# ----- reconnects and start-up: every wait bounded (issue 19, items 3 and 4) -------------------------
def test_wait_to_retry_ends_as_soon_as_a_refusing_port_accepts():
    """The server's port refuses (it is down), then a listener appears 0.6 s in: the wait, though its
    backoff says 10 s, ends within one look (0.1 s here) of the port accepting."""
    port = free_port()
    listener = socket.socket()
    threading.Timer(0.6, lambda: (listener.bind(("127.0.0.1", port)), listener.listen())).start()
    start = time.monotonic()
    try:
        assert wait_to_retry(10.0, threading.Event(), readiness_probe(f"rtsp://127.0.0.1:{port}/cam"), 0.1)
        waited = time.monotonic() - start
    finally:
        listener.close()
    assert 0.55 <= waited <= 0.6 + 0.1 + 0.3, waited


def test_wait_to_retry_does_not_hammer_a_server_that_is_up():
    """A port that accepts (the server is up but refused the stream: 404, already publishing) is looked
    at once, and the wait runs its whole backoff delay: one connection per full open, no more."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        start = time.monotonic()
        assert wait_to_retry(0.8, threading.Event(), readiness_probe(f"rtmp://127.0.0.1:{port}/live/x"), 0.05)
        waited = time.monotonic() - start
        server.setblocking(False)
        looks = 0
        while True:
            try:
                server.accept()[0].close()
            except BlockingIOError:
                break
            looks += 1
    assert 0.75 <= waited <= 1.3, waited
    assert looks == 1


def test_wait_to_retry_returns_false_at_once_when_stopped():
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    start = time.monotonic()
    assert not wait_to_retry(10.0, stop, readiness_probe(f"rtsp://127.0.0.1:{free_port()}/cam"), 0.25)
    assert time.monotonic() - start < 0.2 + 0.25 + 0.6  # the look in progress (≤ 0.5 s) finishes first


def test_a_source_that_never_opens_fails_the_job_after_the_start_timeout():
    runner = make_runner(f"rtsp://127.0.0.1:{free_port()}/cam", [SinkSpec("null")], start_timeout=1.5)
    start = time.monotonic()
    with pytest.raises(RifestreamError, match=r"Connection refused.*did not open within 1\.5 s of the start"):
        run_blocking(runner)
    assert 1.4 <= time.monotonic() - start <= 2.5


def test_the_duration_bounds_a_job_whose_source_never_opens():
    runner = make_runner(f"rtmp://127.0.0.1:{free_port()}/live/cam", [SinkSpec("null")], duration=1.0,
                         start_timeout=30)  # fmt: skip
    start = time.monotonic()
    with pytest.raises(RifestreamError, match=r"did not open within the duration, 1 s"):
        run_blocking(runner)
    assert 0.9 <= time.monotonic() - start <= 2.0


def test_a_stop_before_the_source_opens_ends_the_job_quietly():
    """Ctrl-C while waiting for the source is the user's choice, not a failure: a summary, no error."""
    runner = make_runner(f"rtsp://127.0.0.1:{free_port()}/cam", [SinkSpec("null")], start_timeout=30)
    threading.Timer(0.5, runner.stop).start()
    start = time.monotonic()
    summary = run_blocking(runner)
    assert time.monotonic() - start < 1.5
    assert summary.notes == ["stopped before the source could be opened"] and summary.frames_in == 0


def test_an_rtmp_sink_that_never_opens_fails_the_job_after_the_start_timeout(tmp_path):
    """The other sink gets the stream while the RTMP server is retried; then the job fails, the file
    finished and playable."""
    out = tmp_path / "kept.mkv"
    runner = make_runner("testsrc:?size=96x64&fps=30", [SinkSpec(f"rtmp://127.0.0.1:{free_port()}/live/k"),
                         SinkSpec(str(out))], start_timeout=1.5)  # fmt: skip
    start = time.monotonic()
    with pytest.raises(RifestreamError, match=r"cannot connect.*the sink did not open within 1\.5 s of the start"):
        run_blocking(runner)
    assert time.monotonic() - start <= 3.0
    assert len(decoded(out)) > 60  # ~1.5 s at 60 fps


def test_a_source_server_that_accepts_and_never_answers_is_given_up_at_the_start_timeout():
    """A port that accepts the connection and then says nothing (a hung server): FFmpeg's own open would
    wait its full timeout; the job gives up at ``start_timeout`` all the same, naming the source."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/cam"
        runner = Runner(open_source=lambda: open_source(url, open_timeout=20, read_timeout=20),
                        sinks=[SinkSpec("null")], engine=FrameEngine("cpu"), clock=OutputClock(factor=2),
                        start_timeout=1.5, source_url=url)  # fmt: skip
        start = time.monotonic()
        with pytest.raises(RifestreamError, match=rf"{url}: its first open has not returned.*within 1\.5 s"):
            run_blocking(runner)
        assert time.monotonic() - start <= 2.5


def test_a_job_whose_duration_ends_before_its_rtmp_sink_ever_opened_fails():
    """The duration (1 s) ends the job before the start timeout (30 s): it stops on time, but a sink
    that never opened delivered nothing, which is an error, not a success."""
    runner = make_runner("testsrc:?size=96x64&fps=30", [SinkSpec(f"rtmp://127.0.0.1:{free_port()}/live/k")],
                         duration=1.0, start_timeout=30)  # fmt: skip
    start = time.monotonic()
    with pytest.raises(RifestreamError, match=r"Connection refused.*the sink never opened before the job ended"):
        run_blocking(runner)
    assert time.monotonic() - start <= 2.0
