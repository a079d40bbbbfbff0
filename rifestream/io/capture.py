"""``capture:BACKEND?options`` — screen and game capture mapped to FFmpeg's capture devices.

One form for every platform::

    capture:                                   # the platform's default backend, whole screen
    capture:x11grab?display=:99&size=640x360&fps=30&offset=0,0&cursor=0     (Linux, X11)
    capture:gdigrab?window=Game%20Title&fps=60                             (Windows, GDI)
    capture:ddagrab?monitor=0&fps=60                                       (Windows 8+, Desktop Duplication)
    capture:avfoundation?device=Capture%20screen%200&fps=30               (macOS)

``capture_input`` maps it to what ``av.open`` takes: (file, format, options);
``CaptureSource`` is the source kind that opens it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from fractions import Fraction

import av
import av.filter

from rifestream.errors import RifestreamError
from rifestream.io.av_source import AVSource
from rifestream.io.source_base import InputOptions
from rifestream.io.url_query import parse_bool, parse_rate, parse_size, split_query

CAPTURE_OPTIONS = {"display", "size", "fps", "offset", "cursor", "window", "monitor", "device"}
BACKENDS = {"x11grab": "Linux (X11)", "gdigrab": "Windows", "ddagrab": "Windows 8+", "avfoundation": "macOS"}


@dataclass(frozen=True)
class CaptureInput:
    file: str
    format: str
    options: dict[str, str]
    rate: Fraction  # the frame rate the device is asked for


def default_backend(platform: str = sys.platform) -> str:
    if platform.startswith("win"):
        return "gdigrab"
    if platform == "darwin":
        return "avfoundation"
    return "x11grab"


def _offset(url: str, text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 0
    try:
        x, y = (int(v) for v in text.split(","))
    except ValueError:
        raise RifestreamError(f"{url}: offset must be X,Y like 100,50, got {text!r}") from None
    return x, y


def capture_input(url: str, platform: str = sys.platform) -> CaptureInput:
    """The FFmpeg input for a ``capture:`` URL; raises ``RifestreamError`` for unknown backends or options."""
    backend, opts = split_query(url, CAPTURE_OPTIONS)
    backend = backend or default_backend(platform)
    if backend not in BACKENDS:
        known = ", ".join(f"{name} ({where})" for name, where in BACKENDS.items())
        raise RifestreamError(f"{url}: unknown capture backend {backend!r}; use one of {known}")
    rate = parse_rate(url, opts["fps"]) if "fps" in opts else Fraction(30)
    fps = str(rate)
    size = "{}x{}".format(*parse_size(url, opts["size"])) if "size" in opts else None
    x, y = _offset(url, opts.get("offset"))
    cursor = parse_bool(url, "cursor", opts["cursor"]) if "cursor" in opts else True
    options: dict[str, str] = {"framerate": fps}

    if backend == "x11grab":
        display = opts.get("display") or os.environ.get("DISPLAY") or ":0"
        if size:
            options["video_size"] = size
        options["draw_mouse"] = "1" if cursor else "0"
        return CaptureInput(f"{display}+{x},{y}", "x11grab", options, rate)
    if backend == "gdigrab":
        if size:
            options["video_size"] = size
        if x or y:
            options["offset_x"], options["offset_y"] = str(x), str(y)
        options["draw_mouse"] = "1" if cursor else "0"
        window = opts.get("window")
        return CaptureInput(f"title={window}" if window else "desktop", "gdigrab", options, rate)
    if backend == "ddagrab":
        # ddagrab is a lavfi source that yields GPU (D3D11) frames; download them to system memory.
        args = [f"output_idx={int(opts.get('monitor') or 0)}", f"framerate={fps}", f"draw_mouse={int(cursor)}"]
        if size:
            args.append(f"video_size={size}")
        if x or y:
            args += [f"offset_x={x}", f"offset_y={y}"]
        return CaptureInput(f"ddagrab={':'.join(args)},hwdownload,format=bgra", "lavfi", {}, rate)
    # avfoundation: "VIDEO:AUDIO" device names or indices; screens are named "Capture screen N".
    options["capture_cursor"] = "1" if cursor else "0"
    if size:
        options["video_size"] = size
    device = opts.get("device") or "Capture screen 0"
    return CaptureInput(f"{device}:none", "avfoundation", options, rate)


def check_available(url: str, capture: CaptureInput) -> None:
    """Raise ``RifestreamError`` when this FFmpeg build lacks the capture device (e.g. gdigrab on Linux)."""
    missing = capture.format not in av.formats_available
    if capture.format == "lavfi" and not missing:
        missing = "ddagrab" not in av.filter.filters_available
    if missing:
        backend = capture.file.split("=")[0] if capture.format == "lavfi" else capture.format
        raise RifestreamError(
            f"{url}: capture backend {backend} ({BACKENDS.get(backend, '?')}) is not in this FFmpeg build; "
            f"on this system use capture:{default_backend()}"
        )


class CaptureSource(AVSource):
    """A screen or game capture device read by FFmpeg: live, video only; failing to open it is a setup
    problem (no such display), not a network loss to retry."""

    @classmethod
    def open(cls, url: str, options: InputOptions) -> CaptureSource:
        capture = capture_input(url)
        check_available(url, capture)
        return cls(
            url,
            file=capture.file,
            format=capture.format,
            options={**capture.options, **(options.options or {})},
            live=True,
            audio=False,
            device=True,
            open_timeout=options.open_timeout,
            read_timeout=options.read_timeout,
            rate=capture.rate,
        )
