"""A sink's writes and its ``close()``, one at a time: a close from another thread waits for the write in
progress; a close from a signal handler that interrupted this thread's own write runs right after it.

The shutdown signal's handler runs in the main thread, which may be inside a sink's write at that
moment (``interpolate`` writes from it). Flushing an encoder or closing a socket in the middle of its
own write would corrupt the file or the message, so that close waits for the write's end; the lock
is re-entrant because the handler runs in the writing thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


class WriteGuard:
    """``with guard.writing():`` around each write; ``guard.close()`` runs ``finish`` now or after it."""

    def __init__(self, finish: Callable[[], None]) -> None:
        self.lock = threading.RLock()  # also the sink's own lock for its other state
        self._finish = finish
        self._busy = 0  # writes in progress (all in the lock holder's thread)
        self._close_pending = False

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        with self.lock:
            self._busy += 1
            try:
                yield
            finally:
                self._busy -= 1
                if not self._busy and self._close_pending:
                    self._close_pending = False
                    self._finish()

    def close(self) -> None:
        with self.lock:
            if self._busy:
                self._close_pending = True
                return
            self._close_pending = False
            self._finish()
