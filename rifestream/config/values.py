"""The kinds of value a config key takes, each with the words its error uses (``expected …``).

A kind is a type annotation: pydantic's own type and constraints where they say it (``whole(1, 1000)``
is a strict int from 1 to 1000), a function where they cannot (a frame rate, a bit rate, a URL).
Whatever the reason a value is refused, the error is one ``expected`` error carrying the kind's
words, so every key of every config file reads the same way (see :mod:`rifestream.config.errors`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError

from rifestream.io.registry import BadUrl, check_sink_url, check_source_url

EXPECTED = "expected"  # the error type every kind raises; ctx["expected"] holds its words


def refuse(expected: str) -> PydanticCustomError:
    """The error of a value that is not ``expected`` (e.g. "a positive number")."""
    return PydanticCustomError(EXPECTED, "expected {expected}", {"expected": expected})


def _expecting(expected: str, value: Any, handler: Callable[[Any], Any]) -> Any:
    try:
        return handler(value)
    except ValidationError:
        raise refuse(expected) from None


def expect(expected: str) -> WrapValidator:
    """Pydantic's own checks (type, bounds) with one error worded ``expected {expected}``."""
    return WrapValidator(partial(_expecting, expected))


def checked_by(check: Callable[[Any], Any], expected: str) -> PlainValidator:
    """A value checked by ``check`` alone, which returns it normalised or raises ``ValueError``."""

    def validate(value: Any) -> Any:
        try:
            return check(value)
        except (ValueError, TypeError, ArithmeticError):
            raise refuse(expected) from None

    return PlainValidator(validate)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


# ----- kinds from pydantic's types and constraints ------------------------------------------------
def whole(lo: int, hi: int | None = None) -> Any:
    """A whole number from ``lo`` (to ``hi``); a float such as 1.5 or a boolean is refused."""
    words = f"a whole number ≥ {lo}" if hi is None else f"a whole number from {lo} to {hi}"
    return Annotated[int, Field(strict=True, ge=lo, le=hi), expect(words)]


def number_from(lo: float, hi: float) -> Any:
    return Annotated[
        float, Field(strict=True, ge=lo, le=hi, allow_inf_nan=False), expect(f"a number from {lo:g} to {hi:g}")
    ]


def one_of(*choices: str) -> Any:
    return Annotated[Literal[choices], expect("one of " + ", ".join(f'"{c}"' for c in choices))]


Flag = Annotated[bool, Field(strict=True), expect("true or false")]
Positive = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False), expect("a positive number")]
# A wait longer than a day is a typo.
Seconds = Annotated[
    float,
    Field(strict=True, gt=0, le=86_400, allow_inf_nan=False),
    expect("a positive number of seconds, at most 86400"),
]
Text = Annotated[str, Field(strict=True, pattern=r"\S"), expect("a non-empty string")]


# ----- kinds checked by a function -----------------------------------------------------------------
def _options(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or any(isinstance(v, dict | list) for v in value.values()):
        raise ValueError
    return {str(k): (("1" if v else "0") if isinstance(v, bool) else str(v)) for k, v in value.items()}


# FFmpeg options: names to strings (numbers and booleans are turned into strings).
Options = Annotated[
    dict[str, str], checked_by(_options, 'a table of option names to values, e.g. { rtsp_transport = "tcp" }')
]


def _frame_rate(value: Any) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Fraction):
        raise ValueError
    rate = (
        Fraction(value) if isinstance(value, int | str | Fraction) else Fraction(value).limit_denominator(1001 * 1000)
    )
    if not 0 < rate <= 10_000:
        raise ValueError
    return rate


FrameRate = Annotated[Fraction, checked_by(_frame_rate, 'a positive frame rate, e.g. 60, 59.94 or "30000/1001"')]


def _bitrate(value: Any) -> int:
    """Bits per second: a whole number or a string like "4M", "800k"."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1e12:
        return value
    if not isinstance(value, str):
        raise ValueError
    text = value.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:], 1)
    bits = float(text[:-1] if mult != 1 else text) * mult
    if not 0 < bits < 1e12:
        raise ValueError
    return int(bits)


Bitrate = Annotated[int, checked_by(_bitrate, 'a bit rate, e.g. 4000000, "4M" or "800k"')]


def _off_or(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``false`` (kept as None: off) or a value ``check`` takes."""
    return lambda value: None if value is False or value is None else check(value)


def _fraction_of_one(value: Any) -> float:
    if not _is_number(value) or not 0 <= value <= 1:
        raise ValueError
    return float(value)


# The scene-cut score above which frame0 is repeated instead of morphed; false: no detection.
SceneThreshold = Annotated[
    float | None,
    checked_by(_off_or(_fraction_of_one), "a number from 0 to 1, or false to turn scene-cut detection off"),
]


def _duration(value: Any) -> float:
    if not _is_number(value) or not 0 < value <= 1e9:
        raise ValueError
    return float(value)


Duration = Annotated[
    float | None, checked_by(_off_or(_duration), "a positive number of seconds (or false: until stopped)")
]

SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


def _scale(value: Any) -> float:
    if not _is_number(value) or float(value) not in SCALES:
        raise ValueError
    return float(value)


Scale = Annotated[float, checked_by(_scale, "one of 0.25, 0.5, 1, 2, 4 (0.5 for 4K)")]

_DEVICE = re.compile(r"auto|cpu|cuda(:\d{1,3})?")


def _device(value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE.fullmatch(value.strip().lower()):
        raise ValueError
    return value.strip().lower()


Device = Annotated[str, checked_by(_device, 'one of "auto", "cpu", "cuda", "cuda:N"')]


def _host(value: Any) -> str:
    """A host name or an IP address (IPv6 without brackets) to listen on."""
    if not isinstance(value, str):
        raise ValueError
    text = value.strip()
    if ":" in text:
        ipaddress.IPv6Address(text)
    elif not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", text):
        raise ValueError
    return text


Host = Annotated[
    str, checked_by(_host, 'a host name or an IP address to listen on, e.g. "127.0.0.1", "0.0.0.0" or "::1"')
]


def _codec(value: Any) -> str:
    """A video encoder this FFmpeg has, or "auto" (an audio codec or a typo fails here, naming the key)."""
    name = value.strip() if isinstance(value, str) else ""
    if name == "auto":
        return name
    import av  # here, not at the top: only a config that names a codec pays for it

    try:
        kind = av.Codec(name, "w").type
    except ValueError:  # av's UnknownCodecError
        kind = None
    if kind != "video":
        raise ValueError
    return name


Codec = Annotated[str, checked_by(_codec, 'a video encoder this FFmpeg has, e.g. "libx264", "ffv1", or "auto"')]


def _pix_fmt(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    import av

    av.VideoFormat(value.strip())
    return value.strip()


PixFmt = Annotated[str, checked_by(_pix_fmt, 'a pixel format FFmpeg knows, e.g. "yuv420p", "yuv444p", "rgb24"')]


# ----- URLs: what a source or sink kind takes is the kind's to say (rifestream.io.registry) ------------
def _url(check: Callable[[str], str], value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise refuse("a non-empty string")
    try:
        return check(value)
    except BadUrl as bad:
        raise refuse(bad.expected) from None


SourceUrl = Annotated[str, PlainValidator(partial(_url, check_source_url))]
SinkUrl = Annotated[str, PlainValidator(partial(_url, check_sink_url))]
