"""Room in a live hand-off for the burst of frames that follows a sink reopen.

PyAV (18) connects an output (``avio_open``: the TCP connect, the RTMP handshake,
then the connect / createStream / publish round trips) and writes its header
while holding the GIL. On loopback that takes about 0.2 s (Nagle and delayed
ACKs on both ends: PyAV hands the protocol no ``tcp_nodelay``); over a real
network, a few round trips more. No Python thread runs meanwhile, so the source
thread then delivers the frames that piled up in one burst, and a 2-frame
engine queue would keep only the last two of them. While a sink reopens, and for
a short grace after, ``BurstRoom`` gives the queue room for ``room`` frames (a
second's worth); then the configured capacity applies again, and the queue
drains at engine speed. Frames beyond the room are still dropped and counted.
"""

from __future__ import annotations

import asyncio

from rifestream.pipeline.handoff import Handoff

GRACE_S = 1.0  # the room stays this long after the last reopen attempt ends (the burst comes right after it)


class BurstRoom:
    """``reopening(True)`` before a sink's reopen attempt, ``reopening(False)`` after it (on the loop)."""

    def __init__(self, queue: Handoff, room: int, *, kind: str = "video", grace_s: float = GRACE_S) -> None:
        self._queue = queue
        self._kind = kind
        self._normal = queue.capacity[kind]
        self._room = max(room, self._normal)
        self._grace_s = grace_s
        self._open = 0
        self._restore: asyncio.TimerHandle | None = None

    def reopening(self, started: bool) -> None:
        if started:
            self._open += 1
            if self._restore is not None:
                self._restore.cancel()
                self._restore = None
            self._queue.capacity[self._kind] = self._room
            return
        self._open = max(0, self._open - 1)
        if self._open == 0 and self._restore is None:
            self._restore = asyncio.get_running_loop().call_later(self._grace_s, self._back_to_normal)

    def _back_to_normal(self) -> None:
        """The configured capacity again; what is queued above it drains, nothing is dropped for it."""
        self._restore = None
        if self._open == 0:
            self._queue.capacity[self._kind] = self._normal
