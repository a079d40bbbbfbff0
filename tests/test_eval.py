"""The quality protocol: window pick, odd-frame scoring, metrics, and the eval command on a synthetic clip."""

from __future__ import annotations

import argparse
import json
import re
import shutil

import numpy as np
import pytest
import torch

from rifestream import quality_eval as protocol
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
    args = parser.parse_args([*command, "--baselines", "repeat,blend"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(line for line in out if line.startswith("clip"))
    assert header.split()[1:] == ["repeat", "blend", "tiny.safetensors"]  # no anchor run: no gap column
    per_method = [line for line in out if line.startswith("moving.mkv ") and "psnr=" in line]
    assert [line.split()[1] for line in per_method] == ["repeat", "blend", "tiny.safetensors"]
    row = next(line for line in out if line.startswith("moving.mkv ") and "psnr=" not in line)
    mean = next(line for line in out if line.startswith("mean"))
    rep, bl, model = (float(x) for x in row.split()[1::3])
    assert bl > rep + 1.0  # blending beats repeating on smooth motion
    assert 5.0 < model < 99.0
    assert [float(x) for x in mean.split()[1::3]] == [rep, bl, model]


# ----- baselines, kinds and manifests (issue 21 item 4) -----------------------------------------

TEXTURE_WIDTH = 96


def texture(h: int = 64, w: int = 400) -> np.ndarray:
    """A wide, detailed colour texture that a window pans across."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 90 * np.sin(x / 4.0 + y / 9.0) + 30 * np.sin(y / 3.1)
    g = 128 + 100 * np.cos(x / 6.0 - y / 5.0)
    b = 128 + 80 * np.sin((x + y) / 7.0)
    return np.clip(np.stack((r, g, b), axis=-1), 0, 255).round().astype(np.uint8)


def pan(step: int, n: int = 9) -> list[np.ndarray]:
    """A 96×64 window moving ``step`` pixels right per frame over the texture."""
    t = texture()
    return [np.ascontiguousarray(t[:, step * i : step * i + TEXTURE_WIDTH]) for i in range(n)]


def still(n: int = 9) -> list[np.ndarray]:
    return [np.ascontiguousarray(texture()[:, 10 : 10 + TEXTURE_WIDTH])] * n


def test_classical_anchor_beats_blend_on_a_pan(tmp_path):
    path = tmp_path / "pan.mkv"
    write_clip(path, pan(3))  # 6 px between the half-rate frames
    methods = {"blend": protocol.blend, "classical": protocol.classical_rebuild("cpu")}
    scores = {s.method: s for s in protocol.score_clip(path, methods, frames=9)}
    assert scores["classical"].frames == 3
    assert scores["classical"].psnr > scores["blend"].psnr + 6.0  # measured 37.6 against 27.0
    assert scores["classical"].ssim > scores["blend"].ssim


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg program on PATH (CI installs it)")
def test_minterpolate_runs_through_ffmpeg_and_scores_its_in_between_frames(tmp_path):
    moving, static = tmp_path / "pan.mkv", tmp_path / "still.mkv"
    write_clip(moving, pan(2))
    write_clip(static, still())
    methods = {"repeat": protocol.repeat, "minterpolate": protocol.minterpolate_rebuild(shutil.which("ffmpeg"))}
    on_pan = {s.method: s for s in protocol.score_clip(moving, methods, frames=9)}
    on_still = {s.method: s for s in protocol.score_clip(static, methods, frames=9)}
    assert on_pan["minterpolate"].frames == 3
    # frame 2i + 1 of its output is read back: an input frame (2i) would score what repeat does
    assert on_pan["minterpolate"].psnr > on_pan["repeat"].psnr + 10.0  # measured 34.6 against 20.3
    assert on_still["minterpolate"].psnr > 45.0  # measured 52.2 (the filter works in YUV)


def test_without_ffmpeg_minterpolate_is_skipped_with_a_note(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "pans"
    folder.mkdir()
    write_clip(folder / "pan.mkv", pan(3))
    parser, command = eval_setup(tmp_path, 9)
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    args = parser.parse_args(
        ["eval", str(folder), *command[2:], "--frames", "9", "--baselines", "classical,minterpolate"]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if "minterpolate" in line] == [
        "minterpolate: skipped (no ffmpeg on PATH); gaps are to classical alone"
    ]
    assert next(line for line in out if line.startswith("clip")).split()[1:] == [
        "kind",
        "classical",
        "tiny.safetensors",
        "gap",
        "tiny.safetensors",
    ]


def table_rows(out: list[str], first: str) -> list[tuple[str, list[float], float | None]]:
    """(kind, PSNRs of the methods, gap or None) of the table rows starting with ``first``."""
    rows = []
    for line in out:
        if line.split()[:1] == [first] and "psnr=" not in line:
            psnrs = [float(p) for p in re.findall(r"(\d+\.\d\d) / \d\.\d{4}", line)]
            last = line.split()[-1]
            rows.append((line.split()[1], psnrs, float(last) if last[0] in "+-" and last != "-" else None))
    return rows


def test_eval_groups_folders_by_kind_with_means_and_the_gap_to_the_better_anchor(tmp_path, capsys):
    for kind, clips in {"pans": {"pan2.mkv": pan(2), "pan3.mkv": pan(3)}, "stills": {"still.mkv": still()}}.items():
        (tmp_path / kind).mkdir()
        for name, frames in clips.items():
            write_clip(tmp_path / kind / name, frames)
    parser, command = eval_setup(tmp_path, 9)
    folders = [str(tmp_path / "pans"), str(tmp_path / "stills")]
    args = parser.parse_args(["eval", *folders, *command[2:], "--frames", "9", "--baselines", "blend,classical"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    scored = {}
    for line in out:  # the per-clip lines as before: "CLIP METHOD psnr=.. ssim=.. frames=.."
        if "psnr=" in line:
            clip, method, p, _, frames = line.split()
            scored[clip, method] = float(p.removeprefix("psnr="))
            assert frames == "frames=3"
    assert sorted(scored) == sorted(
        (c, m) for c in ("pan2.mkv", "pan3.mkv", "still.mkv") for m in ("blend", "classical", "tiny.safetensors")
    )
    methods = ("blend", "classical", "tiny.safetensors")
    clip_rows = {name: table_rows(out, name)[0] for name in ("pan2.mkv", "pan3.mkv", "still.mkv")}
    assert [clip_rows[n][0] for n in ("pan2.mkv", "pan3.mkv", "still.mkv")] == ["pans", "pans", "stills"]
    for name, (_, psnrs, gap) in clip_rows.items():
        assert psnrs == [scored[name, m] for m in methods]
        assert gap == pytest.approx(psnrs[2] - psnrs[1], abs=0.011)  # classical is the only anchor run
    means = {kind: (psnrs, gap) for kind, psnrs, gap in table_rows(out, "mean")}
    assert list(means) == ["pans", "stills", "(all)"]
    for kind, clips in {
        "pans": ("pan2.mkv", "pan3.mkv"),
        "stills": ("still.mkv",),
        "(all)": ("pan2.mkv", "pan3.mkv", "still.mkv"),
    }.items():
        psnrs, gap = means[kind]
        expected = [np.mean([scored[c, m] for c in clips]) for m in methods]
        assert psnrs == pytest.approx(expected, abs=0.006)
        assert gap == pytest.approx(psnrs[2] - psnrs[1], abs=0.011)
    assert means["pans"][0][1] > means["pans"][0][0] + 6.0  # classical above blend on the pans
    assert means["stills"][0][:2] == [99.0, 99.0]  # nothing moves: both exact


def test_gap_is_to_the_better_of_minterpolate_and_classical_per_kind():
    def scores(clip, kind, **psnrs):
        return [protocol.Score(clip, m, p, 0.9, 3, kind) for m, p in psnrs.items()]

    rows = [
        *scores("a.mkv", "film", minterpolate=30.0, classical=32.0, net=32.5),
        *scores("b.mkv", "film", minterpolate=28.0, classical=27.0, net=27.5),
        *scores("c.mkv", "", minterpolate=40.0, classical=38.0, net=39.0),
    ]
    out = protocol.format_table(rows, ["minterpolate", "classical", "net"], ["net"]).splitlines()
    assert out[0].split() == ["clip", "kind", "minterpolate", "classical", "net", "gap", "net"]
    got = {(line.split()[0], line.split()[1]): line.split()[-1] for line in out[1:]}
    assert got == {
        ("a.mkv", "film"): "+0.50",  # classical is the better anchor here
        ("b.mkv", "film"): "-0.50",  # minterpolate here
        ("c.mkv", "-"): "-1.00",  # a clip given without a kind
        ("mean", "film"): "+0.50",  # 30.0 − max(29.0, 29.5): classical
        ("mean", "-"): "-1.00",
        ("mean", "(all)"): "+0.33",  # 33.0 − max(32.67, 32.33): minterpolate
    }


def write_manifest(root, entries) -> str:
    path = root / "corpus" / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"about": "test corpus", "clips": entries}))
    return str(path)


def test_manifest_clips_are_read_relative_to_it_with_their_kind_and_split(tmp_path, capsys):
    for rel, frames in {"film/a.mkv": pan(3), "game/b.mkv": still(), "game/c.mkv": pan(2)}.items():
        (tmp_path / "corpus" / rel).parent.mkdir(parents=True, exist_ok=True)
        write_clip(tmp_path / "corpus" / rel, frames)
    manifest = write_manifest(
        tmp_path,
        [  # make_corpus.py's keys ("file") and the plain "path"
            {"name": "a", "kind": "film", "split": "heldout", "file": "film/a.mkv"},
            {"name": "b", "kind": "game", "split": "train", "file": "game/b.mkv"},
            {"kind": "game", "split": "heldout", "path": "game/c.mkv"},
        ],
    )
    held = protocol.clips_from_manifest(manifest, "heldout")
    assert [(c.path, c.kind) for c in held] == [
        (tmp_path / "corpus" / "film" / "a.mkv", "film"),
        (tmp_path / "corpus" / "game" / "c.mkv", "game"),
    ]
    assert len(protocol.clips_from_manifest(manifest)) == 3

    parser, command = eval_setup(tmp_path, 9)
    args = parser.parse_args(
        [
            "eval",
            "--manifest",
            manifest,
            "--split",
            "heldout",
            *command[2:],
            "--frames",
            "9",
            "--baselines",
            "blend,classical",
        ]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert sorted({line.split()[0] for line in out if "psnr=" in line}) == ["a.mkv", "c.mkv"]
    assert [kind for kind, _, _ in table_rows(out, "mean")] == ["film", "game", "(all)"]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--manifest", "{tmp}/nowhere.json"], "--manifest {tmp}/nowhere.json: no such file"),
        (
            ["--manifest", "{manifest}", "--split", "validation"],
            "--split validation: no clip of {manifest} is in that split (its splits: heldout, train)",
        ),
        (["{clip}", "--split", "heldout"], "--split needs --manifest"),
        (["{clip}", "--baselines", "blend,dain"], "--baselines: unknown dain; choose from"),
        ([], "no clips: name video files or folders of them, or pass --manifest FILE"),
        (["{tmp}"], "{tmp}: no video files in this folder"),
    ],
    ids=["missing manifest", "unknown split", "split without manifest", "unknown baseline", "no clips", "empty folder"],
)
def test_eval_refuses_bad_clip_sources_in_one_line(tmp_path, capsys, extra, named):
    from rifestream.cli import main

    manifest = write_manifest(
        tmp_path / "m",
        [{"kind": "film", "split": "heldout", "path": "a.mkv"}, {"kind": "game", "split": "train", "path": "b.mkv"}],
    )
    fill = {"tmp": str(tmp_path), "manifest": manifest, "clip": str(tmp_path / "m" / "corpus" / "a.mkv")}
    argv = ["eval", *(a.format(**fill) for a in extra), "--device", "cpu"]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"rifestream eval: error: {named.format(**fill)}"), err


def test_cli_baseline_names_are_the_protocols():
    from rifestream.cli import eval as eval_cli

    assert eval_cli.BASELINES == protocol.BASELINES


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


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg program on PATH (CI installs it)")
def test_failure_strip_shows_the_models_worst_frame_beside_truth_and_both_baselines(tmp_path, capsys, monkeypatch):
    """scripts/make_failure_strip.py (the model card's pictures): four tiles of the clip's size
    (truth, model, minterpolate, classical) under their labels, for a frame of the protocol window."""
    from pathlib import Path

    from PIL import Image

    _, command = eval_setup(tmp_path, 45)
    clip, model = command[1], command[3]
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "scripts"))
    import make_failure_strip

    out = tmp_path / "worst.png"
    assert make_failure_strip.main([clip, "--model", model, "--out", str(out), "--width", "64"]) == 0
    image = Image.open(out)
    assert image.size == (4 * 64 + 3 * 4, 48 + 18)  # four 64x48 tiles, 4 px apart, labels above
    printed = capsys.readouterr().out
    frame = int(re.search(r"frame (\d+) of the window", printed).group(1))
    assert frame % 2 == 1 and frame < 41  # an odd frame: one the protocol scores
    assert "minterpolate" in printed and "classical" in printed


def test_eval_by_motion_groups_clips_by_how_far_their_window_moves(tmp_path, capsys):
    """--by-motion: each clip's window motion (median DIS flow between two input frames) is printed
    and the table groups the clips by motion class, slow first, with a mean row per class."""
    import cv2

    parser, command = eval_setup(tmp_path, 5)
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur((rng.random((192, 256 + 1100, 3)) * 255).astype(np.float32), (0, 0), 4.0)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    clips = []
    for name, step in (("fast.mkv", 12), ("slow.mkv", 1)):  # px per source frame: 24 and 2 between input frames
        clips.append(tmp_path / name)
        write_clip(clips[-1], [np.ascontiguousarray(texture[:, step * i : step * i + 256]) for i in range(45)])
    args = parser.parse_args(["eval", *map(str, clips), *command[2:], "--baselines", "blend", "--by-motion"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    moved = {line.split()[0]: float(re.search(r"motion=([\d.]+)px", line).group(1)) for line in out if "psnr=" in line}
    assert moved["slow.mkv"] == pytest.approx(2.0, abs=0.5) and moved["fast.mkv"] == pytest.approx(24.0, abs=2.0)
    table = [line.split() for line in out if line.startswith(("slow.mkv", "fast.mkv", "mean")) and "psnr=" not in line]
    assert [(row[0], " ".join(row[1:4])) for row in table[:4]] == [
        ("slow.mkv", "motion 0-8 px"),
        ("fast.mkv", "motion 20-40 px"),
        ("mean", "motion 0-8 px"),
        ("mean", "motion 20-40 px"),
    ]
    assert table[4][:2] == ["mean", "(all)"]
