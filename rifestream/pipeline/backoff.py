"""When to retry a lost live endpoint: exponential backoff between full opens, and a readiness
look between them that cuts the wait short when the server's port accepts again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Backoff:
    """Delays ``initial, 2·initial, 4·initial, …`` capped at ``maximum``; ``reset()`` after a success."""

    def __init__(self, initial: float, maximum: float) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"need 0 < initial ≤ maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


def wait_to_retry(
    delay: float,
    stop: threading.Event,
    probe: Callable[[], bool] | None,
    look_every: float,
) -> bool:
    """Wait before the next full open of a lost endpoint; False if ``stop`` was set meanwhile.

    ``delay``: the backoff's delay. ``probe``: a cheap readiness look (``rifestream.io.endpoint_probe``),
    None where there is none. With a probe, the wait looks once at once: a port that refuses (the
    server is down) is looked at again every ``look_every`` seconds, and the wait ends the moment it
    accepts, so a returning server is picked up within ``look_every`` plus one open, however long it
    was away and however far the backoff has grown. A port that accepts (the server is up but refused
    the stream: a 404, "already publishing", no publisher yet) is not looked at again: the wait runs
    its full ``delay``, so such a server gets one full open per backoff step, no more.
    """
    deadline = time.monotonic() + delay
    if probe is not None and not probe():
        while (left := deadline - time.monotonic()) > 0:
            if stop.wait(min(look_every, left)):
                return False
            if probe():
                return True
        return not stop.is_set()
    return not stop.wait(max(0.0, deadline - time.monotonic()))
