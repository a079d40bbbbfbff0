"""Measure how soon a live endpoint that was away for minutes is picked up again (docs/RELIABILITY.md, "reconnect").

Two `rifestream run` jobs on loopback: GStreamer's RTSP camera → ZMQ feed, and the test scene → nginx-rtmp.
Both servers go away together (the camera killed, nginx stopped) for OUTAGE seconds, then come back; it
prints the seconds from each server accepting connections again to the first frame out of the feed / the
first frame a waiting RTMP player decodes, and how far the RTMP stream's time moved over the wall time.

    OMP_NUM_THREADS=1 python3 scripts/measure_long_outage.py 180
"""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers import NginxRtmp, RtspServer, free_port  # noqa: E402
from tests.test_e2e_live import FeedArrivals, counts, finish, play_rtmp, start_run  # noqa: E402


def main(outage: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="long-outage-"))
    rtsp = RtspServer(work / "rtsp").start()
    nginx = NginxRtmp(work / "nginx").start()
    feed = f"zmq://127.0.0.1:{free_port()}"
    arrivals = FeedArrivals(feed, seconds=outage + 120)
    arrivals.start()
    url = nginx.url("long")
    camera_job = start_run(work, "--source", rtsp.url, "--sink", feed)
    ingest_job = start_run(work, "--source", "testsrc:?size=320x240&fps=30", "--sink", url)
    try:
        assert arrivals.first_after(0.0, 60) is not None, "the camera job never streamed"
        before: list = []
        play_rtmp(url, 10, before)
        assert before, "the ingest job never published"
        rtsp.kill()
        nginx.stop()
        down = time.monotonic()
        time.sleep(outage)
        after: list = []
        player = threading.Thread(target=play_rtmp, args=(url, 30, after), daemon=True)
        nginx.start()
        rtmp_back = time.monotonic()
        player.start()
        rtsp.start()
        rtsp_back = time.monotonic()
        first = arrivals.first_after(rtsp_back, 20)
        player.join(20)
        print(f"outage: {rtmp_back - down:.0f} s (RTMP), {rtsp_back - down:.0f} s (RTSP)")
        print("RTSP source: " + (f"frames out {first - rtsp_back:.2f} s after the camera accepted again" if first
                                 else "no frame within 20 s"))  # fmt: skip
        if after:
            print(f"RTMP sink: a waiting player decoded a frame {after[0][1] - rtmp_back:.2f} s after nginx accepted "
                  f"again; the stream's time moved {float(after[0][0] - before[0][0]):.2f} s over "
                  f"{after[0][1] - before[0][1]:.2f} s of wall time")  # fmt: skip
        else:
            print("RTMP sink: no frame played within 20 s")
    finally:
        for job in (camera_job, ingest_job):
            job.send_signal(signal.SIGINT)
        for name, job in (("camera job", camera_job), ("ingest job", ingest_job)):
            stdout, _ = finish(job, 60)
            drops = counts(stdout, "drops") if "drops       none" not in stdout else {}
            print(f"{name}: reconnects {counts(stdout, 'reconnects')}, drops {drops}")
        rtsp.stop()
        nginx.stop()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 180.0)
