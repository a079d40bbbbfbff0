"""Reading and writing threads yield to the model's on a loaded CPU: they run nicer than the process."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from rifestream.pipeline.sink_thread import SinkThread
from rifestream.pipeline.thread_priority import IO_NICENESS, lower_this_thread

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")


def _niceness_in_thread(fn) -> tuple[int, int]:
    """(niceness before, after) ``fn`` in a fresh thread."""
    seen: list[int] = []

    def body() -> None:
        tid = threading.get_native_id()
        seen.append(os.getpriority(os.PRIO_PROCESS, tid))
        fn()
        seen.append(os.getpriority(os.PRIO_PROCESS, tid))

    t = threading.Thread(target=body)
    t.start()
    t.join()
    return seen[0], seen[1]


@linux_only
def test_a_lowered_thread_is_nicer_and_the_rest_of_the_process_is_not():
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    before, after = _niceness_in_thread(lower_this_thread)
    assert after == min(19, before + IO_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before


@linux_only
def test_a_sinks_calls_run_nicer_than_the_caller():
    sink = SinkThread("test-sink")
    try:
        theirs = sink.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result(timeout=5)
    finally:
        sink.retire()
    ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert theirs == min(19, ours + IO_NICENESS)
