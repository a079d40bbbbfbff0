"""Damaged and mislabelled input files through the real command line: no traceback, no hang, one
error line or a whole output whose audio decodes cleanly (issue 19, item 6).

The corpus is made here, deterministically, from small clips with audio that the test encodes itself
(mp4 with and without faststart, mkv, flv): truncated, bit-flipped, overwritten with garbage,
header-zeroed, zero-length, mislabelled, with huge declared sizes, with tags that are not UTF-8, a
missing AAC configuration, and a stream that changes size midway. Each file goes through
``rifestream interpolate`` and ``rifestream run --source FILE``, each run with a 30 s timeout.
"""

from __future__ import annotations

import random
import re
import struct
from pathlib import Path

import av
import av.logging
import numpy as np
import pytest
import torch

from rifestream.model import OFFICIAL_ARCHS, IFNet
from rifestream.model.checkpoint import save_official_format
from tests.cli_fork import CommandResult, run_commands

W, H, N = 64, 48, 8
TIMEOUT_S = 30.0


def make_clip(path: Path, *, options: dict[str, str] | None = None, width: int = W, height: int = H) -> None:
    """N frames of a moving pattern (H.264) with a stereo AAC tone, in the container ``path`` names."""
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w", options=options or {}) as c:
        v = c.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        samples, sent = 48000 * N // 30, 0
        for i in range(N):
            img = np.stack([(xx + 2 * i) % 32 * 8, (yy + i) % 16 * 16, np.full_like(xx, 90)], -1).astype(np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
            while sent < (i + 1) * samples // N:
                n = min(1024, samples - sent)
                tone = (np.sin(np.arange(sent, sent + n) * 2 * np.pi * 440 / 48000) * 0.2).astype(np.float32)
                frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = 48000, sent
                sent += n
                for p in a.encode(frame):
                    c.mux(p)
        for stream in (v, a):
            for p in stream.encode():
                c.mux(p)


def _box(data: bytes, name: bytes) -> int:
    at = data.find(name)
    assert at >= 4, name
    return at - 4


def _set(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


def damaged_versions(data: bytes, tag: str, ext: str) -> dict[str, bytes]:
    """Truncations, bit flips, garbage, a zeroed header: the same damage for every container."""
    out = {f"{tag}-cut{pct}{ext}": data[: len(data) * pct // 100] for pct in (5, 40, 90)}
    for seed in (0, 4):
        rng = random.Random(seed)
        flipped = bytearray(data)
        for _ in range(20):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        out[f"{tag}-flip{seed}{ext}"] = bytes(flipped)
    rng = random.Random(100)
    start = rng.randrange(len(data) // 4, len(data) - 64)
    out[f"{tag}-garbage{ext}"] = _set(data, start, rng.randbytes(64))
    out[f"{tag}-zerohead{ext}"] = bytes(512) + data[512:]
    return out


def build_corpus(folder: Path) -> dict[str, list[Path]]:
    """The damaged files, by group (one group per source clip, and one of files that are not clips)."""
    clean = folder / "clean"
    clean.mkdir()
    make_clip(clean / "faststart.mp4", options={"movflags": "+faststart"})
    make_clip(clean / "plain.mp4")
    make_clip(clean / "clip.mkv")
    make_clip(clean / "clip.flv")
    make_clip(clean / "small.ts")
    make_clip(clean / "large.ts", width=80, height=60)
    fast, plain, mkv, flv = (
        (clean / name).read_bytes() for name in ("faststart.mp4", "plain.mp4", "clip.mkv", "clip.flv")
    )
    groups: dict[str, dict[str, bytes]] = {
        "mp4-faststart": damaged_versions(fast, "fast", ".mp4"),
        "mp4": damaged_versions(plain, "plain", ".mp4"),
        "mkv": damaged_versions(mkv, "mkv", ".mkv"),
        "flv": damaged_versions(flv, "flv", ".flv"),
        "other": {},
    }
    huge = struct.pack(">I", 0xFFFFFFF0)
    groups["mp4-faststart"]["fast-huge-moov.mp4"] = _set(fast, _box(fast, b"moov"), huge)
    groups["mp4-faststart"]["fast-huge-hdlr.mp4"] = _set(fast, _box(fast, b"hdlr"), huge)  # video loses its codec
    groups["mp4"]["plain-huge-mdat.mp4"] = _set(plain, _box(plain, b"mdat"), huge)
    groups["mp4"]["plain-huge-count.mp4"] = _set(plain, _box(plain, b"stsz") + 16, struct.pack(">I", 0x7FFFFFFF))
    groups["mp4"]["plain-not-utf8.mp4"] = _set(plain, plain.find(b"Lavf"), b"\xde\xad\xbe\xef")
    segment = mkv.find(b"\x18\x53\x80\x67") + 4
    groups["mkv"]["mkv-huge-segment.mkv"] = _set(mkv, segment, b"\x01\x7f\xff\xff\xff\xff\xff\xfe")
    cluster = mkv.find(b"\x1f\x43\xb6\x75") + 4
    groups["mkv"]["mkv-huge-cluster.mkv"] = _set(mkv, cluster, b"\x08\xff\xff\xff\xff\xff\xff\xfe")
    groups["flv"]["flv-huge-tag.flv"] = _set(flv, 14, b"\xff\xff\xff")  # the first tag's data size
    # the AAC sequence header (audio tag, AACPacketType 0) marked as raw audio: no AudioSpecificConfig
    config = next(m.start() for m in re.finditer(b"\x08", flv) if m.start() > 12 and flv[m.start() + 12] == 0)
    groups["flv"]["flv-no-aac-config.flv"] = _set(flv, config + 12, b"\x01")
    rng = random.Random(7)
    groups["other"].update(
        {
            "empty.mp4": b"",
            "empty.mkv": b"",
            "text.mp4": b"this is not a video\n" * 40,
            "noise.mp4": rng.randbytes(6000),
            "noise.flv": b"FLV\x01\x05" + rng.randbytes(6000),
            "mkv-named.mp4": mkv,
            "mp4-named.flv": plain,
            "flv-named.mkv": flv,
            "size-changes.ts": (clean / "small.ts").read_bytes() + (clean / "large.ts").read_bytes(),
        }
    )
    corpus: dict[str, list[Path]] = {}
    for group, files in groups.items():
        (folder / group).mkdir()
        corpus[group] = []
        for name, content in files.items():
            path = folder / group / name
            path.write_bytes(content)
            corpus[group].append(path)
    return corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, list[Path]]:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "flownet.pkl"
    save_official_format(IFNet(OFFICIAL_ARCHS["v4.6"]), path)
    return path


def decode_errors(path: Path) -> tuple[int, int]:
    """(video frames, audio decode errors) of an output: every packet decoded; an error is an exception
    or an error line FFmpeg logged while concealing one."""
    previous = av.logging.get_level()
    if previous is None:
        av.logging.set_level(av.logging.PANIC)  # count FFmpeg's error lines without showing them
    try:
        with av.open(str(path)) as c:
            frames = sum(1 for _ in c.decode(video=0))
        errors = 0
        with av.open(str(path)) as c:
            if c.streams.audio:
                decoder = c.streams.audio[0].codec_context
                for packet in c.demux(c.streams.audio[0]):
                    before = av.logging.get_last_error()[0]
                    try:
                        decoder.decode(packet if packet.size else None)
                    except av.error.FFmpegError:
                        errors += 1
                        continue
                    if av.logging.get_last_error()[0] != before:
                        errors += 1
    finally:
        if previous is None:
            av.logging.set_level(None)
    return frames, errors


def check(result: CommandResult, command: str, output: Path) -> str:
    """The promise for one damaged file; returns what happened, for the failure message."""
    text = result.output
    what = f"{result.argv[1:3]}: exit {result.returncode} in {result.seconds:.1f} s\n{text[-2000:]}"
    assert not result.timed_out, f"hang (no exit within {TIMEOUT_S:g} s): {what}"
    assert "Traceback" not in text, what
    assert result.returncode in (0, 2), what
    error_lines = [line for line in text.splitlines() if "error" in line.lower() and "WARNING" not in line]
    if result.returncode == 2:
        assert len(error_lines) == 1 and error_lines[0].startswith(f"rifestream {command}: error: "), what
        assert "codec can't decode" not in error_lines[0], what
        return "error"
    assert not error_lines, what
    frames, audio_errors = decode_errors(output)
    assert frames >= 1, what
    assert audio_errors == 0, f"{audio_errors} damaged audio packets passed on: {what}"
    return "played"


GROUPS = ["mp4-faststart", "mp4", "mkv", "flv", "other"]


@pytest.mark.slow
@pytest.mark.parametrize("group", GROUPS)
def test_damaged_files_end_in_one_error_line_or_a_clean_output(tmp_path, corpus, checkpoint, group):
    files = corpus[group]
    cases = []  # (command, output, argv)
    for path in files:
        out = tmp_path / f"{path.name}.interpolate.mkv"
        cases.append(("interpolate", out, ["interpolate", str(path), str(out), "--model", str(checkpoint)]))
        out = tmp_path / f"{path.name}.run.mkv"
        cases.append(("run", out, ["run", "--source", str(path), "--sink", str(out), "--force-step", "blend",
                                   "--no-metrics", "--threads", "1", "--duration", "20"]))  # fmt: skip
    results = run_commands([argv for _, _, argv in cases], tmp_path / "logs", timeout=TIMEOUT_S)
    outcomes = [check(r, command, out) for (command, out, _), r in zip(cases, results, strict=True)]
    slowest = max(r.seconds for r in results)
    print(f"{group}: {len(files)} files, {outcomes.count('error')} runs ended in one error line, "
          f"{outcomes.count('played')} made a clean output; slowest run {slowest:.1f} s")  # fmt: skip
    assert slowest < TIMEOUT_S


def test_the_known_tracebacks_now_end_in_one_line(tmp_path, corpus, checkpoint):
    """The two files of the outside run: a truncated faststart mp4 and one whose video lost its codec."""
    cases = {p.name: p for p in corpus["mp4-faststart"]}
    results = run_commands(
        [
            ["interpolate", str(cases[name]), str(tmp_path / f"{name}.mkv"), "--model", str(checkpoint)]
            for name in ("fast-cut5.mp4", "fast-huge-hdlr.mp4")
        ],  # fmt: skip
        tmp_path / "logs",
    )
    for result in results:
        assert result.returncode == 2 and "Traceback" not in result.output, result.output
        assert "AttributeError" not in result.output and "NoneType" not in result.output


def damage_flv_audio(data: bytes, every: int = 2) -> bytes:
    """The FLV ``data`` with the payload of every ``every``-th raw AAC frame overwritten by a fixed
    pattern: the container stays valid, the audio is damaged."""
    out = bytearray(data)
    at, count = 9 + 4, 0  # after the FLV header and the first PreviousTagSize
    while at + 11 <= len(out):
        kind, size = out[at], int.from_bytes(out[at + 1 : at + 4], "big")
        payload = at + 11
        if kind == 8 and size > 8 and out[payload + 1] == 1:  # audio tag, AAC raw frame
            count += 1
            if count % every == 0:
                out[payload + 2 : payload + size] = bytes([0xA5]) * (size - 2)
        at = payload + size + 4
    return bytes(out)


def test_damaged_audio_is_dropped_with_a_warning_not_copied(tmp_path, checkpoint):
    """Every other AAC frame of an FLV overwritten: both commands warn, keep the good frames and write
    audio that decodes without one error (the same AAC would otherwise be copied into the .mkv as is)."""
    make_clip(tmp_path / "clip.flv")
    damaged = tmp_path / "damaged-audio.flv"
    damaged.write_bytes(damage_flv_audio((tmp_path / "clip.flv").read_bytes()))
    outs = [tmp_path / "interpolate.mkv", tmp_path / "run.mkv"]
    results = run_commands(
        [["interpolate", str(damaged), str(outs[0]), "--model", str(checkpoint)],
         ["run", "--source", str(damaged), "--sink", str(outs[1]), "--force-step", "blend", "--no-metrics"]],
        tmp_path / "logs",
    )  # fmt: skip
    for out, result in zip(outs, results, strict=True):
        assert result.returncode == 0, result.output
        assert "damaged audio in the input" in result.output, result.output
        frames, audio_errors = decode_errors(out)
        assert frames == 2 * N - 1 and audio_errors == 0
        with av.open(str(out)) as c:
            kept = sum(1 for p in c.demux(c.streams.audio[0]) if p.size)
        assert kept >= 3, kept  # the undamaged frames are still there
