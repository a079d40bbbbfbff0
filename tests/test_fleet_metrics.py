"""FleetMetrics: every stream's series in one registry under its ``stream`` label, /healthz for the
fleet and per stream over a real socket, names bounded and unique."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from rifestream import __version__
from rifestream.metrics import FleetMetrics, PipelineMetrics
from tests.test_fleet import get_json


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_stream_counts_under_its_own_label() -> None:
    registry = CollectorRegistry()
    fleet = FleetMetrics(registry)
    cam1 = fleet.stream("cam1", queues=("interpolate", "encode"), model="rifestream-lite", device="cpu")
    cam2 = fleet.stream("cam-2", queues=("interpolate", "feed"))
    for _ in range(3):
        cam1.frame_in()
    cam2.frame_in()
    cam1.count_output(interpolated=True, fallback="blend")
    cam2.drop("feed", "queue_full")

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("rifestream_input_frames_total", stream="cam1") == 3
    assert value("rifestream_input_frames_total", stream="cam-2") == 1
    assert value("rifestream_fallbacks_total", stream="cam1", reason="blend") == 1
    assert value("rifestream_fallbacks_total", stream="cam-2", reason="blend") == 0
    assert value("rifestream_dropped_frames_total", stream="cam-2", stage="feed", reason="queue_full") == 1
    info = {"stream": "cam1", "model": "rifestream-lite", "device": "cpu", "version": __version__}
    assert value("rifestream_build_info", **info) == 1
    assert value("rifestream_queue_capacity", stream="cam1", queue="encode") == 0
    assert value("rifestream_queue_capacity", stream="cam1", queue="feed") is None  # only its own queues
    assert value("rifestream_input_frames_per_second", stream="cam1") is not None
    # the process's own metrics once, without a stream label
    assert value("rifestream_device_memory_used_bytes", device="cpu") > 0


def test_names_are_bounded_label_values_and_unique() -> None:
    fleet = FleetMetrics(CollectorRegistry())
    fleet.stream("a")
    with pytest.raises(ValueError, match="already"):
        fleet.stream("a")
    for bad in ("Cam1", "cam 1", "", "cam/1"):
        with pytest.raises(ValueError, match="stream name"):
            fleet.stream(bad)
    with pytest.raises(ValueError, match="stream name"):
        PipelineMetrics(CollectorRegistry(), stream="Main")


def test_healthz_reports_the_fleet_and_each_stream() -> None:
    clock = FakeClock()
    fleet = FleetMetrics(CollectorRegistry(), clock=clock, stale_after=5.0)
    good, failed = fleet.stream("good"), fleet.stream("failed")
    with fleet.serve(port=0) as server:
        status, body = get_json(f"{server.url}/healthz")
        assert status == 503 and body["status"] == "unavailable" and body["streams_total"] == 2

        for m in (good, failed):
            m.set_source_up(True)
            m.frame_in()
        status, body = get_json(f"{server.url}/healthz")
        assert status == 200 and body["status"] == "ok" and body["streams_ready"] == 2

        failed.ended("rtsp://cam/1: connection refused (gave up after 10 s)")
        status, body = get_json(f"{server.url}/healthz")
        assert status == 503 and body["status"] == "degraded" and body["streams_ready"] == 1
        assert body["streams"]["failed"]["status"] == "ended"
        assert body["streams"]["failed"]["error"].startswith("rtsp://cam/1: connection refused")
        assert get_json(f"{server.url}/healthz?stream=good") == (200, {**body["streams"]["good"]})
        assert get_json(f"{server.url}/healthz?stream=failed")[0] == 503
        status, body = get_json(f"{server.url}/healthz?stream=nope")
        assert status == 503 and body["status"] == "unknown stream" and body["streams"] == ["good", "failed"]

    registry = fleet.registry
    assert registry.get_sample_value("rifestream_stream_running", {"stream": "failed"}) == 0
    assert registry.get_sample_value("rifestream_stream_failed", {"stream": "failed"}) == 1
    assert registry.get_sample_value("rifestream_stream_running", {"stream": "good"}) == 1
    assert registry.get_sample_value("rifestream_stream_failed", {"stream": "good"}) == 0
