"""Training: synthetic flow truth, augmentations, data filtering, losses, teacher, resume and DDP."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from rifestream.errors import RifestreamError
from rifestream.model.checkpoint import load_model, save_model
from rifestream.model.ifnet import IFNet
from rifestream.model.warp import warp
from rifestream.train import augment
from rifestream.train.config import TrainConfig, load_config
from rifestream.train.data import VideoTriplets, triplet_indices
from rifestream.train.loss import flow_l1, flow_mse, laplacian_l1
from rifestream.train.synthetic import make_triplet
from rifestream.train.teacher import Teacher, distillation_loss
from rifestream.train.trainer import (
    FIT_CALIBRATION_STEPS,
    DistillModel,
    TrainState,
    fitted_steps,
    learning_rate,
    param_groups,
    resumed_config,
    train,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(**overrides) -> TrainConfig:
    """A small, fast IFNet with a head, trained on synthetic triplets only."""
    cfg = TrainConfig(
        name="tiny",
        channels=(32, 16),
        scales=(4, 1),
        head=True,
        pad=16,
        teacher_channels=16,
        crop=48,
        batch=2,
        steps=6,
        warmup=2,
        lr=1e-3,
        min_lr=1e-4,
        val_every=0,
        log_every=1,
        checkpoint_minutes=60.0,
        synthetic_max_motion=12.0,
    )
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def smooth_strip(h: int, w: int) -> np.ndarray:
    """An h×w×3 uint8 image varying smoothly along x (a 3 px shift is motion, not a cut)."""
    x = np.arange(w, dtype=np.float32)
    return np.ascontiguousarray(np.broadcast_to((128 + 100 * np.sin(x / 8))[None, :, None], (h, w, 3))).astype(np.uint8)


def warp_error(sample: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel error of the middle frame rebuilt from frame 0 and from frame 1 with the true flows."""
    flow = sample["flow"][None]
    w0 = warp(sample["img0"][None], flow[:, 0:2])[0]
    w1 = warp(sample["img1"][None], flow[:, 2:4])[0]
    return (w0 - sample["gt"]).abs().mean(0), (w1 - sample["gt"]).abs().mean(0)


def synthetic_sample(seed: int, size: int = 96) -> dict:
    s = make_triplet(size, np.random.default_rng(seed), max_motion=40.0)
    return {"img0": s.img0, "gt": s.gt, "img1": s.img1, "t": s.t, "flow": s.flow}


@pytest.mark.parametrize("seed", range(4))
def test_synthetic_flow_maps_middle_frame_onto_both_ends(seed):
    sample = synthetic_sample(seed)
    assert sample["flow"].abs().amax() > 2.0  # there is real motion
    e0, e1 = warp_error(sample)
    unwarped = (sample["img0"] - sample["gt"]).abs().mean(0)
    # Exact except where a layer is occluded at one end, and at soft layer edges.
    for err in (e0, e1):
        assert float(err.median()) < 0.005
    # Nearly every pixel is seen by at least one end, where the true flow rebuilds it.
    best = torch.minimum(e0, e1)
    assert float((best > 0.05).float().mean()) < 0.1  # soft layer edges, content outside the view
    assert float(best.mean()) < 0.5 * float(unwarped.mean())


@pytest.mark.parametrize("name", ["hflip", "vflip", "rot90", "reverse"])
def test_augmentations_keep_the_flow_true(name):
    sample = synthetic_sample(7)
    before = [float(e.median()) for e in warp_error(sample)]
    moved = getattr(augment, name)(sample)
    after = [float(e.median()) for e in warp_error(moved)]
    assert max(after) < 0.005 and max(before) < 0.005
    if name == "reverse":
        assert moved["t"] == pytest.approx(1.0 - sample["t"])
        assert torch.equal(moved["img0"], sample["img1"])


def test_triplets_skip_scene_cuts_and_static_frames():
    base = smooth_strip(64, 256)
    moving = [np.roll(base, 3 * i, axis=1)[:, :64].copy() for i in range(8)]
    other = [np.full((64, 64, 3), 250, np.uint8)] * 5  # a cut, then a static shot
    frames = moving + other
    triplets = triplet_indices(frames, clip=0, gaps=(1, 2))
    assert triplets
    for tr in triplets:
        assert tr.i1 < 8, "no triplet may cross the cut at frame 8 or lie in the static shot"
        assert 0.0 < tr.t < 1.0
        assert tr.t == pytest.approx((tr.it - tr.i0) / (tr.i1 - tr.i0))
    assert any(tr.t == 0.5 and tr.i1 - tr.i0 == 4 for tr in triplets)
    assert any(tr.t != 0.5 for tr in triplets)


def write_moving_clip(path, frames: int) -> None:
    import av

    base = smooth_strip(48, 64 + 4 * frames)
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "bgr0"
        for i in range(frames):
            frame = np.ascontiguousarray(np.roll(base, 4 * i, axis=1)[:, :64])
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_video_triplets_decode_real_files_and_share_draws_equally(tmp_path):
    write_moving_clip(tmp_path / "short.mkv", 10)
    write_moving_clip(tmp_path / "long.mkv", 40)
    videos = VideoTriplets([tmp_path / "short.mkv", tmp_path / "long.mkv"], gaps=(1,), half_t_share=0.6)
    assert [len(c) for c in videos.clips] == [10, 40]
    img0, gt, img1, t = videos.sample(np.random.default_rng(0))
    assert img0.shape == gt.shape == img1.shape == (48, 64, 3) and 0 < t < 1
    per_clip = np.zeros(2)
    half = 0.0
    for tr, w in zip(videos.triplets, videos.weights, strict=True):
        per_clip[tr.clip] += w
        half += w if tr.t == 0.5 else 0.0
    assert per_clip == pytest.approx([0.5, 0.5])
    assert half == pytest.approx(0.6)


def test_laplacian_loss_is_zero_only_for_equal_images():
    a = torch.rand(2, 3, 32, 32)
    assert float(laplacian_l1(a, a).max()) == 0.0
    assert float(laplacian_l1(a, a.roll(1, -1)).min()) > 0.01


def test_a_few_steps_reduce_the_loss():
    cfg = tiny_config()
    torch.manual_seed(0)
    model = DistillModel(IFNet(cfg.model_config()), Teacher(cfg.teacher_channels), cfg)
    batch = synthetic_batch(4, 48)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = float(model(batch)[0].detach())
    for _ in range(40):
        loss, _ = model(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last, stats = model(batch)
    assert float(last.detach()) < 0.8 * first
    assert float(stats["psnr"]) > 10.0


def synthetic_batch(n: int, size: int) -> dict[str, torch.Tensor]:
    samples = [synthetic_sample(s, size=size) for s in range(n)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in ("img0", "gt", "img1", "flow")}
    batch["t"] = torch.tensor([s["t"] for s in samples]).view(-1, 1, 1, 1)
    batch["has_flow"] = torch.ones(n)
    return batch


@pytest.mark.parametrize("blocks", [(0,), (1,), (0, 1)])
def test_flow_blocks_choose_which_blocks_the_true_flow_supervises(blocks):
    cfg = tiny_config(flow_blocks=blocks)
    torch.manual_seed(0)
    model = DistillModel(IFNet(cfg.model_config()), Teacher(cfg.teacher_channels), cfg)
    batch = synthetic_batch(2, 48)
    with torch.no_grad():
        _, stats = model(batch)
        t = batch["t"].expand(2, 1, 48, 48)
        flows = model.student.forward_all(batch["img0"], batch["img1"], t).flows
        errors = [float(flow_l1(flows[i], batch["flow"], batch["has_flow"])) for i in blocks]
    assert float(stats["flow"]) == pytest.approx(sum(errors) / len(errors), rel=1e-5)


def test_flow_squared_blocks_take_the_squared_error_and_the_log_keeps_l1():
    """A squared block's loss term is its mean squared flow error; the logged ``flow`` stays L1."""
    torch.manual_seed(0)
    batch = synthetic_batch(2, 48)
    results = {}
    for squared in ((), (0,)):
        cfg = tiny_config(flow_blocks=(0, 1), flow_squared_blocks=squared, distill_weight=0.0)
        torch.manual_seed(0)
        model = DistillModel(IFNet(cfg.model_config()), Teacher(cfg.teacher_channels), cfg)
        with torch.no_grad():
            results[squared] = model(batch)
        t = batch["t"].expand(2, 1, 48, 48)
        with torch.no_grad():
            flows = model.student.forward_all(batch["img0"], batch["img1"], t).flows
    (loss_l1, stats_l1), (loss_sq, stats_sq) = results[()], results[(0,)]
    l1_0 = float(flow_l1(flows[0], batch["flow"], batch["has_flow"]))
    mse_0 = float(flow_mse(flows[0], batch["flow"], batch["has_flow"]))
    assert mse_0 > l1_0  # the scenes move several pixels, so the terms differ
    assert float(stats_sq["flow"]) == pytest.approx(float(stats_l1["flow"]), rel=1e-6)
    weight = cfg.flow_weight / 2  # the mean over the two supervised blocks
    assert float(loss_sq - loss_l1) == pytest.approx(weight * (mse_0 - l1_0), rel=1e-4)


def test_flow_squared_blocks_must_be_supervised():
    with pytest.raises(RifestreamError, match=r"flow_squared_blocks \[0\] are not in flow_blocks \[1, 2, 3\]"):
        TrainConfig.from_dict({"flow_squared_blocks": [0]})


def test_flow_blocks_outside_the_model_are_refused():
    with pytest.raises(RifestreamError, match=r"flow_blocks \[4\]: the model has blocks 0 to 3"):
        TrainConfig.from_dict({"flow_blocks": [0, 4]})


def test_teacher_gets_no_gradient_from_the_distillation_loss():
    cfg = tiny_config()
    torch.manual_seed(0)
    student, teacher = IFNet(cfg.model_config()), Teacher(cfg.teacher_channels)
    s = synthetic_sample(3, size=48)
    img0, gt, img1 = s["img0"][None], s["gt"][None], s["img1"][None]
    t = torch.full((1, 1, 48, 48), s["t"])
    out = student.forward_all(img0, img1, t)
    tea = teacher(img0, img1, gt, t, out)
    with torch.no_grad():
        # Make the teacher clearly better somewhere so that the distillation term is active.
        tea.frame[..., :24] = gt[..., :24]
    loss = distillation_loss(out.flows, out.frame, tea, gt)
    loss.backward()
    assert float(loss.detach()) > 0
    assert all(p.grad is None or float(p.grad.abs().max()) == 0.0 for p in teacher.parameters())
    assert any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in student.parameters())


def test_learning_rate_warms_up_then_decays():
    cfg = tiny_config(steps=100, warmup=10, lr=1e-3, min_lr=1e-5)
    lrs = [learning_rate(s, cfg) for s in range(100)]
    assert lrs[0] < lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert learning_rate(100, cfg) == pytest.approx(1e-5)


def test_validation_logs_psnr_and_the_students_health(tmp_path, caplog):
    import logging

    write_moving_clip(tmp_path / "val.mkv", 8)
    cfg = tiny_config(steps=2, val_every=2, val_clips=[str(tmp_path / "val.mkv")])
    with caplog.at_level(logging.INFO, logger="rifestream.train.trainer"):
        train(cfg, tmp_path / "run", progress=False)
    assert "step 2 val_psnr=" in caplog.text
    assert "step 2 block features |a|/positive: " in caplog.text and "8 px shift: flow x " in caplog.text


def test_resume_continues_steps_schedule_and_data(tmp_path):
    cfg = tiny_config()
    straight = train(cfg, tmp_path / "a", progress=False)
    assert straight.step == 6 and (tmp_path / "a" / "latest.safetensors").is_file()

    half = train(cfg, tmp_path / "b", progress=False, stop_at=3)
    assert half.step == 3
    resumed = train(cfg, tmp_path / "b", progress=False, resume=True)
    assert resumed.step == 6
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(learning_rate(5, cfg))
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_fitted_steps_end_the_schedule_at_the_time_given():
    # 50 steps took 10 s (5 steps/s); 10 minutes in all leave 590 s: 2950 more steps
    assert fitted_steps(50, 50, 10.0, 10.0) == 50 + 2950
    assert fitted_steps(50, 50, 700.0, 10.0) == 51  # already past the time: end at once


def test_fit_minutes_resizes_the_schedule_to_end_on_time_with_the_rate_decayed(tmp_path):
    import time

    cfg = tiny_config(steps=1_000_000, warmup=2)
    start = time.monotonic()
    state = train(cfg, tmp_path / "fit", progress=False, fit_minutes=0.1)
    took = time.monotonic() - start
    assert FIT_CALIBRATION_STEPS < cfg.steps < 1_000_000
    assert state.step == cfg.steps
    assert took < 6 + 10  # 6 s asked; the estimate comes from the first steps, which are the slowest
    assert state.optimizer.param_groups[0]["lr"] == pytest.approx(learning_rate(cfg.steps - 1, cfg))
    assert learning_rate(cfg.steps - 1, cfg) < 1.01 * cfg.min_lr


@contextlib.contextmanager
def _gloo_rank(rank: int, world: int, rendezvous: str) -> Iterator[None]:
    """This process as rank ``rank`` of a ``world``-process gloo group (one torch thread), left on exit."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _ddp_worker(rank: int, world: int, rendezvous: str, out: str) -> None:
    with _gloo_rank(rank, world, rendezvous):
        state = train(tiny_config(steps=2), f"{out}/run", progress=False)
        torch.save(state.model.state_dict(), f"{out}/rank{rank}.pt")


def test_two_process_gloo_ddp_keeps_ranks_identical(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "rdv"), str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    torch.manual_seed(0)
    fresh = IFNet(tiny_config().model_config()).state_dict()
    changed = False
    for name in a:
        assert torch.equal(a[name], b[name]), name
        if name.startswith("student.") and not torch.equal(a[name], fresh[name.removeprefix("student.")]):
            changed = True
    assert changed, "the weights did not move"


def _ddp_deadline_worker(rank: int, world: int, rendezvous: str, out: str) -> None:
    with _gloo_rank(rank, world, rendezvous):
        # The two ranks' clocks disagree by a whole run: rank 0 is out of time after about a second.
        minutes = 0.02 if rank == 0 else 60.0
        state = train(tiny_config(steps=100_000), f"{out}/run", progress=False, max_minutes=minutes)
        torch.save({"step": state.step, **state.model.state_dict()}, f"{out}/rank{rank}.pt")


def test_max_minutes_under_ddp_stops_every_rank_at_rank_0s_step(tmp_path):
    import time

    import torch.multiprocessing as mp

    context = mp.start_processes(
        _ddp_deadline_worker, args=(2, str(tmp_path / "rdv"), str(tmp_path)), nprocs=2, join=False
    )
    deadline = time.monotonic() + 120
    while not context.join(timeout=max(0.1, deadline - time.monotonic())):  # False: one rank still running
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("a rank kept training after rank 0 ran out of time (or the run hung)")
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert 0 < a["step"] == b["step"] < 100_000
    for name in a:
        assert torch.equal(torch.as_tensor(a[name]), torch.as_tensor(b[name])), name


def run_train_cli(cwd, *args: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rifestream", "train", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_train_cli_outside_a_checkout_trains_on_named_clips_and_resumes_with_the_saved_settings(tmp_path):
    """An installed package has no configs/ folder: the built-in recipe is used with the clips named.
    --resume continues with the settings the checkpoint was written with, not the defaults."""

    write_moving_clip(tmp_path / "clip.mkv", 12)
    common = ["--out", "out", "--threads", "1", "--no-progress"]
    first = run_train_cli(
        tmp_path, "clip.mkv", *common, "--batch", "2", "--crop", "32", "--lr", "3e-5", "--steps", "4", "--stop-at", "2"
    )
    assert first.returncode == 0, first.stderr
    assert torch.load(tmp_path / "out" / "last.pt", weights_only=True)["step"] == 2
    resumed = run_train_cli(tmp_path, *common, "--resume", "--stop-at", "3")
    assert resumed.returncode == 0, resumed.stderr
    ckpt = torch.load(tmp_path / "out" / "last.pt", weights_only=True)
    assert ckpt["step"] == 3
    saved = ckpt["config"]
    assert (saved["batch"], saved["crop"], saved["lr"], saved["steps"]) == (2, 32, 3e-5, 4)
    assert [Path(c).name for c in saved["train_clips"]] == ["clip.mkv"]
    stretched = run_train_cli(tmp_path, *common, "--resume", "--steps", "5")
    assert stretched.returncode == 0, stretched.stderr
    ckpt = torch.load(tmp_path / "out" / "last.pt", weights_only=True)
    assert (ckpt["step"], ckpt["config"]["steps"], ckpt["config"]["lr"]) == (5, 5, 3e-5)
    model = load_model(tmp_path / "out" / "latest.safetensors")
    assert model.config.channels == TrainConfig().channels
    with_config = run_train_cli(tmp_path, *common, "--resume", "--config", "x.toml")
    assert with_config.returncode == 2 and "drop --config" in with_config.stderr


def test_train_cli_names_missing_clips_and_checkpoints(tmp_path):
    no_clips = run_train_cli(tmp_path, "--steps", "1")
    assert no_clips.returncode == 2 and "no training videos" in no_clips.stderr
    missing = run_train_cli(tmp_path, "gone.mp4", "--steps", "1")
    assert missing.returncode == 2 and "gone.mp4: no such video file" in missing.stderr
    write_moving_clip(tmp_path / "clip.mkv", 12)
    no_ckpt = run_train_cli(tmp_path, "clip.mkv", "--out", "fresh", "--resume")
    assert no_ckpt.returncode == 2 and "no checkpoint to resume from" in no_ckpt.stderr
    no_time = run_train_cli(tmp_path, "clip.mkv", "--fit-minutes", "0")
    assert no_time.returncode == 2 and "--fit-minutes: '0': must be a positive number of minutes" in no_time.stderr


def test_train_cli_restarts_a_block_of_given_weights_and_refuses_it_on_resume(tmp_path):
    write_moving_clip(tmp_path / "clip.mkv", 12)
    common = ["clip.mkv", "--batch", "2", "--crop", "32", "--threads", "1", "--no-progress"]
    base = run_train_cli(tmp_path, *common, "--out", "base", "--steps", "1")
    assert base.returncode == 0, base.stderr
    run = run_train_cli(
        tmp_path, *common, "--out", "re", "--steps", "1", "--lr", "1e-12", "--init", "base/latest.safetensors",
        "--reinit-block", "0", "--name", "restarted",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    old, new = load_model(tmp_path / "base" / "latest.safetensors"), load_model(tmp_path / "re" / "latest.safetensors")
    assert (old.config.name, new.config.name) == ("rifestream-v1", "restarted")
    assert float(new.blocks[0].lastconv[0].weight.detach().abs().max()) < 1e-6  # zeroed; an lr of 1e-12 barely moves it
    assert not torch.equal(old.blocks[0].conv0[0][0].weight, new.blocks[0].conv0[0][0].weight)
    assert torch.allclose(old.blocks[1].conv0[0][0].weight, new.blocks[1].conv0[0][0].weight, atol=1e-3)
    resumed = run_train_cli(tmp_path, *common, "--out", "re", "--steps", "2", "--resume", "--reinit-block", "0")
    assert resumed.returncode == 2 and "needs a fresh start (--init WEIGHTS), not --resume" in resumed.stderr
    share = run_train_cli(tmp_path, *common, "--synthetic-share", "1.5")
    assert share.returncode == 2 and "--synthetic-share 1.5: must be between 0 and 1" in share.stderr


def train_and_compare(cfg: TrainConfig, tmp_path: Path) -> tuple[TrainState, dict[str, bool]]:
    """Train ``cfg`` from its seed's fresh student; per part of the student, whether any weight moved."""
    torch.manual_seed(cfg.seed)
    fresh = IFNet(cfg.model_config()).state_dict()
    state = train(cfg, tmp_path / "run", progress=False)
    student = state.model.student.state_dict()
    moved = {
        part: any(not torch.equal(student[k], v) for k, v in fresh.items() if k.startswith(part))
        for part in ("block0.", "block1.", "encode.")
    }
    return state, moved


def test_block_lr_scale_and_eps_set_each_blocks_step(tmp_path):
    """A block at lr scale 0 does not move; the others train at the scheduled rate times their scale."""
    cfg = tiny_config(block_lr_scale=(0.0, 0.5), block_adam_eps=(1e-5, 1e-8), steps=3)
    state, moved = train_and_compare(cfg, tmp_path)
    assert moved["block0."] is False and moved["block1."] is True
    lr = learning_rate(2, cfg)
    groups = state.optimizer.param_groups
    assert [g["lr"] for g in groups] == pytest.approx([0.0, 0.5 * lr, lr])
    assert [g["eps"] for g in groups] == [1e-5, 1e-8, 1e-8]


def test_head_lr_scale_zero_freezes_the_feature_head_alone(tmp_path):
    """With head_lr_scale 0 the head's weights stay as they were; the blocks still train."""
    cfg = tiny_config(head_lr_scale=0.0, steps=3)
    state, moved = train_and_compare(cfg, tmp_path)
    assert moved == {"block0.": True, "block1.": True, "encode.": False}
    assert [g["lr"] for g in state.optimizer.param_groups] == pytest.approx([0.0, learning_rate(2, cfg)])


def test_head_lr_scale_needs_a_head():
    cfg = tiny_config(head=False, head_lr_scale=0.0)
    torch.manual_seed(0)
    with pytest.raises(RifestreamError, match="head_lr_scale is set but the model has no feature head"):
        param_groups(DistillModel(IFNet(cfg.model_config()), Teacher(cfg.teacher_channels), cfg), cfg)


def test_block_settings_need_one_value_per_block_and_the_same_groups_to_resume(tmp_path):
    with pytest.raises(RifestreamError, match="block_lr_scale has 3 values; give one per block \\(4\\)"):
        TrainConfig.from_dict({"block_lr_scale": [1, 1, 1]})
    train(tiny_config(steps=2), tmp_path / "run", progress=False)
    with pytest.raises(RifestreamError, match="other parameter groups than this config makes"):
        train(tiny_config(steps=3, block_lr_scale=(0.5, 1.0)), tmp_path / "run", progress=False, resume=True)


TRAIN_CONFIGS = [  # the IFNet recipes (the CPU model's, family "lite", is tests/test_lite.py's)
    p
    for p in sorted((Path(__file__).parent.parent / "configs" / "train").glob("*.toml"))
    if 'family = "lite"' not in p.read_text()
]


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_training_config_loads_for_the_shipped_architecture(path):
    from rifestream.model.registry import resolve_model

    cfg = load_config(path)
    shipped = load_model(resolve_model("rifestream-v1")[0]).config
    assert tuple(cfg.channels) == shipped.channels and cfg.head == shipped.head
    assert not set(cfg.train_clips) & set(cfg.val_clips)
    if Path(cfg.clips_dir).is_dir():  # the shared clips beside the checkout
        assert all(p.is_file() for p in cfg.clip_paths(cfg.train_clips + cfg.val_clips))


def test_init_weights_take_the_configs_search_prior(tmp_path):
    """Fine-tuning weights trained without the block-matching prior with it on: same parameters, the
    prior switched on in the saved model."""
    torch.manual_seed(0)
    plain = IFNet(tiny_config().model_config())
    save_model(plain, tmp_path / "plain.safetensors", dtype=torch.float32)
    cfg = tiny_config(
        search_radius=4, search_level=2, search_window=7, search_subcell=True, steps=1, lr=1e-12, min_lr=1e-12
    )
    state = train(cfg, tmp_path / "run", init_weights=tmp_path / "plain.safetensors", progress=False)
    assert state.model.student.config.search_radius == 4
    saved = load_model(tmp_path / "run" / "latest.safetensors")
    assert (saved.config.search_radius, saved.config.search_level) == (4, 2)
    assert (saved.config.search_window, saved.config.search_subcell) == (7, True)
    for key, value in plain.state_dict().items():
        assert torch.allclose(saved.state_dict()[key], value, atol=1e-3), key  # stored as fp16


def test_init_weights_with_a_prior_keep_it_under_a_config_without_one_and_on_resume(tmp_path):
    """Fine-tuning rifestream-v2 with the default config (no search_radius) must not drop its prior."""
    torch.manual_seed(0)
    searching = IFNet(tiny_config(search_radius=3, search_level=4, search_window=5, search_subcell=True).model_config())
    save_model(searching, tmp_path / "prior.safetensors", dtype=torch.float32)
    cfg = tiny_config(steps=1)
    train(cfg, tmp_path / "run", init_weights=tmp_path / "prior.safetensors", progress=False)
    resumed = resumed_config(tmp_path / "run")  # as `rifestream train --resume` does
    resumed.steps = 2
    state = train(resumed, tmp_path / "run", progress=False, resume=True)
    assert state.step == 2
    assert state.model.student.config == searching.config
    saved = load_model(tmp_path / "run" / "latest.safetensors").config
    assert (saved.search_radius, saved.search_level, saved.search_window, saved.search_subcell) == (3, 4, 5, True)


def test_fine_tuned_weights_keep_their_name_on_resume_unless_renamed(tmp_path):
    """Exported weights are what `--model` finds by name: a fine-tune (and its resumed run) must not
    take the config's name, which names the recipe, not these weights; `name` renames them."""
    init = tmp_path / "parent.safetensors"
    save_model(IFNet(dataclasses.replace(tiny_config().model_config(), name="parent")), init, dtype=torch.float32)

    def exported(run: str) -> str:
        return load_model(tmp_path / run / "latest.safetensors").config.name

    train(tiny_config(steps=1), tmp_path / "kept", init_weights=init, progress=False)
    assert exported("kept") == "parent"
    train(resumed_config(tmp_path / "kept"), tmp_path / "kept", progress=False, resume=True, stop_at=2)
    assert exported("kept") == "parent"
    train(tiny_config(steps=1), tmp_path / "renamed", init_weights=init, progress=False, name="child")
    assert exported("renamed") == "child"
    train(resumed_config(tmp_path / "renamed"), tmp_path / "renamed", progress=False, resume=True, stop_at=2)
    assert exported("renamed") == "child"
    train(tiny_config(steps=1), tmp_path / "fresh", progress=False)
    assert exported("fresh") == "tiny"


def test_a_bad_search_grid_in_a_training_config_is_one_clear_error():
    with pytest.raises(
        RifestreamError, match=r"\[model\] settings: .*search_level >= 1 dividing pad \(32\), got 12 and 3"
    ):
        TrainConfig.from_dict({"search_radius": 12, "search_level": 3})
    with pytest.raises(RifestreamError, match=r"\[model\] settings: .*block widths must be even"):
        TrainConfig.from_dict({"channels": [192, 127, 64, 32]})
    with pytest.raises(RifestreamError, match=r"\[model\] settings: .*search_window must be an odd number"):
        TrainConfig.from_dict({"search_radius": 12, "search_window": 20})
    with pytest.raises(RifestreamError, match=r"\[model\] settings: .*search_subcell must be true or false, got 'no'"):
        TrainConfig.from_dict({"search_radius": 12, "search_subcell": "no"})
