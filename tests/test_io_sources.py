"""Sources: the test scene, files (round trip with audio, pacing) and errors for bad inputs."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from rifestream.errors import RifestreamError
from rifestream.io.frames import SourceAudio, SourceFrame
from rifestream.io.sources import open_source
from rifestream.io.stream_errors import SourceLost
from rifestream.io.synthetic_scene import SyntheticScene, read_frame_index
from tests.servers import free_port


def write_clip(
    path: Path,
    *,
    frames: int = 45,
    fps: int = 30,
    size=(160, 120),
    audio_codec: str | None = "aac",
    marker_frame: int | None = None,
):
    """A synthetic clip: each frame a distinct colour ramp, pts k in 1/fps; optional 440 Hz tone.

    With ``marker_frame`` k, frame k is white and the audio is silent except a
    0.1 s tone starting exactly at k / fps: a sync marker.
    """
    w, h = size
    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=fps)
    vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
    vs.codec_context.time_base = Fraction(1, fps)
    aus = None
    if audio_codec:
        aus = out.add_stream(audio_codec, rate=48000)
        aus.layout = "stereo"
    for k in range(frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 0] = (np.arange(w) * 255 // w)[None, :]
        img[:, :, 1] = (k * 5) % 256
        if k == marker_frame:
            img[:] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = k
        for packet in vs.encode(frame):
            out.mux(packet)
    for packet in vs.encode(None):
        out.mux(packet)
    if aus is not None:
        total = 48000 * frames // fps
        block = 1024 if audio_codec == "aac" else 960
        t = np.arange(total, dtype=np.float32) / 48000
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        if marker_frame is not None:
            start = marker_frame / fps
            tone[(t < start) | (t >= start + 0.1)] = 0.0
        fmt = aus.codec_context.format.name
        for start in range(0, total - block + 1, block):
            chunk = np.stack([tone[start : start + block]] * 2)
            if fmt == "s16":
                chunk = (chunk * 32767).astype(np.int16).T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="stereo")
            frame.sample_rate = 48000
            frame.pts = start
            for packet in aus.encode(frame):
                out.mux(packet)
        for packet in aus.encode(None):
            out.mux(packet)
    out.close()
    return path


# ----- the test scene ---------------------------------------------------


@pytest.mark.parametrize("fps", [Fraction(30), Fraction(30000, 1001), Fraction(25)])
def test_scene_timestamps_are_exact_multiples_of_the_frame_interval(fps):
    url = f"testsrc:?size=320x180&fps={fps.numerator}/{fps.denominator}&frames=40"
    with open_source(url, realtime=False) as src:
        assert (src.info.width, src.info.height, src.info.rate, src.info.time_base) == (320, 180, fps, 1 / fps)
        frames = list(src.frames())
    assert len(frames) == 40
    assert [f.time for f in frames] == [Fraction(k) / fps for k in range(40)]
    assert [f.video.pts for f in frames] == list(range(40))
    assert all(f.video.time_base == 1 / fps for f in frames)


def test_scene_moves_and_carries_its_frame_index():
    with open_source("testsrc:?size=320x180&fps=30&frames=31", realtime=False) as src:
        images = [f.video.to_ndarray(format="rgb24") for f in src.frames()]
    diffs = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(images, images[1:], strict=False)]
    assert min(diffs) > 5  # every frame differs clearly from the previous one (the background pans)
    assert [read_frame_index(img) for img in images] == list(range(31))
    # the shapes move too, not only the background: frames a second apart differ outside the texture's period
    scene = SyntheticScene(320, 180, Fraction(30))
    assert not np.array_equal(scene.render(0), scene.render(256))  # the pan repeats every 256 frames, the shapes do not


def test_scene_is_paced_like_a_camera_unless_asked_not_to():
    with open_source("testsrc:?size=160x120&fps=30&frames=16") as src:  # paced by default
        start = time.monotonic()
        arrivals = [f.arrival - start for f in src.frames()]
    assert arrivals[-1] == pytest.approx(15 / 30, abs=0.08)
    with open_source("testsrc:?size=160x120&fps=30&frames=16&realtime=0") as src:
        start = time.monotonic()
        list(src.frames())
        assert time.monotonic() - start < 15 / 30 * 0.8


def test_scene_duration_option_and_close_from_another_call():
    with open_source("testsrc:?size=160x120&fps=20&duration=1.5", realtime=False) as src:
        assert len(list(src.frames())) == 30
    src = open_source("testsrc:?size=160x120&fps=30", realtime=False)  # endless
    it = src.frames()
    next(it)
    src.close()
    assert list(it) == []


# ----- files --------------------------------------------------------------


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_file_round_trip_with_audio(tmp_path, ext):
    clip = write_clip(tmp_path / f"clip.{ext}", frames=45, fps=30)
    with open_source(str(clip)) as src:
        info = src.info
        items = list(src.read())
    assert (info.width, info.height, info.rate, info.live) == (160, 120, Fraction(30), False)
    assert info.audio is not None and info.audio.codec == "aac" and info.audio.sample_rate == 48000
    video = [i for i in items if isinstance(i, SourceFrame)]
    audio = [i for i in items if isinstance(i, SourceAudio)]
    assert len(video) == 45
    if ext == "mp4":  # the file keeps 1/30 exactly (time base 1/15360): so does the source
        assert [f.time for f in video] == [Fraction(k, 30) for k in range(45)]
    else:  # Matroska stores milliseconds: the source reports the file's times as they are
        assert info.time_base == Fraction(1, 1000)
        assert all(abs(f.time - Fraction(k, 30)) <= Fraction(1, 1000) for k, f in enumerate(video))
    assert [f.video.pts * info.time_base for f in video] == [f.time for f in video]
    greens = [int(np.median(f.video.to_ndarray(format="rgb24")[:, :, 1])) for f in video]
    assert all(abs(g - (k * 5) % 256) <= 3 for k, g in enumerate(greens))  # the right frames, in order
    assert len(audio) >= 45 * 48000 // 30 // 1024 - 2
    times = [a.time for a in audio]
    assert times == sorted(times) and times[-1] == pytest.approx(1.5, abs=0.1)


def test_file_without_audio_and_audio_turned_off(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=10, audio_codec=None)
    with open_source(str(clip)) as src:
        assert src.info.audio is None
        assert len(list(src.frames())) == 10
    clip = write_clip(tmp_path / "with_audio.mp4", frames=10)
    with open_source(str(clip), audio=False) as src:
        assert src.info.audio is None
        assert all(isinstance(i, SourceFrame) for i in src.read())


def test_file_realtime_pacing_follows_timestamps(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=16, fps=30, audio_codec=None)
    with open_source(str(clip), realtime=True) as src:
        start = time.monotonic()
        arrivals = [f.arrival - start for f in src.frames()]
    assert len(arrivals) == 16
    assert arrivals[-1] == pytest.approx(15 / 30, abs=0.1)
    assert all(b >= a for a, b in zip(arrivals, arrivals[1:], strict=False))


# ----- errors -------------------------------------------------------------


def _open_error(url: str, **kwargs) -> RifestreamError:
    with pytest.raises(RifestreamError) as info:
        open_source(url, **kwargs).close()
    return info.value


def test_missing_file_names_the_path(tmp_path):
    err = _open_error(str(tmp_path / "nope.mp4"))
    assert "no such file" in str(err) and "nope.mp4" in str(err)
    assert not isinstance(err, SourceLost)


def test_not_a_video_file(tmp_path):
    junk = tmp_path / "notes.mp4"
    junk.write_text("this is not a video\n" * 100)
    err = _open_error(str(junk))
    assert str(junk) in str(err) and "cannot read" in str(err)


def test_audio_only_file_has_no_video(tmp_path):
    path = tmp_path / "tone.m4a"
    out = av.open(str(path), "w")
    stream = out.add_stream("aac", rate=48000)
    for k in range(20):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, k * 1024
        for packet in stream.encode(frame):
            out.mux(packet)
    out.close()
    err = _open_error(str(path))
    assert "no video stream" in str(err)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("foo://example/stream", "cannot open foo:// URLs"),
        ("capture:bogus", "unknown capture backend 'bogus'"),
        ("capture:gdigrab", "not in this FFmpeg build"),
        ("capture:x11grab?size=big", "size must be WIDTHxHEIGHT"),
        ("testsrc:?size=10x10", "at least 64x48"),
        ("testsrc:?colour=red", "unknown option colour"),
        ("testsrc:?fps=0", "fps must be positive"),
        ("zmq://127.0.0.1", "needs a host and a port"),
        ("", "no source given"),
    ],
)
def test_bad_urls_raise_a_clear_error(url, expected):
    err = _open_error(url)
    assert expected in str(err)
    assert not isinstance(err, SourceLost)


def test_unreachable_live_server_is_a_source_lost_not_a_user_error():
    port = free_port()  # nothing listens here
    start = time.monotonic()
    with pytest.raises(SourceLost) as info:
        open_source(f"rtsp://127.0.0.1:{port}/cam", open_timeout=3, read_timeout=2)
    assert time.monotonic() - start < 5
    assert f"127.0.0.1:{port}" in str(info.value) and "Connection refused" in str(info.value)
