"""Parsing the ``scheme:NAME?key=value`` forms of source and sink URLs (test scene, capture, zmq)."""

from __future__ import annotations

from fractions import Fraction
from urllib.parse import parse_qsl, urlsplit

from rifestream.errors import RifestreamError


def split_query(url: str, allowed: set[str]) -> tuple[str, dict[str, str]]:
    """``(name, options)`` of ``scheme:name?k=v&…`` (``//`` after the colon is optional).

    Unknown keys raise ``RifestreamError`` listing the allowed ones.
    """
    parts = urlsplit(url)
    name = (parts.netloc + parts.path).strip("/") if parts.netloc else parts.path.strip("/")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise RifestreamError(
            f"{url}: unknown option {', '.join(unknown)}; allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
    return name, options


def parse_size(url: str, text: str) -> tuple[int, int]:
    """``640x360`` → (640, 360)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise RifestreamError(f"{url}: size must be WIDTHxHEIGHT like 640x360, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise RifestreamError(f"{url}: size must be positive, got {text!r}")
    return w, h


def parse_rate(url: str, text: str) -> Fraction:
    """``30``, ``29.97`` or ``30000/1001`` → an exact Fraction (give NTSC rates as 30000/1001)."""
    try:
        rate = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise RifestreamError(f"{url}: fps must be a number like 30 or 30000/1001, got {text!r}") from None
    if rate <= 0:
        raise RifestreamError(f"{url}: fps must be positive, got {text!r}")
    return rate.limit_denominator(1001)


def parse_bool(url: str, key: str, text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on", ""):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise RifestreamError(f"{url}: {key} must be 1 or 0, got {text!r}")


def parse_number(url: str, key: str, text: str, kind: type = float) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise RifestreamError(f"{url}: {key} must be a number, got {text!r}") from None
    if value < 0:
        raise RifestreamError(f"{url}: {key} must not be negative, got {text!r}")
    return value
