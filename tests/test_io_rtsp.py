"""RTSP source against GStreamer's RTSP server: frame rate, loss when the server dies, reopen after restart."""

from __future__ import annotations

import time

import pytest

from rifestream.errors import RifestreamError
from rifestream.io.sources import open_source
from rifestream.io.stream_errors import SourceLost

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def take(source, n: int):
    frames = []
    for f in source.frames():
        frames.append(f)
        if len(frames) == n:
            break
    return frames


def test_rtsp_source_delivers_thirty_frames_a_second(rtsp_server):
    with open_source(rtsp_server.url, open_timeout=15, read_timeout=3) as src:
        info = src.info
        frames = take(src, 75)
    assert (info.width, info.height, info.live) == (320, 240, True)
    assert info.rate == 30
    times = [f.time for f in frames]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    steady = frames[15:]  # after the burst of what was read while probing
    media_rate = (len(steady) - 1) / float(steady[-1].time - steady[0].time)
    wall_rate = (len(steady) - 1) / (steady[-1].arrival - steady[0].arrival)
    assert media_rate == pytest.approx(30, rel=0.02)
    assert wall_rate == pytest.approx(30, rel=0.15)  # frames arrive as they are produced, not in bursts


def test_rtsp_server_killed_mid_stream_then_restarted(rtsp_server):
    read_timeout = 2.0
    src = open_source(rtsp_server.url, open_timeout=15, read_timeout=read_timeout)
    frames = src.frames()
    for _ in range(10):
        next(frames)
    rtsp_server.kill()
    killed = time.monotonic()
    with pytest.raises(SourceLost) as info:
        for _ in range(1000):  # what was buffered, then the loss
            next(frames)
    assert time.monotonic() - killed < read_timeout + 2
    assert rtsp_server.url in str(info.value)
    src.close()

    with pytest.raises(SourceLost):  # while it is down, reopening is a loss (retry), not a user error
        open_source(rtsp_server.url, open_timeout=3, read_timeout=1)

    rtsp_server.start()  # same port
    with open_source(rtsp_server.url, open_timeout=15, read_timeout=3) as again:
        more = take(again, 15)
    assert len(more) == 15 and (more[0].video.width, more[0].video.height) == (320, 240)


def test_rtsp_unknown_path_is_a_user_error(rtsp_server):
    url = rtsp_server.url.replace("/test", "/nope")
    with pytest.raises(RifestreamError) as info:
        open_source(url, open_timeout=5, read_timeout=3)
    assert not isinstance(info.value, SourceLost)
    assert url in str(info.value)


def test_the_readiness_probe_sees_the_rtsp_server_go_and_come_back(rtsp_server):
    """The cheap look the reconnect uses between full opens: a TCP connect to the server's port."""
    from rifestream.io.endpoint_probe import readiness_probe

    probe = readiness_probe(rtsp_server.url)
    assert probe is not None and probe()
    rtsp_server.kill()
    start = time.monotonic()
    assert not probe()
    assert time.monotonic() - start < 0.1  # a refused port answers at once: looking costs nothing
    rtsp_server.start()
    assert probe()
    assert readiness_probe("udp://127.0.0.1:5000") is None  # no TCP port to look at: backoff alone
