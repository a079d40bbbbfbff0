"""The CPU model (rifestream-lite), the classical DIS frame it starts from, and the ladder's classical step."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from rifestream.engine.interpolator import FrameEngine, Interpolator
from rifestream.model import load_model, save_model
from rifestream.model.classical import DISFlow, classical_frames, resize_flow
from rifestream.model.lite import LiteConfig, LiteNet
from rifestream.train.lite import LiteTrainConfig, train_lite
from rifestream.train.scenes import make_scene_triplet


def textured(h: int, w: int, seed: int = 0, cell: int = 8) -> np.ndarray:
    """A smooth random texture (H, W, 3) uint8 of ``cell``-px blobs, the kind of content optical flow can follow."""
    rng = np.random.default_rng(seed)
    small = torch.from_numpy(rng.random((1, 3, h // cell + 1, w // cell + 1), dtype=np.float32))
    big = torch.nn.functional.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)[0]
    return (big.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def shifted_pair(h: int = 96, w: int = 128, dx: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames 0, 1/2 and 1 of a texture panning ``dx`` px to the right between frames 0 and 1."""
    big = textured(h, w + 2 * dx)
    return big[:, dx : dx + w], big[:, dx // 2 : dx // 2 + w], big[:, :w]


def psnr(a: np.ndarray, b: np.ndarray, border: int = 12) -> float:
    a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def as_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0


def as_u8(t: torch.Tensor) -> np.ndarray:
    return (t[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def test_dis_flow_finds_a_pan_both_ways_on_any_grid():
    f0, _, f1 = shifted_pair(dx=8)
    for level in (1, 2):
        flows = DISFlow("fast", level)(as_tensor(f0), as_tensor(f1))
        assert flows.shape == (1, 4, 96 // level, 128 // level)
        inner = flows[0, :, 8 // level : -8 // level, 16 // level : -16 // level]
        # in pixels of its own grid: frame 0's content is 8 px further right in frame 1
        assert inner[0].median().item() == pytest.approx(8 / level, abs=0.5)
        assert inner[2].median().item() == pytest.approx(-8 / level, abs=0.5)
        full = resize_flow(flows, (96, 128))
        assert full[0, 0, 40:56, 50:80].median().item() == pytest.approx(8, abs=0.6)


def test_classical_frame_lands_halfway_where_a_blend_doubles_the_picture():
    f0, truth, f1 = shifted_pair(dx=8)
    a, b = as_tensor(f0), as_tensor(f1)
    mid = as_u8(classical_frames(a, b, DISFlow("fast", 1)(a, b), [0.5]))
    blend = ((f0.astype(np.uint16) + f1 + 1) // 2).astype(np.uint8)
    assert psnr(mid, truth) > 35
    assert psnr(mid, truth) > psnr(blend, truth) + 8


def test_untrained_lite_model_is_exactly_the_classical_frame_of_its_own_flow():
    """The network's last layer starts at zero: training starts from the classical method, not from noise."""
    f0, _, f1 = shifted_pair(dx=6)
    model = LiteNet(LiteConfig("t", widths=(8, 8), net_level=4, flow_level=2, dis_preset="fast")).eval()
    a, b = as_tensor(f0), as_tensor(f1)
    flows = model.prior(a, b)
    with torch.inference_mode():
        out = model(a, b, 0.5, flows=flows)
        ref = classical_frames(a, b, flows, [0.5])
    assert (out - ref).abs().max().item() < 0.03  # the flows differ only by bilinear resampling through the grid


def test_lite_weights_round_trip_through_safetensors(tmp_path):
    torch.manual_seed(0)
    model = LiteNet(LiteConfig("rifestream-lite-test", widths=(8, 12), net_level=4, flow_level=2, dis_preset="fast"))
    for p in model.parameters():  # make the last layer non-zero so the test sees the weights
        p.data.normal_(0, 0.05)
    path = tmp_path / "lite.safetensors"
    save_model(model, path, dtype=torch.float32)
    loaded = load_model(path)
    assert isinstance(loaded, LiteNet)
    assert loaded.config == model.config
    f0, _, f1 = shifted_pair()
    a, b = as_tensor(f0), as_tensor(f1)
    with torch.inference_mode():
        assert torch.equal(model.eval()(a, b, 0.5), loaded(a, b, 0.5))


def test_interpolator_runs_the_lite_model_on_odd_sizes_several_times_and_ensembles(tmp_path):
    model = LiteNet(LiteConfig("t", widths=(8, 8), dis_preset="fast"))
    f0, truth, f1 = shifted_pair(h=90, w=118, dx=8)  # not multiples of the model's pad (16)
    interp = Interpolator(model, device="cpu")
    mid = interp.interpolate(f0, f1, 0.5)
    assert mid.shape == f0.shape and mid.dtype == np.uint8
    assert psnr(mid, truth) > 33
    thirds = interp.interpolate(f0, f1, [1 / 3, 2 / 3])
    assert len(thirds) == 2 and not np.array_equal(thirds[0], thirds[1])
    two = Interpolator(model, device="cpu", ensemble=2).interpolate(f0, f1, 0.5)
    assert psnr(two, truth) > 33


def test_scene_triplets_are_fast_large_and_exact_at_t():
    rng = np.random.default_rng(3)
    moved = []
    for _ in range(12):
        img0, mid, img1, t = make_scene_triplet(128, rng, [textured(96, 160, 1)], max_motion=60, max_pan=40)
        assert img0.shape == mid.shape == img1.shape == (128, 128, 3) and 0 < t < 1
        moved.append(float(np.abs(img0.astype(np.int16) - img1).mean()))
    assert np.median(moved) > 5  # most scenes move a lot, unlike the shared clips


@pytest.mark.slow
def test_training_the_lite_model_end_to_end_scores_it_beside_the_anchor(tmp_path, one_torch_thread):
    """A short run on a panning clip: the loss falls, the log scores held-out frames at the start and
    the end beside the classical anchor, and the weights load as the CPU model."""
    import av

    clip = tmp_path / "pan.mkv"
    big = textured(200, 600, seed=5, cell=24)
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "bgr0"
        for k in range(40):
            x = 4 * k
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(big[50:146, x : x + 160]), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    config = LiteTrainConfig(
        name="lite-test",
        widths=(8, 12),
        dis_preset="fast",
        train_clips=[f"{clip}@0-29"],
        val_clips=[f"{clip}@30-39"],
        synthetic_share=0.0,
        gaps=(1,),
        crop=96,
        steps=120,
        batch=4,
        lr=1e-3,
        warmup=10,
        val_every=120,
        log_every=40,
        val_pairs=4,
    )
    weights = train_lite(config, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 3 and losses[-1] < losses[0]
    val = [r for r in records if "val_mean" in r]
    assert val[0]["step"] == 0 and val[-1]["step"] == 120  # the starting point is scored, then the end
    assert all(abs(r["anchor_mean"] - val[0]["anchor_mean"]) < 1e-9 for r in val)  # the anchor, fixed
    # dB on the clip's last 10 frames, never trained on: training must not wreck its classical start
    assert val[-1]["val_mean"] > val[0]["val_mean"] - 0.2, val
    assert isinstance(load_model(weights), LiteNet)


def test_the_classical_step_needs_no_model_and_fills_every_in_between_frame(tmp_path):
    """`--force-step classical`: every in-between frame is a classical flow frame, counted as such."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rifestream",
            "run",
            "--source",
            "testsrc:?size=160x96&fps=30&frames=20&realtime=0",
            "--sink",
            "null",
            "--force-step",
            "classical",
            "--no-metrics",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert "classical 19" in text and "passed_through 20" in text


def test_engine_classical_step_matches_the_module_function():
    f0, _, f1 = shifted_pair()
    engine = FrameEngine("cpu")
    a, b = engine.to_tensor(f0), engine.to_tensor(f1)
    got = engine.classical(a, b, [0.25, 0.5])
    ref = classical_frames(a, b, DISFlow("fast", 1)(a, b), [0.25, 0.5])
    assert got.shape == (2, 3, 96, 128) and torch.allclose(got, ref)


def test_openvino_runs_the_network_as_torch_does_compiled_once_per_shape():
    from rifestream.engine.cpu_runtime import MAX_SHAPES, OpenVINONetwork

    torch.manual_seed(1)
    model = LiteNet(LiteConfig("t", widths=(8, 12))).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.1)
    runner = OpenVINONetwork(model.refine, threads=1)
    with torch.inference_mode():
        for size in ((24, 40), (24, 40), (32, 48)):
            x = torch.rand(2, 17, *size)
            assert (runner(x) - model.refine(x)).abs().max().item() < 1e-4  # fp32 both, summation order only
        assert len(runner._compiled) == 2
        for k in range(MAX_SHAPES + 2):
            runner(torch.rand(1, 17, 16, 16 + 16 * k))
        assert len(runner._compiled) == MAX_SHAPES
    f0, _, f1 = shifted_pair()
    ref = Interpolator(model, device="cpu", cpu_runtime="torch").interpolate(f0, f1, 0.5)
    got = Interpolator(model, device="cpu", cpu_runtime="openvino").interpolate(f0, f1, 0.5)
    assert np.abs(ref.astype(int) - got).max() <= 1


def test_the_shipped_lite_recipe_loads_and_never_trains_on_what_it_validates_on():
    from pathlib import Path

    from rifestream.cli.train import _is_lite_config

    path = Path(__file__).parent.parent / "configs" / "train" / "lite.toml"
    assert _is_lite_config(str(path))
    cfg = LiteTrainConfig.load(path)
    assert isinstance(cfg.model_config(), LiteConfig)
    from rifestream.model.registry import shipped_config, shipped_models

    # the shipped weights are this recipe's (`rifestream train` on it makes the same model); the shipped
    # file switches its network off (it lowered every held-out kind, docs/MODEL_CARD_LITE.md)
    assert shipped_config(shipped_models()["rifestream-lite"]) == dataclasses.replace(cfg.model_config(), network=False)
    train = {str(cfg.clip_spec(e)[0].resolve()) for e in cfg.train_clips}
    val = {str(cfg.clip_spec(e)[0].resolve()) for e in cfg.val_clips}
    assert train and val and not train & val


def test_a_live_job_on_a_cpu_runs_the_cpu_model_when_none_is_named():
    """With no --model, a CPU job builds its engine on rifestream-lite (shipped), a GPU on the full default."""
    from rifestream.config import load_config
    from rifestream.model.registry import DEFAULT_CPU_MODEL, DEFAULT_MODEL, default_model_for, shipped_models
    from rifestream.pipeline.job import build_engine
    from rifestream.pipeline.run_stats import RunStats

    assert DEFAULT_CPU_MODEL in shipped_models()
    assert default_model_for("cpu") == DEFAULT_CPU_MODEL and default_model_for("cuda") == DEFAULT_MODEL
    config = load_config(None, {"engine": {"device": "cpu"}})
    engine, label, force = build_engine(config, RunStats())
    assert label == DEFAULT_CPU_MODEL and force is None
    assert isinstance(engine.model, LiteNet)
