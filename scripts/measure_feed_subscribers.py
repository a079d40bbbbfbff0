"""Measure what other ZeroMQ feed subscribers cost a reader (docs/RELIABILITY.md, section "feed").

Runs the issue's command, ``rifestream run --source "testsrc:?size=640x360&fps=30" --sink
zmq://127.0.0.1:PORT --force-step blend --threads 1 --duration D``, beside a reader
(``FeedSubscriber``) and the troublemakers of one scenario:

- ``dead``: a pyzmq SUB in this process that connects and never reads;
- ``frozen-killed``: two subscriber processes that read; at 1/3 of the run one is frozen
  (SIGSTOP: connected, never reads again, never closes), at 2/3 the other is killed (SIGKILL);
- ``slow``: a pyzmq SUB in a thread that reads 10 frames a second.

Prints the job's output frames and rate, the reader's frames, its rate over the whole run and
its worst whole second, and the job's summary lines for drops (per subscriber slot).

    OMP_NUM_THREADS=1 python3 scripts/measure_feed_subscribers.py --scenario dead --duration 32
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import zmq

from rifestream.io.zmq_feed import FeedSubscriber

SUBSCRIBER_SCRIPT = """
import sys, zmq
sock = zmq.Context().socket(zmq.SUB)
sock.setsockopt(zmq.RCVHWM, 4)
sock.setsockopt(zmq.SUBSCRIBE, b"rifestream")
sock.connect(sys.argv[1])
while True:
    sock.recv_multipart()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_subscriber(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 4)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"rifestream")
    sock.connect(endpoint)
    return sock


def read_slowly(sock: zmq.Socket, stop: threading.Event, got: list[float]) -> None:
    while not stop.is_set():
        if sock.poll(200):
            sock.recv_multipart()
            got.append(time.monotonic())
            stop.wait(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=("dead", "frozen-killed", "slow"), default="dead")
    parser.add_argument("--duration", type=float, default=32)
    args = parser.parse_args()
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    stop = threading.Event()
    others: list[zmq.Socket] = []
    procs: list[subprocess.Popen] = []
    slow_got: list[float] = []
    if args.scenario == "dead":
        others.append(raw_subscriber(endpoint))
    elif args.scenario == "slow":
        others.append(raw_subscriber(endpoint))
        threading.Thread(target=read_slowly, args=(others[0], stop, slow_got), daemon=True).start()
    else:
        procs = [subprocess.Popen([sys.executable, "-c", SUBSCRIBER_SCRIPT, endpoint]) for _ in range(2)]
    job = subprocess.Popen(
        ["rifestream", "run", "--source", "testsrc:?size=640x360&fps=30", "--sink", f"zmq://127.0.0.1:{port}",
         "--force-step", "blend", "--threads", "1", "--no-metrics", "--duration", f"{args.duration:g}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    times: list[float] = []
    events = {"frozen": args.duration / 3, "killed": 2 * args.duration / 3} if procs else {}
    with FeedSubscriber(f"zmq://127.0.0.1:{port}") as reader:
        deadline = time.monotonic() + args.duration + 60
        while job.poll() is None and time.monotonic() < deadline:
            if reader.recv(0.2) is not None:
                times.append(time.monotonic())
            if times and "frozen" in events and times[-1] - times[0] >= events["frozen"]:
                procs[0].send_signal(signal.SIGSTOP)
                del events["frozen"]
            if times and "killed" in events and times[-1] - times[0] >= events["killed"]:
                procs[1].kill()
                del events["killed"]
    stdout, _ = job.communicate(timeout=60)
    stop.set()
    for proc in procs:
        proc.kill()
        proc.wait(5)
    for sock in others:
        sock.close(0)
    frames_out = int(re.search(r"frames out\s+(\d+)\s+\(([\d.]+) fps\)", stdout).group(1))
    job_fps = float(re.search(r"frames out\s+\d+\s+\(([\d.]+) fps\)", stdout).group(1))
    span = times[-1] - times[0]
    seconds = [sum(1 for t in times if s <= t - times[0] < s + 1) for s in range(int(span))]
    print(f"scenario {args.scenario}, {args.duration:g} s, load average {os.getloadavg()[0]:.1f}")
    print(f"job: {frames_out} frames out, {job_fps:.2f} fps")
    print(f"reader: {len(times)} frames ({100 * len(times) / frames_out:.1f} %), "
          f"{(len(times) - 1) / span:.2f} fps, worst whole second {min(seconds)} frames")  # fmt: skip
    if slow_got:
        print(f"slow subscriber: {len(slow_got)} frames")
    for line in stdout.splitlines():
        if line.strip().startswith(("drops", "feed subscriber drops")):
            print(line.strip())


if __name__ == "__main__":
    main()
