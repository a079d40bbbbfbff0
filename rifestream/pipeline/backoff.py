"""Exponential backoff between reconnect attempts."""

from __future__ import annotations


class Backoff:
    """Delays ``initial, 2·initial, 4·initial, …`` capped at ``maximum``; ``reset()`` after a success."""

    def __init__(self, initial: float = 0.5, maximum: float = 10.0) -> None:
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
