"""The training loop: student IFNet + privileged teacher, AdamW with warm-up and cosine decay.

Runs on CPU or CUDA (bf16 autocast there), alone or under ``torchrun`` with
DistributedDataParallel (gloo on CPU, NCCL on CUDA). Resumable: a checkpoint
holds the student, teacher, optimiser and step; the current student is also
exported as fp16 safetensors at each checkpoint so that a usable model always
exists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from rifestream.errors import RifestreamError
from rifestream.model.checkpoint import load_model, safe_torch_load, save_model
from rifestream.model.ifnet import IFBlock, IFNet, IFNetConfig
from rifestream.train.batch import BatchMaker
from rifestream.train.config import TrainConfig, no_such_block
from rifestream.train.data import VideoTriplets
from rifestream.train.diagnostics import health_summary
from rifestream.train.loss import flow_l1, flow_mse, laplacian_l1, psnr
from rifestream.train.teacher import Teacher, distillation_loss

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
EXPORT_NAME = "latest.safetensors"


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress))


class DistillModel(nn.Module):
    """Student and teacher in one module (one DDP wrapper); ``forward`` returns the loss and its parts."""

    def __init__(self, student: IFNet, teacher: Teacher, cfg: TrainConfig) -> None:
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.flow_weight = cfg.flow_weight
        self.flow_blocks = tuple(cfg.flow_blocks)
        self.flow_squared_blocks = frozenset(cfg.flow_squared_blocks)
        self.distill_weight = cfg.distill_weight

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        img0, gt, img1 = batch["img0"], batch["gt"], batch["img1"]
        n, _, h, w = img0.shape
        t = batch["t"].expand(n, 1, h, w)
        out = self.student.forward_all(img0, img1, t)
        tea = self.teacher(img0, img1, gt, t, out)
        rec = laplacian_l1(out.frame.float(), gt).mean()
        rec_teacher = laplacian_l1(tea.frame.float(), gt).mean()
        distill = distillation_loss([f.float() for f in out.flows], out.frame.float(), tea, gt)
        has_flow = batch["has_flow"]
        flow_sup = flow_err = out.frame.new_zeros((), dtype=torch.float32)
        for i in self.flow_blocks:
            flow = out.flows[i].float()
            err = flow_l1(flow, batch["flow"], has_flow)
            flow_err = flow_err + err
            flow_sup = flow_sup + (flow_mse(flow, batch["flow"], has_flow) if i in self.flow_squared_blocks else err)
        n_sup = max(1, len(self.flow_blocks))
        flow_sup, flow_err = flow_sup / n_sup, flow_err / n_sup
        loss = rec + rec_teacher + self.distill_weight * distill + self.flow_weight * flow_sup
        stats = {
            "loss": loss.detach(),
            "rec": rec.detach(),
            "teacher": rec_teacher.detach(),
            "distill": distill.detach(),
            "flow": flow_err.detach(),  # L1 in px whatever the loss's terms, so runs compare
            "psnr": psnr(out.frame.detach().float(), gt),
        }
        return loss, stats


@dataclass
class TrainState:
    step: int
    model: DistillModel
    optimizer: torch.optim.Optimizer


def distributed_rank() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun if nobody has yet."""
    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def reinit_blocks(student: IFNet, indices: Sequence[int]) -> None:
    """Give these blocks fresh weights, with the output layer's weights zeroed and its bias kept.

    For a block whose features collapsed (docs/MODEL_HISTORY.md, Diagnosis): its
    output is then the constant it had already nearly become, so the model's
    frames barely change at the start, while its features start healthy again
    (whether they stay so depends on the training; see the model card).
    """
    config = student.config
    for i in indices:
        if not 0 <= i < len(config.channels):
            raise no_such_block(f"block {i}", len(config.channels))
        old = student.blocks[i]
        fresh = IFBlock(config.first_in if i == 0 else config.later_in, config.channels[i], config.k_out)
        out_layer, old_out = fresh.lastconv[0], old.lastconv[0]
        with torch.no_grad():
            out_layer.weight.zero_()
            out_layer.bias.copy_(old_out.bias)
        setattr(student, f"block{i}", fresh.to(old_out.weight.device, old_out.weight.dtype))


# The block-matching prior's settings, as IFNetConfig names them (radius, level, window, subcell).
SEARCH_SETTINGS = tuple(f.name for f in dataclasses.fields(IFNetConfig) if f.name.startswith("search_"))


def with_search_prior(student: IFNet, cfg: TrainConfig) -> IFNet:
    """The ``--init`` student with its block-matching prior settled (it has no parameters).

    A config that sets ``search_radius`` turns the prior on (or changes it); one that does not
    keeps the weights' own and writes it into ``cfg``, so that checkpoints and ``--resume`` keep it.
    """
    if not cfg.search_radius:
        for name in SEARCH_SETTINGS:
            setattr(cfg, name, getattr(student.config, name))
        return student
    wanted = dataclasses.replace(student.config, **{name: getattr(cfg, name) for name in SEARCH_SETTINGS})
    if wanted == student.config:
        return student
    settled = IFNet(wanted)
    settled.load_state_dict(student.state_dict())
    return settled


def build_state(
    cfg: TrainConfig,
    device: torch.device,
    init_weights: str | Path | None,
    reinit: Sequence[int] = (),
    name: str | None = None,
) -> TrainState:
    """The student (fresh, or the ``init_weights``), its teacher and optimiser.

    The student is named ``name`` when given, else keeps the ``init_weights``' own name (a fresh
    one takes the config's); the name is written into ``cfg`` so that checkpoints and ``--resume``
    export weights under the same name.
    """
    if init_weights:
        student = load_model(init_weights)
        if student.config.channels != tuple(cfg.channels) or student.config.head != cfg.head:
            raise RifestreamError(
                f"{init_weights}: architecture {student.config.channels} does not match the config's "
                f"{tuple(cfg.channels)}; use the config the weights were trained with"
            )
        student = with_search_prior(student, cfg)
        cfg.name = name or student.config.name
        student.config = dataclasses.replace(student.config, name=cfg.name)
    else:
        cfg.name = name or cfg.name
        student = IFNet(cfg.model_config())
    reinit_blocks(student, reinit)
    model = DistillModel(student.train(), Teacher(cfg.teacher_channels), cfg).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return TrainState(step=0, model=model, optimizer=optimizer)


def param_groups(model: DistillModel, cfg: TrainConfig) -> list[dict]:
    """One group per student block when ``block_lr_scale`` or ``block_adam_eps`` is set, one for the
    head when ``head_lr_scale`` is not 1, and one for the rest (all of it when none is set).

    Each group's ``lr_scale`` multiplies the scheduled learning rate.
    """
    groups, grouped = [], set()

    def add(params: list[nn.Parameter], lr_scale: float, **extra: float) -> None:
        grouped.update(id(p) for p in params)
        groups.append({"params": params, "lr_scale": float(lr_scale), **extra})

    if cfg.block_lr_scale or cfg.block_adam_eps:
        n = len(model.student.blocks)
        scales = cfg.block_lr_scale or (1.0,) * n
        eps = cfg.block_adam_eps or (1e-8,) * n
        for block, lr_scale, block_eps in zip(model.student.blocks, scales, eps, strict=True):
            add(list(block.parameters()), lr_scale, eps=float(block_eps))
    if cfg.head_lr_scale != 1.0:
        if not model.student.config.head:
            raise RifestreamError("head_lr_scale is set but the model has no feature head: remove it")
        add(list(model.student.encode.parameters()), cfg.head_lr_scale)
    add([p for p in model.parameters() if id(p) not in grouped], 1.0)
    return groups


def save_checkpoint(state: TrainState, cfg: TrainConfig, out_dir: Path) -> None:
    """Atomically write ``last.pt`` and export the student as ``latest.safetensors``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (CHECKPOINT_NAME + ".tmp")
    torch.save(
        {
            "step": state.step,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "config": cfg.to_dict(),
        },
        tmp,
    )
    os.replace(tmp, out_dir / CHECKPOINT_NAME)
    export = out_dir / (EXPORT_NAME + ".tmp")
    save_model(state.model.student, export, step=str(state.step), trained_by="rifestream train")
    os.replace(export, out_dir / EXPORT_NAME)


def checkpoint_to_resume(out_dir: str | Path) -> Path:
    """``out_dir``/last.pt, which must exist for a run to resume."""
    path = Path(out_dir) / CHECKPOINT_NAME
    if not path.is_file():
        raise RifestreamError(f"{path}: no checkpoint to resume from; drop --resume to start afresh")
    return path


RESUME_KEYS = ("config", "model", "optimizer", "step")


def read_checkpoint(path: Path) -> dict:
    """A training checkpoint (``save_checkpoint``'s dict), loaded safely (tensors only, never code);
    anything else is refused in one line naming the file."""
    refusal = f"{path}: not a rifestream training checkpoint"
    advice = "drop --resume to start afresh, or give --out the folder of the run to continue"
    try:
        ckpt = safe_torch_load(path, "training checkpoint")
    except RifestreamError as exc:
        raise RifestreamError(f"{exc}; {advice}") from exc
    except Exception as exc:  # a truncated or corrupt file: torch raises several types
        first_line = (str(exc).strip().splitlines() or [""])[0][:160]
        raise RifestreamError(f"{refusal} ({type(exc).__name__}: {first_line}); {advice}") from exc
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in RESUME_KEYS):
        raise RifestreamError(f"{refusal} (it lacks {', '.join(RESUME_KEYS)}); {advice}")
    return ckpt


def resumed_config(out_dir: str | Path) -> TrainConfig:
    """The settings ``out_dir``/last.pt was written with (schedule, data, blocks): what a resumed run continues."""
    path = checkpoint_to_resume(out_dir)
    ckpt = read_checkpoint(path)
    try:
        return TrainConfig.from_dict(ckpt["config"])
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise RifestreamError(f"{path}: its saved training settings cannot be read ({exc}); drop --resume") from exc


def load_checkpoint(state: TrainState, path: Path) -> None:
    ckpt = read_checkpoint(path)
    try:
        state.model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:160]
        raise RifestreamError(f"{path}: its weights do not fit the model its settings describe ({first_line})") from exc
    try:
        state.optimizer.load_state_dict(ckpt["optimizer"])
    except ValueError as exc:
        raise RifestreamError(
            f"{path}: its optimiser has other parameter groups than this config makes ({exc}); "
            "resume with the block_lr_scale, block_adam_eps and head_lr_scale settings it was written with"
        ) from exc
    state.step = int(ckpt["step"])


def validation_batch(cfg: TrainConfig, per_clip: int = 4) -> dict[str, torch.Tensor] | None:
    """The busiest t = 0.5, gap-1 triplets of the validation clips, full frames (a fixed yardstick)."""
    if not cfg.val_clips:
        return None
    videos = VideoTriplets(cfg.clip_paths(cfg.val_clips), gaps=(1,))
    picked = []
    for k in range(len(videos.clips)):
        mine = [tr for tr in videos.triplets if tr.clip == k and tr.t == 0.5]
        picked += sorted(mine, key=lambda tr: -tr.motion)[:per_clip]
    shapes = {videos.clips[tr.clip][0].shape for tr in picked}
    if len(shapes) != 1:
        picked = [tr for tr in picked if videos.clips[tr.clip][0].shape == videos.clips[picked[0].clip][0].shape]

    def stack(attr: str) -> torch.Tensor:
        arr = np.stack([videos.clips[tr.clip][getattr(tr, attr)] for tr in picked])
        return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0

    return {"img0": stack("i0"), "gt": stack("it"), "img1": stack("i1")}


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode and autograd off for the block, back to training after it."""
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train()


def validate(student: IFNet, val: dict[str, torch.Tensor], device: torch.device) -> float:
    scores = []
    m = student.pad_multiple()
    with _eval_mode(student):
        for i in range(val["img0"].shape[0]):
            img0, gt, img1 = (val[k][i : i + 1].to(device) for k in ("img0", "gt", "img1"))
            h, w = img0.shape[-2:]
            ph, pw = -h % m, -w % m
            pad = torch.nn.functional.pad
            out = student(pad(img0, (0, pw, 0, ph)), pad(img1, (0, pw, 0, ph)), 0.5)[..., :h, :w]
            out = (out.clamp(0, 1) * 255).round() / 255
            scores.append(float(psnr(out, gt)))
    return float(np.mean(scores))


FIT_CALIBRATION_STEPS = 50


def fitted_steps(step: int, steps_timed: int, elapsed_s: float, minutes: float) -> int:
    """The last step of a schedule that ends ``minutes`` after the run's start, at the pace of the steps timed."""
    rate = steps_timed / max(elapsed_s, 1e-6)
    return step + max(1, int(rate * max(0.0, 60.0 * minutes - elapsed_s)))


def _agreed(value: int, world: int, dev: torch.device) -> int:
    """Rank 0's ``value`` in every rank (each rank has its own clock; the schedule and the stop must be one)."""
    if world == 1:
        return value
    buf = torch.tensor([value], dtype=torch.long, device=dev)
    dist.broadcast(buf, src=0)
    return int(buf.item())


def _health(student: IFNet, val: dict[str, torch.Tensor], device: torch.device) -> str:
    with _eval_mode(student):
        return health_summary(student, val["img0"][:1].to(device), val["img1"][:1].to(device))


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    device: str = "cpu",
    resume: bool = False,
    init_weights: str | Path | None = None,
    max_minutes: float | None = None,
    progress: bool = True,
    stop_at: int | None = None,
    fit_minutes: float | None = None,
    reinit: Sequence[int] = (),
    name: str | None = None,
) -> TrainState:
    """Train until ``cfg.steps`` (or step ``stop_at``, or ``max_minutes`` of wall time), checkpointing as it goes.

    Batches are drawn from a generator seeded by (seed, rank, step), so a
    resumed run sees the same data as an uninterrupted one. ``fit_minutes``:
    after the first ``FIT_CALIBRATION_STEPS`` steps of this run, resize the
    schedule (``cfg.steps``) so that it ends, learning rate decayed, about
    ``fit_minutes`` after the run began (for machines lent by the minute).
    ``reinit``: student blocks to start afresh (:func:`reinit_blocks`), not
    with ``resume``, whose checkpoint holds every block. ``name``: the name the
    exported weights carry (:func:`build_state`). ``resume`` takes the
    schedule from ``cfg``: pass :func:`resumed_config` (changed where meant)
    to continue the run's own settings, as ``rifestream train --resume`` does.
    """
    out_dir = Path(out_dir)
    rank, world = distributed_rank()
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dev = torch.device("cuda", torch.cuda.current_device())
    torch.manual_seed(cfg.seed)  # identical initial weights in every rank
    if resume and reinit:
        raise RifestreamError("re-initialising blocks needs a fresh start (--init WEIGHTS), not --resume")
    state = build_state(cfg, dev, init_weights, reinit, name)
    if resume:
        ckpt_path = checkpoint_to_resume(out_dir)
        load_checkpoint(state, ckpt_path)
        if rank == 0:
            log.info("resumed from %s at step %d", ckpt_path, state.step)

    videos = VideoTriplets(cfg.clip_paths(cfg.train_clips), cfg.gaps) if cfg.train_clips else None
    maker = BatchMaker(
        videos,
        cfg.crop,
        cfg.synthetic_share,
        np.random.default_rng(cfg.seed),
        cfg.min_downscale,
        cfg.synthetic_max_motion,
    )
    val = validation_batch(cfg) if rank == 0 and cfg.val_every else None

    model: nn.Module = state.model
    if world > 1:
        model = nn.parallel.DistributedDataParallel(state.model, device_ids=[dev.index] if dev.type == "cuda" else None)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")

    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=state.step, mininterval=5.0, dynamic_ncols=True)
    started = time.monotonic()
    last_ckpt = started
    window_start, window_samples = time.monotonic(), 0
    running: dict[str, float] = {}

    def last_step() -> int:  # cfg.steps may be resized on the way (fit_minutes)
        return cfg.steps if stop_at is None else min(cfg.steps, stop_at)

    first_step = state.step
    while state.step < last_step():
        # Rank 0's clock decides for every rank: a rank that stopped alone would leave the others
        # waiting in the gradients' all-reduce (a gloo "connection closed" at the end of the run).
        if max_minutes is not None and _agreed(int(time.monotonic() - started > 60 * max_minutes), world, dev):
            break
        lr = learning_rate(state.step, cfg)
        for group in state.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # checkpoints before block_lr_scale have none
        maker.rng = np.random.default_rng([cfg.seed, rank, state.step])
        batch = {k: v.to(dev, non_blocking=True) for k, v in maker.batch(cfg.batch).items()}
        with autocast:
            loss, stats = model(batch)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
        state.optimizer.step()
        state.step += 1
        window_samples += cfg.batch * world
        if fit_minutes is not None and state.step - first_step == FIT_CALIBRATION_STEPS:
            elapsed = time.monotonic() - started
            cfg.steps = _agreed(fitted_steps(state.step, FIT_CALIBRATION_STEPS, elapsed, fit_minutes), world, dev)
            if bar is not None:
                bar.total = cfg.steps
            if rank == 0:
                log.info("schedule fitted to %g minutes: %d steps in all", fit_minutes, cfg.steps)
        for k, v in stats.items():
            running[k] = 0.95 * running.get(k, float(v)) + 0.05 * float(v)
        if rank != 0:
            continue
        rate = window_samples / max(1e-6, time.monotonic() - window_start)
        if bar is not None:
            bar.set_postfix(
                loss=f"{running['loss']:.4f}", psnr=f"{running['psnr']:.2f}", sps=f"{rate:.1f}", refresh=False
            )
            bar.update(1)
        if state.step % cfg.log_every == 0:
            parts = " ".join(f"{k}={v:.4f}" for k, v in running.items())
            log.info("step %d lr=%.2e %s samples/s=%.1f", state.step, lr, parts, rate)
            window_start, window_samples = time.monotonic(), 0
        if val is not None and state.step % cfg.val_every == 0:
            log.info("step %d val_psnr=%.3f", state.step, validate(state.model.student, val, dev))
            log.info("step %d %s", state.step, _health(state.model.student, val, dev))
        if time.monotonic() - last_ckpt > 60 * cfg.checkpoint_minutes:
            save_checkpoint(state, cfg, out_dir)
            last_ckpt = time.monotonic()
    if rank == 0:
        save_checkpoint(state, cfg, out_dir)
        if val is not None:
            log.info("final step %d val_psnr=%.3f", state.step, validate(state.model.student, val, dev))
    if bar is not None:
        bar.close()
    return state
