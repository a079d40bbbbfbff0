"""The team's frame-interpolation quality protocol, as project code.

For each clip: take the busiest ``frames``-long window (odd length) of its
first ``scan`` frames (motion = mean absolute difference between frames i and
i + 2 on a 1/4-size copy), keep its even frames as the half-rate input, rebuild
the frame between each pair of neighbours, and score the rebuilt frames against
the real odd frames: PSNR on RGB, SSIM (7×7 uniform window, as scikit-image's
default) on luma. The last pair is left out, as the shared tool does.

Beside the models, in the same run: ``repeat``, ``blend``, ``classical`` (the
DIS-flow anchor of :meth:`rifestream.engine.interpolator.FrameEngine.classical`)
and ``minterpolate`` (FFmpeg's motion-compensated filter, run exactly as the
shared tool runs it). Clips carry a kind (a folder's name, or a manifest's
``kind``) and the table gives each kind's means and each model's gap to the
better of minterpolate and classical.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rifestream.errors import RifestreamError
from rifestream.io.video_file import read_rgb_frames

Rebuild = Callable[[np.ndarray, np.ndarray], np.ndarray]
LUMA = np.array([0.299, 0.587, 0.114])
BASELINES = ("repeat", "blend", "classical", "minterpolate")
# The baselines a model's gap is measured against: the better of the two, per clip or per kind.
ANCHORS = ("minterpolate", "classical")
# The rate the half-rate clip is written at for FFmpeg (the shared tool's 15; minterpolate doubles it).
HALF_RATE_FPS = 15
MINTERPOLATE = "minterpolate=fps={fps}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir"
VIDEO_SUFFIXES = (".avi", ".flv", ".m4v", ".mkv", ".mov", ".mp4", ".mpg", ".mpeg", ".nut", ".ts", ".webm", ".y4m")


@dataclass(frozen=True)
class Score:
    clip: str
    method: str
    psnr: float
    ssim: float
    frames: int
    kind: str = ""
    motion: float | None = None  # the window's motion (window_motion), when it was measured


#: Upper bounds (px between two input frames) of the motion classes ``rifestream eval --by-motion`` groups by.
MOTION_CLASSES = (8.0, 20.0, 40.0)


@dataclass(frozen=True)
class Clip:
    """A clip to score: its file and its kind ("" when none was given); its rows carry the file's name."""

    path: Path
    kind: str = ""


@dataclass(frozen=True)
class WholeClip:
    """A method that rebuilds the odd frames of a whole half-rate clip at once (an external tool):
    ``rebuild(half, count)`` returns the frames between half[i] and half[i + 1] for i < count."""

    rebuild: Callable[[list[np.ndarray], int], list[np.ndarray]]


Method = Rebuild | WholeClip


def busiest_window_start(frames: Sequence[np.ndarray], n: int) -> int:
    """Start of the n consecutive frames with the most motion between frames i and i + 2."""
    if len(frames) <= n:
        return 0
    small = [f[::4, ::4].astype(np.int16) for f in frames]
    motion = np.array([np.abs(small[i + 2] - small[i]).mean() for i in range(len(small) - 2)])
    window = np.convolve(motion, np.ones(n - 2), mode="valid")
    return int(np.argmax(window))


def window_motion(half: Sequence[np.ndarray]) -> float:
    """How far a window's content moves between two input frames, in pixels: the median over its
    input pairs of each pair's median DIS flow length (fast preset, full size, forward)."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in half]
    flows = (dis.calc(grey[i], grey[i + 1], None) for i in range(len(grey) - 1))
    lengths = [float(np.median(np.hypot(flow[..., 0], flow[..., 1]))) for flow in flows]
    return float(np.median(lengths))


def motion_class(px: float) -> str:
    """The motion class of :data:`MOTION_CLASSES` that ``px`` (between two input frames) falls in."""
    low = 0.0
    for high in MOTION_CLASSES:
        if px < high:
            return f"motion {low:g}-{high:g} px"
        low = high
    return f"motion >={low:g} px"


def split_window(window: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(half-rate input = even frames, truths = the odd frames scored: one per pair but the last)."""
    if len(window) % 2 == 0:
        window = window[:-1]
    half = list(window[0::2])
    truth = list(window[1::2])[: max(0, len(half) - 2)]
    return half, truth


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _box7(x: np.ndarray) -> np.ndarray:
    """Mean over each full 7×7 window (the 'valid' part), via a summed-area table."""
    s = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (s[7:, 7:] - s[:-7, 7:] - s[7:, :-7] + s[:-7, :-7]) / 49.0


def ssim_luma(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of the luma of two RGB uint8 frames (7×7 uniform window, sample covariance, K1 0.01, K2 0.03)."""
    x = a.astype(np.float64) @ LUMA
    y = b.astype(np.float64) @ LUMA
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    cov_norm = 49.0 / 48.0
    ux, uy = _box7(x), _box7(y)
    vx = cov_norm * (_box7(x * x) - ux * ux)
    vy = cov_norm * (_box7(y * y) - uy * uy)
    vxy = cov_norm * (_box7(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(s.mean())


def repeat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a


def blend(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a.astype(np.uint16) + b + 1) // 2).astype(np.uint8)


def classical_rebuild(device: str = "cpu") -> Rebuild:
    """The classical anchor: the ladder's DIS-flow frame (``FrameEngine.classical``: OpenCV DIS, fast
    preset, both ways, linear intermediate flows, both frames warped and averaged)."""
    from rifestream.engine.interpolator import FrameEngine

    engine = FrameEngine(device)

    def rebuild(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return engine.to_numpy(engine.classical(engine.to_tensor(a), engine.to_tensor(b), [0.5]))[0]

    return rebuild


def ffmpeg_binary() -> str | None:
    """The ``ffmpeg`` program on PATH, or None (minterpolate is then left out)."""
    return shutil.which("ffmpeg")


def write_lossless(frames: Sequence[np.ndarray], path: Path, fps: int) -> None:
    """``frames`` as an FFV1 (RGB, lossless) video, as the shared tool writes its half-rate clip."""
    import av

    h, w, _ = frames[0].shape
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "bgr0"
        for a in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def minterpolate_rebuild(ffmpeg: str = "ffmpeg") -> WholeClip:
    """FFmpeg's ``minterpolate`` (mci, aobmc, bidir) as the shared tool runs it: the half-rate frames
    written losslessly at 15 fps, the filter to 30 fps, frame 2i + 1 of its output read back."""

    def rebuild(half: list[np.ndarray], count: int) -> list[np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="rifestream-eval-") as tmp:
            src, out = Path(tmp) / "half.mkv", Path(tmp) / "out.mkv"
            write_lossless(half, src, HALF_RATE_FPS)
            vf = MINTERPOLATE.format(fps=2 * HALF_RATE_FPS)
            cmd = [ffmpeg, "-v", "error", "-y", "-i", str(src), "-vf", vf, "-c:v", "ffv1", str(out)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                raise RifestreamError(
                    f"minterpolate: ffmpeg exited with {done.returncode} ({last}); "
                    "leave it out with --baselines repeat,blend,classical"
                )
            got = read_rgb_frames(out)
        if len(got) < 2 * count + 1:
            raise RifestreamError(f"minterpolate: ffmpeg wrote {len(got)} frames, expected at least {2 * count + 1}")
        return [got[2 * i + 1] for i in range(count)]

    return WholeClip(rebuild)


def model_rebuild(
    model: str | Path | None, device: str = "auto", precision: str = "fp32", scale: float = 1.0, ensemble: int = 1
) -> Rebuild:
    """A rebuild function running an IFNet (a shipped or official name, a path, or None for the default)
    at ``scale``, averaging ``ensemble`` passes per frame (see ``rifestream.engine.Interpolator``)."""
    from rifestream.engine.interpolator import Interpolator

    interp = Interpolator(model, device=device, precision=precision, scale=scale, ensemble=ensemble)
    return lambda a, b: interp.interpolate(a, b, 0.5)


def rebuild_window(method: Method, half: list[np.ndarray], count: int) -> list[np.ndarray]:
    """The frames a method makes between half[i] and half[i + 1], for i < count."""
    if isinstance(method, WholeClip):
        return method.rebuild(half, count)
    return [method(half[i], half[i + 1]) for i in range(count)]


def protocol_window(
    path: str | Path, frames: int = 41, scan: int = 900
) -> tuple[int, list[np.ndarray], list[np.ndarray]]:
    """(start, half-rate input, truths) of a clip's busiest window of ``frames`` (made odd) among its
    first ``scan`` frames: what every method of the protocol rebuilds and is scored against."""
    n = frames if frames % 2 else frames + 1
    clip = read_rgb_frames(path, scan)
    if len(clip) < 5:
        raise RifestreamError(f"{path}: {len(clip)} frames; the protocol needs at least 5")
    start = busiest_window_start(clip, n)
    half, truth = split_window(clip[start : start + n])
    return start, half, truth


def score_clip(
    path: str | Path,
    methods: Mapping[str, Method],
    frames: int = 41,
    scan: int = 900,
    kind: str = "",
    motion: bool = False,
) -> list[Score]:
    """Scores of every method on one clip's busiest window (with ``motion``, each carries the window's
    :func:`window_motion`)."""
    _, half, truth = protocol_window(path, frames, scan)
    moved = window_motion(half) if motion else None
    out = []
    for name, method in methods.items():
        mids = rebuild_window(method, half, len(truth))
        out.append(
            Score(
                clip=Path(path).name,
                method=name,
                psnr=float(np.mean([psnr(m, t) for m, t in zip(mids, truth, strict=True)])),
                ssim=float(np.mean([ssim_luma(m, t) for m, t in zip(mids, truth, strict=True)])),
                frames=len(truth),
                kind=kind,
                motion=moved,
            )
        )
    return out


def clips_from_paths(paths: Sequence[str | Path]) -> list[Clip]:
    """Video files as given (no kind), and folders: each folder's video files, of the kind the folder names."""
    clips: list[Clip] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            clips.append(Clip(path))
            continue
        files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
        if not files:
            raise RifestreamError(
                f"{path}: no video files in this folder ({' '.join(VIDEO_SUFFIXES)}); "
                "a folder holds the clips of one kind"
            )
        kind = path.resolve().name
        clips.extend(Clip(f, kind) for f in files)
    return clips


def clips_from_manifest(manifest: str | Path, split: str | None = None) -> list[Clip]:
    """The clips a JSON manifest lists (``{"clips": [{"path" or "file", "kind", "split"}, ...]}``, paths
    relative to the manifest, as ``scripts/make_corpus.py`` writes it), only those of ``split`` if given."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise RifestreamError(f'--manifest {manifest}: no such file; pass a JSON manifest with a "clips" list')
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RifestreamError(f"--manifest {manifest}: not readable JSON ({exc})") from exc
    entries = data.get("clips") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise RifestreamError(f'--manifest {manifest}: expected a JSON object whose "clips" is a list of objects')
    clips, splits = [], []
    for i, entry in enumerate(entries):
        where = entry.get("path") or entry.get("file") or entry.get("name")
        if not isinstance(where, str):
            raise RifestreamError(f'--manifest {manifest}: clip {i} has no "path" (or "file") string')
        entry_split = str(entry.get("split") or "")
        splits.append(entry_split)
        if split is None or entry_split == split:
            clips.append(Clip(manifest.parent / where, str(entry.get("kind") or "")))
    if split is not None and split not in splits:
        known = ", ".join(sorted({s for s in splits if s})) or "none"
        raise RifestreamError(f"--split {split}: no clip of {manifest} is in that split (its splits: {known})")
    if not clips:
        raise RifestreamError(f"--manifest {manifest}: lists no clips")
    return clips


def gap(psnrs: Mapping[str, float], model: str) -> float | None:
    """``model``'s PSNR minus the better of minterpolate's and classical's (None when neither was run)."""
    anchors = [psnrs[a] for a in ANCHORS if a in psnrs]
    return psnrs[model] - max(anchors) if anchors and model in psnrs else None


def format_table(scores: Sequence[Score], methods: Sequence[str], models: Sequence[str] = ()) -> str:
    """One row per clip (PSNR dB / SSIM for each method), one mean row per kind when the clips have kinds,
    and the mean over all clips. With ``models`` and minterpolate or classical among the methods, a
    ``gap MODEL`` column per model: its PSNR minus the better of the two (on a mean row, of their means)."""
    rows: list[tuple[str, str, dict[str, tuple[float, float]]]] = []
    for s in scores:
        if not rows or rows[-1][:2] != (s.clip, s.kind) or s.method in rows[-1][2]:
            rows.append((s.clip, s.kind, {}))
        rows[-1][2][s.method] = (s.psnr, s.ssim)
    kinds = list(dict.fromkeys(kind for _, kind, _ in rows))
    grouped = kinds != [""]

    def mean_of(selected: list[dict[str, tuple[float, float]]]) -> dict[str, tuple[float, float]]:
        return {
            m: (float(np.mean([r[m][0] for r in selected])), float(np.mean([r[m][1] for r in selected])))
            for m in methods
            if all(m in r for r in selected)
        }

    table = [(clip, kind or "-", cells) for clip, kind, cells in rows]
    if grouped:
        table += [("mean", kind or "-", mean_of([c for _, k, c in rows if k == kind])) for kind in kinds]
    table.append(("mean", "(all)", mean_of([c for _, _, c in rows])))
    gapped = [m for m in models if m in methods] if any(a in methods for a in ANCHORS) else []

    width = max(len("clip"), *(len(label) for label, _, _ in table))
    kind_width = max(len("kind"), *(len(kind) for _, kind, _ in table))
    col = max(16, *(len(m) for m in methods))
    gap_cols = [f"gap {m}" for m in gapped]
    gap_width = max([7, *(len(g) for g in gap_cols)])

    def line(label: str, kind: str, cells: list[str], gaps: list[str]) -> str:
        text = f"{label:<{width}}  " + (f"{kind:<{kind_width}}  " if grouped else "")
        text += "  ".join(f"{c:>{col}}" for c in cells)
        return text + "".join(f"  {g:>{gap_width}}" for g in gaps)

    out = [line("clip", "kind", list(methods), gap_cols)]
    for label, kind, cells in table:
        values = [f"{cells[m][0]:7.2f} / {cells[m][1]:.4f}" if m in cells else "-" for m in methods]
        psnrs = {m: v[0] for m, v in cells.items()}
        gaps = [gap(psnrs, m) for m in gapped]
        out.append(line(label, kind, values, ["-" if g is None else f"{g:+.2f}" for g in gaps]))
    return "\n".join(out)
