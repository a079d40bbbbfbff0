"""`rifestream interpolate` end to end: a synthetic clip with audio and a random-weights official-format
checkpoint, through the real command line; frame counts, timestamps, pass-through pixels, audio, errors."""

import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from rifestream.model import OFFICIAL_ARCHS, IFNet
from rifestream.model.checkpoint import save_official_format

W, H, N = 96, 64, 12


def make_clip(path, fps: int = 30, frames: int = N, audio_seconds: float | None = None) -> list[np.ndarray]:
    """An h264 clip of a pattern moving 2 px a frame, with a stereo AAC track; returns its RGB frames as decoded."""
    yy, xx = np.mgrid[0:H, 0:W]
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        samples = int(48000 * (audio_seconds if audio_seconds is not None else frames / fps))
        sent = 0
        for i in range(frames):
            img = np.stack([((xx + 2 * i) % 32 * 8), ((yy + i) % 16 * 16), np.full_like(xx, 90)], -1).astype(np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
            while sent < min(samples, (i + 1) * samples // frames):
                n = min(1024, samples - sent)
                tone = np.sin(np.arange(sent, sent + n) * 2 * np.pi * 440 / 48000).astype(np.float32) * 0.2
                frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = 48000, sent
                sent += n
                for p in a.encode(frame):
                    c.mux(p)
        for stream in (v, a):
            for p in stream.encode():
                c.mux(p)
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def read_output(path):
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        frames, times = [], []
        for f in c.decode(video):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(Fraction(f.pts) * video.time_base)
    with av.open(str(path)) as c:
        audio_seconds = sum(f.samples for f in c.decode(audio=0)) / 48000 if c.streams.audio else 0.0
    return frames, times, audio_seconds


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rifestream", "interpolate", *args, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "flownet.pkl"
    save_official_format(IFNet(OFFICIAL_ARCHS["v4.6"]), path)
    return path


def test_2x_keeps_source_frames_puts_the_rest_halfway_and_keeps_the_audio(tmp_path, checkpoint):
    source = make_clip(tmp_path / "in.mp4")
    result = run_cli(str(tmp_path / "in.mp4"), str(tmp_path / "out.mkv"), "--model", str(checkpoint), "--codec", "ffv1")
    assert result.returncode == 0, result.stderr
    assert "frames out" in result.stdout
    frames, times, audio_seconds = read_output(tmp_path / "out.mkv")
    assert len(frames) == 2 * N - 1  # the last input frame ends the output
    assert [round(float(t), 3) for t in times] == [round(k / 60, 3) for k in range(2 * N - 1)]
    for i, original in enumerate(source):
        # pass-through: the decoded source frame, written losslessly (only the YUV→RGB rounding differs)
        assert np.abs(frames[2 * i].astype(int) - original).max() <= 2
    moved = [np.abs(frames[2 * i + 1].astype(int) - source[i]).mean() for i in range(N - 1)]
    assert min(moved) > 0.5  # in-between frames are made, not copies of frame0
    assert audio_seconds == pytest.approx(N / 30, abs=0.05)


@pytest.mark.parametrize("ensemble", ["1", "4"])
def test_24_to_60_puts_every_frame_on_the_60_grid(tmp_path, checkpoint, ensemble):
    make_clip(tmp_path / "in.mp4", fps=24, frames=9)
    args = ["--model", str(checkpoint), "--fps", "60", "--ensemble", ensemble]
    result = run_cli(str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4"), *args)
    assert result.returncode == 0, result.stderr
    frames, times, _ = read_output(tmp_path / "out.mp4")
    # input spans 8/24 s = 20/60 s: output times 0 … 20/60 inclusive
    assert len(frames) == 21
    assert [round(float(t) * 60, 2) for t in times] == [float(k) for k in range(21)]


@pytest.mark.parametrize(
    ("make_args", "expected"),
    [
        (lambda d, ck: [str(d / "missing.mp4"), str(d / "o.mp4"), "--model", str(ck)], "no such file"),
        (lambda d, ck: [str(d / "in.mp4"), str(d / "nodir" / "o.mp4"), "--model", str(ck)], "does not exist"),
        (lambda d, ck: [str(d / "notvideo.mp4"), str(d / "o.mp4"), "--model", str(ck)], "notvideo.mp4"),
        (lambda d, ck: [str(d / "in.mp4"), str(d / "o.mp4"), "--model", str(d / "in.mp4")], "in.mp4"),
        (lambda d, ck: [str(d / "in.mp4"), str(d / "o.mp4"), "--model", str(ck), "--scale", "0.7"], "scale"),
    ],
)
def test_bad_input_ends_with_one_clear_line_and_status_2(tmp_path, checkpoint, make_args, expected):
    make_clip(tmp_path / "in.mp4", frames=3)
    (tmp_path / "notvideo.mp4").write_text("this is not a video")
    result = run_cli(*make_args(tmp_path, checkpoint))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_progress_bar_is_shown_on_a_terminal_only(tmp_path, checkpoint):
    """Issue 19 item 10: the bar was written into pipes and log files too. Same command, stderr a pipe
    and then a pseudo-terminal: a bar (tqdm's "done/total" counter) only on the terminal."""
    import fcntl
    import os
    import pty
    import re
    import struct
    import termios

    make_clip(tmp_path / "in.mp4", frames=6)
    args = [sys.executable, "-m", "rifestream", "interpolate", str(tmp_path / "in.mp4"), str(tmp_path / "o.mp4"),
            "--model", str(checkpoint)]  # fmt: skip
    bar = re.compile(r"interpolate:.*\d+/\d+")
    piped = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert not bar.search(piped.stderr), piped.stderr

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    chunks = []
    try:
        while True:  # ends at the terminal's end of file (EIO once the command has exited)
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=120) == 0
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    on_terminal = b"".join(chunks).decode(errors="replace")
    assert bar.search(on_terminal), on_terminal
