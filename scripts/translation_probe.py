"""Does a model estimate motion, and are its blocks alive? (rifestream.train.diagnostics)

Shifts the first frame of CLIP by d pixels along x and y and prints, per shift,
the median estimated flow on the textured pixels next to the truth (d/2), the
PSNR of the model's halfway frame next to blending's and the estimate after each
block (which blocks carry the motion); then the flow after each block for the first
frame paired with itself (the truth is zero: does a block invent motion on a still
picture?), and each block's feature activity on the first pair of frames.

    python scripts/translation_probe.py ../shared/data/clips/asl_gestures_no.mkv --model rifestream-v1
"""

from __future__ import annotations

import argparse

import torch

from rifestream.engine.interpolator import Interpolator
from rifestream.io.video_file import read_rgb_frames
from rifestream.train.diagnostics import block_activity, static_flow, translation_probe


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clip", help="a video; its first frame is shifted")
    p.add_argument("--model", default=None, help="model name or weights file (default: the shipped default)")
    p.add_argument("--shifts", default="2,4,8,16,24,32", help="shifts in pixels, comma-separated, even")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    interp = Interpolator(args.model, device="cpu")
    net = interp.model
    frames = read_rgb_frames(args.clip, 2)
    print(f"{args.clip}: flow F(t->0) at t = 0.5 (truth d/2), median over textured pixels")
    print(f"{'axis':>4} {'d':>3} {'truth':>6} {'model':>6}   {'PSNR model':>10} {'blend':>6}   after each block")
    for row in translation_probe(net, frames[0], tuple(int(s) for s in args.shifts.split(","))):
        print(
            f"{row.axis:>4} {row.shift:>3} {row.shift / 2:>6.1f} {row.estimated:>6.2f}   "
            f"{row.psnr_model:>10.2f} {row.psnr_blend:>6.2f}   " + " ".join(f"{f:5.2f}" for f in row.by_block)
        )
    still = static_flow(net, frames[0])
    print(
        "still pair (the first frame twice, truth 0): |flow| mean / max after each block   "
        + "   ".join(f"{f.mean_abs:.2f} / {f.max_abs:.1f}" for f in still)
    )
    for k, act in enumerate(block_activity(net, interp.to_tensor(frames[0]), interp.to_tensor(frames[1]))):
        print(f"block{k}: feature |a| {act.mean_abs:.2e}, {100 * act.positive:.0f} % positive")


if __name__ == "__main__":
    main()
