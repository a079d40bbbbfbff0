"""PipelineMetrics: values read back through a fresh registry, and its HTTP server over real sockets."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from rifestream import __version__
from rifestream.errors import RifestreamError
from rifestream.metrics import LATENCY_BUCKETS, PipelineMetrics, process_rss_bytes


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    """A sample of a single job's metrics: every one but the process's carries stream="main"."""
    if not name.startswith(("rifestream_device_memory", "process_")):
        labels.setdefault("stream", "main")
    return registry.get_sample_value(name, labels)


def test_counters_move_as_frames_flow(registry: CollectorRegistry) -> None:
    m = PipelineMetrics(registry)
    # 5 source frames at 2x: each pair gives one passed-through and one interpolated frame.
    for i in range(5):
        m.frame_in()
        if i > 0:
            m.count_output(interpolated=False, fallback=None)
            m.count_output(interpolated=True, fallback=None)
    assert value(registry, "rifestream_input_frames_total") == 5
    assert value(registry, "rifestream_output_frames_total", kind="passed_through") == 4
    assert value(registry, "rifestream_output_frames_total", kind="interpolated") == 4
    assert value(registry, "rifestream_output_frames_total", kind="blended") == 0
    assert value(registry, "rifestream_output_frames_total", kind="repeated") == 0
    for reason in ("scale", "blend", "repeat", "scene_cut"):
        assert value(registry, "rifestream_fallbacks_total", reason=reason) == 0

    m.drop("encode", "queue_full")
    m.drop("encode", "queue_full")
    m.reconnect("source")
    m.scene_cut()
    assert value(registry, "rifestream_dropped_frames_total", stage="encode", reason="queue_full") == 2
    assert value(registry, "rifestream_dropped_frames_total", stage="sink", reason="queue_full") == 0
    assert value(registry, "rifestream_reconnects_total", side="source") == 1
    assert value(registry, "rifestream_reconnects_total", side="sink") == 0
    assert value(registry, "rifestream_scene_cuts_total") == 1


def test_forced_fallback_is_counted_with_its_reason(registry: CollectorRegistry) -> None:
    m = PipelineMetrics(registry)
    kinds = [m.count_output(interpolated=True, fallback=reason) for reason in ("blend", "blend", "scale", "repeat")]
    kinds.append(m.count_output(interpolated=True, fallback="scene_cut"))
    assert kinds == ["blended", "blended", "interpolated", "repeated", "repeated"]
    assert value(registry, "rifestream_fallbacks_total", reason="blend") == 2
    assert value(registry, "rifestream_fallbacks_total", reason="scale") == 1
    assert value(registry, "rifestream_fallbacks_total", reason="repeat") == 1
    assert value(registry, "rifestream_fallbacks_total", reason="scene_cut") == 1
    assert value(registry, "rifestream_output_frames_total", kind="blended") == 2
    assert value(registry, "rifestream_output_frames_total", kind="interpolated") == 1
    assert value(registry, "rifestream_output_frames_total", kind="repeated") == 2


def test_latency_lands_in_the_right_buckets(registry: CollectorRegistry) -> None:
    m = PipelineMetrics(registry)
    m.observe_stage("interpolate", 0.012)
    m.observe_end_to_end(0.012)
    m.observe_end_to_end(0.045)
    m.observe_end_to_end(0.400)  # beyond the last finite bucket: only +Inf counts it
    stage = {"stage": "interpolate"}
    assert value(registry, "rifestream_stage_latency_seconds_bucket", le="0.01", **stage) == 0
    assert value(registry, "rifestream_stage_latency_seconds_bucket", le="0.016", **stage) == 1
    assert value(registry, "rifestream_stage_latency_seconds_bucket", le="0.016", stage="decode") == 0
    assert value(registry, "rifestream_stage_latency_seconds_sum", **stage) == pytest.approx(0.012)
    e2e = "rifestream_end_to_end_latency_seconds"
    assert value(registry, f"{e2e}_bucket", le="0.01") == 0
    assert value(registry, f"{e2e}_bucket", le="0.016") == 1
    assert value(registry, f"{e2e}_bucket", le="0.04") == 1
    assert value(registry, f"{e2e}_bucket", le="0.05") == 2
    assert value(registry, f"{e2e}_bucket", le="0.25") == 2
    assert value(registry, f"{e2e}_bucket", le="+Inf") == 3
    assert value(registry, f"{e2e}_count") == 3
    # Buckets span 1 ms … 250 ms and are densest around one frame interval (16–50 ms).
    assert LATENCY_BUCKETS[0] == 0.001 and LATENCY_BUCKETS[-1] == 0.25
    assert sum(0.016 <= b <= 0.05 for b in LATENCY_BUCKETS) >= 6


def test_label_values_are_bounded(registry: CollectorRegistry) -> None:
    m = PipelineMetrics(registry, queues=("interpolate", "encode"))
    with pytest.raises(ValueError, match="output kind"):
        m.frame_out("dropped")
    with pytest.raises(ValueError, match="fallback reason"):
        m.fallback("slow")
    with pytest.raises(ValueError, match="fallback"):
        m.count_output(interpolated=True, fallback="magic")
    with pytest.raises(ValueError, match="stage"):
        m.observe_stage("teleport", 0.01)
    with pytest.raises(ValueError, match="drop reason"):
        m.drop("encode", "bored")
    with pytest.raises(ValueError, match="reconnect side"):
        m.reconnect("middle")
    with pytest.raises(ValueError, match="queue"):
        m.set_queue_depth("source", 3)  # not one of this job's queues
    m.set_queue_depth("encode", 3)
    m.set_queue_capacity("encode", 8)
    assert value(registry, "rifestream_queue_depth", queue="encode") == 3
    assert value(registry, "rifestream_queue_capacity", queue="encode") == 8
    # Refused values left no series behind.
    text = generate_latest(registry).decode()
    for bad in ('kind="dropped"', '"slow"', '"magic"', '"teleport"', '"bored"', '"middle"', 'queue="source"'):
        assert bad not in text


def test_fps_comes_from_counted_frames_over_a_window(registry: CollectorRegistry) -> None:
    clock = FakeClock()
    m = PipelineMetrics(registry, clock=clock, fps_window=2.0)
    assert value(registry, "rifestream_input_frames_per_second") == 0
    for _ in range(90):  # 3 s of 30 fps in, 60 fps out
        m.frame_in()
        m.frame_out("passed_through")
        clock.now += 1 / 60
        m.frame_out("interpolated")
        clock.now += 1 / 60
    assert value(registry, "rifestream_input_frames_per_second") == pytest.approx(30.0, rel=1e-6)
    assert value(registry, "rifestream_output_frames_per_second") == pytest.approx(60.0, rel=1e-6)
    clock.now += 1.0  # frames stop: the rate falls, and reaches 0 once the window is empty
    assert value(registry, "rifestream_input_frames_per_second") < 20.0
    clock.now += 1.5
    assert value(registry, "rifestream_input_frames_per_second") == 0
    assert value(registry, "rifestream_output_frames_per_second") == 0


def test_targets_build_info_source_and_memory(registry: CollectorRegistry) -> None:
    m = PipelineMetrics(registry, model="rifestream-v1", device="cpu")
    m.set_latency_budget(0.05)
    m.set_target_fps(60)
    m.set_source_up(True)
    assert value(registry, "rifestream_latency_budget_seconds") == 0.05
    assert value(registry, "rifestream_target_output_frames_per_second") == 60
    assert value(registry, "rifestream_source_up") == 1
    info = {"version": __version__, "model": "rifestream-v1", "device": "cpu"}
    assert value(registry, "rifestream_build_info", **info) == 1
    rss = value(registry, "rifestream_device_memory_used_bytes", device="cpu")
    assert rss == pytest.approx(process_rss_bytes(), rel=0.2) and rss > 1_000_000
    m.set_build_info(model="rife-v4.6", device="cuda:0")
    assert value(registry, "rifestream_build_info", **info) is None
    assert value(registry, "rifestream_build_info", version=__version__, model="rife-v4.6", device="cuda:0") == 1
    # CUDA memory is read only from a torch the process already initialised; never RSS under a cuda label.
    cuda = value(registry, "rifestream_device_memory_used_bytes", device="cuda:0")
    assert cuda is not None and cuda != rss
    m.set_source_up(False)
    assert value(registry, "rifestream_source_up") == 0


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


def test_metrics_and_healthz_over_http(registry: CollectorRegistry) -> None:
    clock = FakeClock()
    m = PipelineMetrics(registry, clock=clock, stale_after=5.0)
    server = m.serve(port=0, host="127.0.0.1")
    try:
        assert server.port > 0
        status, _, body = _get(f"{server.url}/healthz")
        assert status == 503 and json.loads(body)["status"] == "unavailable"  # no source yet

        m.set_source_up(True)
        m.frame_in()
        m.count_output(interpolated=True, fallback="blend")
        clock.now += 1.0
        status, ctype, body = _get(f"{server.url}/healthz")
        assert status == 200 and ctype == "application/json"
        details = json.loads(body)
        assert details["status"] == "ok" and details["source_up"] is True
        assert details["seconds_since_last_frame"] == pytest.approx(1.0)

        status, ctype, text = _get(f"{server.url}/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        assert 'rifestream_input_frames_total{stream="main"} 1.0' in text
        assert 'rifestream_fallbacks_total{reason="blend",stream="main"} 1.0' in text

        clock.now += 10.0  # frames stopped flowing
        status, _, body = _get(f"{server.url}/healthz")
        assert status == 503 and json.loads(body)["seconds_since_last_frame"] == pytest.approx(11.0)
        m.frame_in()
        m.set_source_up(False)  # frames fresh but the source is gone
        assert _get(f"{server.url}/healthz")[0] == 503
        assert _get(f"{server.url}/nothing-here")[0] == 404
    finally:
        server.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=2):
        pass


def test_busy_port_is_a_user_error(registry: CollectorRegistry) -> None:
    with PipelineMetrics(registry).serve(port=0) as first:
        with pytest.raises(RifestreamError, match="--metrics-port"):
            PipelineMetrics(CollectorRegistry()).serve(port=first.port)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed")
def test_exposition_passes_promtool_check_metrics(registry: CollectorRegistry) -> None:
    m = PipelineMetrics(registry, model="rifestream-v1")
    m.frame_in()
    m.count_output(interpolated=True, fallback="scale")
    m.observe_stage("encode", 0.003)
    m.observe_end_to_end(0.04)
    with m.serve(port=0) as server:
        status, _, text = _get(f"{server.url}/metrics")
    assert status == 200
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(text.splitlines()) > 100  # it really checked the whole exposition


@pytest.mark.gpu
def test_device_memory_reads_cuda_allocations(registry: CollectorRegistry) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    assert PipelineMetrics(registry, device="cuda:0").device == "cuda:0"
    before = value(registry, "rifestream_device_memory_used_bytes", device="cuda:0")
    block = torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda:0")  # 64 MiB
    after = value(registry, "rifestream_device_memory_used_bytes", device="cuda:0")
    assert after - before >= block.numel()
    assert after == torch.cuda.memory_allocated("cuda:0")
    del block
