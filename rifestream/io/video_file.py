"""Whole-clip decoding for offline work (evaluation, training data): every frame as RGB in memory."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from rifestream.errors import RifestreamError


def read_rgb_frames(path: str | Path, limit: int | None = None) -> list[np.ndarray]:
    """The first ``limit`` (default: all) frames of a video file as H×W×3 uint8 RGB arrays."""
    path = Path(path)
    if not path.is_file():
        raise RifestreamError(f"{path}: no such video file")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            if not any(s.codec_context is not None for s in container.streams.video):
                raise RifestreamError(f"{path}: no decodable video stream; pass a readable video file")
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if limit and len(frames) >= limit:
                    break
    except av.error.FFmpegError as exc:
        raise RifestreamError(f"{path}: cannot decode video ({exc}); pass a readable video file") from exc
    return frames
