"""A fleet across machines: each stream (or a group of streams of one engine) a Ray actor running the
in-process fleet (``pipeline.fleet``) of its streams, placed by Ray on the cluster's nodes and
restarted by Ray when its process dies.

::

    rifestream fleet cams.toml --ray 10.0.0.5:6379     (the driver: creates the actors, waits)
      └─ actor "rifestream-cam1" (num_cpus, num_gpus)   ─ Fleet([cam1]) ─ /metrics on NODE_IP:PORT
      └─ actor "rifestream-cam2+3" (--ray-group 4)      ─ Fleet([cam2 … cam5]): one engine, batched on CUDA

Each actor declares its resources (``num_cpus`` per stream; ``num_gpus`` for CUDA streams, a
fraction to pack small ones on one GPU) and is spread over the nodes (Ray's ``SPREAD`` strategy).
When an actor's process dies, Ray starts it again (``max_restarts``) and the driver's pending ``wait`` is retried on it
(``max_task_retries``): the stream starts again for what is left of the fleet's duration, and a
file sink goes on in a new file beside the first (``cam1.mp4`` → ``cam1.restart1.mp4``), leaving
what was written before the crash as it was; network sinks (rtmp://, zmq://) simply resume.
A file sink's relative path is taken from the driver's working directory; on several machines it
must lie on a filesystem every node shares (or use network sinks).

Each actor serves its stream's ``/metrics`` and ``/healthz`` on its node's address and a free
port. The driver writes the endpoints to a Prometheus ``file_sd`` targets file (``targets_file``),
rewritten when an actor comes back on another port, so one Prometheus scrapes every stream.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rifestream.config import FleetStream
from rifestream.errors import RifestreamError
from rifestream.pipeline.fleet import FleetOutcome, StreamOutcome

log = logging.getLogger(__name__)

ACTOR_PREFIX = "rifestream-"
MAX_RESTARTS = 3
REFRESH_S = 2.0  # how often the driver looks for an actor serving its metrics on a new port


def require_ray():
    try:
        import ray
    except ImportError:
        raise RifestreamError("--ray needs Ray: pip install 'rifestream[ray]' (or pip install 'ray>=2.40')") from None
    return ray


def restart_path(path: str, restart: int) -> str:
    """``cam1.mp4`` → ``cam1.restart1.mp4``: where a restarted stream's file sink goes on."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}.restart{restart}{p.suffix}"))


def _with_file_sinks(stream: FleetStream, where: Callable[[str], str]) -> FleetStream:
    """The stream with each file sink's path replaced by ``where(path)``; other sinks as they are."""
    from rifestream.io.file_sink import FileSink
    from rifestream.io.registry import sink_kind

    sinks = tuple(
        dataclasses.replace(sink, url=where(sink.url)) if issubclass(sink_kind(sink.url), FileSink) else sink
        for sink in stream.pipeline.sinks
    )
    return FleetStream(name=stream.name, pipeline=stream.pipeline.model_copy(update={"sinks": sinks}))


def sinks_from_here(stream: FleetStream) -> FleetStream:
    """File sinks made absolute from the driver's working directory (an actor's own is not)."""
    return _with_file_sinks(stream, lambda path: os.path.abspath(os.path.expanduser(path)))


def sinks_after_restart(stream: FleetStream) -> FleetStream:
    """The stream with each file sink moved to the first ``.restartN`` name not yet written."""

    def next_free(path: str) -> str:
        n = 1
        while os.path.exists(restart_path(path, n)):
            n += 1
        return restart_path(path, n)

    return _with_file_sinks(stream, next_free)


@dataclass(frozen=True)
class ActorInfo:
    name: str  # the actor's: ``rifestream-`` and its first stream's name
    streams: tuple[str, ...]
    host: str
    port: int | None
    pid: int
    node_id: str
    restarted: bool


def groups_of(streams: Sequence[FleetStream], size: int) -> list[list[FleetStream]]:
    """Streams in actors of at most ``size``, each actor's streams on one engine (same model, device,
    precision, scale: so they share it and, on CUDA, batch), in file order."""
    from rifestream.pipeline.fleet import engine_key

    groups: list[list[FleetStream]] = []
    open_groups: dict[tuple, list[FleetStream]] = {}
    for stream in streams:
        key = engine_key(stream.pipeline)
        group = open_groups.get(key)
        if group is None or len(group) >= size:
            group = open_groups[key] = []
            groups.append(group)
        group.append(stream)
    return groups


class FleetActor:
    """Streams in their own process (a Ray actor): a ``Fleet`` of them, one engine.
    ``wait(deadline)`` starts them (once) and returns their outcomes: the driver calls it once, and
    Ray calls it again on a restarted actor (the task retried), which so resumes the streams for the
    time left until ``deadline`` (wall clock)."""

    def __init__(
        self, streams: list[FleetStream], max_batch: int | None, setup: Callable[[], None] | None = None
    ) -> None:
        import warnings

        import ray

        from rifestream.metrics import FleetMetrics

        if setup is not None:
            setup()  # e.g. the command line's logging (URLs redacted) in this worker process

        context = ray.get_runtime_context()
        with warnings.catch_warnings():  # Ray 2.60 warns about its own use of a deprecated property here
            warnings.simplefilter("ignore", DeprecationWarning)
            self.restarted = bool(context.was_current_actor_reconstructed)
        if self.restarted:
            streams = [sinks_after_restart(s) for s in streams]
            log.warning("streams %s: their actor was restarted; file sinks go on in .restartN files",
                        ", ".join(s.name for s in streams))  # fmt: skip
        self.streams = streams
        self.max_batch = max_batch
        self.node_id = context.get_node_id()
        self.host = ray.util.get_node_ip_address()
        metrics_on = any(s.pipeline.metrics.enabled for s in streams)
        self.metrics = FleetMetrics() if metrics_on else None
        self.server = self.metrics.serve(0, self.host) if self.metrics is not None else None
        self.fleet = None
        self._lock = threading.Lock()
        self._stop_asked = False
        self._outcome: FleetOutcome | None = None
        self._done = threading.Event()

    def info(self) -> ActorInfo:
        port = self.server.port if self.server is not None else None
        names = tuple(s.name for s in self.streams)
        return ActorInfo(actor_name(names), names, self.host, port, os.getpid(), self.node_id, self.restarted)

    def wait(self, deadline: float | None) -> list[StreamOutcome]:
        with self._lock:
            if self.fleet is None:
                self._start(None if deadline is None else max(0.1, deadline - time.time()))
        self._done.wait()
        assert self._outcome is not None
        return self._outcome.streams

    def _start(self, duration: float | None) -> None:
        import asyncio

        from rifestream.pipeline.fleet import Fleet

        fleet = self.fleet = Fleet(self.streams, metrics=self.metrics, duration=duration, max_batch=self.max_batch)
        if self._stop_asked:
            fleet.stop()

        def run() -> None:
            try:
                self._outcome = asyncio.run(fleet.run())
            except BaseException as exc:  # noqa: BLE001 - reported as every stream's error
                error = f"{type(exc).__name__}: {exc}"
                self._outcome = FleetOutcome([StreamOutcome(s.name, None, error) for s in self.streams], {})
            finally:
                if self.server is not None:
                    self.server.stop()
                self._done.set()

        threading.Thread(target=run, name="fleet-actor", daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            self._stop_asked = True
            if self.fleet is not None:
                self.fleet.stop()


def actor_name(streams: Sequence[str]) -> str:
    return f"{ACTOR_PREFIX}{streams[0]}" + (f"+{len(streams) - 1}" if len(streams) > 1 else "")


def write_file_sd(path: Path, targets: Sequence[tuple[str, str]]) -> None:
    """(actor name, HOST:PORT) pairs as a Prometheus ``file_sd`` targets file: one target group per
    actor, labelled ``rifestream_actor``. Written beside it, then renamed over it, so Prometheus
    (which watches the folder) never reads half a file; the ``.tmp`` name matches no ``*.json``."""
    groups = [{"targets": [where], "labels": {"rifestream_actor": name}} for name, where in targets]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(groups, indent=2) + "\n")
    tmp.replace(path)


class RayFleet:
    """The driver: the streams in actors on the cluster at ``address``. ``start()`` places them and
        starts every stream (once all actors are up); ``wait()`` collects the outcomes; ``stop()``; ``close()``;
    ``run()`` all of that for the command line.

        ``address``: ``auto`` (``RAY_ADDRESS``, else the cluster ``ray start`` last started on this machine,
        else a Ray started here for this run) or HOST:PORT. ``group``: streams per actor (those of one
        engine only); ``num_cpus`` per stream; ``num_gpus`` per actor of CUDA streams (a fraction packs
        small ones on one GPU)."""

    def __init__(
        self,
        streams: Sequence[FleetStream],
        *,
        address: str = "auto",
        duration: float | None = None,
        max_batch: int | None = None,
        group: int = 1,
        num_cpus: float = 1.0,
        num_gpus: float = 1.0,
        max_restarts: int = MAX_RESTARTS,
        targets_file: str | Path | None = None,
        worker_setup: Callable[[], None] | None = None,
    ) -> None:
        self.streams = list(streams)
        self.worker_setup = worker_setup  # run first in each actor's process (a module-level function)
        self.address = address
        self.duration = duration
        self.max_batch = max_batch
        self.group = group
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_restarts = max_restarts
        self.targets_file = Path(targets_file) if targets_file is not None else None
        self.actors: dict[str, Any] = {}  # actor name → handle
        self.members: dict[str, list[str]] = {}  # actor name → its streams
        self._ray = require_ray()
        self._connected_here = False
        self._stopping = threading.Event()
        self._targets: list[tuple[str, str]] = []
        self._waits: dict[Any, str] = {}  # each actor's wait() call → the actor

    def connect(self) -> None:
        """Join the cluster (``ray.init``, which also takes over SIGTERM: install handlers after it)."""
        ray = self._ray
        if ray.is_initialized():
            return
        address = None if self.address == "auto" else self.address
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RifestreamError(f"--ray {self.address}: cannot connect to the Ray cluster ({exc})") from None
        self._connected_here = True

    def start(self) -> None:
        ray = self._ray
        self.connect()
        remote = ray.remote(FleetActor)
        for group in groups_of([sinks_from_here(s) for s in self.streams], self.group):
            names = [s.name for s in group]
            cuda = group[0].pipeline.engine.device.startswith("cuda")
            name = actor_name(names)
            self.members[name] = names
            self.actors[name] = remote.options(
                name=name,
                num_cpus=self.num_cpus * len(group),
                num_gpus=self.num_gpus if cuda else 0,
                max_restarts=self.max_restarts,
                max_task_retries=-1,
                max_concurrency=4,  # wait() blocks; info() and stop() answer meanwhile
                scheduling_strategy="SPREAD",
            ).remote(group, self.max_batch, self.worker_setup)
        self.infos(timeout=300)  # every actor is up: the duration counts from here, for all of them
        deadline = None if self.duration is None else time.time() + self.duration
        self._waits = {actor.wait.remote(deadline): name for name, actor in self.actors.items()}
        self.write_targets()

    def infos(self, timeout: float = 30.0) -> dict[str, ActorInfo]:
        """Where each actor runs and serves its metrics, by actor name (waits for actors still starting)."""
        refs = {name: actor.info.remote() for name, actor in self.actors.items()}
        return dict(zip(refs, self._ray.get(list(refs.values()), timeout=timeout), strict=True))

    def write_targets(self, timeout: float = 30.0) -> None:
        """The actors' metrics endpoints as a Prometheus file_sd targets file (rewritten atomically);
        each series names its stream itself (the ``stream`` label)."""
        if self.targets_file is None:
            return
        infos = self.infos(timeout)
        targets = sorted((i.name, f"{i.host}:{i.port}") for i in infos.values() if i.port is not None)
        if targets == self._targets:
            return
        self._targets = targets
        write_file_sd(self.targets_file, targets)

    def wait(self) -> FleetOutcome:
        """Every stream's outcome, once all have ended (an actor that dies is restarted by Ray)."""
        ray = self._ray
        pending = dict(self._waits)
        results: dict[str, StreamOutcome] = {}
        refresh = REFRESH_S if self.targets_file is not None else None
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=refresh)
            for ref in ready:
                name = pending.pop(ref)
                try:
                    results.update((s.name, s) for s in ray.get(ref))
                except ray.exceptions.RayError as exc:  # restarts used up, or the cluster lost it
                    why = f"its Ray actor {name} failed for good ({type(exc).__name__})"
                    results.update((s, StreamOutcome(s, None, why)) for s in self.members[name])
            if not ready and not self._stopping.is_set():
                try:
                    self.write_targets()
                except ray.exceptions.GetTimeoutError:
                    log.debug("an actor is restarting; targets kept")
        return FleetOutcome([results[s.name] for s in self.streams], {})

    def stop(self) -> None:
        """Every actor's streams stop cleanly (drained, flushed, closed). Safe from any thread."""
        self._stopping.set()
        for actor in self.actors.values():
            actor.stop.remote()

    def close(self) -> None:
        """Let the actors go and disconnect (if this driver connected)."""
        for actor in self.actors.values():
            self._ray.kill(actor, no_restart=True)
        self.actors.clear()
        if self._connected_here:
            self._ray.shutdown()

    def run(self, on_started: Callable[[RayFleet], None] | None = None) -> FleetOutcome:
        """Connect, start every stream and wait until all have ended, then ``close()``; SIGINT/SIGTERM stop
        every stream. ``on_started(self)`` runs once every actor is up."""
        previous = {}
        try:
            self.connect()
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    previous[sig] = signal.signal(sig, lambda signum, frame: self.stop())
            self.start()
            infos = self.infos()
            for info in infos.values():
                log.info("%s (%s): pid %d on node %s, metrics on %s:%s", info.name, ", ".join(info.streams),
                         info.pid, info.node_id[:8], info.host, info.port)  # fmt: skip
            if on_started is not None:
                on_started(self)
            return self.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()
