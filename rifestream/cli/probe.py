"""``rifestream probe URL``: what an input is, and the rate at which its frames really arrive."""

from __future__ import annotations

import argparse
import time

from rifestream.cli.options import add_subcommand

HELP = "describe an input (size, rate, audio) and measure its real frame rate"
DESCRIPTION = (
    "Open an input the way `rifestream run` would, print its video and audio streams, then read "
    "frames for a few seconds and report how many arrived, at what rate, and whether their "
    "timestamps only increase. Use it to check a camera URL or a capture setting before a job."
)
EPILOG = """\
examples:
  rifestream probe rtsp://camera.local:554/stream1
  rifestream probe 'capture:x11grab?display=:0&size=1280x720&fps=30' --seconds 5
  rifestream probe movie.mp4 --frames 100"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "probe", run, help=HELP, description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("url", help="anything `rifestream run --source` takes")
    p.add_argument("--seconds", type=float, default=3.0, help="read for at most this long (default 3)")
    p.add_argument("--frames", type=int, default=300, help="read at most this many frames (default 300)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the input to open (default 10)")


def run(args: argparse.Namespace) -> int:
    from rifestream.config import check_value
    from rifestream.io.sources import open_source
    from rifestream.io.url_redact import redact_url

    check_value("source.url", args.url, "URL")
    with open_source(args.url, open_timeout=args.timeout) as source:
        info = source.info
        rate = f"{float(info.rate):.3f} fps ({info.rate})" if info.rate else "not declared"
        print(f"input      {redact_url(info.url)}")
        print(f"video      {info.width}x{info.height} {info.pix_fmt}, rate {rate}, time base {info.time_base}")
        print(f"live       {'yes' if info.live else 'no (a file; `run --realtime` paces it)'}")
        if info.audio is not None:
            a = info.audio
            print(f"audio      {a.codec} {a.sample_rate} Hz {a.layout} ({a.channels} ch)")
        else:
            print("audio      none")
        times, start = [], time.monotonic()
        for frame in source.frames():
            times.append(frame.time)
            if len(times) >= args.frames or time.monotonic() - start >= args.seconds:
                break
        wall = time.monotonic() - start
    if not times:
        print("frames     none arrived")
        return 1
    increasing = all(b > a for a, b in zip(times, times[1:], strict=False))
    span = float(times[-1] - times[0])
    by_pts = f"{(len(times) - 1) / span:.2f} fps by timestamps" if span > 0 else "one timestamp"
    print(f"frames     {len(times)} in {wall:.2f} s ({len(times) / wall:.2f} fps arriving; {by_pts})")
    print(f"timestamps {'strictly increasing' if increasing else 'NOT strictly increasing'}, first {times[0]} s")
    return 0
