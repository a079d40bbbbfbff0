"""``rifestream interpolate`` of many files: a folder or a glob in, a folder out, one progress bar.

Each file is the offline job (``offline.interpolate_file``) unchanged. Without Ray the files run
one after another in this process; with ``address`` each file is a Ray task (``num_cpus``,
``num_gpus`` declared), so the cluster's workers take them as they have room, and a task whose
worker dies is run again (Ray's task retries). The bar counts frames over every file: each task
reports its frames to a small counter actor that the driver reads.

A file that fails (damaged, unreadable) is reported on its own line; the others go on.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rifestream.errors import RifestreamError
from rifestream.pipeline.run_stats import RunSummary

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".flv", ".ts", ".m4v", ".nut", ".y4m")
PROGRESS_EVERY = 10  # frames between a task's reports to the counter


def is_many(input: str) -> bool:
    """Whether INPUT names many files: a folder, or a glob pattern (``*``, ``?``, ``[``)."""
    return os.path.isdir(input) or glob.has_magic(input)


def expand_inputs(input: str) -> list[Path]:
    """The video files of a folder (by extension, sorted) or the files a glob matches (sorted)."""
    if os.path.isdir(input):
        files = [p for p in sorted(Path(input).iterdir()) if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
        what = f"{input}: no video files ({', '.join(VIDEO_EXTENSIONS)}) in this folder"
    else:
        files = [Path(p) for p in sorted(glob.glob(input)) if os.path.isfile(p)]
        what = f"{input}: the pattern matches no file"
    if not files:
        raise RifestreamError(what)
    return files


def plan(input: str, output: str) -> list[tuple[Path, Path]]:
    """(input, output) for every file: each output in the folder ``output`` under the input's name."""
    files = expand_inputs(input)
    out_dir = Path(output)
    if out_dir.exists() and not out_dir.is_dir():
        raise RifestreamError(f"{output}: with many inputs OUTPUT is a folder (made if missing), not a file")
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise RifestreamError(f"{input}: two inputs share a file name; their outputs would overwrite each other")
    out_dir.mkdir(parents=True, exist_ok=True)
    return [(f.resolve(), (out_dir / f.name).resolve()) for f in files]


@dataclass(frozen=True)
class FileOutcome:
    input: str
    output: str
    summary: RunSummary | None
    error: str | None = None


def _one(input: str, output: str, options: dict[str, Any], report: Callable[[int], None]) -> FileOutcome:
    """One file through the offline job; its error (a user's, or a damaged file's) kept, not raised."""
    from rifestream.pipeline.offline import interpolate_file

    last = 0

    def progress(done: int, total: int | None) -> None:
        nonlocal last
        if done - last >= PROGRESS_EVERY:
            report(done - last)
            last = done

    try:
        summary = interpolate_file(input, output, **options, progress=progress)
    except RifestreamError as exc:
        return FileOutcome(input, output, None, str(exc))
    report(summary.frames_in - last)
    return FileOutcome(input, output, summary)


class FrameCounter:
    """Frames done over every file (a Ray actor the tasks report to)."""

    def __init__(self) -> None:
        self.done = 0

    def add(self, frames: int) -> None:
        self.done += frames

    def value(self) -> int:
        return self.done


def _on_ray(
    input: str, output: str, options: dict[str, Any], counter: Any, setup: Callable[[], None] | None
) -> FileOutcome:
    if setup is not None:
        setup()
    return _one(input, output, options, lambda frames: counter.add.remote(frames))


def interpolate_many(
    pairs: Sequence[tuple[Path, Path]],
    options: dict[str, Any],
    *,
    address: str | None = None,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    progress: bool = True,
    worker_setup: Callable[[], None] | None = None,
) -> list[FileOutcome]:
    """Every (input, output) through ``interpolate_file(**options)``: here, or on the Ray cluster at
    ``address`` (``auto``: as ``fleet --ray auto``); ``worker_setup`` runs first in each task."""
    from rifestream.pipeline.offline import estimated_frames

    total = sum(estimated_frames(str(i)) or 0 for i, _ in pairs) or None
    bar = None
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc=f"interpolate {len(pairs)} files", leave=False)
    try:
        if address is None:
            return [_one(str(i), str(o), options, bar.update if bar else lambda n: None) for i, o in pairs]
        return _many_on_ray(pairs, options, address, num_cpus, num_gpus, bar, worker_setup)
    finally:
        if bar is not None:
            bar.close()


def _many_on_ray(pairs, options, address, num_cpus, num_gpus, bar, setup) -> list[FileOutcome]:
    from rifestream.pipeline.fleet_ray import require_ray

    ray = require_ray()
    connected_here = False
    if not ray.is_initialized():
        try:
            ray.init(address=None if address == "auto" else address, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RifestreamError(f"--ray {address}: cannot connect to the Ray cluster ({exc})") from None
        connected_here = True
    try:
        counter = ray.remote(FrameCounter).options(num_cpus=0).remote()
        task = ray.remote(_on_ray).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=2)
        refs = [task.remote(str(i), str(o), options, counter, setup) for i, o in pairs]
        pending = list(refs)
        while pending:  # each wake-up: a file finished, or a second passed (the bar moves)
            _, pending = ray.wait(pending, num_returns=1, timeout=1.0 if bar is not None else None)
            if bar is not None:
                bar.update(ray.get(counter.value.remote()) - bar.n)
        return ray.get(refs)
    finally:
        if connected_here:
            ray.shutdown()
