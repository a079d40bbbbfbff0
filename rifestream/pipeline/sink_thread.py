"""The thread a sink's blocking calls run in: one at a time, in order, as a daemon.

Not a ``ThreadPoolExecutor``: its threads are joined when the interpreter exits,
so one write stuck on a server that stopped reading would keep the process from
ever exiting after every other sink had finished. A retired ``SinkThread`` ends
once its current call returns; a stuck one is left behind without blocking exit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from rifestream.pipeline.thread_priority import lower_this_thread

T = TypeVar("T")

_RETIRE = object()


class SinkThread:
    def __init__(self, name: str) -> None:
        self.name = name
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()  # bounded by its one caller awaiting each call
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` after the calls already submitted; its result or exception lands in the future."""
        done: Future[T] = Future()
        self._calls.put((done, fn, args))
        return done

    def retire(self) -> None:
        """End the thread once the calls already submitted have run (returns at once)."""
        self._calls.put(_RETIRE)

    def _serve(self) -> None:
        lower_this_thread()  # encoding and sending have slack; the model's call has none
        while True:
            call = self._calls.get()
            if call is _RETIRE:
                return
            done, fn, args = call
            if not done.set_running_or_notify_cancel():
                continue
            try:
                done.set_result(fn(*args))
            except BaseException as exc:  # handed to the awaiting coroutine, as an executor would
                done.set_exception(exc)
