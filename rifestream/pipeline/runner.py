"""The asyncio program that runs one stream: source thread → engine thread → one worker per sink.

::

    source thread ──offer/put──▶ [interpolate queue] ──▶ engine (FrameLoop in its own thread)
        (decode, blocking)          bounded                   │ every output frame, every audio packet
                                                              ▼
                                    [encode queue] ──▶ sink thread (file / rtmp://)   ┐ each its own
                                    [feed queue]   ──▶ sink thread (zmq://)           ┘ bounded queue

Live jobs (a source that delivers at its own pace) never wait on a slower
stage: each hand-off drops its OLDEST frame when full and counts it. Offline
jobs (``live=False``: a file read as fast as possible, the ``interpolate``
command) wait for room instead — back-pressure, no drops — and run without a
latency budget. Lost sources and RTMP sinks are reopened with exponential backoff
between full opens and a cheap look at the server's port between them
(``backoff.wait_to_retry``): a server that comes back is picked up within
``look_every`` seconds plus one open. ``stop()`` (SIGINT/SIGTERM, ``duration``)
ends the source; what is queued is drained, encoders are flushed and every sink
is closed, so files are playable.

Every wait at the start is bounded: ``duration`` counts from ``run()``, whether
the source has opened or not (only the engine's one-off warm-up is not counted),
and a source (or sink) that cannot be opened within ``start_timeout`` seconds
ends the job with its reason (a ``RifestreamError``), as does a ``duration``
that passes before the source opened.

The runner picks no event loop: the entry point does (``asyncio.run(runner.run(),
loop_factory=uvloop.new_event_loop)`` or plain ``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any

from rifestream.config import EngineSettings, LatencySettings, ReconnectSettings, SinkSpec
from rifestream.errors import RifestreamError
from rifestream.io.frames import OutputFrame, SourceAudio, SourceFrame, media_kind
from rifestream.io.registry import sink_kind
from rifestream.io.sink_base import Sink
from rifestream.io.source_base import Source
from rifestream.io.stream_info import StreamInfo
from rifestream.io.url_redact import redact_url
from rifestream.pipeline.backoff import Backoff
from rifestream.pipeline.budget import LatencyBudget
from rifestream.pipeline.burst_room import BurstRoom
from rifestream.pipeline.clock import OutputClock
from rifestream.pipeline.frame_loop import FrameLoop
from rifestream.pipeline.handoff import Handoff, HandoffClosed
from rifestream.pipeline.run_stats import RunStats, RunSummary
from rifestream.pipeline.sink_worker import SinkWorker
from rifestream.pipeline.source_thread import END, GAP, FirstOpen, Marker, SourceItem, SourceThread
from rifestream.pipeline.stop_signals import exit_at_once, install_stop_handlers

log = logging.getLogger(__name__)

ENGINE_QUEUE = "interpolate"
BURST_S = 1.0  # while a sink reopens, the engine queue holds this many seconds of source frames (BurstRoom)
Progress = Callable[[int, int | None], None]  # (source frames done, total if known)


# A Runner made without a pipeline config behaves as the default job's (rifestream.config's defaults).
_ENGINE, _LATENCY, _RECONNECT = EngineSettings(), LatencySettings(), ReconnectSettings()


def queue_names(sink_urls: Sequence[str]) -> list[str]:
    """Names of the runner's queues for metrics: the engine's, then one per sink (encode, encode2, feed, …)."""
    names = [ENGINE_QUEUE]
    for url in sink_urls:
        base = sink_kind(url).stage
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}{n}"
        names.append(name)
    return names


def _open_sink_for(spec: SinkSpec, info: StreamInfo, clock: OutputClock) -> Sink:
    """Open one sink for the stream described by ``info`` (run in the sink's thread)."""
    from rifestream.io.sinks import open_sink

    options = dict(spec.options)
    preset = options.pop("preset", None)
    if spec.gop is not None:
        options["g"] = str(spec.gop)
    return open_sink(
        spec.url,
        width=info.width,
        height=info.height,
        rate=clock.output_rate(info.rate),
        time_base=clock.output_time_base(info.time_base),
        source_time_base=info.time_base,
        audio=info.audio,
        codec=spec.codec,
        pix_fmt=spec.pix_fmt,
        crf=spec.crf,
        preset=preset,
        bitrate=spec.bitrate,
        codec_options=options,
    )


SourceOpener = Callable[[], Source]
SinkOpener = Callable[[SinkSpec, StreamInfo, OutputClock], Sink]


class Runner:
    """One streaming (or offline) job. ``await run()`` returns its ``RunSummary``; ``stop()`` ends it.

    ``open_source`` opens (and, after a loss, reopens) the input; ``sinks`` are
    opened once the input's size and rate are known. ``live`` None: decided by
    the source (``Source.own_pace``). ``budget`` None: no latency budget
    (offline, always the full model). ``on_progress(done, total)`` is called on
    the loop after each source frame (``total`` from the source when it knows).
    """

    def __init__(
        self,
        *,
        open_source: SourceOpener,
        sinks: Sequence[SinkSpec],
        engine: Any,
        clock: OutputClock,
        budget: LatencyBudget | None = None,
        scene_threshold: float | None = _ENGINE.scene_threshold,
        live: bool | None = None,
        source_queue: int = _LATENCY.source_queue,
        sink_queue: int = _LATENCY.sink_queue,
        stats: RunStats | None = None,
        reconnect: tuple[float, float] = (_RECONNECT.initial_delay_s, _RECONNECT.max_delay_s),
        stall_timeout: float = _RECONNECT.stall_timeout_s,
        start_timeout: float | None = _RECONNECT.start_timeout_s,
        look_every: float = _RECONNECT.probe_interval_s,
        duration: float | None = None,
        on_progress: Progress | None = None,
        handle_signals: bool = False,
        open_sink: SinkOpener = _open_sink_for,
        source_url: str | None = None,
    ) -> None:
        if not sinks:
            raise ValueError("a job needs at least one sink")
        self._open_source = open_source
        self.sink_specs = list(sinks)
        self.engine = engine
        self.clock = clock
        self.budget = budget or LatencyBudget()
        self.scene_threshold = scene_threshold
        self.live = live
        self.source_queue = source_queue
        self.sink_queue = sink_queue
        self.stats = stats or RunStats()
        self.reconnect = reconnect
        self.stall_timeout = stall_timeout
        self.start_timeout = start_timeout  # None: a source or sink not up at the start is waited for
        self.look_every = look_every
        self.duration = duration
        self.source_url = source_url  # only for messages (the opener knows the real thing)
        self.on_progress = on_progress
        self.handle_signals = handle_signals
        self._open_sink = open_sink
        self.source_info: StreamInfo | None = None
        self.workers: list[SinkWorker] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = threading.Event()
        self._stopped: asyncio.Event | None = None  # created on the loop in run()
        self._source_thread: SourceThread | None = None
        self._failure: BaseException | None = None
        self._out_of_time = False  # the duration passed
        self._duration_timer: asyncio.TimerHandle | None = None
        self._frames_done = 0
        self._total: int | None = None

    # ----- control -------------------------------------------------------
    def stop(self) -> None:
        """End the job cleanly: stop reading, drain, flush and close the sinks. Safe from any thread."""
        if self._stop_requested.is_set():
            return
        self._stop_requested.set()
        thread = self._source_thread
        if thread is not None:
            thread.stop()
        loop = self._loop
        if loop is not None and self._stopped is not None:
            try:
                loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:  # the loop has closed: the job is over anyway
                pass

    def _fail(self, exc: BaseException) -> None:
        """A stage failed for good: remember the first error and stop the job (any thread).

        ``HandoffClosed`` only means a consumer went away; its own error is what gets reported.
        """
        if self._failure is None and not isinstance(exc, HandoffClosed):
            self._failure = exc
        self.stop()

    # ----- the job -------------------------------------------------------
    async def run(self) -> RunSummary:
        loop = self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        if self._stop_requested.is_set():
            self._stopped.set()
        handlers = install_stop_handlers(loop, self._on_signal) if self.handle_signals else []
        engine_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rifestream-engine")
        self._duration_timer = loop.call_later(self.duration, self._out_of_duration) if self.duration else None
        try:
            source = await self._first_source()
            if source is None:
                self.stats.note("stopped before the source could be opened")
                return self.stats.summary()
            return await self._stream(loop, source, engine_pool)
        finally:
            if self._duration_timer is not None:
                self._duration_timer.cancel()
            for sig in handlers:
                loop.remove_signal_handler(sig)
            engine_pool.shutdown(wait=True)

    def _out_of_duration(self) -> None:
        self._out_of_time = True
        self.stop()

    def _pause_duration(self, loop: asyncio.AbstractEventLoop) -> float | None:
        """Stop the duration's clock; the seconds it had left (None: no duration, or it has run out)."""
        timer, self._duration_timer = self._duration_timer, None
        if timer is None or self._out_of_time:
            return None
        timer.cancel()
        return max(0.0, timer.when() - loop.time())

    async def _first_source(self) -> Source | None:
        """Open the input. A live server that is not up yet is retried for up to ``start_timeout``
        seconds (and within the duration); past that the job fails with the reason. None: the job was
        stopped (a signal, ``stop()``) before the source opened."""
        opening = FirstOpen(self._open_source, backoff=Backoff(*self.reconnect), stats=self.stats,
                            look_every=self.look_every)  # fmt: skip
        attempt = asyncio.wrap_future(opening.start())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            done, _ = await asyncio.wait(
                {attempt, stopped}, timeout=self.start_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
        if attempt in done:
            return attempt.result()
        opening.give_up()
        attempt.cancel()
        if self._stop_requested.is_set() and not self._out_of_time:
            return None
        why = str(opening.last_loss) if opening.last_loss is not None else (
            f"{redact_url(self.source_url) if self.source_url else 'the source'}: its first open has not returned "
            "(a server that accepts the connection but does not answer?)"
        )  # fmt: skip
        if self._out_of_time:
            raise RifestreamError(f"{why} (gave up: the source did not open within the duration, {self.duration:g} s)")
        raise RifestreamError(
            f"{why} (gave up: the source did not open within {self.start_timeout:g} s of the start; "
            "[reconnect] start_timeout_s sets how long)"
        )

    async def _stream(
        self, loop: asyncio.AbstractEventLoop, source: Source, engine_pool: ThreadPoolExecutor
    ) -> RunSummary:
        info = self.source_info = source.info
        live = source.own_pace if self.live is None else self.live
        self._total = info.frames
        budget = self.budget if live else LatencyBudget(None, self.budget.force)
        frame_loop = FrameLoop(
            self.engine, self.clock, budget=budget, scene_threshold=self.scene_threshold, on_stage=self.stats.stage
        )
        source_q: Handoff[SourceItem] = Handoff(
            {"video": self.source_queue, "audio": max(8 * self.source_queue, 64)},
            media_kind,
            on_depth=lambda depth: self.stats.queue_depth(ENGINE_QUEUE, depth),
        )
        names = queue_names([s.url for s in self.sink_specs])[1:]
        burst_room = BurstRoom(source_q, math.ceil(float(info.rate or 60) * BURST_S)) if live else None
        kinds = [sink_kind(spec.url) for spec in self.sink_specs]
        self.workers = [
            SinkWorker(
                spec.url,
                _bind(self._open_sink, spec, info, self.clock),
                stage=kind.stage,
                queue_name=name,
                capacity=spec.queue or self.sink_queue,
                stats=self.stats,
                backoff=Backoff(*self.reconnect),
                live=live,
                stall_timeout=self.stall_timeout if kind.reconnectable else None,
                start_timeout=self.start_timeout,
                look_every=self.look_every,
                on_failure=self._fail,
                on_reopen=burst_room.reopening if burst_room is not None else None,
            )
            for spec, kind, name in zip(self.sink_specs, kinds, names, strict=True)
        ]
        out_rate = self.clock.output_rate(info.rate)
        self.stats.configure(
            target_fps=None if out_rate is None else float(out_rate),
            budget_s=budget.budget_s,
            capacities={
                ENGINE_QUEUE: self.source_queue,
                **{w.queue_name: w.queue.capacity["video"] for w in self.workers},
            },
        )
        log.info(
            "%s: %dx%d %s fps → %s fps, %s, sinks: %s",
            redact_url(info.url),
            info.width,
            info.height,
            _fps(info.rate),
            _fps(self.clock.output_rate(info.rate)),
            "live (drops when behind)" if live else "offline (back-pressure)",
            ", ".join(redact_url(s.url) for s in self.sink_specs),
        )
        try:
            await asyncio.gather(*(w.open() for w in self.workers))
        except BaseException:
            source.close()
            await asyncio.gather(*(w.abort() for w in self.workers), return_exceptions=True)
            raise
        left = self._pause_duration(loop)  # the engine's one-off warm-up is work, not a wait: not counted
        await loop.run_in_executor(engine_pool, frame_loop.warm_up, info.width, info.height, info.rate)
        if left is not None:
            self._duration_timer = loop.call_later(left, self._out_of_duration)
        sink_tasks = [loop.create_task(w.run(), name=f"sink {redact_url(w.url)}") for w in self.workers]
        for task in sink_tasks:
            task.add_done_callback(self._sink_done)
        deliver = self._live_delivery(loop, source_q) if live else self._blocking_delivery(loop, source_q)
        self._source_thread = SourceThread(
            source,
            self._open_source,
            deliver,
            stats=self.stats,
            backoff=Backoff(*self.reconnect),
            on_failure=self._fail,
            look_every=self.look_every,
        )
        if self._stop_requested.is_set():
            self._source_thread.stop()
        self._source_thread.start()
        try:
            await self._engine(loop, frame_loop, source_q, engine_pool)
        except BaseException as exc:
            self._fail(exc)
            for w in self.workers:
                w.queue.offer(END)
        finally:
            source_q.close()
            results = await asyncio.gather(*sink_tasks, return_exceptions=True)
            await loop.run_in_executor(None, self._source_thread.join)
        for result in results:
            if isinstance(result, BaseException):
                self._fail(result)
        self._fail_for_sinks_never_opened()
        self._note_sink_drops()
        if self._failure is not None:
            raise self._failure
        return self.stats.summary()

    def _sink_done(self, task: asyncio.Task) -> None:
        """A sink that failed for good (not a lost server: those reconnect) ends the job."""
        if not task.cancelled() and task.exception() is not None:
            self._fail(task.exception())

    # ----- hand-offs from the source thread ----------------------------------
    def _live_delivery(
        self, loop: asyncio.AbstractEventLoop, queue: Handoff[SourceItem]
    ) -> Callable[[SourceItem], bool]:
        def accept(item: SourceItem) -> None:
            for old in queue.offer(item):
                if isinstance(old, SourceFrame):
                    self.stats.drop(ENGINE_QUEUE, "queue_full")

        def deliver(item: SourceItem) -> bool:
            try:
                loop.call_soon_threadsafe(accept, item)
            except RuntimeError:  # the loop is gone
                return False
            return True

        return deliver

    def _blocking_delivery(
        self, loop: asyncio.AbstractEventLoop, queue: Handoff[SourceItem]
    ) -> Callable[[SourceItem], bool]:
        def deliver(item: SourceItem) -> bool:
            try:
                if isinstance(item, Marker):
                    loop.call_soon_threadsafe(queue.offer, item)
                else:
                    asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()
            except (HandoffClosed, RuntimeError):
                return False
            return True

        return deliver

    # ----- the engine ----------------------------------------------------
    async def _engine(
        self,
        loop: asyncio.AbstractEventLoop,
        frame_loop: FrameLoop,
        queue: Handoff[SourceItem],
        pool: ThreadPoolExecutor,
    ) -> None:
        """Take source items in order, run the frame loop in its thread, fan outputs out to every sink."""
        while True:
            item = await queue.get()
            if item is END or item is GAP:
                outputs = await loop.run_in_executor(pool, frame_loop.finish)
                await self._fan_out(outputs)
                if item is END:
                    break
                continue
            if isinstance(item, SourceAudio):
                for w in self.workers:
                    await w.offer(item)
                continue
            outputs = await loop.run_in_executor(pool, frame_loop.push, item)
            await self._fan_out(outputs)
            self._frames_done += 1
            if self.on_progress is not None:
                self.on_progress(self._frames_done, self._total)
        for w in self.workers:
            await w.offer(END)

    async def _fan_out(self, outputs: list[OutputFrame]) -> None:
        if any(o.fallback == "scene_cut" for o in outputs):
            self.stats.scene_cut()
        for out in outputs:
            self.stats.output(out)
            for w in self.workers:
                await w.offer(out)

    # ----- the rest --------------------------------------------------------
    def _on_signal(self, sig: int) -> None:
        """First SIGINT/SIGTERM: a clean stop. A second one: exit now, leaving the files as they are.

        The handlers stay installed until the job ends: removing them inside the handler let the
        same signal reach Python's default handler too (a KeyboardInterrupt in the middle of the
        clean stop).
        """
        name = signal.Signals(sig).name
        if self._stop_requested.is_set():
            exit_at_once(sig)
        log.info("%s: stopping; draining queues, flushing encoders, closing sinks", name)
        self.stop()

    def _fail_for_sinks_never_opened(self) -> None:
        """A job that ended (its duration, the end of its input) before a sink ever opened delivered nothing
        there: that is a failure, as a source that never opened is. A stop by signal or ``stop()`` is not."""
        if self._stop_requested.is_set() and not self._out_of_time:
            return
        for w in self.workers:
            if w.never_opened is not None:
                self._fail(RifestreamError(f"{w.never_opened} (gave up: the sink never opened before the job ended)"))

    def _note_sink_drops(self) -> None:
        for w in self.workers:
            if w.dropped_by_sink:
                self.stats.note(
                    f"{redact_url(w.url)}: {w.dropped_by_sink} frames dropped by the sink (a subscriber not reading)"
                )


def _bind(open_sink: SinkOpener, spec: SinkSpec, info: StreamInfo, clock: OutputClock) -> Callable[[], Sink]:
    return lambda: open_sink(spec, info, clock)


def _fps(rate: Fraction | None) -> str:
    return "?" if rate is None else f"{float(rate):g}"


def run_blocking(runner: Runner, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> RunSummary:
    """Run ``runner`` to the end on a new event loop (``loop_factory``: e.g. ``uvloop.new_event_loop``)."""
    with asyncio.Runner(loop_factory=loop_factory) as aio:
        return aio.run(runner.run())
