"""Render docs/img/strip.png, the README's picture: an in-between frame from the model beside a blend.

A synthetic clip of known motion (a random multi-scale texture panning 4 px per frame, a disc of
another texture crossing it at 16 px per frame) gives three frames: two sources and the true middle one.
The strip shows source 0 | the model's frame at t = 0.5 | a blend of the two sources | source 1,
and prints each made frame's PSNR against the true middle frame. Needs the dev extra (Pillow
comes with scikit-image).

    python scripts/make_readme_strip.py                      # the CPU default model, rifestream-lite
    python scripts/make_readme_strip.py --model rifestream-v7 --out /tmp/strip.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from rifestream.engine import Interpolator
from rifestream.model.registry import DEFAULT_CPU_MODEL
from rifestream.quality_eval import psnr

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "strip.png"
WIDTH, HEIGHT = 256, 144
BACKGROUND_STEP, DISC_STEP = 4, 16  # pixels per source frame
LABEL_HEIGHT = 18


def texture(side: int, seed: int) -> np.ndarray:
    """side×side×3 float texture in 0..255: random noise summed over several scales (no repeating period)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((side, side, 3))
    for cell in (32, 16, 8, 4):
        coarse = rng.uniform(-1, 1, (side // cell + 2, side // cell + 2, 3))
        image += cell * np.kron(coarse, np.ones((cell, cell, 1)))[:side, :side]
    image = (image - image.min()) / (image.max() - image.min())
    return 30 + 200 * image


# A muted background and a bright, high-contrast disc, so the eye finds the moving object.
BACKGROUND = 60 + 0.5 * texture(512, seed=1)
_shade = texture(128, seed=2).mean(axis=-1, keepdims=True)
_shade = (_shade - _shade.min()) / (_shade.max() - _shade.min())
DISC = np.array([50.0, 30.0, 20.0]) + _shade * np.array([205.0, 200.0, 20.0])


def scene(frame: float) -> np.ndarray:
    """The clip at frame number ``frame`` (whole steps of 0.5): H×W×3 uint8; frame 1 is the true middle of 0 and 2."""
    shift = int(round(BACKGROUND_STEP * frame))
    image = BACKGROUND[40 : 40 + HEIGHT, 40 + shift : 40 + shift + WIDTH].copy()
    cx, cy, radius = 70 + int(round(DISC_STEP * frame)), HEIGHT // 2, 36
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    inside = (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
    image[inside] = DISC[(y - cy + 64)[inside], (x - cx + 64)[inside]]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def strip(tiles: list[tuple[str, np.ndarray]]) -> Image.Image:
    """Frames of one size side by side, 4 px apart, each under its label (also used by make_failure_strip.py)."""
    height, width = tiles[0][1].shape[:2]
    canvas = Image.new("RGB", (width * len(tiles) + 4 * (len(tiles) - 1), height + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, frame) in enumerate(tiles):
        left = i * (width + 4)
        canvas.paste(Image.fromarray(frame), (left, LABEL_HEIGHT))
        draw.text((left + 4, 3), label, fill="black")
    return canvas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_CPU_MODEL, help=f"model name or file (default {DEFAULT_CPU_MODEL})")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    source0, truth, source1 = scene(0), scene(1), scene(2)
    made = Interpolator(args.model, device="cpu").interpolate(source0, source1, 0.5)
    blend = ((source0.astype(np.uint16) + source1) // 2).astype(np.uint8)
    image = strip(
        [
            ("source frame 0", source0),
            (f"{args.model}, t = 0.5 ({psnr(made, truth):.1f} dB)", made),
            (f"blend, t = 0.5 ({psnr(blend, truth):.1f} dB)", blend),
            ("source frame 1", source1),
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    scores = f"{args.model} {psnr(made, truth):.2f} dB, blend {psnr(blend, truth):.2f} dB"
    print(f"{args.out}: {scores} against the true middle")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
