"""A bounded hand-off between two pipeline stages, living on the event loop.

Two ways in, one per kind of job:

* ``offer`` (live): never waits; when an item kind is at capacity the OLDEST
  item of that kind is removed and returned, so the producer (a live source,
  the engine) is never held up by a slow consumer and the caller counts the drop;
* ``put`` (offline): waits for room — back-pressure instead of drops.

Items are grouped by ``kind(item)`` (e.g. ``"video"``, ``"audio"``), each kind
with its own capacity; a kind of ``None`` marks control items (end of stream,
a gap after a reconnect) that are never dropped and take no room. All methods
must be called on the loop's thread (other threads go through
``loop.call_soon_threadsafe`` / ``asyncio.run_coroutine_threadsafe``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class HandoffClosed(Exception):
    """``put`` on a hand-off whose consumer has gone (the job is failing or stopping)."""


class Handoff(Generic[T]):
    """A FIFO with a capacity per item kind; one consumer."""

    def __init__(
        self,
        capacity: Mapping[str, int],
        kind: Callable[[T], str | None],
        *,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        if any(c < 1 for c in capacity.values()):
            raise ValueError(f"capacities must be ≥ 1, got {dict(capacity)}")
        self.capacity = dict(capacity)
        self._kind = kind
        self._items: deque[tuple[str | None, T]] = deque()
        self._count = dict.fromkeys(self.capacity, 0)
        self._not_empty = asyncio.Event()
        self._room = asyncio.Event()
        self._closed = False
        self._on_depth = on_depth or (lambda depth: None)

    def __len__(self) -> int:
        return len(self._items)

    def depth(self, kind: str) -> int:
        return self._count[kind]

    def _append(self, kind: str | None, item: T) -> None:
        self._items.append((kind, item))
        if kind is not None:
            self._count[kind] += 1
        self._not_empty.set()
        self._report()

    def _report(self) -> None:
        first = next(iter(self._count))
        self._on_depth(self._count[first])

    def offer(self, item: T) -> list[T]:
        """Add ``item`` now; returns the items dropped to make room (oldest of its kind first)."""
        kind = self._kind(item)
        dropped: list[T] = []
        if kind is not None:
            while self._count[kind] >= self.capacity[kind]:
                dropped.append(self._remove_oldest(kind))
        self._append(kind, item)
        return dropped

    def _remove_oldest(self, kind: str) -> T:
        for i, (k, item) in enumerate(self._items):
            if k == kind:
                del self._items[i]
                self._count[kind] -= 1
                return item
        raise AssertionError(f"no {kind} item although the count says {self._count[kind]}")

    async def put(self, item: T) -> None:
        """Add ``item``, waiting while its kind is at capacity; ``HandoffClosed`` once closed."""
        kind = self._kind(item)
        while kind is not None and self._count[kind] >= self.capacity[kind] and not self._closed:
            self._room.clear()
            await self._room.wait()
        if self._closed:
            raise HandoffClosed
        self._append(kind, item)

    async def get(self) -> T:
        """The oldest item, waiting for one."""
        while not self._items:
            self._not_empty.clear()
            await self._not_empty.wait()
        kind, item = self._items.popleft()
        if kind is not None:
            self._count[kind] -= 1
        self._room.set()
        self._report()
        return item

    def take_ready(self, limit: int) -> list[T]:
        """Up to ``limit`` more items that are already waiting (never waits): a consumer that pays a
        thread hand-off per call takes what is ready in one go."""
        taken: list[T] = []
        while self._items and len(taken) < limit:
            kind, item = self._items.popleft()
            if kind is not None:
                self._count[kind] -= 1
            taken.append(item)
        if taken:
            self._room.set()
            self._report()
        return taken

    def close(self) -> None:
        """The consumer is gone: waiting and later ``put`` calls raise ``HandoffClosed``."""
        self._closed = True
        self._room.set()
