"""Two experiments on the coarse blocks of an IFNet (docs/MODEL_HISTORY.md, "The coarse block alone").

``oracle CLIP``: the translation probe of scripts/translation_probe.py with block 0's flow
replaced by a share of the true shift (0, 0.5, 1): would the fine blocks keep a coarse flow
that is right, and what would the frame gain?

``alone``: a fresh IFBlock of the model's first-block shape, trained by itself with the true
flow of synthetic scenes as its only loss (L1 as the trainer's flow term, or ``--loss mse``), no
other block and no reconstruction loss (``--no-head``: on images and t only, as in v4.6).
Prints, every 100 steps, its flow error next to the error of predicting no motion at all on
the same batches: whether and when it learns to see motion. ``--save W`` writes, every 500
steps and at the end, the ``--model`` weights with block 0 replaced by the trained block (its
mask and feature outputs held at the old block's constant, which is what the later blocks were
trained on), a file that ``eval``, ``translation_probe.py`` and ``train --init`` take;
``--init-block W`` starts block 0 from such a file.

    python scripts/studies/coarse_block_study.py oracle ../shared/data/clips/asl_gestures_no.mkv
    python scripts/studies/coarse_block_study.py alone --steps 2000 [--loss mse] [--no-head] [--center] [--fixed-batch]
    python scripts/studies/coarse_block_study.py alone --loss mse --steps 24000 --min-lr 1.5e-5 \
        --save runs/coarse/w.safetensors
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from rifestream.io.video_file import read_rgb_frames
from rifestream.model import IFNet, load_model, save_model
from rifestream.model.ifnet import IFBlock
from rifestream.train.batch import BatchMaker
from rifestream.train.config import TrainConfig
from rifestream.train.diagnostics import translation_probe
from rifestream.train.loss import flow_l1, flow_mse
from rifestream.train.trainer import learning_rate


def oracle(net: IFNet, clip: str, shifts: tuple[int, ...]) -> None:
    frame = read_rgb_frames(clip, 1)[0]
    block0 = net.blocks[0]
    plain = block0.forward
    print(f"{clip}: shifts along x; block 0's flow set to share x truth (F(t->0) = d/2)")
    print(f"{'share':>5} {'d':>3} {'truth':>6} {'model':>6} {'PSNR':>6} {'blend':>6}   after each block")
    for share in (0.0, 0.5, 1.0):
        for d in shifts:

            def coarse(x, flow, scale, d=d, share=share):
                out, mask, feat = plain(x, flow, scale)
                out = torch.zeros_like(out)
                out[:, 0], out[:, 2] = share * d / 2, -share * d / 2
                return out, mask, feat

            block0.forward = coarse
            try:
                row = next(r for r in translation_probe(net, frame, (d,)) if r.axis == "x")
            finally:
                block0.forward = plain
            flows = " ".join(f"{f:5.2f}" for f in row.by_block)
            print(
                f"{share:>5.1f} {d:>3} {d / 2:>6.1f} {row.estimated:>6.2f} {row.psnr_model:>6.2f} "
                f"{row.psnr_blend:>6.2f}   {flows}"
            )


def save_spliced(net: IFNet, block: IFBlock, path: Path, **metadata: str) -> None:
    """Write ``net`` with block 0 replaced by ``block``, whose mask and feature outputs are the old block's constant.

    The later blocks were trained on block 0's mask and features as they were (its output
    layer's bias: the block had collapsed, docs/MODEL_HISTORY.md, Diagnosis); only the flow is the
    new block's. The output layer is a ConvTranspose2d into 4 x k_out channels and a
    PixelShuffle(2), so output channel c comes from channels 4c to 4c + 3: 0-15 are the flow.
    """
    new = IFNet(net.config)
    new.load_state_dict(net.state_dict())
    new.block0.load_state_dict(block.state_dict())
    old_last, new_last = net.block0.lastconv[0], new.block0.lastconv[0]
    with torch.no_grad():
        new_last.weight[:, 16:] = 0.0
        new_last.bias[16:] = old_last.bias[16:]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(new, path, **metadata)


def with_still_pairs(batch: dict[str, torch.Tensor], count: int) -> dict[str, torch.Tensor]:
    """The batch with its first ``count`` scenes made still: the second frame is the first, the flow zero.

    The synthetic scenes always move (their background too); real footage is mostly still
    background, where a block that never saw stillness invents motion (``static_flow``).
    """
    b = dict(batch)
    b["img1"], b["flow"] = b["img1"].clone(), b["flow"].clone()
    b["img1"][:count] = b["img0"][:count]
    b["flow"][:count] = 0.0
    return b


def alone(net: IFNet, args: argparse.Namespace) -> None:
    cfg = net.config
    torch.manual_seed(args.seed)
    head = net.encode if cfg.head and not args.no_head else None
    block = IFBlock(cfg.first_in if head is not None else 7, cfg.channels[0], cfg.k_out)
    if args.init_block:
        block.load_state_dict(load_model(args.init_block).float().block0.state_dict())
    if head is not None:
        head.requires_grad_(False)
    optimizer = torch.optim.AdamW(block.parameters(), lr=args.lr, weight_decay=1e-4)
    textures = [f for clip in args.textures for f in read_rgb_frames(clip, 200)[::10]]
    rng = np.random.default_rng(args.seed)
    batches = BatchMaker(None, args.crop, 1.0, rng, texture_frames=textures, max_motion=args.max_motion)
    errors, zero_errors, start = [], [], time.monotonic()
    inputs = "images, the model's (frozen) head features and t" if head is not None else "images and t"
    print(
        f"block 0 alone ({cfg.channels[0]} channels, scale {cfg.scales[0]:g}) on {inputs}, "
        f"crops {args.crop}, motion up to {args.max_motion:g} px"
    )
    fixed = batches.batch(args.batch) if args.fixed_batch else None
    still = round(args.still_share * args.batch)
    # The trainer's schedule without warm-up: --lr throughout, or a cosine decay to --min-lr.
    schedule = TrainConfig(
        steps=args.steps, lr=args.lr, min_lr=args.lr if args.min_lr is None else args.min_lr, warmup=0
    )
    for step in range(1, args.steps + 1):
        b = fixed if fixed is not None else batches.batch(args.batch)
        if still:
            b = with_still_pairs(b, still)
        n, _, h, w = b["img0"].shape
        parts = [b["img0"], b["img1"]]
        if head is not None:
            parts += [head(b["img0"]), head(b["img1"])]
        x = torch.cat([*parts, b["t"].expand(n, 1, h, w)], 1)
        if args.center:
            x = x - 0.5
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step - 1, schedule)
        flow, _, _ = block(x, None, cfg.scales[0])
        error = flow_l1(flow, b["flow"], b["has_flow"])
        loss = flow_mse(flow, b["flow"], b["has_flow"]) if args.loss == "mse" else error
        optimizer.zero_grad()
        loss.backward()
        if args.clip_grad:
            torch.nn.utils.clip_grad_norm_(block.parameters(), args.clip_grad)
        optimizer.step()
        errors.append(error.item())
        zero_errors.append(flow_l1(torch.zeros_like(flow), b["flow"], b["has_flow"]).item())
        if step % 100 == 0:
            mean, zero = np.mean(errors[-100:]), np.mean(zero_errors[-100:])
            print(
                f"step {step:>5}: flow error {mean:.3f} px, no motion {zero:.3f} px "
                f"({100 * (mean / zero - 1):+.1f} %), {time.monotonic() - start:.0f} s",
                flush=True,
            )
        if args.save and (step % 500 == 0 or step == args.steps):
            recent = f"{np.mean(errors[-100:]):.4f}"
            save_spliced(net, block, args.save, step=str(step), loss=args.loss, flow_error=recent)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="rifestream/weights/rifestream-v1.safetensors", help="weights file")
    p.add_argument("--threads", type=int, default=2)
    sub = p.add_subparsers(dest="what", required=True)
    o = sub.add_parser("oracle", help="the probe with block 0's flow set to a share of the truth")
    o.add_argument("clip")
    o.add_argument("--shifts", default="8,16,32", help="even shifts in pixels, comma-separated")
    a = sub.add_parser("alone", help="train a fresh block 0 on the true flow alone")
    a.add_argument("--steps", type=int, default=2000)
    a.add_argument("--batch", type=int, default=8)
    a.add_argument("--crop", type=int, default=160)
    a.add_argument("--max-motion", type=float, default=80.0, help="largest motion in a scene, px (training: 80)")
    a.add_argument("--lr", type=float, default=3e-4)
    a.add_argument("--min-lr", type=float, help="decay the learning rate to this along a cosine (default: constant)")
    a.add_argument("--save", type=Path, help="write --model with block 0 replaced by the trained one here")
    a.add_argument("--init-block", help="start block 0 from this weights file's block 0 (one --save wrote)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--center", action="store_true", help="feed the block its inputs minus 0.5")
    a.add_argument("--no-head", action="store_true", help="feed it images and t only (7 channels), as v4.6")
    a.add_argument("--loss", choices=("l1", "mse"), default="l1", help="l1 (the trainer's flow term) or mse")
    a.add_argument("--clip-grad", type=float, help="clip the gradient norm (the trainer clips at 1)")
    a.add_argument("--fixed-batch", action="store_true", help="one batch every step: can it fit at all?")
    a.add_argument("--still-share", type=float, default=0.0, help="share of each batch made still (flow 0)")
    a.add_argument(
        "--textures",
        nargs="+",
        default=["../shared/data/clips/asl_gestures_again.mkv", "../shared/data/clips/bottle-detection.mp4"],
        help="clips whose frames texture the synthetic scenes",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    net = load_model(args.model).float().eval()
    if args.what == "alone" and args.no_head and (args.save or args.init_block):
        p.error("--save and --init-block need the model's own block shape: drop --no-head")
    if args.what == "alone" and not 0.0 <= args.still_share <= 1.0:
        p.error(f"--still-share {args.still_share:g}: must be between 0 and 1")
    if args.what == "oracle":
        with torch.no_grad():
            oracle(net, args.clip, tuple(int(s) for s in args.shifts.split(",")))
    else:
        alone(net, args)


if __name__ == "__main__":
    main()
