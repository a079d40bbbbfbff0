"""One sink of the runner: its own bounded queue and its own thread for the blocking writes.

The engine hands every output frame (and every audio packet) to each sink's
``Handoff``. A live job ``offer``s (a full queue drops its OLDEST frame, counted
as ``queue_full``: a slow sink never holds up the source, the engine or the
other sinks); an offline job ``put``s (back-pressure). The worker coroutine takes
items in order and runs ``sink.write`` in the sink's single thread.

A sink whose server goes away (``SinkLost``) is reopened in the background
(``backoff.wait_to_retry``: full opens back off, a cheap look at the server's
port between them starts the next open as soon as it accepts again); frames
that come meanwhile are dropped and counted as ``disconnected``, and the stream
resumes with the next frame once it is back, on the same timeline: the reopened
sink stamps its frames from the first sink's origin, not from zero (a player
joining after the reconnect sees the job's clock). A sink that cannot be opened
at the start is retried the same way for ``start_timeout`` seconds; then the
worker gives up and the job ends with that error.
A network sink whose server stops reading without closing the connection blocks
its write; after ``stall_timeout`` seconds the worker gives that sink up (its
thread is left to the stuck call, a daemon that cannot hold up exit), counts the
frames as ``disconnected`` and reconnects the same way.
At the end of the stream the worker drains its queue, then ``close()`` flushes
the encoder and finishes the file.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import Any, TypeVar

from rifestream.errors import RifestreamError
from rifestream.io.endpoint_probe import readiness_probe
from rifestream.io.frames import OutputFrame, SourceAudio, media_kind
from rifestream.io.sink_base import Sink
from rifestream.io.stream_errors import SinkLost
from rifestream.io.url_redact import redact_text, redact_url
from rifestream.pipeline.backoff import Backoff, wait_to_retry
from rifestream.pipeline.handoff import Handoff
from rifestream.pipeline.run_stats import RunStats
from rifestream.pipeline.sink_thread import SinkThread
from rifestream.pipeline.source_thread import END, Marker

log = logging.getLogger(__name__)

SinkItem = OutputFrame | SourceAudio | Marker
T = TypeVar("T")


class SinkWorker:
    """Feeds one sink from its queue; ``stage`` names its latency and drops (encode, feed, sink)."""

    def __init__(
        self,
        url: str,
        opener: Callable[[], Sink],
        *,
        stage: str,
        queue_name: str,
        capacity: int,
        stats: RunStats,
        backoff: Backoff,
        live: bool,
        stall_timeout: float | None = None,
        start_timeout: float | None = None,
        look_every: float,
        on_failure: Callable[[BaseException], None] | None = None,
        on_reopen: Callable[[bool], None] | None = None,
    ) -> None:
        self.url = url
        self.stage = stage
        self.queue_name = queue_name
        self._opener = opener
        self._stats = stats
        self._backoff = backoff
        self.live = live
        self.queue: Handoff[SinkItem] = Handoff(
            {"video": capacity, "audio": max(4 * capacity, 32)},
            media_kind,
            on_depth=lambda depth: stats.queue_depth(queue_name, depth),
        )
        self.stall_timeout = stall_timeout  # None: a write may take as long as it takes (files)
        self.start_timeout = start_timeout  # None: an unreachable sink at the start is retried until the job ends
        self._look_every = look_every
        self._on_failure = on_failure
        self._on_reopen = on_reopen or (lambda started: None)  # around each reopen attempt (see BurstRoom)
        self._start_deadline: float | None = None  # while the sink has never opened: when to give up
        self._opened = False  # it has opened once
        self._retry_stop = threading.Event()  # ends a wait between reconnect tries (the job is closing)
        self._origin: Fraction | None = None  # the time of the first frame written: the timeline's zero
        self._last_refusal: RifestreamError | None = None  # why the last open failed (for the give-up error)
        self._thread = SinkThread(f"rifestream-sink-{queue_name}")
        self.sink: Sink | None = None
        self._reconnecting: asyncio.Task | None = None
        self._closing = False
        self.dropped_by_sink = 0  # frames the sink itself dropped (no ZMQ subscriber could take them)

    @property
    def never_opened(self) -> RifestreamError | None:
        """Why the sink could not be opened, while it never has been (None once it opened)."""
        return None if self._opened else self._last_refusal

    # ----- lifecycle -----------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the sink's thread."""
        return await asyncio.wrap_future(self._thread.submit(fn, *args))

    async def open(self) -> None:
        """Open the sink; an unreachable server is retried in the background (frames dropped meanwhile)
        for up to ``start_timeout`` seconds, then the job fails (``on_failure``)."""
        if self.start_timeout is not None:
            self._start_deadline = time.monotonic() + self.start_timeout
        try:
            self.sink = await self._call(self._opener)
            self._opened = True
            self._start_deadline = None
        except SinkLost as lost:
            log.warning("sink %s unreachable: %s; retrying with backoff", redact_url(self.url), lost)
            self._last_refusal = lost
            self._start_reconnect()

    async def abort(self) -> None:
        """Close without running (the job failed to start)."""
        self._closing = True
        self._retry_stop.set()
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            await asyncio.gather(self._reconnecting, return_exceptions=True)
        await self._finish()

    async def offer(self, item: SinkItem) -> None:
        """Queue ``item``: live drops the oldest frame when full, offline waits for room."""
        if self.live or item is END:
            for old in self.queue.offer(item):
                if isinstance(old, OutputFrame):
                    self._stats.drop(self.stage, "queue_full", where=self.queue_name)
        else:
            await self.queue.put(item)

    async def run(self) -> None:
        """Write items until ``END``; then close the sink (flush, finish the file).

        What is already queued when the worker wakes (a frame pair comes out of the engine at once)
        is written in one hand-off to the sink's thread, not one round trip per frame.
        """
        try:
            ended = False
            while not ended:
                batch = [await self.queue.get()]
                batch += self.queue.take_ready(self.queue.capacity["video"])
                if END in batch:
                    batch, ended = batch[: batch.index(END)], True
                items = [i for i in batch if not isinstance(i, Marker)]
                if items:
                    await self._write_all(items)
        finally:
            self._closing = True
            self._retry_stop.set()
            self.queue.close()
            if self._reconnecting is not None:
                self._reconnecting.cancel()
                await asyncio.gather(self._reconnecting, return_exceptions=True)
            await self._finish()

    async def _finish(self) -> None:
        """Close the sink (flush, trailer) in its thread, then retire the thread; a stalled close is given up."""
        try:
            await self._within_stall_timeout(self._call(self._close_sink))
        except TimeoutError:
            log.warning(
                "sink %s: closing made no progress in %g s; giving up on it", redact_url(self.url), self.stall_timeout
            )
        self._thread.retire()

    async def _within_stall_timeout(self, call: Awaitable[T]) -> T:
        """The call's result; ``TimeoutError`` when it takes longer than the stall timeout (it keeps running)."""
        return await asyncio.wait_for(asyncio.shield(call), self.stall_timeout)

    async def _write_all(self, items: list[OutputFrame | SourceAudio]) -> None:
        if self.sink is None:
            self._drop_frames(items, "disconnected")
            return
        try:
            results, lost = await self._within_stall_timeout(self._call(self._write_batch, self.sink, items))
        except TimeoutError:
            self._drop_frames(items, "disconnected")
            self._stalled()
            return
        for item, (took, done, kept) in zip(items, results, strict=False):
            if not isinstance(item, OutputFrame):
                continue
            if kept:
                if self._origin is None:
                    self._origin = item.time
                self._stats.stage(self.stage, took)
                self._stats.emitted(item, done)
            else:
                self.dropped_by_sink += 1
                self._stats.drop(self.stage, "queue_full", where=self.queue_name)
        self._count_subscriber_drops()
        if lost is not None:
            self._drop_frames(items[len(results) :], "disconnected")
            self._lost(lost)

    def _count_subscriber_drops(self) -> None:
        """The feed's per-subscriber drops since the last batch (a subscriber whose own queue was full)."""
        drops = self.sink.take_subscriber_drops() if self.sink is not None else None
        if drops:
            self._stats.feed_subscriber_drops(self.queue_name, drops)

    def _drop_frames(self, items: list[OutputFrame | SourceAudio], reason: str) -> None:
        for item in items:
            if isinstance(item, OutputFrame):
                self._stats.drop(self.stage, reason, where=self.queue_name)

    @staticmethod
    def _write_batch(
        sink: Sink, items: list[OutputFrame | SourceAudio]
    ) -> tuple[list[tuple[float, float, bool]], SinkLost | None]:
        """Per item written: (seconds the write took, when it finished, whether the sink kept it);
        and the ``SinkLost`` that stopped the batch, if one did."""
        results = []
        for item in items:
            start = time.perf_counter()
            try:
                if isinstance(item, SourceAudio):
                    sink.write_audio(item)
                    kept = True
                else:
                    kept = sink.write(item) is not False
            except SinkLost as lost:
                return results, lost
            results.append((time.perf_counter() - start, time.monotonic(), kept))
        return results, None

    def _close_sink(self) -> None:
        sink, self.sink = self.sink, None
        if sink is None:
            return
        try:
            sink.close()
        except SinkLost as lost:
            log.warning("sink %s lost while closing: %s", redact_url(self.url), lost)

    # ----- trouble -------------------------------------------------------
    def _lost(self, lost: SinkLost) -> None:
        log.warning("sink %s lost: %s; reconnecting with backoff", redact_url(self.url), lost)
        dead, self.sink = self.sink, None
        if dead is not None:
            self._thread.submit(_close_quietly, dead)
        self._start_reconnect()

    def _stalled(self) -> None:
        """The server stopped reading: leave the stuck write (and, after it, the close) to a retired thread."""
        log.warning(
            "sink %s: no write progress for %g s (the server stopped reading); reconnecting with backoff",
            redact_url(self.url),
            self.stall_timeout,
        )
        stuck, self.sink = self.sink, None
        if stuck is not None:
            self._thread.submit(_close_quietly, stuck)
        self._thread.retire()
        self._thread = SinkThread(self._thread.name)
        self._start_reconnect()

    def _start_reconnect(self) -> None:
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())
            self._reconnecting.add_done_callback(self._reconnect_done)

    def _reconnect_done(self, task: asyncio.Task) -> None:
        """A sink that never opened within its start timeout fails the job."""
        if task.cancelled() or task.exception() is None:
            return
        if self._on_failure is not None:
            self._on_failure(task.exception())
        else:
            log.error("sink %s: %s", redact_url(self.url), task.exception())

    async def _reconnect(self) -> None:
        """Reopen until it works or the job ends (``wait_to_retry`` between tries).

        Once the sink has opened, any refusal is retried, not only an unreachable server: a refusal
        now is the server's state (nginx-rtmp answers "already publishing" until it has dropped our
        previous, stalled connection to the same stream key), not a wrong setting. Before it ever
        opened, only an unreachable server is retried, and only until the start deadline.
        """
        probe = readiness_probe(self.url)
        while not self._closing:
            delay = self._backoff.next_delay()
            if self._start_deadline is not None:
                left = self._start_deadline - time.monotonic()
                if left <= 0:
                    raise RifestreamError(
                        f"{self._last_refusal} (gave up: the sink did not open within {self.start_timeout:g} s "
                        "of the start; [reconnect] start_timeout_s sets how long)"
                    )
                delay = min(delay, left)
            if not await self._call(wait_to_retry, delay, self._retry_stop, probe, self._look_every):
                return
            if self._closing:
                return
            self._stats.reconnect("sink")
            self._on_reopen(True)
            try:
                sink = await self._call(self._open_on_timeline)
            except RifestreamError as refused:  # SinkLost included
                if self._start_deadline is not None and not isinstance(refused, SinkLost):
                    raise  # never opened, and not for want of a server: a wrong setting
                self._last_refusal = refused
                log.warning("sink %s still unavailable: %s", redact_url(self.url), redact_text(str(refused)))
                continue
            finally:
                self._on_reopen(False)
            if self._closing:
                await self._call(_close_quietly, sink)
                return
            self.sink = sink
            self._opened = True
            self._start_deadline = None
            self._backoff.reset()
            log.info("sink %s back", redact_url(self.url))
            return

    def _open_on_timeline(self) -> Sink:
        """Open the sink again (in its thread) to continue the timeline of the frames already written."""
        sink = self._opener()
        if self._origin is not None:
            sink.continue_timeline(self._origin)
        return sink


def _close_quietly(sink: Sink) -> None:
    try:
        sink.close()
    except Exception as exc:  # a sink that died mid-stream may fail to close; nothing is left to save
        log.debug("closing a lost sink: %s", redact_text(str(exc)))
