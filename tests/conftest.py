"""Shared fixtures: the real test servers of ``tests/servers.py`` (started per test, always stopped),
and ``one_torch_thread`` for tests that train or run small models (deterministic, no oversubscription)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import pytest

from tests.servers import NginxRtmp, RtspServer, ServerUnavailable, XvfbDisplay

Server = TypeVar("Server", NginxRtmp, RtspServer, XvfbDisplay)


def _serve(kind: type[Server], tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Server]:
    """Start one server in its own temp folder, skip if it cannot be had here, always stop it."""
    try:
        server = kind(tmp_path_factory.mktemp(name))
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def nginx_rtmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxRtmp]:
    """nginx-rtmp on a free loopback port; ``.url("name")`` is a live stream URL."""
    yield from _serve(NginxRtmp, tmp_path_factory, "nginx")


@pytest.fixture
def rtsp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtspServer]:
    """GStreamer's RTSP server with a 320x240 30 fps live test pattern at ``.url``; ``.kill()``/``.start()``."""
    yield from _serve(RtspServer, tmp_path_factory, "rtsp")


@pytest.fixture
def xvfb_display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XvfbDisplay]:
    """Xvfb (320x240) with something moving on it; ``.display`` is like ``:3``."""
    yield from _serve(XvfbDisplay, tmp_path_factory, "xvfb")


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
