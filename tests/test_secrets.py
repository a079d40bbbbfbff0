"""Secrets in URLs (issue 19, item 2): userinfo, RTMP stream keys and secret query values never leave the
process. The redaction itself is tested on a table; then real jobs and commands run against the real servers
(GStreamer RTSP, nginx-rtmp, pyzmq subscribers) and all their output is searched for the secrets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest

from rifestream.io.url_redact import redact_text, redact_url
from tests.servers import free_port


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://user:secret@127.0.0.1:8554/test", "rtsp://***@127.0.0.1:8554/test"),
        ("rtsp://admin:p@ss@cam.local/stream1", "rtsp://***@cam.local/stream1"),
        ("rtsp://onlyuser@cam/s", "rtsp://***@cam/s"),
        ("rtsp://user:pa/ss@cam/s", "rtsp://***@cam/s"),  # a "/" in the password
        ("rtsp://cam:554/stream@main", "rtsp://cam:554/stream@main"),  # an "@" in the path
        ("https://medium.example/@user/post", "https://medium.example/@user/post"),
        ("rtmp://127.0.0.1/live/SECRETKEY", "rtmp://127.0.0.1/live/***"),
        ("rtmp://bob:secret@127.0.0.1:1935/live/SECRETKEY", "rtmp://***@127.0.0.1:1935/live/***"),
        ("rtmps://a.rtmp.youtube.com/live2/abcd-efgh", "rtmps://a.rtmp.youtube.com/live2/***"),
        ("rtmp://127.0.0.1/KEY", "rtmp://127.0.0.1/***"),  # one element: the key or the application
        ("rtmp://127.0.0.1/live/", "rtmp://127.0.0.1/live/"),
        ("RTMP://h/app/inst/KEY?x=1", "RTMP://h/app/inst/***?x=1"),
        (
            "srt://h:9000?mode=caller&passphrase=hunter22&latency=200",
            "srt://h:9000?mode=caller&passphrase=***&latency=200",
        ),
        (
            "https://h/live.m3u8?token=abc&Password=x&stream_key=k&a=b",
            "https://h/live.m3u8?token=***&Password=***&stream_key=***&a=b",
        ),
        ("http://h/x?passwd=1&key=2&access_token=3#auth=4", "http://h/x?passwd=***&key=***&access_token=***"),
        ("http://h/x#access_token=4&a=b", "http://h/x#access_token=***&a=b"),
        ("srt://ingest:9000?streamid=#!::r=live/KEY9,m=publish", "srt://ingest:9000?streamid=***"),
        ("zmq://127.0.0.1:5555?hwm=4&lossy=1", "zmq://127.0.0.1:5555?hwm=4&lossy=1"),
        ("testsrc:?size=640x360&fps=30", "testsrc:?size=640x360&fps=30"),
        ("capture:x11grab?display=:0&fps=30", "capture:x11grab?display=:0&fps=30"),
        ("out/clip.mp4", "out/clip.mp4"),
        ("null", "null"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_finds_every_url_and_keeps_the_punctuation_around_it() -> None:
    text = (
        "cannot read 'rtsp://u:pw1@h/x': refused; sinks: rtmp://h/live/KEY2, null "
        "(srt://h:1?passphrase=pp3). rtmp://b:pw4@h:1935/app/KEY5: gone"
    )
    shown = redact_text(text)
    for secret in ("pw1", "KEY2", "pp3", "pw4", "KEY5"):
        assert secret not in shown
    assert shown == (
        "cannot read 'rtsp://***@h/x': refused; sinks: rtmp://h/live/***, null "
        "(srt://h:1?passphrase=***). rtmp://***@h:1935/app/***: gone"
    )
    assert redact_text("no URL here: out.mp4, 127.0.0.1:9108") == "no URL here: out.mp4, 127.0.0.1:9108"


# ----- real jobs and commands: nothing they print, serve or publish holds a secret -----------------------
CAM_USER, CAM_PASSWORD = "camuser7", "SECRETPW1cam"
RTMP_USER, RTMP_PASSWORD, STREAM_KEY = "bobuser8", "SECRETPW2rtmp", "SECRETKEY3stream"
SECRETS = (CAM_USER, CAM_PASSWORD, RTMP_USER, RTMP_PASSWORD, STREAM_KEY)
REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _cli(*argv: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rifestream", "-v", *argv],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


class LineWatcher(threading.Thread):
    """Collects a pipe's lines; ``wait_for(pattern, timeout)`` blocks until one matches (bounded)."""

    def __init__(self, pipe) -> None:
        super().__init__(daemon=True)
        self.pipe, self.lines = pipe, []
        self._changed = threading.Condition()

    def run(self) -> None:
        for line in self.pipe:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                hit = next((line for line in self.lines if regex.search(line)), None)
                left = deadline - time.monotonic()
                if hit is not None or left <= 0:
                    break
                self._changed.wait(left)
        assert hit is not None, f"no line matching {pattern!r} within {timeout:g} s:\n{''.join(self.lines[-40:])}"
        return hit


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except urllib.error.HTTPError as exc:  # /healthz answers 503 while the source is down
        return exc.read().decode()


@pytest.mark.slow
def test_a_live_job_with_credentials_shows_no_secret_anywhere(tmp_path, rtsp_server, nginx_rtmp):
    """An RTSP camera with user:password, an RTMP ingest with user:password and a stream key, a ZMQ feed and
    metrics; the camera and the RTMP server each go away and come back, so every loss, retry and recovery
    line is printed (debug level). Searched for the secrets: all of stderr and stdout, /metrics and /healthz
    (while up and while the source is down) and the raw ZMQ messages."""
    import zmq

    source = f"rtsp://{CAM_USER}:{CAM_PASSWORD}@127.0.0.1:{rtsp_server.port}/test"
    sink = f"rtmp://{RTMP_USER}:{RTMP_PASSWORD}@127.0.0.1:{nginx_rtmp.port}/live/{STREAM_KEY}"
    feed_port, metrics_port = free_port(), free_port()
    (tmp_path / "secret.toml").write_text(
        f'duration = 50\n[source]\nurl = "{source}"\n'
        f'[[sinks]]\nurl = "{sink}"\n[[sinks]]\nurl = "zmq://127.0.0.1:{feed_port}"\n'
        '[latency]\nforce_step = "blend"\n[engine]\nthreads = 1\n'
        "[reconnect]\ninitial_delay_s = 0.2\nmax_delay_s = 1.0\nstall_timeout_s = 3.0\n"
        f"[metrics]\nport = {metrics_port}\n"
    )
    context = zmq.Context.instance()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVTIMEO, 5000)
    sub.connect(f"tcp://127.0.0.1:{feed_port}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rifestream", "-v", "run", "secret.toml"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = LineWatcher(proc.stderr)
    err.start()
    served: list[str] = []
    messages: list[bytes] = []
    try:
        started = err.wait_for(r"sinks: ", 30)  # the start-up line names the source and every sink
        assert f"rtsp://***@127.0.0.1:{rtsp_server.port}/test" in started
        assert f"rtmp://***@127.0.0.1:{nginx_rtmp.port}/live/***" in started
        for _ in range(5):
            messages += sub.recv_multipart()[:2]  # topic and header (the pixels carry no text)
        metrics = f"http://127.0.0.1:{metrics_port}"
        served += [_get(f"{metrics}/metrics"), _get(f"{metrics}/healthz")]

        rtsp_server.kill()  # the camera goes away: source lost, retries, /healthz says so
        err.wait_for(r"source lost", 15)
        served.append(_get(f"{metrics}/healthz"))
        time.sleep(1.5)
        rtsp_server.start()
        err.wait_for(r"source back: ", 20)

        nginx_rtmp.stop()  # the RTMP server goes away: sink lost, retries
        err.wait_for(r"sink .* (lost|unreachable|no write progress)", 15)
        time.sleep(1.5)
        nginx_rtmp.start()
        err.wait_for(r"sink \S+ back$", 20)
        for _ in range(5):
            messages += sub.recv_multipart()[:2]
        served += [_get(f"{metrics}/metrics"), _get(f"{metrics}/healthz")]
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=30)
    finally:
        sub.close(linger=0)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err.join(5)
    stderr = "".join(err.lines)
    assert proc.returncode == 0, stderr[-3000:]
    assert "frames out" in stdout and "reconnects" in stdout
    assert re.search(r"reconnects\s+.*sink \d+", stdout) and re.search(r"reconnects\s+.*source \d+", stdout), stdout
    assert len(err.lines) > 10 and "DEBUG" in stderr  # debug level was on
    everything = {"stderr": stderr, "stdout": stdout, "served": "\n".join(served)}
    everything["zmq"] = b"\n".join(messages).decode("utf-8", "replace")
    assert "rifestream_" in everything["served"] and '"source_up"' in everything["served"]
    assert {name: _leaks(text) for name, text in everything.items()} == dict.fromkeys(everything, [])
    assert "***" in stderr


@pytest.mark.slow
def test_probe_and_error_lines_show_no_secret(tmp_path, rtsp_server):
    source = f"rtsp://{CAM_USER}:{CAM_PASSWORD}@127.0.0.1:{rtsp_server.port}/test"
    probe = _cli("probe", source, "--seconds", "1", cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert f"input      rtsp://***@127.0.0.1:{rtsp_server.port}/test" in probe.stdout
    closed = free_port()
    outputs = [probe.stdout + probe.stderr]
    for argv in (
        ["probe", f"rtsp://{CAM_USER}:{CAM_PASSWORD}@127.0.0.1:{closed}/x", "--timeout", "2"],  # refused
        ["probe", f"rtmp://{RTMP_USER}:{RTMP_PASSWORD}@127.0.0.1:99999/live/{STREAM_KEY}"],  # bad port
        ["run", "--no-metrics", "--sink", f"rtmp://{RTMP_USER}:{RTMP_PASSWORD}@127.0.0.1:99999/live/{STREAM_KEY}"],
        ["run", "--no-metrics", "--sink", f"rtmp://{RTMP_USER}:{RTMP_PASSWORD}@127.0.0.1/{STREAM_KEY}"],  # no app
    ):
        done = _cli(*argv, cwd=tmp_path)
        assert done.returncode == 2 and "error: " in done.stderr, (argv, done.stderr)
        outputs.append(done.stdout + done.stderr)
    assert [_leaks(text) for text in outputs] == [[] for _ in outputs], outputs


@pytest.mark.slow
def test_an_unreachable_source_and_the_offline_job_show_no_secret(tmp_path, nginx_rtmp):
    closed = free_port()
    outputs = []
    # a source that is not up yet: "source not reachable" and retry lines, then the job ends (duration or
    # start timeout, whichever the job has)
    waiting = _cli("run", "--source", f"rtsp://{CAM_USER}:{CAM_PASSWORD}@127.0.0.1:{closed}/test", "--sink", "null",
                   "--duration", "3", "--no-metrics", "--force-step", "blend", cwd=tmp_path)  # fmt: skip
    assert re.search(r"rtsp://\*\*\*@127\.0\.0\.1:\d+/test", waiting.stderr), waiting.stderr
    outputs.append(waiting.stdout + waiting.stderr)
    # the offline job into an RTMP server with a stream key: start-up line and summary
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    pushed = _cli("interpolate", str(clip), f"rtmp://{RTMP_USER}:{RTMP_PASSWORD}@127.0.0.1:{nginx_rtmp.port}/live/"
                  f"{STREAM_KEY}", "--no-progress", "--model", "rifestream-v1", cwd=tmp_path)  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    assert f"rtmp://***@127.0.0.1:{nginx_rtmp.port}/live/***" in pushed.stderr
    outputs.append(pushed.stdout + pushed.stderr)
    assert [_leaks(text) for text in outputs] == [[] for _ in outputs], outputs


def test_a_lost_stream_keeps_its_url_to_reconnect_but_shows_it_redacted():
    from rifestream.io.stream_errors import SinkLost, SourceLost

    lost = SourceLost(f"rtsp://{CAM_USER}:{CAM_PASSWORD}@cam/s", "timed out")
    assert str(lost) == "rtsp://***@cam/s: timed out" and lost.url.startswith(f"rtsp://{CAM_USER}:")
    gone = SinkLost(f"rtmp://ingest/live/{STREAM_KEY}", "Broken pipe")
    assert str(gone) == "rtmp://ingest/live/***: Broken pipe" and gone.url.endswith(STREAM_KEY)


def test_usage_errors_quote_a_mistyped_url_redacted(capsys):
    from rifestream.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["run", "--factor", f"rtmp://{RTMP_USER}:{RTMP_PASSWORD}@h/live/{STREAM_KEY}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid int value: 'rtmp://***@h/live/***'" in err and _leaks(err) == []


def test_open_errors_show_the_url_redacted():
    """FFmpeg's refusals as the io layer words them (401, 404, bad data): the URL is masked in the message."""
    from rifestream.io.av_errors import open_error

    url = f"rtsp://{CAM_USER}:{CAM_PASSWORD}@cam/stream?token={STREAM_KEY}"
    for error in (
        av.error.HTTPUnauthorizedError(1, "Unauthorized", url),
        av.error.HTTPNotFoundError(2, "Not Found", url),
        av.error.InvalidDataError(3, "Invalid data", url),
        ConnectionRefusedError(111, "Connection refused"),
    ):
        text = str(open_error(url, error, "read"))
        assert "rtsp://***@cam/stream?token=***" in text and _leaks(text) == [], text
