"""Shared fixtures: the real test servers of ``tests/servers.py`` (started per test, always stopped)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import NginxRtmp, RtspServer, ServerUnavailable, XvfbDisplay


def _start(server):
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise


@pytest.fixture
def nginx_rtmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxRtmp]:
    """nginx-rtmp on a free loopback port; ``.url("name")`` is a live stream URL."""
    try:
        server = NginxRtmp(tmp_path_factory.mktemp("nginx"))
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    yield _start(server)
    server.stop()


@pytest.fixture
def rtsp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtspServer]:
    """GStreamer's RTSP server with a 320x240 30 fps live test pattern at ``.url``; ``.kill()``/``.start()``."""
    try:
        server = RtspServer(tmp_path_factory.mktemp("rtsp"))
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    yield _start(server)
    server.stop()


@pytest.fixture
def xvfb_display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XvfbDisplay]:
    """Xvfb (320x240) with something moving on it; ``.display`` is like ``:3``."""
    try:
        server = XvfbDisplay(tmp_path_factory.mktemp("xvfb"))
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    yield _start(server)
    server.stop()
