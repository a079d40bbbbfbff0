"""The PyAV encoder behind the encoding sink kinds: files (``file_sink``) and network streams (``rtmp_sink``,
``udp_sink``, ``srt_sink``, each a ``LiveEncoderSink`` naming its container)."""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from typing import ClassVar, Unpack

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from rifestream.errors import RifestreamError
from rifestream.io import av_errors
from rifestream.io.audio_track import AudioTrack
from rifestream.io.color import is_yuv, stream_colorspace, tag_encoder, to_encoder_frame
from rifestream.io.encoders import (
    HARDWARE_ENCODERS,
    default_pix_fmt,
    encoder_options,
    encoder_usable,
    pick_video_codec,
)
from rifestream.io.frames import OutputFrame, SourceAudio
from rifestream.io.sink_base import Encoding, OutputStream, Sink, SinkStats
from rifestream.io.stream_errors import SinkLost
from rifestream.io.stream_info import AudioInfo
from rifestream.io.url_redact import redact_text, redact_url
from rifestream.io.write_guard import WriteGuard

log = logging.getLogger(__name__)

# Muxers that FFmpeg cannot list codecs for (its query answers "unknown"): no up-front check.
_NO_CODEC_LIST = {"mpegts"}

# Audio codecs copied as they are, by container format; others are re-encoded to AAC. Formats not
# listed take whatever FFmpeg's muxer supports. FLV: what RTMP servers and players take.
AUDIO_COPY_CODECS = {
    "flv": {"aac", "mp3"},
    "mpegts": {"aac", "mp3", "mp2", "ac3", "eac3", "opus"},
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le"},
    "webm": {"opus", "vorbis"},
}


def _encodable_size(width: int, height: int, pix_fmt: str) -> tuple[int, int]:
    """Chroma-subsampled formats need even sizes (4:2:0 both, 4:2:2 the width): round down, frames are scaled."""
    if pix_fmt.startswith(("yuv420", "yuvj420", "nv12", "nv21", "p010")):
        return width - width % 2, height - height % 2
    if pix_fmt.startswith(("yuv422", "yuvj422")):
        return width - width % 2, height
    return width, height


def _copy_frame(video: av.VideoFrame) -> av.VideoFrame:
    """A copy of ``video``'s pixels, plane by plane: works for every pixel format (``to_ndarray`` does not
    know bgr0, nv12 and others)."""
    copy = av.VideoFrame(video.width, video.height, video.format.name)
    for src, dst in zip(video.planes, copy.planes, strict=True):
        rows = np.frombuffer(memoryview(src), np.uint8).reshape(-1, src.line_size)
        if src.line_size != dst.line_size:
            padded = np.zeros((rows.shape[0], dst.line_size), np.uint8)
            width = min(src.line_size, dst.line_size)
            padded[:, :width] = rows[:, :width]
            rows = padded
        dst.update(rows)
    copy.colorspace, copy.color_range = video.colorspace, video.color_range
    return copy


class EncoderSink(Sink):
    """Encodes ``OutputFrame``s (and the input's audio) into one container; its kinds say how they open.

    Timestamps: a frame at ``OutputFrame.time`` T gets pts (T - T_first) /
    ``time_base`` (rounded; exact when T is on the time base's grid), where
    T_first is the first frame's time, so a file starts at 0. A frame whose pts
    is not after the previous one is dropped and counted. ``close()`` flushes
    the encoder and writes the trailer.

    Live outputs: a server that closes or resets the connection raises
    ``SinkLost`` at once. An RTMP server must answer a handshake within
    ``rtmp_probe.ANSWER_TIMEOUT_S`` before FFmpeg connects (see ``rtmp_probe``
    for why). PyAV sets no I/O timeout on outputs, so a server that stops
    reading without closing blocks ``write`` until it reads again; the runner's
    sink worker gives up on such a sink after its stall timeout.
    """

    def __init__(
        self,
        url: str,
        stream: OutputStream,
        *,
        file: str,
        format: str | None,
        live: bool,
        **encoding: Unpack[Encoding],
    ) -> None:
        unknown = sorted(set(encoding) - set(Encoding.__annotations__))
        if unknown:
            raise TypeError(f"EncoderSink: unknown encoding setting(s) {', '.join(unknown)}")
        self.url, self.live = url, live
        self._file = None if live else file  # removed again if it never gets a frame (see _remove_if_empty)
        self.codec = pick_video_codec(encoding.get("codec"))
        self.pix_fmt = encoding.get("pix_fmt") or default_pix_fmt(self.codec)
        width, height = stream.width, stream.height
        self.width, self.height = _encodable_size(width, height, self.pix_fmt)
        if (self.width, self.height) != (width, height):
            log.info(
                "%s: %dx%d is odd for %s; encoding %dx%d", url, width, height, self.pix_fmt, self.width, self.height
            )
        self.time_base = Fraction(stream.time_base)
        self.stats = SinkStats()
        self._reformatter = VideoReformatter()  # this sink's own: frames are shared with other sinks' threads
        self._guard = WriteGuard(self._finish)
        self._closed = False
        self._origin: Fraction | None = None
        self._last_pts: int | None = None
        options = dict(encoding.get("container_options") or {})
        if live:
            # if the audio stalls, hold video back at most 0.5 s in the muxer's interleaving queue (default 10 s)
            options.setdefault("max_interleave_delta", "500000")
            if format == "flv":
                options.setdefault("flvflags", "no_duration_filesize")
        try:
            self._container = av.open(file, "w", format=format, options=options)
        except ValueError:  # PyAV: "Could not determine output format"
            raise RifestreamError(
                f"{url}: unknown output format; use a file ending in .mp4, .mkv, .mov, .flv, .ts or .nut, "
                "rtmp://, zmq:// or null"
            ) from None
        except Exception as exc:
            raise self._failure(exc, "write") from exc
        try:
            self._setup_video(stream.rate, encoding)
            self._audio = self._setup_audio(stream.audio)
            self._container.start_encoding()  # connects / creates the file now, not at the first frame
        except BaseException as exc:
            self._abandon()
            if isinstance(exc, (av.error.FFmpegError, OSError)):
                raise self._failure(exc, "write") from exc
            raise

    # ----- opening -------------------------------------------------------
    def _failure(self, exc: BaseException, what: str) -> Exception:
        if self.live and av_errors.is_transient(exc):
            return SinkLost(self.url, f"cannot {what}: {av_errors.reason(exc)}; is the server running?")
        return av_errors.open_error(self.url, exc, what)

    def _setup_video(self, rate: Fraction | None, encoding: Encoding) -> None:
        container = self._container
        if self.codec not in av.codecs_available:
            raise RifestreamError(f"{self.url}: this FFmpeg build has no encoder {self.codec!r}; use libx264 or ffv1")
        fmt = container.format.name
        if fmt not in _NO_CODEC_LIST and self.codec not in container.supported_codecs:
            other = ".nut" if fmt.startswith("matroska") else ".mkv"
            raise RifestreamError(
                f"{self.url}: {self.codec} cannot be stored in a {fmt} file; use {other} (it takes most codecs) "
                "or another codec"
            )
        if self.codec in HARDWARE_ENCODERS and not encoder_usable(self.codec):
            raise RifestreamError(
                f"{self.url}: the {self.codec} encoder does not start on this machine (it needs its GPU and driver); "
                "use codec libx264, or auto to pick it only where it works"
            )
        nominal = Fraction(rate) if rate else Fraction(30)
        stream = container.add_stream(self.codec, rate=nominal)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = self.pix_fmt
        self.colorspace = stream_colorspace(self.height) if is_yuv(self.pix_fmt) else None
        if self.colorspace is not None:
            tag_encoder(stream.codec_context, self.colorspace)
        stream.codec_context.time_base = self.time_base
        stream.time_base = self.time_base
        stream.codec_context.options = {
            **encoder_options(
                self.codec,
                live=self.live,
                rate=nominal,
                crf=encoding.get("crf"),
                preset=encoding.get("preset"),
                bitrate=encoding.get("bitrate"),
                pixels=self.width * self.height,
            ),
            **(encoding.get("codec_options") or {}),
        }
        self._video = stream

    def _setup_audio(self, audio: AudioInfo | None) -> AudioTrack | None:
        if audio is None:
            return None
        try:
            copy_codecs = AUDIO_COPY_CODECS.get(self._container.format.name.split(",")[0])
            return AudioTrack(self._container, audio, copy_codecs=copy_codecs)
        except (av.error.FFmpegError, ValueError) as exc:
            log.warning("%s: no audio (cannot carry %s: %s)", redact_url(self.url), audio.codec, exc)
            return None

    # ----- writing -------------------------------------------------------
    def continue_timeline(self, origin: Fraction) -> None:
        """Stamp frames (and audio) from ``origin`` instead of this sink's first frame: a live sink reopened
        after a loss resumes on the timeline of the one it replaces, not at zero. Call before the first write."""
        with self._guard.lock:
            if self.stats.frames == 0:
                self._origin = origin

    def write(self, frame: OutputFrame) -> bool:
        with self._guard.writing():
            if self._closed:
                return False
            if self._origin is None:
                self._origin = frame.time
            pts = round((frame.time - self._origin) / self.time_base)
            if self._last_pts is not None and pts <= self._last_pts:
                self.stats.dropped += 1
                return False
            video = self._encoder_frame(frame.video)
            video.pts = pts
            video.time_base = self.time_base
            try:
                for packet in self._video.encode(video):
                    self._container.mux(packet)
                if self._audio is not None and self.stats.frames == 0:
                    self._audio.start(self._origin)
            except (av.error.FFmpegError, OSError) as exc:
                raise self._write_failure(exc) from exc
            self._last_pts = pts
            self.stats.frames += 1
            return True

    def _encoder_frame(self, video: av.VideoFrame) -> av.VideoFrame:
        """A frame in the encoder's format, size and matrix that we may stamp (never the shared input frame)."""
        converted = to_encoder_frame(
            video,
            width=self.width,
            height=self.height,
            pix_fmt=self.pix_fmt,
            colorspace=self.colorspace,
            reformatter=self._reformatter,
        )
        if converted is video:  # already right: copy, other sinks hold the same frame object
            converted = _copy_frame(video)
        return converted

    def write_audio(self, audio: SourceAudio) -> None:
        if self._audio is None:
            return
        with self._guard.writing():
            if self._closed:
                return
            try:
                self._audio.write(audio)
            except (av.error.FFmpegError, OSError) as exc:
                raise self._write_failure(exc) from exc
            self.stats.audio_packets = self._audio.packets
            self.stats.audio_dropped = self._audio.dropped

    def _write_failure(self, exc: BaseException) -> Exception:
        """After a failed write the container is unusable: release it, report lost (live) or fatal (file)."""
        self._closed = True
        self._abandon()
        if self.live:
            return SinkLost(self.url, av_errors.reason(exc))
        return RifestreamError(f"{self.url}: write failed: {av_errors.reason(exc)}; check free disk space")

    # ----- closing -------------------------------------------------------
    def close(self) -> None:
        """Flush and finalise. From another thread it waits for a write in progress; from a signal
        handler that interrupted this sink's own write, it finishes right after that write."""
        self._guard.close()

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._video.encode(None):
                self._container.mux(packet)
            if self._audio is not None:
                self._audio.flush()
            self._container.close()
        except Exception as exc:  # a dead server or a full disk: nothing more to save
            log.warning("%s: closing: %s", redact_url(self.url), redact_text(av_errors.reason(exc)))
            self._abandon()
        else:
            self._remove_if_empty()

    def _abandon(self) -> None:
        try:
            self._container.close()
        except Exception as exc:
            log.debug("%s: abandoning: %s", redact_url(self.url), redact_text(str(exc)))
        self._remove_if_empty()

    def _remove_if_empty(self) -> None:
        """A file that got no video frame (the job stopped or failed before its first frame) holds a
        header without a picture, which no player plays: remove it, so a file is either whole or absent."""
        if self._file is None or self.stats.frames:
            return
        try:
            os.remove(self._file)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("%s: no frame was written, and the empty file could not be removed: %s", self.url, exc)
            return
        log.info("%s: no frame was written; removed the empty file", self.url)


class LiveEncoderSink(EncoderSink):
    """A network output: encoded for live (no B-frames, short GOP), muxed into ``container_format`` and
    sent as it goes. A server that closes is ``SinkLost``; the runner reopens it with backoff, and gives
    up on a write that stalls (``reconnectable``)."""

    reconnectable = True
    container_format: ClassVar[str]

    @classmethod
    def open(cls, url: str, stream: OutputStream, encoding: Encoding) -> LiveEncoderSink:
        return cls(url, stream, file=url, format=cls.container_format, live=True, **encoding)
