"""What a job counts and times, fed to Prometheus as it happens and summarised at the end.

``RunStats`` is the runner's one place for events: each call updates the job's
own tallies (for the end-of-run summary and for tests) and the ``PipelineMetrics``
(for Prometheus), so the two can never disagree. It is called from the source,
engine and sink threads and from the event loop; a lock keeps it consistent.
Latencies go into one fixed-size histogram per stage (:mod:`rifestream.pipeline.latency_histogram`),
so a job that runs for days holds the same memory as one that runs for a minute; the summary's
p50/p95/p99 are within ±1 % of the exact ones.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rifestream.metrics import output_kind
from rifestream.pipeline.latency_histogram import LatencyHistogram

if TYPE_CHECKING:
    from rifestream.io.frames import OutputFrame
    from rifestream.metrics import PipelineMetrics

END_TO_END = "end_to_end"


@dataclass(frozen=True)
class Percentiles:
    count: int
    p50: float
    p95: float
    p99: float
    mean: float

    @classmethod
    def of(cls, histogram: LatencyHistogram) -> Percentiles | None:
        """The quantiles of ``histogram``, each within ±1 % (one half-bucket) of the exact sample quantile."""
        if not histogram.count:
            return None
        p50, p95, p99 = histogram.quantiles((0.50, 0.95, 0.99))
        return cls(histogram.count, p50, p95, p99, histogram.mean)


@dataclass(frozen=True)
class RunSummary:
    """The end-of-run numbers; ``format()`` prints them for people."""

    seconds: float
    cpu_seconds: float  # CPU time of the whole process over the run (all threads)
    frames_in: int
    frames_out: dict[str, int]
    input_fps: float
    output_fps: float
    latency: dict[str, Percentiles]  # "end_to_end" and each stage, seconds
    fallbacks: dict[str, int]
    drops: dict[str, int]  # "queue/reason" → frames (queue: interpolate, encode, encode2, feed, sink …)
    reconnects: dict[str, int]
    notes: list[str] = field(default_factory=list)
    subscriber_drops: dict[str, int] = field(default_factory=dict)  # "feed/slot" → frames one subscriber missed

    @property
    def total_out(self) -> int:
        return sum(self.frames_out.values())

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        def counts(d: dict[str, int]) -> str:
            shown = ", ".join(f"{k} {v}" for k, v in sorted(d.items()) if v)
            return shown or "none"

        per_frame = f", {self.cpu_seconds / self.total_out * 1e3:.1f} ms per output frame" if self.total_out else ""
        lines = [
            f"rifestream summary: {self.seconds:.1f} s (CPU {self.cpu_seconds:.1f} s{per_frame})",
            f"  frames in   {self.frames_in}  ({self.input_fps:.2f} fps)",
            f"  frames out  {self.total_out}  ({self.output_fps:.2f} fps): {counts(self.frames_out)}",
        ]
        order = [END_TO_END, *sorted(k for k in self.latency if k != END_TO_END)]
        for name in order:
            p = self.latency.get(name)
            if p is None:
                continue
            label = "latency end-to-end" if name == END_TO_END else f"  stage {name}"
            lines.append(
                f"  {label:<20} p50 {p.p50 * 1e3:6.1f} ms  p95 {p.p95 * 1e3:6.1f} ms  "
                f"p99 {p.p99 * 1e3:6.1f} ms  (n={p.count})"
            )
        lines.append(f"  fallbacks   {counts(self.fallbacks)}")
        lines.append(f"  drops       {counts(self.drops)}")
        if any(self.subscriber_drops.values()):
            lines.append(f"  feed subscriber drops  {counts(self.subscriber_drops)}")
        lines.append(f"  reconnects  {counts(self.reconnects)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


class RunStats:
    """Event counters and latency histograms of one job, mirrored into ``PipelineMetrics`` (if given)."""

    def __init__(self, metrics: PipelineMetrics | None = None) -> None:
        self.metrics = metrics
        self._lock = threading.Lock()
        self.frames_in = 0
        self.frames_out: Counter[str] = Counter()
        self.fallbacks: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.reconnects: Counter[str] = Counter()
        self.subscriber_drops: Counter[str] = Counter()  # "feed/slot" (slots are bounded: 0 … 7, overflow)
        self._latency: dict[str, LatencyHistogram] = {}  # stage → histogram (a handful of stages)
        self._first_in: float | None = None
        self._last_in: float | None = None
        self._first_out: float | None = None
        self._last_out: float | None = None
        self._started = time.monotonic()
        self._cpu_started = time.process_time()
        self._emitted_seq = -1
        self._emitted = 0  # output frames some sink finished
        self.notes: list[str] = []

    def configure(self, *, target_fps: float | None, budget_s: float | None, capacities: dict[str, int]) -> None:
        """What the job promises: output rate, latency budget and queue capacities (metrics gauges)."""
        if self.metrics is None:
            return
        if target_fps:
            self.metrics.set_target_fps(target_fps)
        if budget_s is not None:
            self.metrics.set_latency_budget(budget_s)
        for queue, capacity in capacities.items():
            self.metrics.set_queue_capacity(queue, capacity)

    # ----- frames ------------------------------------------------------------
    def frame_in(self, arrival: float) -> None:
        with self._lock:
            self.frames_in += 1
            self._first_in = arrival if self._first_in is None else self._first_in
            self._last_in = arrival
        if self.metrics:
            self.metrics.frame_in()

    def output(self, frame: OutputFrame) -> None:
        """A frame handed to the sinks."""
        kind = output_kind(frame.interpolated, frame.fallback)
        with self._lock:
            self.frames_out[kind] += 1
            if frame.fallback is not None:
                self.fallbacks[frame.fallback] += 1
        if self.metrics:
            self.metrics.frame_out(kind)
            if frame.fallback is not None:
                self.metrics.fallback(frame.fallback)

    def scene_cut(self) -> None:
        if self.metrics:
            self.metrics.scene_cut()

    def emitted(self, frame: OutputFrame, when: float) -> None:
        """A sink finished sending ``frame`` at ``when``; the first sink to do so ends its latency.

        Each sink emits in order, so "first" is "newer than any emitted yet" (a frame one sink dropped
        and another emitted only after a newer frame went out elsewhere is not timed)."""
        with self._lock:
            if frame.seq <= self._emitted_seq:
                return
            self._emitted_seq = frame.seq
            self._emitted += 1
            self._first_out = when if self._first_out is None else self._first_out
            self._last_out = when
        self.stage(END_TO_END, when - frame.arrival)

    def drop(self, stage: str, reason: str, frames: int = 1, *, where: str | None = None) -> None:
        """Frames dropped at ``stage`` (the metrics label); ``where`` names the queue in the summary
        when several share a stage (two encoding sinks: ``encode``, ``encode2``)."""
        with self._lock:
            self.drops[f"{where or stage}/{reason}"] += frames
        if self.metrics:
            for _ in range(frames):
                self.metrics.drop(stage, reason)

    def feed_subscriber_drops(self, queue: str, drops: dict[str, int]) -> None:
        """Frames feed subscribers missed because their own queue was full, by subscriber slot."""
        with self._lock:
            for slot, frames in drops.items():
                self.subscriber_drops[f"{queue}/{slot}"] += frames
        if self.metrics:
            for slot, frames in drops.items():
                self.metrics.feed_subscriber_drop(queue, slot, frames)

    def reconnect(self, side: str) -> None:
        with self._lock:
            self.reconnects[side] += 1
        if self.metrics:
            self.metrics.reconnect(side)

    def source_up(self, up: bool) -> None:
        if self.metrics:
            self.metrics.set_source_up(up)

    def queue_depth(self, queue: str, depth: int) -> None:
        if self.metrics:
            self.metrics.set_queue_depth(queue, depth)

    def note(self, text: str) -> None:
        with self._lock:
            self.notes.append(text)

    # ----- latency -----------------------------------------------------------
    def stage(self, name: str, seconds: float) -> None:
        with self._lock:
            histogram = self._latency.get(name)
            if histogram is None:
                histogram = self._latency[name] = LatencyHistogram()
            histogram.add(seconds)
        if self.metrics:
            if name == END_TO_END:
                self.metrics.observe_end_to_end(seconds)
            else:
                self.metrics.observe_stage(name, seconds)

    def latency(self, name: str) -> Percentiles | None:
        """The latency quantiles of one stage so far (None before its first sample)."""
        with self._lock:
            histogram = self._latency.get(name)
            return None if histogram is None else Percentiles.of(histogram)

    def state_nbytes(self) -> int:
        """Bytes held by the latency histograms: fixed per stage, whatever the number of samples."""
        with self._lock:
            return sum(h.nbytes for h in self._latency.values())

    # ----- the end -----------------------------------------------------------
    def summary(self) -> RunSummary:
        with self._lock:
            frames_in = self.frames_in
            frames_out = dict(self.frames_out)
            fps_in = _rate(frames_in, self._first_in, self._last_in)
            fps_out = _rate(self._emitted, self._first_out, self._last_out)
            result = RunSummary(
                seconds=time.monotonic() - self._started,
                cpu_seconds=time.process_time() - self._cpu_started,
                frames_in=frames_in,
                frames_out=frames_out,
                input_fps=fps_in,
                output_fps=fps_out,
                latency={k: p for k, h in self._latency.items() if (p := Percentiles.of(h)) is not None},
                fallbacks=dict(self.fallbacks),
                drops=dict(self.drops),
                reconnects=dict(self.reconnects),
                notes=list(self.notes),
                subscriber_drops=dict(self.subscriber_drops),
            )
        return result


def _rate(frames: int, first: float | None, last: float | None) -> float:
    """Frames per second between the first and last event ((n − 1) intervals)."""
    if first is None or last is None or last <= first or frames < 2:
        return 0.0
    return (frames - 1) / (last - first)
