"""A generic live URL both ways, no server needed: MPEG-TS over UDP on loopback (our live sink → our source)."""

from __future__ import annotations

import threading
from fractions import Fraction

import pytest

from rifestream.io.frames import OutputFrame
from rifestream.io.sinks import open_sink
from rifestream.io.sources import open_source
from rifestream.io.stream_errors import SourceLost
from rifestream.io.synthetic_scene import read_frame_index
from tests.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def test_mpeg_ts_over_udp_round_trip():
    port = free_port()
    got: dict = {"frames": []}

    def reader():
        try:
            url = f"udp://127.0.0.1:{port}?fifo_size=100000&overrun_nonfatal=1"
            with open_source(url, open_timeout=10, read_timeout=2) as src:
                got["info"] = src.info
                for f in src.frames():
                    got["frames"].append((f.time, read_frame_index(f.video.to_ndarray(format="rgb24"))))
        except SourceLost as exc:  # the sender stopped: silence for read_timeout
            got["lost"] = exc
        except Exception as exc:
            got["error"] = exc

    thread = threading.Thread(target=reader)
    thread.start()  # what is sent before it binds its socket is lost: it starts at a later keyframe
    sink = open_sink(
        f"udp://127.0.0.1:{port}?pkt_size=1316", width=320, height=180, rate=Fraction(30), time_base=Fraction(1, 30),
        codec="libx264",
    )  # fmt: skip
    try:
        with open_source("testsrc:?size=320x180&fps=30&frames=120") as src:  # paced, 4 s
            for k, f in enumerate(src.frames()):
                sink.write(OutputFrame(f.video, f.time, f.time, 0.0, False, None, f.arrival, k))
    finally:
        sink.close()
    thread.join(20)
    assert "error" not in got, got.get("error")
    assert isinstance(got.get("lost"), SourceLost) and "timed out" in str(got["lost"])
    assert (got["info"].width, got["info"].height, got["info"].live) == (320, 180, True)
    indices = [i for _, i in got["frames"]]
    assert len(indices) >= 60  # it starts at the first keyframe it sees (0 or 2 s)
    assert indices == list(range(indices[0], 120))  # then every frame, in order, to the last
    times = [t for t, _ in got["frames"]]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
