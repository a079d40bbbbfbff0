"""Prometheus metrics of a streaming job, and the HTTP server that exposes them.

This docstring is the contract between the pipeline and its metrics.

Create one ``PipelineMetrics`` per stream. A single job (``rifestream run``)
makes one with its own ``CollectorRegistry`` (pass your own, e.g. a fresh one
per test; the global default registry is never used); a fleet makes one
``FleetMetrics`` and asks it for each stream's ``PipelineMetrics``, all in one
registry behind one port. Every method is thread-safe and cheap (no allocation
of new series), so the source, engine and sink threads may call it per frame.
A label value outside the fixed sets below raises ``ValueError``: label values
are bounded.

Every rifestream metric but the process's own (``device_memory_used_bytes``,
``process_*``) carries a ``stream`` label: the stream's name in a fleet (its
``[[streams]] name``, ``[a-z0-9_-]+``, unique, so the values are bounded by the
fleet file), and ``main`` (``SINGLE_STREAM``) for a ``rifestream run`` job.

Calls the pipeline makes::

    m = PipelineMetrics(model="rifestream-v1", device="cuda:0")  # registry=None → a new one; stream "main"
    server = m.serve(port=9108, host="127.0.0.1")  # /metrics and /healthz; server.stop()

    fleet = FleetMetrics()                          # a fleet: one registry, one server
    cam1 = fleet.stream("cam1", queues=("interpolate", "encode"), model=..., device=...)
    server = fleet.serve(port=9108)                 # /healthz: every stream; /healthz?stream=cam1: one
    cam1.ended("rtsp://cam1/…: connection refused")  # the stream ended (None: cleanly); /healthz says so

    m.set_latency_budget(0.050)     # seconds; the budget the ladder checks against
    m.set_target_fps(60.0)          # the output rate the job promises
    m.set_queue_capacity("interpolate", 4)
    m.set_source_up(True)           # on connect; False on loss (before reconnecting)
    m.reconnect("source")           # each reconnect attempt; side in SIDES

    m.frame_in()                    # each decoded source frame, when it arrives
    m.frame_out("interpolated")     # each frame handed to the sinks; kind in OUTPUT_KINDS
    m.fallback("blend")             # each output frame made by a step down the ladder
    kind = m.count_output(interpolated=True, fallback="blend")  # = frame_out + fallback
    m.scene_cut()                   # once per source pair judged a scene cut (a FrameLoop.push
                                    # whose outputs carry fallback "scene_cut"); count_output
                                    # still counts each of those frames as fallback "scene_cut"
    m.drop("encode", "queue_full")  # each frame dropped; stage in DROP_STAGES, reason in DROP_REASONS
    m.feed_subscriber_drop("feed", "0", 3)  # frames one feed subscriber missed (its own queue full);
                                    # queue: a feed queue (feed, feed2 …), slot in FEED_SUBSCRIBER_SLOTS

    m.observe_stage("interpolate", 0.021)  # seconds one stage took for one frame; stage in STAGES
    m.observe_end_to_end(0.048)     # seconds from a source frame's arrival to the emission
                                    # of the last output frame that depends on it
    m.set_queue_depth("interpolate", 2)    # queue in the ``queues`` given to the constructor

    m.set_build_info(model=..., device=...)  # when the model or device is known later

Output kinds: ``passed_through`` (a source frame, t = 0), ``interpolated``
(model output, also at a reduced ``scale``), ``blended`` (cross-fade
fallback), ``repeated`` (frame0 repeated: the ``repeat`` fallback or a scene
cut). Source frames are counted by ``frame_in()`` and dropped frames by
``drop()``, each in its own metric, so that summing output frames over
``kind`` gives the frames actually emitted. ``count_output`` maps an
``OutputFrame``'s ``interpolated``/``fallback`` fields to a kind and counts
the fallback too.

Exposed metrics (all prefixed ``rifestream_``):

- ``input_frames_total`` counter: source frames received.
- ``output_frames_total{kind}`` counter: frames emitted, by kind.
- ``fallbacks_total{reason}`` counter: reason in ``scale``, ``blend``, ``repeat``, ``scene_cut``.
- ``scene_cuts_total`` counter: source pairs judged a scene cut.
- ``dropped_frames_total{stage,reason}`` counter.
- ``feed_subscriber_dropped_frames_total{queue,subscriber}`` counter: frames a ZMQ feed subscriber
  missed because its own queue was full (it reads slower than the output rate, or not at all);
  ``subscriber`` is the slot it holds while connected, ``0`` … ``7``, later ones ``overflow``.
- ``reconnects_total{side}`` counter: side in ``source``, ``sink``.
- ``stage_latency_seconds{stage}`` histogram; ``end_to_end_latency_seconds`` histogram;
  buckets ``LATENCY_BUCKETS`` (1 ms … 250 ms, dense around 16–50 ms, one frame interval at 60–20 fps).
- ``queue_depth{queue}``, ``queue_capacity{queue}`` gauges (frames).
- ``input_frames_per_second``, ``output_frames_per_second`` gauges: frames counted over the
  last ``fps_window`` seconds (computed when scraped, so they fall to 0 when frames stop).
- ``target_output_frames_per_second`` and ``latency_budget_seconds`` gauges. The budget is the
  processing time allowed after the newer frame of a pair arrives (``LatencyBudget.budget_s``);
  an end-to-end latency also holds one input frame interval, so the dashboard and alerts compare
  it with budget + 1 / input fps.
- ``device_memory_used_bytes{device}`` gauge: for a ``cuda`` device,
  ``torch.cuda.memory_allocated`` (tensors held, not the allocator's cache; 0 until the
  process has initialised CUDA); otherwise the process's resident set size from
  ``/proc/self/statm`` (0 where that file does not exist). torch is never imported here.
- ``source_up`` gauge: 1 while the source is connected.
- ``build_info{version,model,device}`` gauge, always 1.
- ``process_*``: CPU seconds, resident memory, open fds (Linux), from prometheus_client.

``/healthz`` answers 200 when the source is up and a source frame arrived in the last
``stale_after`` seconds, else 503; the JSON body says which. A fleet's ``/healthz`` answers
200 when every stream is (its body holds each stream's details under ``streams``), and
``/healthz?stream=NAME`` answers for one stream.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from socketserver import ThreadingMixIn
from typing import Any, TypeVar
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from rifestream import __version__
from rifestream.errors import RifestreamError

PREFIX = "rifestream"

OUTPUT_KINDS = ("passed_through", "interpolated", "classical", "blended", "repeated")
FALLBACK_REASONS = ("scale", "classical", "blend", "repeat", "scene_cut")
STAGES = ("decode", "upload", "convert", "interpolate", "download", "encode", "sink", "feed")
DROP_STAGES = ("source", *STAGES)
DROP_REASONS = ("queue_full", "late", "error", "disconnected")
SIDES = ("source", "sink")
FEED_SUBSCRIBER_SLOTS = (*(str(k) for k in range(8)), "overflow")  # as rifestream.io.zmq_feed numbers them
DEFAULT_QUEUES = ("source", "interpolate", "encode", "feed")
SINGLE_STREAM = "main"  # the ``stream`` label of a single ``rifestream run`` job
STREAM_NAME = re.compile(r"[a-z0-9_-]+")
Family = TypeVar("Family", bound=MetricWrapperBase)  # one kind of prometheus_client metric: Counter, Gauge …

# Seconds. One output frame interval is 16.7 ms at 60 fps, 33.3 ms at 30 fps, 50 ms at 20 fps.
# fmt: off
LATENCY_BUCKETS = (
    0.001, 0.002, 0.004, 0.006, 0.008, 0.010, 0.0125, 0.016, 0.020, 0.025,
    0.030, 0.033, 0.040, 0.050, 0.066, 0.083, 0.100, 0.150, 0.200, 0.250,
)
# fmt: on


def output_kind(interpolated: bool, fallback: str | None) -> str:
    """The ``kind`` label of an output frame, from its ``interpolated`` and ``fallback`` fields."""
    if not interpolated:
        return "passed_through"
    if fallback is None or fallback == "scale":
        return "interpolated"
    if fallback == "classical":
        return "classical"
    if fallback == "blend":
        return "blended"
    if fallback in ("repeat", "scene_cut"):
        return "repeated"
    raise ValueError(f"unknown fallback {fallback!r}; expected one of {FALLBACK_REASONS}")


def process_rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux); 0 where /proc is absent."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def device_memory_bytes(device: str) -> int:
    """Memory in use on ``device``: CUDA tensors allocated by torch, else the process RSS."""
    if device.startswith("cuda"):
        torch = sys.modules.get("torch")  # only if the pipeline imported it; never import it here
        if torch is None or not torch.cuda.is_initialized():
            return 0
        return int(torch.cuda.memory_allocated(device))
    return process_rss_bytes()


class FrameRateWindow:
    """Frames per second over a sliding window of counted frame times.

    With n frames in the window, the oldest at t0 and the newest at t1, the rate is
    (n - 1) / (t1 - t0) while frames keep coming; once the gap since the newest frame
    grows past the mean interval, the denominator grows with it, so the rate decays to 0
    when frames stop instead of freezing at its last value.
    """

    def __init__(self, window: float, max_frames: int = 4096) -> None:
        self.window = window
        self._times: collections.deque[float] = collections.deque(maxlen=max_frames)
        self._lock = threading.Lock()

    def tick(self, now: float) -> None:
        with self._lock:
            self._times.append(now)

    def rate(self, now: float) -> float:
        with self._lock:
            while self._times and self._times[0] <= now - self.window:
                self._times.popleft()
            n = len(self._times)
            if n < 2:
                return 0.0
            oldest, newest = self._times[0], self._times[-1]
        span = newest - oldest
        if span <= 0:
            return 0.0
        mean_interval = span / (n - 1)
        return (n - 1) / max(span, now - oldest - mean_interval)


def _check(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {tuple(allowed)}")
    return value


def check_stream_name(name: str) -> str:
    """A stream name is a ``stream`` label value: ``[a-z0-9_-]+`` (``ValueError`` otherwise)."""
    if not isinstance(name, str) or STREAM_NAME.fullmatch(name) is None:
        raise ValueError(f"stream name {name!r}: expected lower-case letters, digits, _ and - ([a-z0-9_-]+)")
    return name


class _ScrapeTimeCollector(Collector):
    """Gauges computed when scraped: each stream's frame rates, and the device memory of the process."""

    def __init__(self, families: MetricFamilies) -> None:
        self._families_of = families

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                f"{PREFIX}_input_frames_per_second",
                "Source frames per second over the last fps window.",
                labels=["stream"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}_output_frames_per_second",
                "Emitted frames per second over the last fps window.",
                labels=["stream"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}_device_memory_used_bytes",
                "Memory in use: torch.cuda.memory_allocated on a CUDA device, else the process RSS.",
                labels=["device"],
            ),
        )

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fps_in, fps_out, memory = self._families()
        devices: set[str] = set()
        for m in self._families_of.streams():
            now = m.clock()
            fps_in.add_metric([m.stream], m.input_rate.rate(now))
            fps_out.add_metric([m.stream], m.output_rate.rate(now))
            devices.add(m.device)
        for device in sorted(devices):
            memory.add_metric([device], float(device_memory_bytes(device)))
        yield from (fps_in, fps_out, memory)


class MetricFamilies:
    """The metric families of one registry, every one labelled by ``stream``; shared by the
    ``PipelineMetrics`` of every stream of a process (each holds its own children)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._streams: dict[str, PipelineMetrics] = {}
        self._lock = threading.Lock()
        family = self._family
        self.input_frames = family(Counter, "input_frames", "Source frames received.")
        self.output_frames = family(Counter, "output_frames", "Frames emitted to the sinks, by kind.", "kind")
        self.fallbacks = family(
            Counter, "fallbacks", "Output frames made by a step down the latency ladder, by reason.", "reason"
        )
        self.scene_cuts = family(Counter, "scene_cuts", "Source frame pairs judged a scene cut.")
        self.dropped = family(Counter, "dropped_frames", "Frames dropped, by stage and reason.", "stage", "reason")
        self.subscriber_dropped = family(
            Counter,
            "feed_subscriber_dropped_frames",
            "Frames a feed subscriber missed because its own queue was full, by feed queue and subscriber slot.",
            "queue",
            "subscriber",
        )
        self.reconnects = family(Counter, "reconnects", "Reconnect attempts, by side.", "side")
        self.stage_latency = family(
            Histogram, "stage_latency_seconds", "Time one stage took for one frame.", "stage", buckets=LATENCY_BUCKETS
        )
        self.end_to_end = family(
            Histogram,
            "end_to_end_latency_seconds",
            "From a source frame's arrival to the emission of the last output frame that depends on it.",
            buckets=LATENCY_BUCKETS,
        )
        self.queue_depth = family(Gauge, "queue_depth", "Frames waiting in a queue.", "queue")
        self.queue_capacity = family(Gauge, "queue_capacity", "Capacity of a queue, in frames.", "queue")
        self.budget = family(Gauge, "latency_budget_seconds", "Added latency the job is allowed per frame.")
        self.target_fps = family(Gauge, "target_output_frames_per_second", "Output frame rate the job promises.")
        self.source_up = family(Gauge, "source_up", "1 while the source is connected.")
        self.stream_running = family(
            Gauge,
            "stream_running",
            "1 while the stream runs; 0 once it has ended (stream_failed says whether by an error).",
        )
        self.stream_failed = family(Gauge, "stream_failed", "1 once the stream has ended with an error.")
        self.build_info = family(Info, "build", "Version, model and device of this stream's job.")
        self.registry.register(_ScrapeTimeCollector(self))
        ProcessCollector(registry=self.registry)

    def _family(self, kind: type[Family], name: str, documentation: str, *labels: str, **options: Any) -> Family:
        """The family ``rifestream_<name>`` of ``kind`` in this registry, labelled by ``stream`` then ``labels``."""
        return kind(f"{PREFIX}_{name}", documentation, ["stream", *labels], registry=self.registry, **options)

    def add(self, metrics: PipelineMetrics) -> None:
        with self._lock:
            if metrics.stream in self._streams:
                raise ValueError(f"stream {metrics.stream!r} already has metrics in this registry; names are unique")
            self._streams[metrics.stream] = metrics

    def streams(self) -> list[PipelineMetrics]:
        with self._lock:
            return list(self._streams.values())

    def get(self, stream: str) -> PipelineMetrics | None:
        with self._lock:
            return self._streams.get(stream)


class PipelineMetrics:
    """All metrics of one stream; see the module docstring for the calls and names.

    ``families``: those of a fleet's registry (``FleetMetrics.stream`` passes them); None makes
    its own in ``registry`` (a single job)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        stream: str = SINGLE_STREAM,
        families: MetricFamilies | None = None,
        model: str = "unknown",
        device: str = "cpu",
        queues: Sequence[str] = DEFAULT_QUEUES,
        fps_window: float = 2.0,
        stale_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = check_stream_name(stream)
        if families is None:
            families = MetricFamilies(registry)
        elif registry is not None and registry is not families.registry:
            raise ValueError("give a registry or the families of one, not both")
        self.families = families
        self.registry = families.registry
        self.clock = clock
        self.queues = tuple(queues)
        self.stale_after = stale_after
        self.device = device
        self.input_rate = FrameRateWindow(fps_window)
        self.output_rate = FrameRateWindow(fps_window)
        self._source_up = False
        self._last_frame_in: float | None = None
        self._ended: str | None = None  # None while running; "" ended cleanly; else the error
        f, s = families, self.stream

        self._input_frames = f.input_frames.labels(s)
        self._output_frames = {kind: f.output_frames.labels(s, kind) for kind in OUTPUT_KINDS}
        self._fallbacks = {reason: f.fallbacks.labels(s, reason) for reason in FALLBACK_REASONS}
        self._scene_cuts = f.scene_cuts.labels(s)
        self._dropped = {(st, r): f.dropped.labels(s, st, r) for st in DROP_STAGES for r in DROP_REASONS}
        self._subscriber_dropped = {
            (q, slot): f.subscriber_dropped.labels(s, q, slot)
            for q in self.queues
            if q.startswith("feed")
            for slot in FEED_SUBSCRIBER_SLOTS
        }
        self._reconnects = {side: f.reconnects.labels(s, side) for side in SIDES}
        self._stage_latency = {stage: f.stage_latency.labels(s, stage) for stage in STAGES}
        self._end_to_end = f.end_to_end.labels(s)
        self._queue_depth = {q: f.queue_depth.labels(s, q) for q in self.queues}
        self._queue_capacity = {q: f.queue_capacity.labels(s, q) for q in self.queues}
        self._budget = f.budget.labels(s)
        self._target_fps = f.target_fps.labels(s)
        self._source_up_gauge = f.source_up.labels(s)
        self._running = f.stream_running.labels(s)
        self._failed = f.stream_failed.labels(s)
        self._running.set(1)
        self._failed.set(0)
        self._build_info = f.build_info.labels(s)
        self.set_build_info(model=model, device=device)
        families.add(self)

    # -- identity and targets ------------------------------------------------------------------
    def set_build_info(self, *, model: str, device: str) -> None:
        """Set ``rifestream_build_info``; the device also labels ``device_memory_used_bytes``."""
        self.device = device
        self._build_info.info({"version": __version__, "model": model, "device": device})

    def set_latency_budget(self, seconds: float) -> None:
        self._budget.set(seconds)

    def set_target_fps(self, fps: float) -> None:
        self._target_fps.set(fps)

    # -- frames --------------------------------------------------------------------------------
    def frame_in(self) -> None:
        """Count one source frame; also feeds the input fps window and /healthz."""
        now = self.clock()
        self._input_frames.inc()
        self.input_rate.tick(now)
        self._last_frame_in = now

    def frame_out(self, kind: str) -> None:
        """Count one frame handed to the sinks; ``kind`` in ``OUTPUT_KINDS``."""
        self._output_frames[_check(kind, OUTPUT_KINDS, "output kind")].inc()
        self.output_rate.tick(self.clock())

    def fallback(self, reason: str) -> None:
        """Count one output frame made by a fallback; ``reason`` in ``FALLBACK_REASONS``."""
        self._fallbacks[_check(reason, FALLBACK_REASONS, "fallback reason")].inc()

    def count_output(self, interpolated: bool, fallback: str | None) -> str:
        """``frame_out`` with the kind of this frame, plus ``fallback(reason)`` if it has one."""
        kind = output_kind(interpolated, fallback)
        self.frame_out(kind)
        if fallback is not None:
            self.fallback(fallback)
        return kind

    def scene_cut(self) -> None:
        self._scene_cuts.inc()

    def drop(self, stage: str, reason: str) -> None:
        """Count one dropped frame; ``stage`` in ``DROP_STAGES``, ``reason`` in ``DROP_REASONS``."""
        key = (_check(stage, DROP_STAGES, "drop stage"), _check(reason, DROP_REASONS, "drop reason"))
        self._dropped[key].inc()

    def feed_subscriber_drop(self, queue: str, slot: str, frames: int = 1) -> None:
        """Count frames one feed subscriber missed; ``queue`` a feed queue, ``slot`` in ``FEED_SUBSCRIBER_SLOTS``."""
        feed_queues = [q for q in self.queues if q.startswith("feed")]
        key = (_check(queue, feed_queues, "feed queue"), _check(slot, FEED_SUBSCRIBER_SLOTS, "subscriber slot"))
        self._subscriber_dropped[key].inc(frames)

    # -- latency and queues --------------------------------------------------------------------
    def observe_stage(self, stage: str, seconds: float) -> None:
        self._stage_latency[_check(stage, STAGES, "stage")].observe(seconds)

    def observe_end_to_end(self, seconds: float) -> None:
        self._end_to_end.observe(seconds)

    def set_queue_depth(self, queue: str, depth: int) -> None:
        self._queue_depth[_check(queue, self.queues, "queue")].set(depth)

    def set_queue_capacity(self, queue: str, capacity: int) -> None:
        self._queue_capacity[_check(queue, self.queues, "queue")].set(capacity)

    # -- connections and health ----------------------------------------------------------------
    def set_source_up(self, up: bool) -> None:
        self._source_up = up
        self._source_up_gauge.set(1 if up else 0)

    def reconnect(self, side: str) -> None:
        """Count one reconnect attempt; ``side`` in ``SIDES``."""
        self._reconnects[_check(side, SIDES, "reconnect side")].inc()

    def ended(self, error: str | None = None) -> None:
        """The stream has ended: cleanly (``error`` None) or with ``error`` (one line, URLs redacted)."""
        self._ended = error or ""
        self._running.set(0)
        self._failed.set(1 if error else 0)
        self.set_source_up(False)

    def health(self, stream: str | None = None) -> tuple[bool, dict[str, object]]:
        """(ready, details): ready when the source is up and a frame arrived within ``stale_after`` s.
        ``stream``: only this stream's name is known here (another one: not ready, said so)."""
        if stream is not None and stream != self.stream:
            return False, {"status": "unknown stream", "stream": stream, "streams": [self.stream]}
        since = None if self._last_frame_in is None else self.clock() - self._last_frame_in
        flowing = since is not None and since <= self.stale_after
        ready = self._source_up and flowing and self._ended is None
        details: dict[str, object] = {
            "status": "ok" if ready else ("ended" if self._ended is not None else "unavailable"),
            "stream": self.stream,
            "source_up": self._source_up,
            "seconds_since_last_frame": None if since is None else round(since, 3),
            "stale_after_seconds": self.stale_after,
        }
        if self._ended:
            details["error"] = self._ended
        return ready, details

    # -- exposition ----------------------------------------------------------------------------
    def serve(self, port: int, host: str = "127.0.0.1") -> MetricsServer:
        """Serve ``/metrics`` and ``/healthz`` on one port (0 picks a free one) from a daemon thread."""
        return MetricsServer(self.registry, self.health, port, host)


class FleetMetrics:
    """The metrics of every stream of a fleet process: one registry, one ``/metrics`` and ``/healthz``."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        fps_window: float = 2.0,
        stale_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.families = MetricFamilies(registry)
        self.registry = self.families.registry
        self._settings = {"fps_window": fps_window, "stale_after": stale_after, "clock": clock}

    def stream(
        self, name: str, *, queues: Sequence[str] = DEFAULT_QUEUES, model: str = "unknown", device: str = "cpu"
    ) -> PipelineMetrics:
        """The metrics of stream ``name`` (unique in the fleet), in this fleet's registry."""
        return PipelineMetrics(
            stream=name, families=self.families, queues=queues, model=model, device=device, **self._settings
        )

    def health(self, stream: str | None = None) -> tuple[bool, dict[str, object]]:
        """Every stream's health (ready when all are), or one stream's (``stream``)."""
        streams = self.families.streams()
        if stream is not None:
            one = self.families.get(stream)
            if one is None:
                return False, {"status": "unknown stream", "stream": stream, "streams": [m.stream for m in streams]}
            return one.health()
        answers = {m.stream: m.health() for m in streams}
        ready = sum(ok for ok, _ in answers.values())
        every = bool(streams) and ready == len(streams)
        return every, {
            "status": "ok" if every else ("degraded" if ready else "unavailable"),
            "streams_ready": ready,
            "streams_total": len(streams),
            "streams": {name: details for name, (_, details) in answers.items()},
        }

    def serve(self, port: int, host: str = "127.0.0.1") -> MetricsServer:
        """Serve ``/metrics`` (every stream) and ``/healthz`` on one port (0 picks a free one)."""
        return MetricsServer(self.registry, self.health, port, host)


Health = Callable[[str | None], tuple[bool, dict[str, object]]]


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Scrapes every few seconds would flood stderr; log nothing."""


class MetricsServer:
    """One HTTP server for ``/metrics`` (Prometheus text or OpenMetrics) and ``/healthz``
    (``?stream=NAME``: that stream's health alone)."""

    def __init__(self, registry: CollectorRegistry, health: Health, port: int, host: str) -> None:
        self.health = health
        self._metrics_app = make_wsgi_app(registry)
        server_class = type("_Server", (_ThreadingWSGIServer,), {})
        if ":" in host:
            server_class.address_family = socket.AF_INET6
        try:
            self._httpd = make_server(host, port, self._app, server_class, handler_class=_QuietHandler)
        except OSError as exc:
            hint = (
                "choose another port with --metrics-port (0 picks a free one)"
                if exc.errno in (errno.EADDRINUSE, errno.EACCES)
                else "set [metrics] host to an address of this machine (127.0.0.1, 0.0.0.0, ::1)"
            )
            raise RifestreamError(f"cannot serve metrics on {host}:{port} ({exc.strerror}); {hint}") from exc
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _app(self, environ: dict, start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            stream = parse_qs(environ.get("QUERY_STRING", "")).get("stream", [None])[0]
            ready, details = self.health(stream)
            body = json.dumps(details).encode()
            status = "200 OK" if ready else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/metrics":
            return self._metrics_app(environ, start_response)
        body = b"rifestream metrics: see /metrics and /healthz\n"
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
