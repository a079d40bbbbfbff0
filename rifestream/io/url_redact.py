"""URLs as they may be shown: credentials, RTMP stream keys and secret query values replaced by ``***``.

A source or sink URL often carries a secret: ``rtsp://user:password@camera/…``,
``rtmp://ingest/live/STREAM_KEY`` (the key is the password of an RTMP push),
``srt://host:9000?passphrase=…``, ``https://…?token=…``. Logs, summaries, error
lines, metrics and feed headers show :func:`redact_url` of a URL, never the URL;
:func:`redact_text` does the same for every URL inside a message (an FFmpeg error,
a log line made elsewhere), so output that leaves the process can be passed
through it as a last line of defence.
"""

from __future__ import annotations

import re

MASK = "***"

# Query keys whose values are secrets (case-insensitive): exact names, and names ending in one of
# the suffixes (``stream_key``, ``access_token``, ``srt_passphrase`` …).
SECRET_QUERY_KEYS = frozenset(
    {"passwd", "password", "pass", "pwd", "passphrase", "key", "token", "secret", "auth", "streamid"}
)  # streamid: an SRT ingest's stream id often holds the stream key
SECRET_QUERY_SUFFIXES = ("passwd", "password", "passphrase", "_key", "key", "token", "secret", "signature")
# Schemes whose last path element is a stream key (``rtmp://HOST/APP/KEY``).
STREAM_KEY_SCHEMES = ("rtmp", "rtmps", "rtmpt", "rtmpe", "rtmpte", "rtmpts")

# A URL inside free text: scheme://… up to white space or a quote/bracket that cannot be part of it.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
_TRAILING_PUNCTUATION = ".,;:!?)]}"
# "user:pa/ss@host…": a password with a "/" in it (a path with an "@", such as host:8080/@x or /@user, is not this)
_PASSWORD_WITH_SLASH = re.compile(r"[^/:@]+:(?!\d*/)[^@]*/[^@]*@")


def is_secret_query_key(name: str) -> bool:
    key = name.strip().lower()
    return key in SECRET_QUERY_KEYS or key.endswith(SECRET_QUERY_SUFFIXES)


def _redact_query(query: str) -> str:
    parts = []
    for item in query.split("&"):
        name, eq, value = item.partition("=")
        parts.append(f"{name}={MASK}" if eq and value and is_secret_query_key(name) else item)
    return "&".join(parts)


def _redact_path(scheme: str, path: str) -> str:
    """``/APP/KEY`` → ``/APP/***`` for RTMP (and ``/X`` → ``/***``); other schemes' paths are kept."""
    if scheme.lower() not in STREAM_KEY_SCHEMES:
        return path
    elements = path.split("/")  # "", APP, …, KEY; with one element it may be the key as well as the app
    if len(elements) >= 2 and elements[-1]:
        elements[-1] = MASK
    return "/".join(elements)


def redact_url(url: str) -> str:
    """``url`` with its userinfo, RTMP stream key and secret query values replaced by ``***``.

    ``rtsp://user:pw@cam/s`` → ``rtsp://***@cam/s``; ``rtmp://h/live/KEY`` → ``rtmp://h/live/***``;
    ``srt://h:9000?passphrase=x&latency=200`` → ``srt://h:9000?passphrase=***&latency=200``.
    Anything that is not ``scheme://…`` (a file path, ``testsrc:``, ``null``) is returned as it is,
    apart from secret query values.
    """
    if not isinstance(url, str):
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        head, q, query = url.partition("?")
        return f"{head}?{_redact_query(query)}" if q else url
    rest, q, query = rest.partition("?")
    hash_sign = fragment = ""
    if not q:  # a "#" with no "?" before it starts a fragment; after a "?" it stays in the query (SRT's streamid=#!::…)
        rest, hash_sign, fragment = rest.partition("#")
    if _PASSWORD_WITH_SLASH.match(rest):  # user:pa/ss@host/… : the userinfo runs to the last "@"
        rest = f"{MASK}@{rest.rpartition('@')[2]}"
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = f"{MASK}@{authority.rpartition('@')[2]}"
    path = _redact_path(scheme, slash + path)
    query = _redact_query(query) if q else ""
    fragment = _redact_query(fragment) if hash_sign else ""
    return f"{scheme}://{authority}{path}{q}{query}{hash_sign}{fragment}"


def _redact_match(match: re.Match[str]) -> str:
    text = match.group(0)
    core = text.rstrip(_TRAILING_PUNCTUATION)
    return redact_url(core) + text[len(core) :]


def redact_text(text: str) -> str:
    """``text`` with every ``scheme://…`` URL in it passed through :func:`redact_url`."""
    if not isinstance(text, str) or "://" not in text:
        return text
    return _URL_IN_TEXT.sub(_redact_match, text)
