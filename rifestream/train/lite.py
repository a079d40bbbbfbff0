"""Training the CPU model (:mod:`rifestream.model.lite`).

The network only corrects a DIS flow, so each sample is a triplet crop plus the DIS
flows of its two end frames, computed here exactly as the engine computes them at
run time (same preset, same grid). Real triplets (the truth frame is the middle
frame of the clip) and synthetic scenes of known motion (:mod:`rifestream.train.synthetic`,
up to ``synthetic_max_motion`` px) are mixed; the loss is the multi-scale L1 of
the frame. Validation scores whole frames of held-out clips next to the classical
frame the network starts from, so the log shows the margin the network adds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import field, fields
from pathlib import Path

import cv2
import numpy as np
import torch
from pydantic.dataclasses import dataclass

from rifestream.errors import RifestreamError
from rifestream.model.checkpoint import save_model
from rifestream.model.classical import DISFlow, classical_frames
from rifestream.model.lite import LiteConfig, LiteNet
from rifestream.train.augment import random_augment
from rifestream.train.config import TRAINING, load_settings
from rifestream.train.data import VideoTriplets, decode_clip
from rifestream.train.loss import multiscale_l1
from rifestream.train.scenes import make_scene_triplet

log = logging.getLogger(__name__)


@dataclass(config=TRAINING)  # checked as train/config.py's TrainConfig is
class LiteTrainConfig:
    # [model]: the fields of LiteConfig, with its defaults (what each means is said there)
    name: str = "rifestream-lite"
    widths: tuple[int, int] = LiteConfig.widths
    net_level: int = LiteConfig.net_level
    flow_level: int = LiteConfig.flow_level
    dis_preset: str = LiteConfig.dis_preset
    flow_iters: int = LiteConfig.flow_iters
    dis_finest_scale: int | None = LiteConfig.dis_finest_scale
    flow_correction: bool = LiteConfig.flow_correction
    occlusion_prior: bool = LiteConfig.occlusion_prior
    colour_residual: bool = LiteConfig.colour_residual
    shared_motion: bool = LiteConfig.shared_motion
    motion_search: bool = LiteConfig.motion_search
    warp_mode: str = LiteConfig.warp_mode
    quadratic_motion: bool = LiteConfig.quadratic_motion
    timing_hedge: bool = LiteConfig.timing_hedge
    edge_occlusion: bool = LiteConfig.edge_occlusion
    network: bool = LiteConfig.network
    # [data]: clip entries are "PATH" or "PATH@FIRST-LAST" (a frame range), relative to clips_dir
    clips_dir: str = ""
    train_clips: list[str] = field(default_factory=list)
    val_clips: list[str] = field(default_factory=list)
    max_side: int = 640
    gaps: tuple[int, ...] = (1, 2, 3)
    # Of the real triplets, the share at t = 0.5 (what 2x conversion asks for); the rest are
    # RIFEm triplets at other t, up to 6 frames apart.
    half_t_share: float = 0.8
    synthetic_share: float = 0.3
    synthetic_max_motion: float = 90.0
    synthetic_max_pan: float = 60.0
    crop: int = 256
    # [train]
    steps: int = 20000
    batch: int = 12
    lr: float = 1e-3
    min_lr: float = 2e-5
    warmup: int = 200
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    seed: int = 0
    val_every: int = 500
    log_every: int = 50
    val_pairs: int = 6

    def __post_init__(self) -> None:
        self.widths = tuple(int(c) for c in self.widths)
        self.gaps = tuple(int(g) for g in self.gaps)
        try:
            cfg = self.model_config()
        except ValueError as exc:
            raise RifestreamError(f"[model] settings: {exc}") from exc
        if not cfg.network:
            raise RifestreamError("[model] network = false leaves nothing to train; set network = true")
        if self.crop % cfg.pad:
            raise RifestreamError(f"crop {self.crop} must be a multiple of {cfg.pad} (the model's pad)")
        if not 0.0 <= self.synthetic_share <= 1.0:
            raise RifestreamError(f"synthetic_share must lie in [0, 1], got {self.synthetic_share}")

    def model_config(self) -> LiteConfig:
        values = {f.name: getattr(self, f.name) for f in fields(LiteConfig)}
        return LiteConfig(**{**values, "widths": tuple(self.widths)})

    def clip_spec(self, entry: str) -> tuple[Path, int, int | None]:
        """(path, first frame, last frame or None) of a clip entry."""
        path, _, span = entry.partition("@")
        first, last = 0, None
        if span:
            a, _, b = span.partition("-")
            first, last = int(a), int(b)
        base = Path(self.clips_dir) if self.clips_dir else Path()
        return base / path, first, last

    @classmethod
    def load(cls, path: str | Path) -> LiteTrainConfig:
        """Read a ``[model] family = "lite"`` training TOML (a bad setting: ``FILE: TABLE.KEY: expected …``)."""
        return load_settings(cls, path)


def load_frames(config: LiteTrainConfig, entry: str) -> list[np.ndarray]:
    """A clip entry's frames, downscaled (area) so the longer side is at most ``max_side``."""
    path, first, last = config.clip_spec(entry)
    frames = decode_clip(path, None if last is None else last + 1)[first:]
    h, w, _ = frames[0].shape
    if max(h, w) > config.max_side:
        k = config.max_side / max(h, w)
        size = (round(w * k / 2) * 2, round(h * k / 2) * 2)
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    return frames


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)


def _grey(img: torch.Tensor, level: int) -> np.ndarray:
    from rifestream.model.classical import grey_u8

    return grey_u8(img[None], level)


class LiteBatches:
    """Random training batches: (img0, gt, img1, flows, t) tensors, flows from DIS as at run time.

    The augmentations (flips, 90° turns, time reversal) move a pair's flows with its frames: they
    transform the DIS pair flows F(0→1), F(1→0) exactly as :mod:`rifestream.train.augment` transforms
    the intermediate flows it was written for (a displacement field either way; reversal swaps them).
    """

    def __init__(self, config: LiteTrainConfig, real: VideoTriplets | None, textures: list[np.ndarray]) -> None:
        self.config = config
        self.real = real
        self.textures = textures
        self.dis = DISFlow(config.dis_preset, config.flow_level, config.dis_finest_scale)
        self.rng = np.random.default_rng(config.seed)

    def _real_sample(self) -> dict:
        """A crop of a real triplet with the DIS flows of the *whole* frames, cropped alike: at run time
        DIS sees the whole frame too, and a crop's flow near its edges would be worse than that."""
        c, rng, level = self.config.crop, self.rng, self.config.flow_level
        img0, gt, img1, t = self.real.sample(rng)
        h, w, _ = img0.shape
        if h < c or w < c:  # small clips: upscale so a crop fits
            k = c / min(h, w)
            size = (math.ceil(w * k / level) * level, math.ceil(h * k / level) * level)
            img0, gt, img1 = (cv2.resize(x, size, interpolation=cv2.INTER_LINEAR) for x in (img0, gt, img1))
            h, w, _ = img0.shape
        flows = self.dis.pair(*(_grey(_tensor(x), level) for x in (img0, img1)))
        y = int(rng.integers((h - c) // level + 1)) * level
        x = int(rng.integers((w - c) // level + 1)) * level
        crop = [_tensor(a[y : y + c, x : x + c]) for a in (img0, gt, img1)]
        flow = torch.from_numpy(flows[y // level : (y + c) // level, x // level : (x + c) // level]).permute(2, 0, 1)
        return {"img0": crop[0], "gt": crop[1], "img1": crop[2], "t": float(t), "flow": flow.contiguous()}

    def _synthetic_sample(self) -> dict:
        cfg = self.config
        img0, gt, img1, t = make_scene_triplet(
            cfg.crop, self.rng, self.textures, max_motion=cfg.synthetic_max_motion, max_pan=cfg.synthetic_max_pan
        )
        flows = self.dis.pair(*(_grey(_tensor(x), cfg.flow_level) for x in (img0, img1)))
        flow = torch.from_numpy(flows).permute(2, 0, 1).contiguous()
        return {"img0": _tensor(img0), "gt": _tensor(gt), "img1": _tensor(img1), "t": t, "flow": flow}

    def next(self) -> tuple[torch.Tensor, ...]:
        cfg = self.config
        samples = []
        for _ in range(cfg.batch):
            synthetic = self.real is None or self.rng.random() < cfg.synthetic_share
            samples.append(random_augment(self._synthetic_sample() if synthetic else self._real_sample(), self.rng))
        img0 = torch.stack([s["img0"] for s in samples])
        gt = torch.stack([s["gt"] for s in samples])
        img1 = torch.stack([s["img1"] for s in samples])
        flows = torch.stack([s["flow"] for s in samples])  # DIS's F(0->1), F(1->0), augmented with the frames
        t = torch.tensor([s["t"] for s in samples]).view(-1, 1, 1, 1)
        return img0, gt, img1, flows, t


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(0, 1) * 255).round() - b * 255).pow(2).mean())
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


class Validation:
    """Held-out frame pairs (i, i+2) with truth i+1: the model's PSNR beside the classical anchor's."""

    def __init__(self, clips: dict[str, list[np.ndarray]], pairs: int) -> None:
        self.items: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for name, frames in clips.items():
            n = len(frames)
            for i in np.linspace(0, n - 3, num=min(pairs, max(1, n - 2))).astype(int):
                self.items.append((name, *(_tensor(frames[j])[None] for j in (i, i + 1, i + 2))))
        anchor = DISFlow("fast", 1)
        self.anchor = {}
        for name, a, gt, b in self.items:
            self.anchor.setdefault(name, []).append(_psnr(classical_frames(a, b, anchor(a, b), [0.5]), gt))

    def run(self, model: LiteNet) -> dict[str, tuple[float, float]]:
        """Per clip: (model PSNR, anchor PSNR), averaged over its pairs."""
        got: dict[str, list[float]] = {}
        model.eval()
        with torch.inference_mode():
            for name, a, gt, b in self.items:
                pad = model.pad_multiple()
                h, w = a.shape[-2:]
                ph, pw = (-h) % pad, (-w) % pad
                pa, pb = (torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate") for x in (a, b))
                out = model(pa, pb, 0.5)[..., :h, :w]
                got.setdefault(name, []).append(_psnr(out, gt))
        model.train()
        return {k: (float(np.mean(v)), float(np.mean(self.anchor[k]))) for k, v in got.items()}


def lr_at(config: LiteTrainConfig, step: int, time_share: float = 0.0) -> float:
    """Linear warm-up, then a cosine to ``min_lr`` over the steps or, when the run is bounded in
    minutes, over whichever of the two is further along (``time_share`` = minutes used / allowed)."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    p = min(1.0, max(time_share, (step - config.warmup) / max(1, config.steps - config.warmup)))
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * p))


def train_lite(
    config: LiteTrainConfig,
    out: str | Path,
    max_minutes: float | None = None,
    init: LiteNet | None = None,
    progress: bool = True,
) -> Path:
    """Train (or fine-tune ``init``) and write ``OUT/latest.safetensors`` (every validation) and ``OUT/log.jsonl``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    train_frames = [load_frames(config, e) for e in config.train_clips]
    real = VideoTriplets.from_frames(train_frames, config.gaps, config.half_t_share) if train_frames else None
    if real is None and config.synthetic_share < 1.0:
        raise RifestreamError("no training clips given; name train_clips or set synthetic_share = 1")
    textures = [f for frames in train_frames for f in frames[:: max(1, len(frames) // 8)]]
    batches = LiteBatches(config, real, textures)
    val = Validation({e: load_frames(config, e) for e in config.val_clips}, config.val_pairs)
    model = LiteNet(config.model_config())
    if init is not None:  # fine-tuning: the --init weights' architecture, under this config's name
        model = init
        model.config = dataclasses.replace(init.config, name=config.name)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    weights = out / "latest.safetensors"
    started = time.monotonic()
    logf = (out / "log.jsonl").open("a")
    losses: list[float] = []
    _validate_and_save(model, val, weights, 0, logf, progress)  # the starting point: what training adds
    for step in range(config.steps):
        minutes = (time.monotonic() - started) / 60
        if max_minutes is not None and minutes >= max_minutes:
            log.info("stopping at step %d: --max-minutes %.1f reached", step, max_minutes)
            break
        lr = lr_at(config, step, minutes / max_minutes if max_minutes else 0.0)
        for g in opt.param_groups:
            g["lr"] = lr
        img0, gt, img1, flows, t = batches.next()
        frame = model.forward_all(img0, img1, t, 1.0, flows).frame
        m = config.crop // 8  # content entering a crop from outside it cannot be rebuilt from the crop
        loss = multiscale_l1(frame[..., m:-m, m:-m], gt[..., m:-m, m:-m]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % config.log_every == 0:
            rec = {"step": step + 1, "loss": float(np.mean(losses)), "lr": lr, "minutes": round(minutes, 2)}
            losses.clear()
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            if progress:
                print(json.dumps(rec), flush=True)
        if (step + 1) % config.val_every == 0 or step + 1 == config.steps:
            _validate_and_save(model, val, weights, step + 1, logf, progress)
    else:
        step = config.steps
    _validate_and_save(model, val, weights, step, logf, progress)
    logf.close()
    return weights


def _validate_and_save(model: LiteNet, val: Validation, weights: Path, step: int, logf, progress: bool) -> None:
    scores = val.run(model) if val.items else {}
    if scores:
        rec = {
            "step": step,
            "val": {k: [round(a, 3), round(b, 3)] for k, (a, b) in scores.items()},
            "val_mean": round(float(np.mean([a for a, _ in scores.values()])), 3),
            "anchor_mean": round(float(np.mean([b for _, b in scores.values()])), 3),
        }
        logf.write(json.dumps(rec) + "\n")
        logf.flush()
        if progress:
            print(json.dumps(rec), flush=True)
    save_model(model, weights, dtype=torch.float32)
