"""Sources that FFmpeg reads through PyAV: files, rtsp/rtmp/srt/http URLs and capture devices."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import av

from rifestream.errors import RifestreamError
from rifestream.io import av_errors
from rifestream.io.endpoint import check_network_url
from rifestream.io.frames import SourceAudio, SourceFrame
from rifestream.io.registry import SOURCE_FORMS, scheme
from rifestream.io.source_base import InputOptions, Source
from rifestream.io.stream_errors import SourceLost
from rifestream.io.stream_info import AudioInfo, StreamInfo
from rifestream.io.url_redact import redact_text, redact_url

log = logging.getLogger(__name__)

LIVE_SCHEMES = {"rtsp", "rtsps", "rtmp", "rtmps", "rtmpt", "srt", "udp", "rtp", "tcp"}
# Schemes whose URL must name a host (a listener form such as srt://:9000?mode=listener or
# udp://@:1234 needs none).
HOST_SCHEMES = {"rtsp", "rtsps", "rtmp", "rtmps", "rtmpt", "rtmpe", "rtmpte", "rtmpts", "http", "https"}
_MAX_PRIMING_PACKETS = 5000  # packets read at open while waiting for the first video frame


def live_input_options(scheme: str, read_timeout: float) -> dict[str, str]:
    """FFmpeg options for a live network input: a short probe and socket timeouts.

    No ``fflags=nobuffer``: it discards the packets read while probing, and with
    them the first keyframe, so decoding would start a whole GOP later. The
    probe's packets come out in a burst right after open instead.
    """
    micros = str(int(read_timeout * 1_000_000))
    opts = {"probesize": "65536", "analyzeduration": "300000", "rw_timeout": micros}
    if scheme in ("rtsp", "rtsps"):
        opts["rtsp_transport"] = "tcp"
        opts["timeout"] = micros  # RTSP socket I/O timeout
    elif scheme in ("srt", "udp"):
        opts["timeout"] = micros
    return opts


def _plausible_rate(*rates: Fraction | None) -> Fraction | None:
    for rate in rates:
        if rate and 0 < rate <= 1000:
            return Fraction(rate)
    return None


class AVSource(Source):
    """A PyAV input: a file path, ``file:PATH``, or any URL FFmpeg reads. ``open`` takes our options;
    the constructor takes FFmpeg's own terms.

    A URL whose scheme is in ``LIVE_SCHEMES`` is live (read as it arrives, with
    socket timeouts; its end is a loss to reconnect); a file, or an http(s) URL
    unless ``live`` says otherwise, is read to its end, paced when ``realtime``.
    At open it reads up to the first decoded video frame (bounded by
    ``open_timeout``), so ``info`` is complete even for live streams probed with
    a small probe size; what it read on the way is handed out first by
    ``read()``.
    """

    def __init__(
        self,
        url: str,
        *,
        file: str,
        format: str | None = None,
        options: dict[str, str] | None = None,
        live: bool,
        realtime: bool = False,
        audio: bool = True,
        open_timeout: float = 10.0,
        read_timeout: float = 5.0,
        device: bool = False,
        rate: Fraction | None = None,
    ) -> None:
        super().__init__()
        self._asked_rate = rate  # a capture device's framerate: what FFmpeg's guesses for it are not
        self.url = url
        self.live = live
        self.device = device  # a capture device: failing to open it is a setup problem, not a network loss
        self.realtime = realtime and not live
        self._lock = threading.RLock()  # re-entrant: close() may come from a signal handler in this thread
        self._reading = False
        self._size_warned = False
        self._container: av.container.InputContainer | None = None
        try:
            self._container = av.open(
                file,
                format=format,
                options=options or {},
                timeout=(open_timeout, read_timeout),
                metadata_errors="replace",  # a damaged file's tags are not valid UTF-8; they must not stop us
            )
        except ValueError as exc:  # PyAV: an unknown forced format name
            if isinstance(exc, av.error.FFmpegError) or format is None:
                raise self._open_failure(exc) from exc
            raise RifestreamError(f"{url}: {exc}; check the format name (ffmpeg -formats lists them)") from None
        except Exception as exc:
            raise self._open_failure(exc) from exc
        try:
            self._setup_streams(audio)
            self._items = self._demux()
            self._pending = self._prime(open_timeout)
        except BaseException:
            self._close_container()
            raise

    # ----- opening -------------------------------------------------------
    @classmethod
    def check_url(cls, url: str) -> None:
        if "://" in url:
            check_network_url(url, needs_host=scheme(url) in HOST_SCHEMES)

    @classmethod
    def open(cls, url: str, options: InputOptions) -> AVSource:
        kind = scheme(url)
        live = kind in LIVE_SCHEMES if options.live is None else options.live
        if live:
            file, ffmpeg_options = url, {**live_input_options(kind, options.read_timeout), **(options.options or {})}
        else:
            file, ffmpeg_options = url[len("file:") :] if kind == "file" else url, options.options
            if kind in ("", "file") and not os.path.exists(file):
                raise RifestreamError(f"no such file: {file}; check the path, or give {SOURCE_FORMS}")
        return cls(
            url,
            file=file,
            format=options.format,
            options=ffmpeg_options,
            live=live,
            realtime=bool(options.realtime),  # a live input is read as it arrives, never paced
            audio=options.audio,
            open_timeout=options.open_timeout,
            read_timeout=options.read_timeout,
        )

    def _open_failure(self, exc: BaseException) -> Exception:
        if self.device:
            return RifestreamError(
                f"{self.url}: cannot open the capture device ({av_errors.reason(exc)}); "
                "check that the display or screen exists and can be read (e.g. display=:0)"
            )
        if self.live and av_errors.is_transient(exc):
            return SourceLost(self.url, f"cannot connect: {av_errors.reason(exc)}; is the server running?")
        if isinstance(exc, RifestreamError):
            return exc
        return av_errors.open_error(self.url, exc, "read")

    def _setup_streams(self, audio: bool) -> None:
        container = self._container
        if not container.streams.video:
            raise RifestreamError(f"{self.url} has no video stream; give an input with video")
        # A damaged header can leave a stream without a codec (no codec context): skip such streams.
        decodable = [s for s in container.streams.video if s.codec_context is not None]
        if not decodable:
            raise self._no_video("its video stream has no codec FFmpeg can decode (a damaged header?)")
        self._video = decodable[0]
        self._video.thread_type = "SLICE" if self.live else "AUTO"  # frame threads would add latency
        vs = self._video
        if self._asked_rate is not None:  # x11grab's stream says 120 or more for a 30 fps grab
            self._nominal_rate = _plausible_rate(self._asked_rate)
        elif self.live:
            self._nominal_rate = _plausible_rate(vs.guessed_rate, vs.average_rate)
        else:
            self._nominal_rate = _plausible_rate(vs.average_rate, vs.guessed_rate, vs.base_rate)
        self._audio = self._usable_audio() if audio else None
        self._audio_info: AudioInfo | None = None
        if self._audio is not None:
            cc = self._audio.codec_context
            stream = self._audio
            self._audio_info = AudioInfo(
                codec=cc.name,
                sample_rate=cc.sample_rate,
                layout=cc.layout.name,
                channels=cc.channels,
                time_base=Fraction(stream.time_base),
                extradata=bytes(cc.extradata) if cc.extradata else None,
                bit_rate=cc.bit_rate or 0,
                template=lambda: None if self._container is None else stream,
            )

    def _usable_audio(self) -> av.audio.stream.AudioStream | None:
        """The first audio stream whose header makes sense; a damaged one is left out with a warning."""
        streams = self._container.streams.audio
        for stream in streams:
            cc = stream.codec_context
            if cc is not None and cc.sample_rate and cc.sample_rate > 0 and cc.channels and cc.layout is not None:
                return stream
        if streams:
            log.warning("%s: its audio stream is damaged (no codec, rate or channels); going on without audio",
                        self.url)  # fmt: skip
        return None

    def _prime(self, open_timeout: float) -> list[SourceFrame | SourceAudio]:
        """Read until the first video frame; fill ``info`` from it."""
        pending: list[SourceFrame | SourceAudio] = []
        deadline = time.monotonic() + open_timeout
        for item in self._items:
            pending.append(item)
            if isinstance(item, SourceFrame):
                break
            if len(pending) > _MAX_PRIMING_PACKETS or time.monotonic() > deadline:
                raise self._no_video("no video frame arrived")
        else:
            raise self._no_video("the input ended before its first video frame")
        first = pending[-1].video
        vs = self._video
        self.info = StreamInfo(
            url=self.url,
            width=first.width,
            height=first.height,
            pix_fmt=first.format.name,
            rate=self._nominal_rate,
            time_base=Fraction(vs.time_base),
            live=self.live,
            audio=self._audio_info,
        )
        return pending

    def _no_video(self, what: str) -> Exception:
        if self.live:
            return SourceLost(self.url, f"{what} within the open timeout")
        return RifestreamError(f"{self.url}: {what}; check that the file holds decodable video")

    # ----- reading -------------------------------------------------------
    def _demux(self) -> Iterator[SourceFrame | SourceAudio]:
        """Items in arrival order; raises SourceLost (live) or RifestreamError (file) on failure."""
        streams = [self._video] + ([self._audio] if self._audio is not None else [])
        video_tb = Fraction(self._video.time_base)
        last_time: Fraction | None = None
        try:
            for packet in self._container.demux(streams):
                if self._stop.is_set():
                    return
                if packet.stream.type == "audio":
                    if packet.size and packet.pts is not None:
                        self.stats.audio_packets += 1
                        yield SourceAudio(packet, packet.pts * Fraction(packet.time_base), time.monotonic())
                    continue
                try:
                    frames = self._video.codec_context.decode(packet if packet.size else None)
                except av.error.FFmpegError as exc:
                    if self.live and not isinstance(exc, av.error.InvalidDataError):
                        raise
                    self.stats.decode_errors += 1  # a damaged packet: skip it, as players do
                    continue
                for frame in frames:
                    if frame.pts is not None:
                        when = frame.pts * video_tb
                    elif last_time is not None and self._nominal_rate:
                        when = last_time + 1 / self._nominal_rate
                    else:
                        self.stats.decode_errors += 1
                        continue
                    last_time = when
                    self.stats.frames += 1
                    yield SourceFrame(self._first_size(frame), when, time.monotonic())
        except (av.error.FFmpegError, OSError) as exc:
            if self._stop.is_set():
                return
            if self.live:
                raise SourceLost(self.url, av_errors.reason(exc)) from exc
            if self.stats.frames == 0:
                raise RifestreamError(f"{self.url}: read failed: {av_errors.reason(exc)}; check the file") from exc
            # a file damaged partway: what came before plays, as in a player; the output ends here
            log.warning(
                "%s: unreadable after %d frames (%s): the input ends there",
                redact_url(self.url),
                self.stats.frames,
                av_errors.reason(exc),
            )
        if self.live and not self._stop.is_set():
            raise SourceLost(self.url, "the stream ended (the server closed it)")

    def _first_size(self, frame: av.VideoFrame) -> av.VideoFrame:
        """``frame`` at the stream's first size: a stream whose size changes midway (a spliced file, a
        damaged header) is scaled back to it, since every later stage works at one size."""
        info = getattr(self, "info", None)
        if info is None or (frame.width, frame.height) == (info.width, info.height):
            return frame
        if not self._size_warned:
            self._size_warned = True
            log.warning("%s: the video changes size to %dx%d midway; scaling it back to %dx%d",
                        self.url, frame.width, frame.height, info.width, info.height)  # fmt: skip
        scaled = frame.reformat(width=info.width, height=info.height)
        scaled.pts = frame.pts
        if frame.time_base is not None:
            scaled.time_base = frame.time_base
        return scaled

    def read(self) -> Iterator[SourceFrame | SourceAudio]:
        with self._lock:
            if self._reading:
                raise RuntimeError(f"{self!r} is already being read")
            if self._container is None:
                return
            self._reading = True
        try:
            yield from self._paced(itertools.chain(self._take_pending(), self._items))
        finally:
            with self._lock:
                self._reading = False
            self._close_container()

    def _take_pending(self) -> Iterator[SourceFrame | SourceAudio]:
        while self._pending:
            yield self._pending.pop(0)

    def _paced(self, items: Iterator[SourceFrame | SourceAudio]) -> Iterator[SourceFrame | SourceAudio]:
        """Hand frames over no faster than their timestamps (``realtime`` files); others pass through."""
        origin: tuple[float, Fraction] | None = None
        for item in items:
            if self._stop.is_set():
                return
            if self.realtime and isinstance(item, SourceFrame):
                if origin is None:
                    origin = (time.monotonic(), item.time)
                wait = origin[0] + float(item.time - origin[1]) - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
                item.arrival = time.monotonic()
            yield item

    # ----- closing -------------------------------------------------------
    def _release(self) -> None:
        with self._lock:
            if self._reading:
                return  # the reading thread closes the container when read() returns
            container, self._container = self._container, None
        self._close(container)

    def _close_container(self) -> None:
        with self._lock:
            container, self._container = self._container, None
        self._close(container)

    def _close(self, container: av.container.InputContainer | None) -> None:
        if container is not None:
            try:
                container.close()
            except Exception as exc:  # closing a dead network input may fail; nothing to save
                log.debug("closing %s: %s", redact_url(self.url), redact_text(str(exc)))
