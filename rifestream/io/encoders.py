"""Video encoder choice and settings: libx264 (zerolatency for live), h264_nvenc when usable, ffv1."""

from __future__ import annotations

import functools
import logging
from fractions import Fraction

import av

log = logging.getLogger(__name__)

LOSSLESS_CODECS = {"ffv1", "ffvhuff", "huffyuv", "utvideo"}
HARDWARE_ENCODERS = {
    f"{codec}_{api}"
    for codec in ("h264", "hevc", "av1")
    for api in ("nvenc", "qsv", "vaapi", "amf", "videotoolbox", "mf")
}


@functools.cache
def encoder_usable(codec: str) -> bool:
    """Whether this FFmpeg build has ``codec`` and it opens here (NVENC needs an NVIDIA GPU and driver)."""
    if codec not in av.codecs_available:
        return False
    try:
        ctx = av.CodecContext.create(codec, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 256, 256, "yuv420p"
        ctx.time_base = Fraction(1, 30)
        ctx.open()
    except Exception as exc:  # no device, no driver, unsupported: all mean "not here"
        log.debug("encoder %s not usable: %s", codec, exc)
        return False
    return True


def pick_video_codec(requested: str | None) -> str:
    """``requested``, or for ``None``/``"auto"`` h264_nvenc when it opens here, else libx264."""
    if requested and requested != "auto":
        return requested
    return "h264_nvenc" if encoder_usable("h264_nvenc") else "libx264"


_LOSSLESS_PREFERENCE = ("bgr0", "gbrp", "rgb24", "bgr24", "yuv444p")
_LOSSY_PREFERENCE = ("yuv420p", "yuvj420p", "nv12", "yuv422p", "yuv444p", "yuv422p10le", "yuv444p10le", "bgr0", "rgb24")


def default_pix_fmt(codec: str) -> str:
    """The encoder pixel format: 4:2:0 for H.264 (what players expect), 8-bit RGB for lossless codecs
    (exact for the engine's RGB frames); for other encoders the first of these they take (e.g. 4:2:2
    10-bit for ProRes, RGB for libx264rgb), whatever the input's format was."""
    try:
        formats = [f.name for f in av.Codec(codec, "w").video_formats or ()]
    except Exception:  # unknown codec: the sink reports it
        formats = []
    if not formats:  # the encoder does not say (rawvideo takes anything)
        return "yuv420p"
    if codec == "mjpeg" and "yuvj420p" in formats:
        return "yuvj420p"  # MJPEG takes limited-range yuv420p only with strict=-2 (it fails to open otherwise)
    for name in _LOSSLESS_PREFERENCE if codec in LOSSLESS_CODECS else _LOSSY_PREFERENCE:
        if name in formats:
            return name
    return formats[0]


LIVE_BITS_PER_PIXEL = 0.1  # the bit-rate cap of a live stream without an explicit bitrate (≈ 1.4 Mbit/s at 360p60)


def encoder_options(
    codec: str,
    *,
    live: bool,
    rate: Fraction,
    crf: int | None,
    preset: str | None,
    bitrate: int | None,
    pixels: int = 0,
) -> dict[str, str]:
    """Codec options (FFmpeg names).

    Live: no B-frames or lookahead, a keyframe every 2 s, and a bit-rate cap
    (``bitrate``, else ``LIVE_BITS_PER_PIXEL`` × ``pixels`` × ``rate``) with a
    1 s buffer, so a busy scene cannot burst beyond what the link carries.
    Files: constant quality (``crf``, default 23) unless ``bitrate`` is given.
    """
    opts: dict[str, str] = {}
    cap = bitrate or (round(LIVE_BITS_PER_PIXEL * pixels * rate) if live and pixels else None)
    if live:
        opts["g"] = str(max(1, round(2 * rate)))
    if codec == "libx264":
        opts["preset"] = preset or "veryfast"
        if live:
            opts["tune"] = "zerolatency"
        if bitrate:
            opts["b"] = str(bitrate)
        else:
            opts["crf"] = str(23 if crf is None else crf)
        if cap:
            opts.update(maxrate=str(cap), bufsize=str(cap))
    elif codec in ("h264_nvenc", "hevc_nvenc"):
        opts["preset"] = preset or "p4"
        if live:
            opts.update(tune="ll", zerolatency="1", bf="0")
        if bitrate:
            opts.update(b=str(bitrate))
        else:
            opts.update(rc="vbr", cq=str(23 if crf is None else crf))
        if cap:
            opts.update(maxrate=str(cap), bufsize=str(cap))
    elif codec == "ffv1":
        opts.update(level="3", slicecrc="1")
    elif crf is not None:
        opts["crf"] = str(crf)
    return opts
