"""Render a model's worst in-between frame on a clip beside the truth and the two baselines.

The clip's busiest 41-frame window is split as the team's protocol splits it (even frames in, odd
frames scored, ``rifestream eval``); the model, ffmpeg's minterpolate and the classical anchor
rebuild every odd frame, and the strip shows the one where the model falls furthest below the
better baseline: truth | model | minterpolate | classical, each with its PSNR against the truth.
Needs ffmpeg on PATH and the dev extra (Pillow).

    python scripts/make_failure_strip.py CLIP --model rifestream-v7 --out docs/img/v7_worst.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from make_readme_strip import strip
from PIL import Image

from rifestream.model.registry import DEFAULT_MODEL
from rifestream.quality_eval import (
    classical_rebuild,
    minterpolate_rebuild,
    model_rebuild,
    protocol_window,
    psnr,
    rebuild_window,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path, help="a video file")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or file (default {DEFAULT_MODEL})")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--width", type=int, default=320, help="each tile's width in pixels (default 320)")
    args = parser.parse_args(argv)

    start, half, truth = protocol_window(args.clip)
    made = {
        args.model: rebuild_window(model_rebuild(args.model, device="cpu"), half, len(truth)),
        "minterpolate": rebuild_window(minterpolate_rebuild(), half, len(truth)),
        "classical": rebuild_window(classical_rebuild(), half, len(truth)),
    }
    scores = {name: [psnr(f, t) for f, t in zip(frames, truth, strict=True)] for name, frames in made.items()}
    better = np.maximum(scores["minterpolate"], scores["classical"])
    worst = int(np.argmin(np.array(scores[args.model]) - better))
    tiles = [("truth", truth[worst])] + [(f"{name} ({scores[name][worst]:.1f} dB)", made[name][worst]) for name in made]
    h, w = truth[worst].shape[:2]
    size = (args.width, round(h * args.width / w))
    tiles = [(label, np.asarray(Image.fromarray(frame).resize(size, Image.LANCZOS))) for label, frame in tiles]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    strip(tiles).save(args.out, optimize=True)
    means = ", ".join(f"{name} {np.mean(s):.2f}" for name, s in scores.items())
    print(f"{args.out}: frame {2 * worst + 1} of the window from frame {start}; window means {means} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
