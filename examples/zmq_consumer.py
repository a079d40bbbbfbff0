"""A small consumer of a rifestream ZeroMQ feed: prints each frame's metadata and the feed's rate and delay.

    rifestream run --sink zmq://127.0.0.1:5555 &
    python examples/zmq_consumer.py zmq://127.0.0.1:5555 --frames 300 --save last.png

Each message is [topic, JSON header, raw pixels]; ``FeedSubscriber`` returns
(header, ndarray). Without rifestream installed, the same takes plain pyzmq:
``sock.recv_multipart()`` → ``json.loads(parts[1])`` and
``np.frombuffer(parts[2], np.uint8).reshape(h, w, 3)`` for ``rgb24``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rifestream.io.zmq_feed import FeedSubscriber


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="zmq://127.0.0.1:5555")
    parser.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: run until idle)")
    parser.add_argument("--idle", type=float, default=5.0, help="stop after this many seconds without a frame")
    parser.add_argument("--save", help="write the last frame here (PNG; needs Pillow)")
    args = parser.parse_args()

    received, interpolated, last_seq, gaps = 0, 0, None, 0
    first_wall = None
    pixels: np.ndarray | None = None
    with FeedSubscriber(args.url) as feed:
        while args.frames == 0 or received < args.frames:
            message = feed.recv(timeout=args.idle)
            if message is None:
                print(f"no frame for {args.idle:g} s; stopping")
                break
            header, pixels = message
            now = time.time()
            first_wall = first_wall or now
            received += 1
            interpolated += header["interpolated"]
            if last_seq is not None and header["seq"] != last_seq + 1:
                gaps += header["seq"] - last_seq - 1  # frames the publisher dropped for us
            last_seq = header["seq"]
            delay_ms = (now - header["wall_time"]) * 1000
            print(
                f"seq={header['seq']:6d} pts={header['pts']}×{header['time_base']} t={header['t']:.3f} "
                f"{'interp' if header['interpolated'] else 'source'} fallback={header['fallback']} "
                f"{header['width']}x{header['height']} {header['pix_fmt']} delay={delay_ms:.1f} ms"
            )
    elapsed = (time.time() - first_wall) if first_wall else 0.0
    rate = (received - 1) / elapsed if received > 1 and elapsed > 0 else 0.0
    print(f"{received} frames ({interpolated} interpolated), {rate:.1f} fps, {gaps} missed")
    if args.save and pixels is not None:
        from PIL import Image

        Image.fromarray(pixels).save(args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
