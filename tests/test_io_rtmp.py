"""RTMP: our sink pushes FLV to nginx-rtmp; our RTMP source reads it back (real server, loopback)."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from rifestream.io.frames import OutputFrame, SourceAudio
from rifestream.io.sinks import open_sink
from rifestream.io.sources import open_source
from rifestream.io.stream_errors import SinkLost, SourceLost
from rifestream.io.synthetic_scene import read_frame_index
from tests.test_io_sources import write_clip

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def _reader(url: str, out: dict, opened: threading.Event) -> None:
    """Read the stream back until the publisher stops (SourceLost: the stream ended)."""
    try:
        with open_source(url, open_timeout=20, read_timeout=3) as src:
            out["info"] = src.info
            opened.set()
            for f in src.frames():
                index = read_frame_index(f.video.to_ndarray(format="rgb24"))
                out.setdefault("frames", []).append((f.time, f.arrival, index))
    except SourceLost as exc:
        out["lost"] = exc
    except Exception as exc:  # reported by the test
        out["error"] = exc
    finally:
        opened.set()


def test_rtmp_sink_to_nginx_and_back(nginx_rtmp):
    url = nginx_rtmp.url("cam")
    fps = 30
    sink = open_sink(url, width=320, height=180, rate=Fraction(fps), time_base=Fraction(1, fps), codec="libx264")
    got: dict = {}
    opened = threading.Event()
    reader = threading.Thread(target=_reader, args=(url, got, opened))
    n = 120  # 4 s at 30 fps, paced like a live stream; keyframe every 2 s
    try:
        with open_source(f"testsrc:?size=320x180&fps={fps}&frames={n}") as src:  # paced
            for k, f in enumerate(src.frames()):
                assert sink.write(OutputFrame(f.video, f.time, f.time, 0.0, False, None, f.arrival, k))
                if k == 2:
                    reader.start()  # a viewer joining a running stream
    finally:
        sink.close()
    reader.join(30)
    assert not reader.is_alive()
    assert "error" not in got, got.get("error")
    assert "info" in got, got
    info = got["info"]
    assert (info.width, info.height, info.live) == (320, 180, True)
    frames = got["frames"]
    assert len(frames) >= 45  # it joins at a keyframe (at most 2 s in) and gets the rest
    times = [t for t, _, _ in frames]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))  # strictly increasing
    indices = [i for _, _, i in frames]
    assert indices == list(range(indices[0], indices[0] + len(indices)))  # every frame, in order
    assert indices[-1] == n - 1
    # FLV keeps milliseconds: consecutive frames are 33 or 34 ms apart
    assert all(Fraction(32, 1000) <= b - a <= Fraction(35, 1000) for a, b in zip(times, times[1:], strict=False))
    assert isinstance(got.get("lost"), SourceLost)  # the publisher stopped: the reader is told, not left hanging


def test_rtmp_sink_reports_sink_lost_when_the_server_goes_away(nginx_rtmp):
    url = nginx_rtmp.url("gone")
    sink = open_sink(url, width=320, height=180, rate=Fraction(30), time_base=Fraction(1, 30), codec="libx264")
    frames = list(open_source("testsrc:?size=320x180&fps=30&frames=2", realtime=False).frames())
    sink.write(OutputFrame(frames[0].video, Fraction(0), Fraction(0), 0.0, False, None, 0.0, 0))
    nginx_rtmp.stop()
    start = time.monotonic()
    with pytest.raises(SinkLost) as info:
        for k in range(1, 3000):  # the socket buffer absorbs a little; then the write fails
            sink.write(OutputFrame(frames[k % 2].video, Fraction(k, 30), Fraction(k, 30), 0.0, False, None, 0.0, k))
    assert time.monotonic() - start < 15
    assert info.value.url == url and "rtmp://127.0.0.1:" in str(info.value)  # shown with the stream key masked
    assert "/live/gone" not in str(info.value) and "/live/***" in str(info.value)
    sink.close()  # safe after the loss
    nginx_rtmp.start()  # the server comes back: a new sink connects (what the runner's backoff does)
    again = open_sink(url, width=320, height=180, rate=Fraction(30), time_base=Fraction(1, 30), codec="libx264")
    assert again.write(OutputFrame(frames[0].video, Fraction(0), Fraction(0), 0.0, False, None, 0.0, 0))
    again.close()


def test_rtmp_carries_the_input_audio_in_sync(nginx_rtmp, tmp_path):
    """A white frame and a tone burst at the same instant (2.5 s) in the input stay together after
    the sink's audio copy, nginx-rtmp and the RTMP source."""
    marker = 75
    clip = write_clip(tmp_path / "with_audio.mp4", frames=120, fps=30, size=(160, 120), marker_frame=marker)
    url = nginx_rtmp.url("av")
    got: dict = {"video": [], "audio": []}

    def reader():
        try:
            with open_source(url, open_timeout=20, read_timeout=3) as src:
                got["info"] = src.info
                for item in src.read():
                    if isinstance(item, SourceAudio):
                        got["audio"].append(item.packet)
                    else:
                        got["video"].append((item.time, float(item.video.to_ndarray(format="gray").mean())))
        except SourceLost:
            pass
        except Exception as exc:
            got["error"] = exc

    thread = threading.Thread(target=reader)
    with open_source(str(clip), realtime=True) as src:  # paced like a live input
        sink = open_sink(
            url, width=160, height=120, rate=Fraction(30), time_base=Fraction(1, 30), audio=src.info.audio,
            codec="libx264",
        )  # fmt: skip
        try:
            for item in src.read():
                if isinstance(item, SourceAudio):
                    sink.write_audio(item)
                else:
                    sink.write(OutputFrame(item.video, item.time, item.time, 0.0, False, None, item.arrival, 0))
                    if not thread.is_alive() and item.time >= Fraction(1, 10):
                        thread.start()
        finally:
            sink.close()
    thread.join(30)
    assert "error" not in got, got.get("error")
    info = got["info"]
    assert info.audio is not None and info.audio.codec == "aac"
    assert len(got["video"]) >= 45 and len(got["audio"]) >= 60  # ≥ 1.5 s of each
    assert sink.stats.audio_packets >= 160  # the sink copied the input's audio (AAC packets of 1024 samples)

    flash_time = next(t for t, brightness in got["video"] if brightness > 200)
    decoder = av.CodecContext.create("aac", "r")
    decoder.extradata = info.audio.extradata
    tone_time = None
    for packet in got["audio"]:
        for frame in decoder.decode(packet):
            loud = np.flatnonzero(np.abs(frame.to_ndarray()).max(axis=0) > 0.05)
            if loud.size and tone_time is None:
                tone_time = frame.pts * frame.time_base + Fraction(int(loud[0]), frame.sample_rate)
    assert tone_time is not None
    assert abs(float(tone_time - flash_time)) < 0.04  # in sync within about a frame


class SilentTcpServer:
    """Accepts connections and answers with ``reply`` (then closes), or, with ``reply=None``, never answers."""

    def __init__(self, reply: bytes | None) -> None:
        import socket

        self.reply = reply
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.held: list = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            if self.reply is None:
                self.held.append(conn)  # open, silent
            else:
                conn.recv(4096)
                conn.sendall(self.reply)
                conn.close()

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


def test_rtmp_sink_to_a_server_that_never_answers_fails_in_time_without_freezing_the_process():
    """FFmpeg's own connect would wait forever holding the GIL; the handshake check gives up after 5 s."""
    server = SilentTcpServer(reply=None)
    ticks = []
    ticking = threading.Event()

    def tick() -> None:  # proves other threads keep running while the sink opens
        while not ticking.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.1)

    threading.Thread(target=tick, daemon=True).start()
    start = time.monotonic()
    try:
        with pytest.raises(SinkLost, match="no RTMP handshake .* within 5 s"):
            open_sink(f"rtmp://127.0.0.1:{server.port}/live/x", width=64, height=48, rate=Fraction(30),
                      time_base=Fraction(1, 30))  # fmt: skip
    finally:
        ticking.set()
        server.close()
    assert 4.5 < time.monotonic() - start < 8
    gaps = np.diff(ticks)
    assert len(ticks) > 30 and gaps.max() < 1.0, f"the process stalled for {gaps.max():.1f} s"


def test_rtmp_sink_to_a_server_that_is_not_rtmp_names_the_problem():
    from rifestream.errors import RifestreamError

    server = SilentTcpServer(reply=b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    try:
        with pytest.raises(RifestreamError, match="not as an RTMP server") as info:
            open_sink(f"rtmp://127.0.0.1:{server.port}/live/x", width=64, height=48, rate=Fraction(30),
                      time_base=Fraction(1, 30))  # fmt: skip
    finally:
        server.close()
    assert not isinstance(info.value, SinkLost)  # a wrong address is not retried as if the server were down


def test_a_reopened_rtmp_sink_continues_the_timeline_of_the_one_it_replaces(nginx_rtmp):
    """``continue_timeline(origin)``: the second sink on the same key stamps 10 s as 10 s (from the first
    sink's origin), not as 0; a player reads that back through nginx-rtmp."""
    url = nginx_rtmp.url("again")
    frames = list(open_source("testsrc:?size=160x120&fps=30&frames=2", realtime=False).frames())

    def publish(sink, first: int, count: int) -> None:
        for k in range(first, first + count):
            sink.write(OutputFrame(frames[k % 2].video, Fraction(k, 30), Fraction(k, 30), 0.0, False, None, 0.0, k))
            time.sleep(1 / 30)

    first = open_sink(url, width=160, height=120, rate=Fraction(30), time_base=Fraction(1, 30), codec="libx264")
    publish(first, 0, 15)
    first.close()
    again = open_sink(url, width=160, height=120, rate=Fraction(30), time_base=Fraction(1, 30), codec="libx264")
    again.continue_timeline(Fraction(0))
    got: list[Fraction] = []

    def play() -> None:
        options = {"probesize": "32768", "analyzeduration": "100000"}
        with av.open(url, options=options, timeout=(10, 3)) as container:
            for frame in container.decode(video=0):
                got.append(frame.pts * frame.time_base)
                if len(got) == 20:
                    break

    player = threading.Thread(target=play, daemon=True)
    player.start()
    try:
        time.sleep(0.5)  # the player is waiting on the key
        publish(again, 300, 60)  # 10 s … 12 s on the job's timeline
    finally:
        again.close()
    player.join(15)
    assert len(got) == 20
    assert Fraction(10) <= got[0] <= Fraction(12)  # not restarted at 0
    assert all(b > a for a, b in zip(got, got[1:], strict=False))
