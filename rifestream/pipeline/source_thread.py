"""The source side of the runner: a thread that reads (blocking demux/decode) and hands items to the loop.

Each item crosses into the event loop through a ``Deliver`` callable the runner
gives it: for a live job it schedules a non-blocking ``Handoff.offer`` with
``loop.call_soon_threadsafe`` (the thread never waits for the engine); offline
it waits for room with ``asyncio.run_coroutine_threadsafe(handoff.put(...))``
(back-pressure). After the last item it delivers ``END``.

A live source that is lost (``SourceLost``) is reopened until it returns or the
job stops: full opens back off exponentially, and between them a cheap look at
the server's TCP port (``backoff.wait_to_retry``) starts the next open the moment
a port that refused accepts again, so a returning server is picked up within
``look_every`` plus one open however long it was away. The runner is told with a ``GAP``
item (the engine then closes the pair in flight, so no frame is morphed across
the outage), and the resumed stream's timestamps are shifted to continue one
frame interval after the last frame before the loss: the output timeline stays
gapless and strictly increasing even though the server restarted its clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from fractions import Fraction

from rifestream.errors import RifestreamError
from rifestream.io.endpoint_probe import readiness_probe
from rifestream.io.frames import SourceAudio, SourceFrame
from rifestream.io.source_base import Source
from rifestream.io.stream_errors import SourceLost
from rifestream.io.url_redact import redact_text, redact_url
from rifestream.pipeline.backoff import Backoff, wait_to_retry
from rifestream.pipeline.run_stats import RunStats
from rifestream.pipeline.thread_priority import lower_this_thread

log = logging.getLogger(__name__)


class Marker:
    """A control item in the source hand-off."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


END = Marker("end of stream")
GAP = Marker("source lost")

SourceItem = SourceFrame | SourceAudio | Marker
Deliver = Callable[[SourceItem], bool]  # False: the job no longer takes items (stop reading)


class SourceThread:
    """Reads ``source`` in a daemon thread; ``stop()`` from any thread ends it at the next item."""

    def __init__(
        self,
        source: Source,
        reopen: Callable[[], Source],
        deliver: Deliver,
        *,
        stats: RunStats,
        backoff: Backoff,
        on_failure: Callable[[BaseException], None],
        look_every: float,
    ) -> None:
        self._source = source
        self._reopen = reopen
        self._deliver = deliver
        self._stats = stats
        self._backoff = backoff
        self._on_failure = on_failure
        self._look_every = look_every
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rifestream-source", daemon=True)
        self._offset = Fraction(0)
        self._last_time: Fraction | None = None
        self._last_step: Fraction | None = None
        self._resumed = False

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def stop(self) -> None:
        """Stop reading (safe from any thread, twice too): closes the current source."""
        self._stop.set()
        with self._lock:
            source = self._source
        if source is not None:
            source.close()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ----- the thread ----------------------------------------------------
    def _run(self) -> None:
        lower_this_thread()  # decoding has slack (queued, drop-oldest); the model's call has none
        try:
            self._stats.source_up(True)
            while not self._stop.is_set():
                try:
                    self._read_all()
                    break  # the input ended (a file, a finite test scene) or the job stopped
                except SourceLost as lost:
                    if self._stop.is_set():
                        break
                    self._stats.source_up(False)
                    log.warning("source lost: %s; reconnecting with backoff", lost)
                    self._deliver(GAP)
                    if not self._reconnect(lost.url):
                        break
        except BaseException as exc:  # handed to the runner, which stops the job and re-raises it
            self._on_failure(exc)
        finally:
            with self._lock:
                source, self._source = self._source, None
            if source is not None:
                source.close()
            self._stats.source_up(False)
            self._deliver(END)

    def _read_all(self) -> None:
        """Deliver every item of the current source until it ends or the job stops taking them."""
        with self._lock:
            source = self._source
        if source is None:
            return
        for item in source.read():
            if self._stop.is_set():
                return
            item = self._retime(item)
            if isinstance(item, SourceFrame):
                self._stats.frame_in(item.arrival)
            if not self._deliver(item):
                self._stop.set()
                return

    def _reconnect(self, url: str) -> bool:
        """Reopen ``url``'s source until it works (True) or the job stops (False); see ``wait_to_retry``.

        Any refusal is retried, not only an unreachable server: this source worked before, so a
        server that now answers "no such stream" (a camera or RTSP server still setting up its
        mount points after a restart) is a state to wait out, not a wrong URL.
        """
        with self._lock:
            old, self._source = self._source, None
        if old is not None:
            old.close()
        probe = readiness_probe(url)
        while True:
            if not wait_to_retry(self._backoff.next_delay(), self._stop, probe, self._look_every):
                return False
            self._stats.reconnect("source")
            try:
                source = self._reopen()
            except RifestreamError as refused:  # SourceLost included
                log.warning(
                    "reconnect failed: %s; next try after up to %.1f s",
                    redact_text(str(refused)),
                    self._backoff.maximum,
                )
                continue
            with self._lock:
                if self._stop.is_set():
                    source.close()
                    return False
                self._source = source
            self._backoff.reset()
            self._resumed = True
            self._stats.source_up(True)
            log.info("source back: %s", redact_url(source.url))
            return True

    def _retime(self, item: SourceFrame | SourceAudio) -> SourceFrame | SourceAudio:
        """Shift a resumed stream so that it continues one frame step after the last frame."""
        if self._resumed and self._last_time is not None:
            step = self._last_step or Fraction(1, 30)
            self._offset = self._last_time + step - item.time
            self._resumed = False
        if self._offset:
            item = replace(item, time=item.time + self._offset)
        if isinstance(item, SourceFrame):
            if self._last_time is not None and item.time > self._last_time:
                self._last_step = item.time - self._last_time
            self._last_time = item.time
        return item


class FirstOpen:
    """The job's first open of its source, in a daemon thread: a live server that is not up yet is
    retried (``wait_to_retry``) until the source opens or ``give_up()``.

    A daemon thread, not an executor's: an open stuck on a server that accepts and never answers must
    not keep the process from exiting once the job has given up on it. ``last_loss`` is the latest
    reason the source could not be reached (None before the first attempt has failed).
    """

    def __init__(
        self, open_source: Callable[[], Source], *, backoff: Backoff, stats: RunStats, look_every: float
    ) -> None:
        self._open = open_source
        self._backoff = backoff
        self._stats = stats
        self._look_every = look_every
        self._given_up = threading.Event()
        self._lock = threading.Lock()
        self.last_loss: SourceLost | None = None
        self.result: Future[Source | None] = Future()

    def start(self) -> Future[Source | None]:
        threading.Thread(target=self._run, name="rifestream-source-open", daemon=True).start()
        return self.result

    def give_up(self) -> None:
        """Stop retrying; a source that opens after this (or has just opened unclaimed) is closed."""
        with self._lock:
            self._given_up.set()
            if self.result.done() and self.result.exception() is None and self.result.result() is not None:
                self.result.result().close()

    def _run(self) -> None:
        lower_this_thread()
        self.result.set_running_or_notify_cancel()  # from here on only this thread settles the result
        try:
            source = self._open_when_up()
        except BaseException as exc:  # a wrong URL, path or option: the runner reports it
            self.result.set_exception(exc)
            return
        with self._lock:
            if source is not None and self._given_up.is_set():
                source.close()
                source = None
            self.result.set_result(source)

    def _open_when_up(self) -> Source | None:
        probe = None
        while not self._given_up.is_set():
            try:
                return self._open()
            except SourceLost as lost:
                self.last_loss = lost
                delay = self._backoff.next_delay()
                log.warning("source not reachable: %s; retrying (next full try within %.1f s)", lost, delay)
                if probe is None:
                    probe = readiness_probe(lost.url)
                if not wait_to_retry(delay, self._given_up, probe, self._look_every):
                    return None
                self._stats.reconnect("source")
        return None
