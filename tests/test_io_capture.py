"""Screen capture: the ``capture:`` form on every platform, and x11grab under Xvfb for real."""

from __future__ import annotations

import numpy as np
import pytest

from rifestream.errors import RifestreamError
from rifestream.io.capture import capture_input
from rifestream.io.sources import open_source
from rifestream.io.stream_errors import SourceLost


def test_x11grab_mapping():
    cap = capture_input("capture:x11grab?display=:7&size=640x360&fps=60&offset=10,20&cursor=0", platform="linux")
    assert (cap.file, cap.format) == (":7+10,20", "x11grab")
    assert cap.options == {"framerate": "60", "video_size": "640x360", "draw_mouse": "0"}
    assert cap.rate == 60


def test_default_backend_follows_the_platform(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":42")
    assert capture_input("capture:", platform="linux").file == ":42+0,0"
    assert capture_input("capture:?fps=30", platform="win32").format == "gdigrab"
    assert capture_input("capture:", platform="darwin").format == "avfoundation"


def test_windows_and_macos_mappings():
    gdi = capture_input("capture:gdigrab?window=My%20Game&fps=60&offset=5,6", platform="win32")
    assert (gdi.file, gdi.format) == ("title=My Game", "gdigrab")
    assert gdi.options == {"framerate": "60", "offset_x": "5", "offset_y": "6", "draw_mouse": "1"}
    dda = capture_input("capture:ddagrab?monitor=1&fps=60&size=1280x720", platform="win32")
    assert dda.format == "lavfi"
    assert dda.file == "ddagrab=output_idx=1:framerate=60:draw_mouse=1:video_size=1280x720,hwdownload,format=bgra"
    mac = capture_input("capture:avfoundation?fps=30&cursor=0", platform="darwin")
    assert (mac.file, mac.format, mac.options["capture_cursor"]) == ("Capture screen 0:none", "avfoundation", "0")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("capture:dxgi", "unknown capture backend 'dxgi'"),
        ("capture:x11grab?offset=1", "offset must be X,Y"),
        ("capture:x11grab?fps=fast", "fps must be a number"),
        ("capture:x11grab?screen=1", "unknown option screen"),
    ],
)
def test_capture_errors(url, expected):
    with pytest.raises(RifestreamError, match=expected):
        capture_input(url)


def test_capture_of_a_display_that_does_not_exist_is_a_clear_error():
    with pytest.raises(RifestreamError) as info:
        open_source("capture:x11grab?display=:987&fps=30", open_timeout=3)
    assert "capture:x11grab?display=:987" in str(info.value) and "cannot open the capture device" in str(info.value)
    assert not isinstance(info.value, SourceLost)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_x11grab_under_xvfb_delivers_moving_frames_of_the_display_size(xvfb_display):
    url = f"capture:x11grab?display={xvfb_display.display}&fps=30"
    with open_source(url, open_timeout=10, read_timeout=3) as src:
        info = src.info
        frames = []
        for f in src.frames():
            frames.append(f)
            if len(frames) == 30:
                break
    assert (info.width, info.height, info.live) == (320, 240, True)
    assert info.rate == 30  # the grab's rate, not the stream's guess (x11grab's says 120 or more)
    assert all((f.video.width, f.video.height) == (320, 240) for f in frames)
    times = [f.time for f in frames]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert float(times[-1] - times[0]) == pytest.approx(29 / 30, rel=0.1)
    images = [f.video.to_ndarray(format="rgb24").astype(np.int16) for f in frames]
    changed = [np.abs(a - b).mean() > 0.5 for a, b in zip(images, images[1:], strict=False)]
    assert sum(changed) >= len(changed) // 2  # the polyhedron moves on screen
    # a region of the screen, as a game window would be
    region = f"capture:x11grab?display={xvfb_display.display}&size=160x120&offset=40,30&fps=30"
    with open_source(region, open_timeout=10, read_timeout=3) as src:
        first = next(src.frames())
    assert (first.video.width, first.video.height) == (160, 120)
