"""File sinks: playable files whose frames and timestamps match what was sent; lossless ffv1; audio in sync."""

from __future__ import annotations

import threading
from fractions import Fraction

import av
import numpy as np
import pytest
from av.video.reformatter import ColorRange, Colorspace

from rifestream.errors import RifestreamError
from rifestream.io.frames import OutputFrame, SourceAudio, SourceFrame
from rifestream.io.sinks import open_sink
from rifestream.io.sources import open_source
from rifestream.io.stream_errors import SinkLost
from rifestream.io.synthetic_scene import read_frame_index
from tests.servers import free_port
from tests.test_io_sources import write_clip


def output(video: av.VideoFrame, time: Fraction, source_time: Fraction, t: float = 0.0, seq: int = 0) -> OutputFrame:
    return OutputFrame(video, time, source_time, t, t != 0.0, None, 0.0, seq)


def read_back(path, stream="video"):
    """(frames as rgb24 arrays, times in seconds, the stream's average rate) of a written file."""
    with av.open(str(path)) as container:
        vs = container.streams.video[0]
        frames = list(container.decode(vs))
        rate = vs.average_rate
        tb = vs.time_base
    return [f.to_ndarray(format="rgb24") for f in frames], [f.pts * tb for f in frames], rate


def scene_frames(n: int, size: str = "320x180", fps: int = 30, start: int = 0) -> list[SourceFrame]:
    with open_source(f"testsrc:?size={size}&fps={fps}&frames={start + n}", realtime=False) as src:
        return list(src.frames())[start:]


@pytest.mark.parametrize("ext", ["mp4", "mkv", "mov"])
def test_file_sink_frames_and_timestamps_match(tmp_path, ext):
    frames = scene_frames(60)
    path = tmp_path / f"out.{ext}"
    sink = open_sink(str(path), width=320, height=180, rate=Fraction(30), time_base=Fraction(1, 30))
    for k, f in enumerate(frames):
        assert sink.write(output(f.video, f.time, f.time, seq=k))
    sink.close()
    images, times, rate = read_back(path)
    assert len(images) == 60 and sink.stats.frames == 60
    tol = Fraction(1, 1000) if ext == "mkv" else 0  # Matroska keeps milliseconds
    assert all(abs(t - Fraction(k, 30)) <= tol for k, t in enumerate(times))
    assert rate == 30
    assert [read_frame_index(img) for img in images] == list(range(60))  # each frame the one sent, in order


def test_sixty_fps_file_from_a_thirty_fps_timeline(tmp_path):
    """The 2x case: output times k/60 from a 30 fps source; the file starts at 0 whatever the input's start."""
    frames = scene_frames(40, start=300)  # input times 10 s … 11.3 s
    path = tmp_path / "out60.mp4"
    sink = open_sink(str(path), width=320, height=180, rate=Fraction(60), time_base=Fraction(1, 60))
    sent = []
    for f in frames:
        for j in range(2):
            when = f.time + Fraction(j, 60)
            sink.write(output(f.video, when, f.time, t=j / 2, seq=len(sent)))
            sent.append(when)
    sink.close()
    images, times, rate = read_back(path)
    assert len(images) == 80
    assert times == [w - sent[0] for w in sent] == [Fraction(k, 60) for k in range(80)]
    assert rate == 60
    assert [read_frame_index(img) for img in images] == [300 + k // 2 for k in range(80)]


def test_ffv1_is_lossless_for_rgb_frames(tmp_path):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (72, 96, 3), dtype=np.uint8) for _ in range(5)]
    path = tmp_path / "lossless.mkv"
    sink = open_sink(str(path), width=96, height=72, rate=Fraction(24), time_base=Fraction(1, 24), codec="ffv1")
    for k, img in enumerate(images):
        sink.write(output(av.VideoFrame.from_ndarray(img, format="rgb24"), Fraction(k, 24), Fraction(k, 24)))
    sink.close()
    back, _, _ = read_back(path)
    assert len(back) == 5
    assert all(np.array_equal(a, b) for a, b in zip(images, back, strict=True))


def test_repeated_or_backward_times_are_dropped_and_counted(tmp_path):
    frames = scene_frames(3)
    sink = open_sink(str(tmp_path / "o.mp4"), width=320, height=180, rate=Fraction(30), time_base=Fraction(1, 30))
    assert sink.write(output(frames[0].video, Fraction(0), Fraction(0)))
    assert sink.write(output(frames[1].video, Fraction(1, 30), Fraction(0)))
    assert not sink.write(output(frames[2].video, Fraction(1, 30), Fraction(0)))
    assert not sink.write(output(frames[2].video, Fraction(0), Fraction(0)))
    sink.close()
    assert (sink.stats.frames, sink.stats.dropped) == (2, 2)
    assert len(read_back(tmp_path / "o.mp4")[0]) == 2


def test_close_is_idempotent_and_safe_from_another_thread(tmp_path):
    frames = scene_frames(30)
    path = tmp_path / "threads.mp4"
    sink = open_sink(str(path), width=320, height=180, rate=Fraction(30), time_base=Fraction(1, 30))
    written = []
    ten_written = threading.Event()

    def writer():
        for k, f in enumerate(frames):
            written.append(sink.write(output(f.video, f.time, f.time, seq=k)))
            if k == 9:
                ten_written.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert ten_written.wait(10)
    sink.close()  # the shutdown path: lands in the middle of the writes
    thread.join(10)
    sink.close()
    assert not thread.is_alive()
    n = sum(written)
    assert n >= 10
    assert len(read_back(path)[0]) == n  # every frame accepted before close is in the playable file
    assert not sink.write(output(frames[0].video, Fraction(5), Fraction(5)))


def test_a_frame_in_another_format_or_size_is_converted(tmp_path):
    gray = av.VideoFrame.from_ndarray(np.full((60, 80), 200, np.uint8), format="gray")
    sink = open_sink(str(tmp_path / "c.mp4"), width=160, height=120, rate=Fraction(30), time_base=Fraction(1, 30))
    sink.write(output(gray, Fraction(0), Fraction(0)))
    sink.close()
    images, _, _ = read_back(tmp_path / "c.mp4")
    assert images[0].shape == (120, 160, 3) and abs(int(images[0].mean()) - 200) <= 3


def _remux(src_path, sink_url, **sink_kwargs):
    """Pass a clip's frames (t = 0) and audio through a sink; return the sink."""
    with open_source(str(src_path)) as src:
        info = src.info
        sink = open_sink(
            sink_url, width=info.width, height=info.height, rate=info.rate, time_base=Fraction(1, 30),
            audio=info.audio, **sink_kwargs,
        )  # fmt: skip
        for item in src.read():
            if isinstance(item, SourceAudio):
                sink.write_audio(item)
            else:
                sink.write(output(item.video, item.time, item.time))
    sink.close()
    return sink


def _audio_span(path):
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        packets = [p for p in container.demux(stream) if p.size]
        codec = stream.codec_context.name
    return (
        codec,
        len(packets),
        float(packets[0].pts * packets[0].time_base),
        float((packets[-1].pts + packets[-1].duration) * packets[-1].time_base),
    )


def _marker_times(path) -> tuple[float, float]:
    """(time of the first white frame, time the tone burst starts) in a written file."""
    with av.open(str(path)) as container:
        flash = next(
            float(f.pts * f.time_base) for f in container.decode(video=0) if f.to_ndarray(format="gray").mean() > 200
        )
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            loud = np.flatnonzero(np.abs(frame.to_ndarray()).max(axis=0) > 0.05)
            if loud.size:
                return flash, float(frame.pts * frame.time_base) + int(loud[0]) / frame.sample_rate
    raise AssertionError("no tone in the output")


def test_audio_is_copied_in_sync_when_the_container_takes_it(tmp_path):
    clip = write_clip(tmp_path / "in.mp4", frames=45, fps=30, marker_frame=30)
    sink = _remux(clip, str(tmp_path / "out.mkv"))
    codec, n, first, end = _audio_span(tmp_path / "out.mkv")
    assert codec == "aac" and n >= 65 and sink.stats.audio_packets == n
    assert first == pytest.approx(0.0, abs=0.03) and end == pytest.approx(1.5, abs=0.05)  # with the video's 0…1.5 s
    flash, tone = _marker_times(tmp_path / "out.mkv")
    assert flash == pytest.approx(1.0, abs=0.002) and tone == pytest.approx(flash, abs=0.01)


def test_audio_is_reencoded_to_aac_when_the_container_cannot_take_it(tmp_path):
    clip = write_clip(tmp_path / "in.mkv", frames=45, fps=30, audio_codec="pcm_s16le", marker_frame=30)
    sink = _remux(clip, str(tmp_path / "out.flv"))  # FLV carries AAC/MP3 only
    codec, n, first, end = _audio_span(tmp_path / "out.flv")
    assert codec == "aac" and n > 50
    assert first == pytest.approx(0.0, abs=0.05) and end == pytest.approx(1.5, abs=0.1)
    assert sink.stats.frames == 45
    flash, tone = _marker_times(tmp_path / "out.flv")
    # FLV cannot store the negative DTS of B-frames: the muxer shifts every stream by the same 2 frames
    assert flash == pytest.approx(1.0 + 2 / 30, abs=0.002) and tone == pytest.approx(flash, abs=0.01)


@pytest.mark.parametrize(
    ("url", "kwargs", "expected"),
    [
        ("{tmp}/out.xyz", {}, "unknown output format"),
        ("{tmp}/out", {}, "give the file an extension"),
        ("{tmp}/missing/out.mp4", {}, "does not exist"),
        ("{tmp}/out.mp4", {"codec": "no_such_codec"}, "no encoder 'no_such_codec'"),
        ("gopher://example/x", {}, "cannot write to gopher://"),
        ("zmq://127.0.0.1", {}, "needs a host and a port"),
        ("", {}, "no sink given"),
    ],
)
def test_bad_sink_urls_raise_a_clear_error(tmp_path, url, kwargs, expected):
    with pytest.raises(RifestreamError) as info:
        open_sink(url.format(tmp=tmp_path), width=64, height=48, rate=Fraction(30), time_base=Fraction(1, 30), **kwargs)
    assert expected in str(info.value)
    assert not isinstance(info.value, SinkLost)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/proc/out.mp4", ("folder /proc does not take new files", "permission denied in folder /proc")),
        ("/sys/out.mp4", ("permission denied in folder /sys", "read-only file system", "does not take new files")),
        ("{tmp}/afile.mp4/out.mp4", ("{tmp}/afile.mp4 is a file, not a folder",)),
        ("{tmp}/afile.mp4/deeper/out.mp4", ("{tmp}/afile.mp4 is a file, not a folder",)),
        ("{tmp}/adir.mp4", ("it is a folder; give a file path, e.g. {tmp}/adir.mp4/out.mp4",)),
        ("{tmp}/missing/out.mp4", ("folder {tmp}/missing does not exist",)),
    ],
)
def test_each_unwritable_output_path_gets_its_own_one_line_reason(tmp_path, url, expected):
    """Issue 19 item 10: /proc said "its folder does not exist", a file used as a folder said the folder
    does not exist, and an existing folder as the output said "give the file an extension"."""
    (tmp_path / "afile.mp4").write_bytes(b"")
    (tmp_path / "adir.mp4").mkdir()
    with pytest.raises(RifestreamError) as info:
        open_sink(url.format(tmp=tmp_path), width=64, height=48, rate=Fraction(30), time_base=Fraction(1, 30))
    message = str(info.value)
    assert "\n" not in message and any(e.format(tmp=tmp_path) in message for e in expected), message
    assert "extension" not in message


def test_a_file_that_gets_no_frame_is_removed_not_left_without_a_stream(tmp_path):
    """Issue 19 item 8: a job stopped between opening its file sink and the first frame left a 262-byte
    mp4 with no stream. A file sink closed before any frame now leaves no file; one frame is enough."""
    for ext in ("mp4", "mkv", "flv"):
        path = tmp_path / f"empty.{ext}"
        sink = open_sink(str(path), width=64, height=48, rate=Fraction(30), time_base=Fraction(1, 30))
        assert path.exists()  # created at open
        sink.close()
        assert not path.exists(), ext
    frame = scene_frames(1, size="64x48")[0]
    path = tmp_path / "one.mp4"
    sink = open_sink(str(path), width=64, height=48, rate=Fraction(30), time_base=Fraction(1, 30))
    assert sink.write(output(frame.video, frame.time, frame.time))
    sink.close()
    images, _, _ = read_back(path)
    assert len(images) == 1


def test_rtmp_sink_without_a_server_is_sink_lost():
    port = free_port()
    with pytest.raises(SinkLost) as info:
        open_sink(
            f"rtmp://127.0.0.1:{port}/live/x", width=64, height=48, rate=Fraction(30), time_base=Fraction(1, 30)
        )  # fmt: skip
    assert "Connection refused" in str(info.value)


def test_null_sink_counts():
    sink = open_sink("null", width=64, height=48, rate=Fraction(30), time_base=Fraction(1, 30))
    frame = scene_frames(1, size="64x48")[0]
    assert sink.write(output(frame.video, Fraction(0), Fraction(0)))
    sink.close()
    assert sink.stats.frames == 1 and not sink.write(output(frame.video, Fraction(1), Fraction(1)))


@pytest.mark.parametrize(
    ("height", "source_tag"),
    [(720, Colorspace.ITU709), (720, None), (360, Colorspace.ITU709), (360, None)],
)
def test_source_yuv_frames_and_interpolated_rgb_frames_decode_to_the_same_colours(tmp_path, height, source_tag):
    """No colour flicker at the output rate: a YUV source frame passed through (t = 0) and the RGB frame
    the engine made from it (as the frame loop does, ``to_ndarray("rgb24")``) come out alike."""
    width = height * 16 // 9
    rgb = np.zeros((height, width, 3), np.uint8)
    colours = [(200, 50, 30), (30, 160, 220), (240, 240, 40), (90, 90, 90)]
    for i, colour in enumerate(colours):
        rgb[:, i * width // 4 : (i + 1) * width // 4] = colour
    src = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    if source_tag is None:
        src_yuv = src.reformat(format="yuv420p")  # untagged, as many camera streams are
    else:
        src_yuv = src.reformat(format="yuv420p", dst_colorspace=source_tag, dst_color_range=ColorRange.MPEG)
    engine_rgb = av.VideoFrame.from_ndarray(src_yuv.to_ndarray(format="rgb24"), format="rgb24")
    path = tmp_path / "colours.mp4"
    sink = open_sink(str(path), width=width, height=height, rate=Fraction(60), time_base=Fraction(1, 60), crf=8)
    for k in range(4):
        sink.write(output(src_yuv if k % 2 == 0 else engine_rgb, Fraction(k, 60), Fraction(k // 2, 30), 0.5 * (k % 2)))
    sink.close()
    images, _, _ = read_back(path)
    centres = [[img[height // 2, (2 * i + 1) * width // 8].astype(int) for i in range(4)] for img in images]
    for i in range(4):
        source_frame, interpolated_frame = centres[0][i], centres[1][i]
        assert np.abs(source_frame - interpolated_frame).max() <= 3, (i, source_frame, interpolated_frame)
        assert np.abs(interpolated_frame - np.array(colours[i])).max() <= 6


def test_audio_still_in_sync_when_the_sink_opens_after_the_source_closed(tmp_path):
    """A sink reopened after a reconnect may only have the old source's audio info: it re-encodes from
    the codec parameters it kept, and stays in sync."""
    clip = write_clip(tmp_path / "in.mp4", frames=45, fps=30, marker_frame=30)
    with open_source(str(clip)) as src:
        info = src.info
        items = list(src.read())
    assert info.audio.template() is None  # the input stream is gone
    path = tmp_path / "later.mp4"
    sink = open_sink(str(path), width=160, height=120, rate=Fraction(30), time_base=Fraction(1, 30), audio=info.audio)
    for item in items:
        if isinstance(item, SourceAudio):
            sink.write_audio(item)
        else:
            sink.write(output(item.video, item.time, item.time))
    sink.close()
    codec, n, _, end = _audio_span(path)
    assert codec == "aac" and n > 50 and end == pytest.approx(1.5, abs=0.1)
    flash, tone = _marker_times(path)
    assert flash == pytest.approx(1.0, abs=0.002) and tone == pytest.approx(flash, abs=0.01)


def test_sinks_in_their_own_threads_share_the_same_frames(tmp_path):
    """The runner gives the same frame objects to every sink, each in its own thread: each sink converts
    with its own converter, so concurrent conversions neither hang nor corrupt each other."""
    frames = scene_frames(60)
    paths = [tmp_path / "a.mp4", tmp_path / "b.mkv"]
    sinks = [open_sink(str(p), width=320, height=180, rate=Fraction(30), time_base=Fraction(1, 30)) for p in paths] + [
        open_sink("zmq://127.0.0.1:0", width=320, height=180, rate=Fraction(30), time_base=Fraction(1, 30))
    ]
    outs = [output(f.video, f.time, f.time, seq=k) for k, f in enumerate(frames)]
    threads = [threading.Thread(target=lambda s=s: [s.write(o) for o in outs], daemon=True) for s in sinks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    for sink in sinks:
        sink.close()
    assert sinks[2].stats.frames + sinks[2].stats.dropped == 60
    for path in paths:
        images, times, _ = read_back(path)
        assert [read_frame_index(img) for img in images] == list(range(60))


def test_mpeg_ts_file_and_codec_container_mismatch(tmp_path):
    frames = scene_frames(10)
    sink = open_sink(str(tmp_path / "o.ts"), width=320, height=180, rate=Fraction(30), time_base=Fraction(1, 30))
    for k, f in enumerate(frames):
        sink.write(output(f.video, f.time, f.time, seq=k))
    sink.close()
    assert [read_frame_index(img) for img in read_back(tmp_path / "o.ts")[0]] == list(range(10))
    with pytest.raises(RifestreamError, match="libx264 cannot be stored in a webm file; use .mkv"):
        open_sink(str(tmp_path / "o.webm"), width=64, height=48, rate=Fraction(30), time_base=Fraction(1, 30))


def test_nvenc_is_used_where_it_works_and_refused_clearly_where_it_does_not(tmp_path):
    from rifestream.io.encoders import encoder_usable, pick_video_codec

    usable = encoder_usable("h264_nvenc")
    assert pick_video_codec("auto") == ("h264_nvenc" if usable else "libx264")
    path = tmp_path / "gpu.mp4"
    if not usable:
        with pytest.raises(RifestreamError, match="h264_nvenc encoder does not start on this machine"):
            open_sink(
                str(path), width=320, height=180, rate=Fraction(30), time_base=Fraction(1, 30), codec="h264_nvenc"
            )
        return
    sink = open_sink(str(path), width=320, height=180, rate=Fraction(30), time_base=Fraction(1, 30), codec="h264_nvenc")
    for k, f in enumerate(scene_frames(10)):
        sink.write(output(f.video, f.time, f.time, seq=k))
    sink.close()
    assert len(read_back(path)[0]) == 10


SIGTERM_WRITER = """
import signal, sys
from fractions import Fraction
from rifestream.io.frames import OutputFrame
from rifestream.io.sinks import open_sink
from rifestream.io.sources import open_source

sink = open_sink(sys.argv[1], width=320, height=180, rate=Fraction(30), time_base=Fraction(1, 30))
signal.signal(signal.SIGTERM, lambda *_: sink.close())  # a shutdown path that lands inside write()
written = 0
for k, f in enumerate(open_source("testsrc:?size=320x180&fps=30").frames()):  # paced and endless
    if not sink.write(OutputFrame(f.video, f.time, f.time, 0.0, False, None, f.arrival, k)):
        break
    written += 1
    print("wrote", written, flush=True)
print("closed after", written, flush=True)
"""


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_sigterm_closing_the_sink_leaves_a_playable_file(tmp_path, ext):
    import signal
    import subprocess
    import sys

    path = tmp_path / f"term.{ext}"
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_WRITER, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for line in proc.stdout:  # bounded by the frames the paced source makes; the test's timeout bounds it
            if line.startswith("wrote 20"):
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    written = int(out.strip().splitlines()[-1].split()[-1])
    assert written >= 20
    images, times, _ = read_back(path)
    assert [read_frame_index(img) for img in images] == list(range(written))  # every frame, to the last
    assert abs(times[-1] - Fraction(written - 1, 30)) <= Fraction(1, 1000)  # (Matroska keeps milliseconds)


def test_close_from_inside_a_write_finishes_after_that_write(tmp_path, monkeypatch):
    """What a signal handler does when it interrupts the sink's own write(): no deadlock, no half-closed
    encoder; the interrupted frame is the last one in the file."""
    frames = scene_frames(5)
    path = tmp_path / "reentrant.mp4"
    sink = open_sink(str(path), width=320, height=180, rate=Fraction(30), time_base=Fraction(1, 30))
    for k in range(3):
        assert sink.write(output(frames[k].video, frames[k].time, frames[k].time, seq=k))
    convert = sink._encoder_frame

    def interrupted(video):
        sink.close()  # re-entrant, same thread, lock held
        return convert(video)

    monkeypatch.setattr(sink, "_encoder_frame", interrupted)
    assert sink.write(output(frames[3].video, frames[3].time, frames[3].time, seq=3))
    assert not sink.write(output(frames[4].video, frames[4].time, frames[4].time, seq=4))
    assert [read_frame_index(img) for img in read_back(path)[0]] == [0, 1, 2, 3]


def test_a_live_encode_keeps_under_its_bitrate_cap(tmp_path):
    """The live settings (what rtmp:// uses), written to a local FLV: a busy scene stays within the cap
    (0.1 bit per pixel per frame, 1 s buffer) and every GOP is 2 s."""
    from rifestream.io.encoders import LIVE_BITS_PER_PIXEL
    from rifestream.io.rtmp_sink import RtmpSink
    from rifestream.io.sink_base import OutputStream

    path = tmp_path / "live.flv"
    stream = OutputStream(320, 180, Fraction(30), Fraction(1, 30))
    sink = RtmpSink(str(path), stream, file=str(path), format="flv", live=True, codec="libx264")  # as rtmp:// opens it
    for k, f in enumerate(scene_frames(120)):
        sink.write(output(f.video, f.time, f.time, seq=k))
    sink.close()
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    cap = LIVE_BITS_PER_PIXEL * 320 * 180 * 30
    assert sum(p.size for p in packets) * 8 <= (cap * 4 + cap) * 1.1  # 4 s at the cap, plus the 1 s buffer
    keyframes = [i for i, p in enumerate(packets) if p.is_keyframe]
    assert keyframes == [0, 60]


def test_an_odd_size_is_encoded_at_the_nearest_even_size(tmp_path):
    """A captured window can be 321x181; 4:2:0 H.264 needs even sizes: the sink scales to 320x180."""
    with open_source("testsrc:?size=321x181&fps=30&frames=5", realtime=False) as src:
        frames = list(src.frames())
    sink = open_sink(str(tmp_path / "odd.mp4"), width=321, height=181, rate=Fraction(30), time_base=Fraction(1, 30))
    for k, f in enumerate(frames):
        sink.write(output(f.video, f.time, f.time, seq=k))
    sink.close()
    images, _, _ = read_back(tmp_path / "odd.mp4")
    assert len(images) == 5 and images[0].shape == (180, 320, 3)
    lossless = tmp_path / "odd.mkv"  # RGB lossless keeps the odd size
    sink = open_sink(str(lossless), width=321, height=181, rate=Fraction(30), time_base=Fraction(1, 30), codec="ffv1")
    sink.write(output(frames[0].video, frames[0].time, frames[0].time))
    sink.close()
    assert np.array_equal(read_back(lossless)[0][0], frames[0].video.to_ndarray(format="rgb24"))
