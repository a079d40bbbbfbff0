"""The scheme → kind registry: every URL form finds its class, every class keeps the one contract, the
checks of a URL's form give the phrases the config quotes, and the pipeline learns pacing from the source."""

from __future__ import annotations

import inspect

import pytest

from rifestream.errors import RifestreamError
from rifestream.io import registry
from rifestream.io.registry import BadUrl, check_sink_url, check_source_url, scheme, sink_kind, source_kind
from rifestream.io.sink_base import Sink
from rifestream.io.source_base import Source
from rifestream.io.sources import open_source
from tests.test_io_sources import write_clip


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("out.mp4", ""),
        ("C:\\video\\out.mp4", ""),
        ("file:out.mkv", "file"),
        ("null", "null"),
        (" NULL: ", "null"),
        ("testsrc:?size=64x48", "testsrc"),
        ("capture:x11grab?display=:1", "capture"),
        ("RTMP://h/live/k", "rtmp"),
        ("zmq://127.0.0.1:5555", "zmq"),
        ("udp://@:1234", "udp"),
    ],
)
def test_scheme_of_each_url_form(url, expected):
    assert scheme(url) == expected


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("out.mp4", "FileSink"),
        ("file:out.mkv", "FileSink"),
        ("null", "NullSink"),
        ("rtmp://h/live/k", "RtmpSink"),
        ("rtmps://h/live/k", "RtmpSink"),
        ("srt://h:9000", "SrtSink"),
        ("udp://127.0.0.1:5000", "UdpSink"),
        ("zmq://127.0.0.1:0", "FeedPublisher"),
    ],
)
def test_each_sink_form_finds_its_kind(url, kind):
    assert sink_kind(url).__name__ == kind


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("in.mp4", "AVSource"),
        ("rtsp://cam/stream", "AVSource"),
        ("https://h/live.m3u8", "AVSource"),
        ("gopher://h/x", "AVSource"),  # any other URL: FFmpeg reads it
        ("capture:x11grab", "CaptureSource"),
        ("testsrc:?size=64x48", "SyntheticSceneSource"),
        ("zmq://127.0.0.1:5555", "FeedSource"),
    ],
)
def test_each_source_form_finds_its_kind(url, kind):
    assert source_kind(url).__name__ == kind


def test_every_registered_kind_keeps_the_one_contract():
    sinks = {registry._load(where) for where in registry.SINK_KINDS.values()}
    assert set(registry.sink_schemes()) == set(registry.SINK_KINDS)
    for kind in sinks:
        assert issubclass(kind, Sink) and not inspect.isabstract(kind), kind
        assert kind.stage in ("encode", "feed", "sink") and isinstance(kind.encodes, bool)
        assert isinstance(kind.reconnectable, bool)
    sources = {registry._load(where) for where in registry.SOURCE_KINDS.values()}
    for kind in sources:
        assert issubclass(kind, Source) and not inspect.isabstract(kind), kind
    by_stage = {kind.__name__: (kind.stage, kind.encodes, kind.reconnectable) for kind in sinks}
    assert by_stage == {
        "FileSink": ("encode", True, False),
        "NullSink": ("sink", False, False),
        "RtmpSink": ("encode", True, True),
        "SrtSink": ("encode", True, True),
        "UdpSink": ("encode", True, True),
        "FeedPublisher": ("feed", False, False),
    }


def test_no_url_or_an_unknown_sink_scheme_is_one_line():
    with pytest.raises(RifestreamError, match="^no sink given; use a file path"):
        sink_kind("  ")
    with pytest.raises(RifestreamError, match="^no source given; use a file path"):
        source_kind("")
    with pytest.raises(RifestreamError, match=r"^gopher://x: cannot write to gopher://; use a file path"):
        sink_kind("gopher://x")


# The phrases the config quotes as ``FILE: KEY: expected PHRASE, got …`` (tests/test_config.py pins some).
BAD_SINKS = [
    ("rtmp://127.0.0.1:99999/live/x", "a port from 1 to 65535 in the URL, like rtmp://HOST[:PORT]"),
    ("rtmp://h:1935x/live/k", "a port from 1 to 65535 in the URL, like rtmp://HOST[:PORT]"),
    (
        "rtmp://127.0.0.1/live",
        "an RTMP URL naming an application and a stream key: rtmp://HOST[:PORT]/APP/ and the key",
    ),
    ("rtmp:///live/x", "a URL with a host, like rtmp://HOST[:PORT]"),
    ("zmq://[::]:5599", "zmq://HOST:PORT with an IPv4 address or a host name (0.0.0.0: every interface); no IPv6"),
    ("zmq://127.0.0.1", "zmq://HOST:PORT with a port from 0 to 65535, e.g. zmq://127.0.0.1:5555"),
    ("zmq://256.1.1.1:5555", "zmq://HOST:PORT with a valid IPv4 address, like zmq://127.0.0.1:5555"),
    ("udp://127.0.0.1:0", "a port from 1 to 65535 in the URL, like udp://HOST[:PORT]"),
    (
        "gopher://x",
        "a sink URL: a file path (.mp4, .mkv, .mov, .flv, .ts, .nut), rtmp://, udp://, zmq://HOST:PORT or null",
    ),
]
BAD_SOURCES = [
    ("rtsp://", "a URL with a host, like rtsp://HOST[:PORT]"),
    ("rtsp://cam:70000/stream", "a port from 1 to 65535 in the URL, like rtsp://HOST[:PORT]"),
    ("rtsp://[::1/stream", "an IPv6 host in brackets, like rtsp://[::1]:PORT"),
    ("rtsp://[zz]:554/stream", "an IPv6 address in the brackets, like rtsp://[::1]:PORT"),
    ("http://:8080/x.m3u8", "a URL with a host, like http://HOST[:PORT]"),
    ("zmq://127.0.0.1:0", "zmq://HOST:PORT with a port from 1 to 65535, e.g. zmq://127.0.0.1:5555"),
]


@pytest.mark.parametrize(("url", "phrase"), BAD_SINKS)
def test_a_bad_sink_url_names_the_form_expected(url, phrase):
    with pytest.raises(BadUrl) as caught:
        check_sink_url(url)
    assert caught.value.expected == phrase
    assert str(caught.value).endswith(f": expected {phrase}")


@pytest.mark.parametrize(("url", "phrase"), BAD_SOURCES)
def test_a_bad_source_url_names_the_form_expected(url, phrase):
    with pytest.raises(BadUrl) as caught:
        check_source_url(url)
    assert caught.value.expected == phrase


@pytest.mark.parametrize(
    "url",
    ["out.mp4", "null", "rtmp://h:1935/live/key", "srt://:9000?mode=listener", "udp://@:1234", "zmq://0.0.0.0:0"],
)
def test_good_sink_urls_pass_unchanged(url):
    assert check_sink_url(url) == url


@pytest.mark.parametrize(
    "url",
    ["in.mp4", "testsrc:?size=64x48", "capture:", "rtsp://u:p@[::1]:8554/cam", "srt://:9000?mode=listener",
     "rtmp://h/live"],
)  # fmt: skip
def test_good_source_urls_pass_unchanged(url):
    assert check_source_url(url) == url


def test_an_rtmp_stream_key_in_a_bad_url_stays_out_of_the_message():
    with pytest.raises(BadUrl) as caught:
        check_sink_url("rtmp://h:99999/live/SECRETKEY")
    assert "SECRETKEY" not in str(caught.value)


def test_whether_a_source_delivers_at_its_own_pace_comes_from_the_source(tmp_path):
    """Live (drop when behind) or offline (back-pressure): the test scene by its pacing, a file by realtime."""
    with open_source("testsrc:?size=64x48&fps=30&frames=3") as paced:
        assert paced.own_pace and paced.info.live and paced.info.frames == 3
    with open_source("testsrc:?size=64x48&fps=30&frames=3&realtime=0") as unpaced:
        assert not unpaced.own_pace and unpaced.info.live  # it stands in for a camera, but waits for us
    clip = tmp_path / "clip.mp4"
    write_clip(clip, frames=5, audio_codec=None)
    with open_source(str(clip)) as file:
        assert not file.own_pace and not file.info.live
    with open_source(str(clip), realtime=True) as paced_file:
        assert paced_file.own_pace
