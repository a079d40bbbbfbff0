"""Reading and writing run at a lower CPU priority than the model, on Linux.

On a CPU the model's call decides whether an in-between frame is made in time, and its
parallel parts (OpenCV, OpenVINO) wait for their slowest thread: a decoder or an encoder
holding one of two cores stretches the whole call. Reading and writing have slack (they
are queued and a few milliseconds late costs nothing), so their threads, and the codec
threads FFmpeg starts from them (which inherit the niceness), yield to the model's.
Lowering one's own priority needs no privilege; where the platform has no per-thread
niceness it does nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

#: How much nicer than the process the reading and writing threads are (0 to 19; 19 is nicest).
IO_NICENESS = 5


def lower_this_thread(by: int = IO_NICENESS) -> None:
    """Make the calling thread ``by`` steps nicer (Linux: niceness is per thread)."""
    if not sys.platform.startswith("linux") or by <= 0:
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
    except OSError as exc:  # a sandbox that forbids it: the job runs as before
        log.debug("could not lower the priority of thread %s: %s", threading.current_thread().name, exc)
