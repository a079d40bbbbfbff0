"""``rifestream interpolate`` of many files (a folder or a glob into a folder), here in one process;
tests/test_fleet_ray.py runs the same on a Ray cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from rifestream.errors import RifestreamError
from rifestream.pipeline.offline_many import plan
from tests.test_fleet import assert_doubled


def make_clips(folder: Path, frames: dict[str, int]) -> None:
    """Small 30 fps clips with a moving bar, one per name."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in frames.items():
        with av.open(str(folder / name), "w") as container:
            stream = container.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
            for i in range(n):
                image = np.zeros((64, 96, 3), np.uint8)
                image[:, (5 * i) % 86 : (5 * i) % 86 + 10] = 255
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


CLIPS = {"a.mp4": 10, "b.mkv": 12, "c.mp4": 8}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rifestream", "interpolate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.slow
def test_a_folder_and_a_glob_into_a_folder_each_file_doubled(tmp_path: Path) -> None:
    make_clips(tmp_path / "in", CLIPS)
    (tmp_path / "in" / "notes.txt").write_text("not a video")
    result = run_cli("in", "out", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "interpolate: 3 of 3 files done" in result.stdout
    for name, frames in CLIPS.items():
        assert_doubled(tmp_path / "out" / name, frames)
    result = run_cli("in/*.mp4", "out2", "--device", "cpu", "--factor", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["a.mp4", "c.mp4"]


def test_many_inputs_need_a_folder_out_and_matching_files(tmp_path: Path) -> None:
    make_clips(tmp_path / "in", {"a.mp4": 3})
    (tmp_path / "out.mp4").write_text("")
    with pytest.raises(RifestreamError, match="OUTPUT is a folder"):
        plan(str(tmp_path / "in"), str(tmp_path / "out.mp4"))
    with pytest.raises(RifestreamError, match="matches no file"):
        plan(str(tmp_path / "in" / "*.mov"), str(tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RifestreamError, match="no video files"):
        plan(str(tmp_path / "empty"), str(tmp_path / "out"))


def test_ray_needs_many_files(tmp_path: Path) -> None:
    make_clips(tmp_path, {"a.mp4": 3})
    result = run_cli("a.mp4", "b.mp4", "--ray", "auto", cwd=tmp_path)
    assert result.returncode == 2 and "--ray spreads many files" in result.stderr
