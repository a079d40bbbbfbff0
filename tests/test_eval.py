"""The quality protocol: window pick, odd-frame scoring, metrics, and the eval command on a synthetic clip."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from rifestream import eval as protocol
from rifestream.model.checkpoint import save_model
from rifestream.model.ifnet import IFNet, IFNetConfig


def write_clip(path, frames: list[np.ndarray], fps: int = 30) -> None:
    """A lossless (ffv1, RGB) video of ``frames``."""
    import av

    h, w, _ = frames[0].shape
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "bgr0"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def pattern(shift: float, h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth colour pattern moved right by ``shift`` pixels."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin((x - shift) / 5.0)
    g = 128 + 100 * np.cos((x - shift) / 7.0 + y / 9.0)
    b = 128 + 60 * np.sin(y / 4.0)
    return np.stack((r, g, b), axis=-1).round().astype(np.uint8)


def test_busiest_window_is_where_things_move():
    still = [pattern(0)] * 30
    moving = [pattern(3 * i) for i in range(41)]
    frames = still + moving + [moving[-1]] * 30
    assert protocol.busiest_window_start(frames, 41) == 30


def test_split_scores_the_odd_frames_and_leaves_out_the_last_pair():
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(41)]
    half, truth = protocol.split_window(frames)
    assert [int(f[0, 0, 0]) for f in half] == list(range(0, 41, 2))
    assert [int(f[0, 0, 0]) for f in truth] == list(range(1, 38, 2))  # 19 scored, the last pair left out
    half, truth = protocol.split_window(frames[:40])  # an even window drops its last frame
    assert len(half) == 20 and len(truth) == 18


def test_blend_is_exact_on_a_linear_ramp_so_odd_frames_line_up(tmp_path):
    frames = [np.full((32, 32, 3), 40 + 4 * i, np.uint8) for i in range(41)]
    path = tmp_path / "ramp.mkv"
    write_clip(path, frames)
    scores = {s.method: s for s in protocol.score_clip(path, {"repeat": protocol.repeat, "blend": protocol.blend})}
    assert scores["blend"].psnr == 99.0 and scores["blend"].ssim == pytest.approx(1.0)
    assert scores["repeat"].psnr == pytest.approx(10 * np.log10(255.0**2 / 16.0))
    assert scores["blend"].frames == 19


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    a = (rng.random((40, 56, 3)) * 255).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 30, a.shape), 0, 255).astype(np.uint8)
    ya, yb = a @ protocol.LUMA, b @ protocol.LUMA
    expected = metrics.structural_similarity(ya, yb, data_range=255.0)
    assert protocol.ssim_luma(a, b) == pytest.approx(expected, abs=1e-9)
    assert protocol.psnr(a, a) == 99.0


def eval_setup(tmp_path, frames: int) -> tuple[argparse.ArgumentParser, list[str]]:
    """The eval command's parser and the start of a command line: a clip of ``frames`` moving frames, a tiny model."""
    from rifestream.cli import eval as eval_cli

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model_path = tmp_path / "tiny.safetensors"
    save_model(IFNet(IFNetConfig("tiny", (16, 16), (4, 1), head=False, pad=16)), model_path)
    clip = tmp_path / "moving.mkv"
    write_clip(clip, [pattern(1.5 * i) for i in range(frames)])
    parser = argparse.ArgumentParser()
    eval_cli.add_parser(parser.add_subparsers())
    return parser, ["eval", str(clip), "--model", str(model_path), "--device", "cpu"]


def test_eval_command_prints_rows_and_mean_with_blend_above_repeat(tmp_path, capsys):
    parser, command = eval_setup(tmp_path, 45)
    args = parser.parse_args(command)
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(line for line in out if line.startswith("clip"))
    assert header.split()[1:] == ["repeat", "blend", "tiny.safetensors"]
    per_method = [line for line in out if line.startswith("moving.mkv ") and "psnr=" in line]
    assert [line.split()[1] for line in per_method] == ["repeat", "blend", "tiny.safetensors"]
    row = next(line for line in out if line.startswith("moving.mkv ") and "psnr=" not in line)
    mean = next(line for line in out if line.startswith("mean"))
    rep, bl, model = (float(x) for x in row.split()[1::3])
    assert bl > rep + 1.0  # blending beats repeating on smooth motion
    assert 5.0 < model < 99.0
    assert [float(x) for x in mean.split()[1::3]] == [rep, bl, model]


def test_eval_command_scores_an_ensemble_and_a_scale_under_their_own_label_and_refuses_other_counts(tmp_path, capsys):
    parser, command = eval_setup(tmp_path, 21)
    common = [*command, "--frames", "21", "--no-baselines"]
    args = parser.parse_args([*common, "--ensemble", "2", "--scale", "0.5"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert next(line for line in out if line.startswith("clip")).split()[1:] == ["tiny.safetensors", "s0.5", "x2"]
    scored = [line for line in out if line.startswith("moving.mkv ") and "psnr=" in line]
    assert len(scored) == 1 and "frames=9" in scored[0]
    with pytest.raises(SystemExit):
        parser.parse_args([*common, "--ensemble", "3"])
    assert "invalid choice: 3" in capsys.readouterr().err
