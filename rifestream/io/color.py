"""One YUV matrix per output stream, so source frames and interpolated RGB frames match.

An upconverted stream mixes frames taken from the source (often YUV, tagged
BT.709, BT.601 or not at all) with interpolated frames the engine made in RGB.
If the two were converted with different matrices, the picture would flicker
in color at the output rate. The sink therefore picks one matrix for its
stream (BT.709 from 720 lines up, else BT.601: what players assume for
untagged video), converts every frame to it, limited range, and tags the
stream with it. An untagged YUV frame is read as BT.601, the same default
FFmpeg used when the engine turned it into RGB.
"""

from __future__ import annotations

import av
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc, VideoReformatter

_KNOWN = {
    1: Colorspace.ITU709,
    5: Colorspace.ITU601,  # BT.470BG
    6: Colorspace.ITU601,  # SMPTE 170M
    7: Colorspace.SMPTE240M,
    9: Colorspace.BT2020,  # BT.2020 non-constant
    10: Colorspace.BT2020,
}
_TAGS = {
    Colorspace.ITU709: (ColorPrimaries.BT709, ColorTrc.BT709),
    Colorspace.ITU601: (ColorPrimaries.SMPTE170M, ColorTrc.SMPTE170M),
}


def is_yuv(pix_fmt: str) -> bool:
    return pix_fmt.startswith(("yuv", "nv", "p0", "p2"))


def stream_colorspace(height: int) -> Colorspace:
    return Colorspace.ITU709 if height >= 720 else Colorspace.ITU601


def tag_encoder(ctx: av.video.codeccontext.VideoCodecContext, colorspace: Colorspace) -> None:
    """Write the stream's matrix, range, primaries and transfer into the encoder (and so the bitstream)."""
    ctx.colorspace = colorspace
    ctx.color_range = ColorRange.MPEG
    primaries, trc = _TAGS.get(colorspace, (ColorPrimaries.UNSPECIFIED, ColorTrc.UNSPECIFIED))
    ctx.color_primaries = primaries
    ctx.color_trc = trc


def to_encoder_frame(
    frame: av.VideoFrame,
    *,
    width: int,
    height: int,
    pix_fmt: str,
    colorspace: Colorspace | None,
    reformatter: VideoReformatter | None = None,
) -> av.VideoFrame:
    """``frame`` scaled and converted to the encoder's format and matrix (``colorspace``; None for RGB
    encoders). May return ``frame`` itself when nothing needs doing.

    ``reformatter``: the caller's own (one per sink thread). ``frame.reformat`` would use a converter
    cached on the frame, which other sinks' threads share: concurrent use of it hangs or crashes.
    """
    reformatter = reformatter or VideoReformatter()
    src_yuv = is_yuv(frame.format.name)
    src_colorspace = _KNOWN.get(int(frame.colorspace), Colorspace.ITU601)
    if frame.format.name.startswith("yuvj"):
        src_range = ColorRange.JPEG
    elif int(frame.color_range) in (1, 2):
        src_range = ColorRange(int(frame.color_range))
    else:
        src_range = ColorRange.MPEG if src_yuv else ColorRange.JPEG
    if colorspace is None:  # RGB (lossless) encoder
        return reformatter.reformat(
            frame, width=width, height=height, format=pix_fmt, src_colorspace=src_colorspace, src_color_range=src_range
        )
    if (
        frame.format.name == pix_fmt
        and (frame.width, frame.height) == (width, height)
        and src_colorspace == colorspace
        and src_range == ColorRange.MPEG
    ):
        return frame
    return reformatter.reformat(
        frame,
        width=width,
        height=height,
        format=pix_fmt,
        src_colorspace=src_colorspace,
        dst_colorspace=colorspace,
        src_color_range=src_range,
        dst_color_range=ColorRange.MPEG,
    )
