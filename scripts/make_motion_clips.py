#!/usr/bin/env python3
"""Held-out clips of large motion: synthetic scenes panning 10-30 px a frame at 640x360, so 20-60 px
between the frames a method is given under the protocol (even frames in, odd frames scored).

The scenes are those the CPU model trains on (rifestream.train.scenes.Scene: a pan with slight
zoom and spin, moving layers with occlusion, sometimes motion blur, a fixed text overlay or a
brightness drift), but harder: a background tiled with photographs at full detail, two to five
layers moving up to 30 px a frame each, all textured with scikit-image's sample photographs
(public domain or CC0, see skimage.data), which no training run ever sees, and with seeds no
training run draws.
The frames are exact renders, so the odd frames the protocol scores are true middle frames.

    python scripts/make_motion_clips.py OUT_DIR [--clips 6] [--frames 61]

writes OUT_DIR/motion/motion_K.mkv (ffv1, lossless, 30 fps) and OUT_DIR/motion/manifest.json in
the corpus manifest's format (kind "motion", split "heldout"), for `rifestream eval --manifest`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import av
import numpy as np
from skimage import data

from rifestream.train.scenes import Scene

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "camera", "retina", "page")
SEED_BASE = 7_000_000  # far from the training runs' seeds (0 and small numbers)


def photos() -> list[np.ndarray]:
    out = []
    for name in PHOTOS:
        img = getattr(data, name)()
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(img[..., :3]).astype(np.uint8))
    return out


def write_clip(path: Path, scene: Scene, frames: int, fps: int) -> None:
    h, w = scene.size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "bgr0"
        for k in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(scene.frame(float(k)), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--frames", type=int, default=61)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--min-pan", type=float, default=10.0, help="px per frame of the background, at least")
    ap.add_argument("--max-pan", type=float, default=30.0, help="px per frame of the background, at most")
    args = ap.parse_args()
    folder = args.out / "motion"
    folder.mkdir(parents=True, exist_ok=True)
    textures = photos()
    clips = []
    for k in range(args.clips):
        rng = np.random.default_rng(SEED_BASE + k)
        scene = Scene(
            (360, 640),
            rng,
            textures,
            max_motion=args.max_pan,
            max_pan=args.max_pan,
            min_pan=args.min_pan,
            layers=(2, 6),
            mosaic=True,
            turn=1 / args.frames,
        )
        path = folder / f"motion_{k}.mkv"
        write_clip(path, scene, args.frames, args.fps)
        pan = float(np.hypot(*scene.pan))
        clips.append(
            {
                "name": path.stem,
                "path": path.name,
                "kind": "motion",
                "split": "heldout",
                "frames": args.frames,
                "background_px_per_frame": round(pan, 1),
                "source": "rifestream.train.scenes.Scene textured with skimage.data photographs",
                "licence": "rendered here; textures public domain / CC0 (scikit-image sample data)",
            }
        )
        print(f"{path}: background {pan:.1f} px/frame, {len(scene.layers)} layers, blur {scene.blur}")
    (folder / "manifest.json").write_text(json.dumps({"clips": clips}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
