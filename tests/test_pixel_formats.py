"""Inputs in every common pixel format through ``interpolate`` and ``run`` (issue 19, item 9).

For each format a 6-frame clip is encoded here (ffv1, ffvhuff, raw video or MJPEG: whatever stores
the format), then raised 2x by ``rifestream interpolate`` (lossless ffv1 to .mkv, and the
default libx264 to .mp4) and by ``rifestream run --source FILE`` (libx264 .mp4). Each output must have
2N − 1 frames, and its pass-through frames must match the source's frames as FFmpeg decodes them.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from rifestream.io.encoders import default_pix_fmt
from rifestream.model import OFFICIAL_ARCHS, IFNet
from rifestream.model.checkpoint import save_official_format
from tests.cli_fork import run_commands

W, H, N = 64, 48, 6

# pixel format → (encoder that stores it, container)
FORMATS = {
    "bgr0": ("ffv1", "mkv"),
    "bgra": ("ffv1", "mkv"),
    "rgb24": ("rawvideo", "nut"),
    "bgr24": ("rawvideo", "nut"),
    "rgba": ("rawvideo", "nut"),
    "gbrp": ("ffvhuff", "nut"),
    "gray": ("ffv1", "mkv"),
    "gray16le": ("ffv1", "mkv"),
    "yuv444p": ("ffv1", "mkv"),
    "yuv422p": ("ffv1", "mkv"),
    "yuv420p10le": ("ffv1", "mkv"),
    "yuva420p": ("ffv1", "mkv"),
    "nv12": ("rawvideo", "nut"),
    "yuvj420p": ("mjpeg", "mkv"),
}
# Mean absolute error (0-255) of the pass-through frames against the source, per output: measured at
# most 1.6 (ffv1: swscale's 4:2:0 → RGB paths differ by that), 2.7 (x264, crf 18) and 3.4 (run, crf 23).
# A swapped channel costs ~60, a wrong range ~10.
BOUND = {"ffv1": 2.0, "x264": 4.0, "run": 5.0}


def frame_image(i: int) -> np.ndarray:
    """Smooth ramps that move 2 px a frame: 4:2:0 chroma costs little, a swapped channel or range a lot."""
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([40 + 3 * xx + 2 * i, 30 + 4 * yy, 200 - 2 * xx - yy - i], -1).astype(np.uint8)


def make_clip(path: Path, pix_fmt: str, codec: str) -> list[np.ndarray]:
    """An N-frame clip stored in ``pix_fmt``; returns its frames as FFmpeg decodes them, in RGB."""
    with av.open(str(path), "w") as c:
        stream = c.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        for i in range(N):
            frame = av.VideoFrame.from_ndarray(frame_image(i), format="rgb24").reformat(format=pix_fmt)
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "flownet.pkl"
    save_official_format(IFNet(OFFICIAL_ARCHS["v4.6"]), path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ffv1", "x264", "run"])
def test_every_pixel_format_goes_through_interpolate_and_run(tmp_path, checkpoint, kind):
    """ffv1, x264: ``rifestream interpolate`` to lossless .mkv / default .mp4; run: ``rifestream run``."""
    cases = []  # (format, output, argv)
    sources = {}
    for pix_fmt, (codec, ext) in FORMATS.items():
        clip = tmp_path / f"{pix_fmt}.{ext}"
        sources[pix_fmt] = make_clip(clip, pix_fmt, codec)
        assert len(sources[pix_fmt]) == N
        if kind == "ffv1":
            out = tmp_path / f"{pix_fmt}.mkv"
            argv = ["interpolate", str(clip), str(out), "--model", str(checkpoint), "--codec", "ffv1"]
        elif kind == "x264":
            out = tmp_path / f"{pix_fmt}.mp4"
            argv = ["interpolate", str(clip), str(out), "--model", str(checkpoint)]
        else:
            out = tmp_path / f"{pix_fmt}.mp4"
            argv = ["run", "--source", str(clip), "--sink", str(out), "--force-step", "blend", "--no-metrics",
                    "--threads", "1"]  # fmt: skip
        cases.append((pix_fmt, out, argv))
    results = run_commands([argv for *_, argv in cases], tmp_path / "logs", timeout=60)
    errors = {}
    for (pix_fmt, out, _), result in zip(cases, results, strict=True):
        assert result.returncode == 0 and not result.timed_out, f"{pix_fmt}: {result.output[-1500:]}"
        frames = decoded(out)
        assert len(frames) == 2 * N - 1, (pix_fmt, len(frames))
        passed = np.stack(frames[::2]).astype(np.float64)
        errors[pix_fmt] = round(float(np.abs(passed - np.stack(sources[pix_fmt])).mean()), 2)
    print(kind, errors)
    assert max(errors.values()) <= BOUND[kind], errors


def test_ffv1_of_a_bgr0_input_is_exact_through_the_pass_through_copy(tmp_path):
    """The issue's case at the sink: a bgr0 frame into an ffv1 (bgr0) file needs a copy that
    ``to_ndarray`` could not make; pixels come out unchanged."""
    from fractions import Fraction

    from rifestream.io.frames import OutputFrame
    from rifestream.io.sinks import open_sink

    source = [av.VideoFrame.from_ndarray(frame_image(i), format="rgb24").reformat(format="bgr0") for i in range(3)]
    path = tmp_path / "out.mkv"
    sink = open_sink(str(path), width=W, height=H, rate=Fraction(30), time_base=Fraction(1, 30), codec="ffv1")
    for i, frame in enumerate(source):
        assert sink.write(OutputFrame(frame, Fraction(i, 30), Fraction(i, 30), 0.0, False, None, 0.0, i))
    sink.close()
    assert [np.array_equal(a, frame_image(i)) for i, a in enumerate(decoded(path))] == [True] * 3


@pytest.mark.parametrize(
    ("codec", "expected"),
    [
        ("libx264", "yuv420p"),
        ("ffv1", "bgr0"),
        ("libx264rgb", "bgr0"),
        ("prores_ks", "yuv422p10le"),
        ("png", "rgb24"),
        ("mjpeg", "yuvj420p"),
    ],  # fmt: skip
)
def test_the_output_pixel_format_is_one_the_encoder_takes(tmp_path, codec, expected):
    """The default pixel format of each encoder is one it takes, and a bgr0 input encodes with it."""
    from fractions import Fraction

    from rifestream.io.frames import OutputFrame
    from rifestream.io.sinks import open_sink

    assert default_pix_fmt(codec) == expected
    assert expected in {f.name for f in av.Codec(codec, "w").video_formats}
    path = tmp_path / ("out.mov" if codec == "prores_ks" else "out.nut")
    sink = open_sink(str(path), width=W, height=H, rate=Fraction(30), time_base=Fraction(1, 30), codec=codec)
    for i in range(3):
        frame = av.VideoFrame.from_ndarray(frame_image(i), format="rgb24").reformat(format="bgr0")
        assert sink.write(OutputFrame(frame, Fraction(i, 30), Fraction(i, 30), 0.0, False, None, 0.0, i))
    sink.close()
    got = np.stack(decoded(path)).astype(np.float64)
    assert len(got) == 3
    assert np.abs(got - np.stack([frame_image(i) for i in range(3)])).mean() < 4.0
