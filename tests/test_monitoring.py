"""monitoring/: promtool on the rules and scrape config, and every dashboard query and rule
expression run through a real Prometheus (Debian's ``prometheus``) scraping a running
``rifestream run`` (and, for alert states, a simulated job with a deliberately tight budget)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from rifestream.metrics import OUTPUT_KINDS, SINGLE_STREAM, PipelineMetrics

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "monitoring"
ALERTS = MONITORING / "prometheus" / "alerts.yml"
SCRAPE_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "rifestream.json"
PROVISIONING = MONITORING / "grafana" / "provisioning"

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus (Debian package) is not installed")

# What Grafana would put in place of the dashboard's variables, for a query sent by hand.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$instance": ".*", "$stream": ".*"}
# The process's own series, the only ones without a ``stream`` label.
PROCESS_SERIES = ("rifestream_device_memory_used_bytes", "process_")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL or "promtool", *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title, expr) of every query in the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def substitute(expr: str, **values: str) -> str:
    """``expr`` as Grafana would send it, with "All" chosen for every variable unless ``values`` picks one."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, values.get(variable.lstrip("$"), value))
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


def with_bool(expr: str) -> str | None:
    """``expr`` with its top-level comparison turned into a ``bool`` one (0/1 for every matched
    series, so it returns data whether or not the alert fires); None if it has no comparison."""
    depth, quote, found = 0, "", None
    i = 0
    while i < len(expr):
        ch = expr[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and expr[i : i + 2] in ("==", "!=", ">=", "<="):
            found = i + 2
            i += 1
        elif depth == 0 and ch in "<>":
            found = i + 1
        i += 1
    if found is None:
        return None
    return f"{expr[:found]} bool{expr[found:]}"


# ---------------------------------------------------------------------------------------------
# Static checks: promtool and the shape of the dashboard and provisioning files
# ---------------------------------------------------------------------------------------------


@needs_promtool
def test_alert_rules_pass_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


@needs_promtool
def test_alert_rules_fire_in_promtool_unit_tests() -> None:
    """alerts_test.yml feeds each rule series that break it (and series just inside it) and
    states which alerts must fire, with which labels and text, and when."""
    result = promtool("test", "rules", str(MONITORING / "prometheus" / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_scrape_config_passes_promtool_check_config() -> None:
    result = promtool("check", "config", str(SCRAPE_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alerts.yml" in result.stdout  # the rule file it names was found and checked too


def test_dashboard_shape_and_provisioning() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for name in ("instance", "stream"):
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
    assert "label_values(rifestream_build_info" in variables["stream"]["query"]["query"]
    assert variables["datasource"]["type"] == "datasource"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = [expr for _, expr in dashboard_targets()]
    for expr in exprs:
        assert 'instance=~"$instance"' in expr, expr
        if not any(name in expr for name in PROCESS_SERIES):
            assert expr.count('stream=~"$stream"') == expr.count('instance=~"$instance"'), expr
        if "rate(" in expr or "increase(" in expr:
            assert "[$__rate_interval]" in expr, expr
    joined = "\n".join(exprs)
    for quantile in ("0.5", "0.95", "0.99"):
        for metric in ("rifestream_end_to_end_latency_seconds_bucket", "rifestream_stage_latency_seconds_bucket"):
            assert f"histogram_quantile({quantile}, sum by (instance, " in joined
            assert metric in joined
    for metric in (
        "rifestream_latency_budget_seconds",
        "rifestream_input_frames_per_second",
        "rifestream_output_frames_per_second",
        "rifestream_fallbacks_total",
        "rifestream_dropped_frames_total",
        "rifestream_queue_depth",
        "rifestream_reconnects_total",
        "rifestream_device_memory_used_bytes",
    ):
        assert metric in joined, metric
    dashboards_yml = (PROVISIONING / "dashboards" / "rifestream.yml").read_text()
    assert "path: /var/lib/grafana/dashboards/rifestream" in dashboards_yml
    datasource_yml = (PROVISIONING / "datasources" / "prometheus.yml").read_text()
    assert "type: prometheus" in datasource_yml and "url: http://127.0.0.1:9090" in datasource_yml


def test_dashboard_file_is_the_generators_output() -> None:
    """The committed dashboard is exactly what scripts/make_dashboard.py builds from Grafana's typed builders."""
    spec = importlib.util.spec_from_file_location("make_dashboard", ROOT / "scripts" / "make_dashboard.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert DASHBOARD.read_text() == generator.render(), "run python scripts/make_dashboard.py and commit the file"


def test_with_bool_rewrites_only_the_top_level_comparison() -> None:
    assert with_bool('up{job="x"} == 0') == 'up{job="x"} == bool 0'
    assert with_bool("a / on (i) b > 0.1") == "a / on (i) b > bool 0.1"
    assert with_bool("a < on (i) (0.95 * (b > 0))") == "a < bool on (i) (0.95 * (b > 0))"
    assert with_bool('x{a=~"b|c", d!="e"} >= 2') == 'x{a=~"b|c", d!="e"} >= bool 2'
    assert with_bool('sum(rate(x{reason!="y"}[1m]))') is None


# ---------------------------------------------------------------------------------------------
# A real Prometheus scraping real metrics
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


@dataclass
class Prometheus:
    url: str

    def query(self, expr: str) -> list[dict]:
        reply = http_json(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert reply["status"] == "success", (expr, reply)
        return reply["data"]["result"]

    def value(self, expr: str) -> float:
        """The value of a query that returns exactly one series."""
        (sample,) = self.query(expr)
        return float(sample["value"][1])

    def counted_rate(self, range_selector: str) -> float:
        """Increase per second of one counter over the samples Prometheus scraped in the range
        (unlike ``rate()``, no extrapolation to a window longer than the series)."""
        (series,) = self.query(range_selector)
        (t0, v0), (t1, v1) = series["values"][0], series["values"][-1]
        return (float(v1) - float(v0)) / (float(t1) - float(t0))

    def wait_for(self, expr: str, timeout: float, what: str) -> list[dict]:
        """Query until ``expr`` returns data; bounded by ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                assert result, f"timed out after {timeout:.0f} s waiting for {what} ({expr})"
                return result
            time.sleep(0.25)


def scrape_config_for(target: str) -> str:
    """The repo's scrape config with a 1 s interval, the given target and an absolute rule path."""
    text = SCRAPE_CONFIG.read_text()
    for old, new in (
        ("scrape_interval: 5s", "scrape_interval: 1s"),
        ("evaluation_interval: 5s", "evaluation_interval: 1s"),
        ('targets: ["127.0.0.1:9108"]', f'targets: ["{target}"]'),
        ("  - alerts.yml", f"  - {ALERTS}"),
    ):
        assert text.count(old) == 1, f"{SCRAPE_CONFIG} no longer has {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator:
    """Start Debian's prometheus on a free loopback port scraping ``target``; stopped after the test."""
    procs: list[subprocess.Popen] = []
    stack = contextlib.ExitStack()

    def start(target: str) -> Prometheus:
        config = tmp_path / "prometheus.yml"
        config.write_text(scrape_config_for(target))
        port = free_port()
        log = stack.enter_context(open(tmp_path / "prometheus.log", "w"))
        proc = subprocess.Popen(
            [
                PROMETHEUS or "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        prom = Prometheus(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return prom
            except OSError:
                pass
            assert time.monotonic() < deadline, "prometheus did not become ready in 20 s"
            time.sleep(0.2)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    stack.close()


class SimulatedJob:
    """PipelineMetrics fed, in real time, the traffic of a 30 → 60 fps job: every source frame gives
    a passed-through and an in-between frame; some in-between frames are blends, repeats or scene
    cuts; stage and end-to-end latencies are drawn around what a GPU job measures; the encoder
    queue sometimes overflows."""

    input_fps = 30.0

    def __init__(self, metrics: PipelineMetrics, seconds: float) -> None:
        self.metrics = metrics
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulated-job", daemon=True)

    def __enter__(self) -> SimulatedJob:
        m = self.metrics
        m.set_latency_budget(0.010)  # tight on purpose: p95 end-to-end above budget + 1 interval
        m.set_target_fps(2 * self.input_fps)
        for queue in m.queues:
            m.set_queue_capacity(queue, 4)
        m.reconnect("source")
        m.set_source_up(True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        m, rng = self.metrics, random.Random(5)
        start = time.monotonic()
        frames = int(self.seconds * self.input_fps)
        for i in range(frames):
            if self._stop.wait(max(0.0, start + i / self.input_fps - time.monotonic())):
                return
            m.frame_in()
            m.observe_stage("decode", rng.uniform(0.002, 0.004))
            m.observe_stage("upload", rng.uniform(0.0005, 0.0015))
            if i == 0:
                continue
            interpolate = rng.uniform(0.012, 0.030)
            m.observe_stage("interpolate", interpolate)
            m.observe_stage("encode", rng.uniform(0.003, 0.006))
            m.observe_stage("sink", rng.uniform(0.0002, 0.001))
            fallback = "scene_cut" if i % 50 == 0 else "blend" if i % 10 == 0 else "repeat" if i % 37 == 0 else None
            if fallback == "scene_cut":
                m.scene_cut()
            m.count_output(interpolated=False, fallback=None)
            m.count_output(interpolated=True, fallback=fallback)
            m.observe_end_to_end(1 / self.input_fps + interpolate + rng.uniform(0.004, 0.010))
            if i % 45 == 0:
                m.drop("encode", "queue_full")
            m.set_queue_depth("interpolate", rng.randint(0, 2))
            m.set_queue_depth("encode", rng.randint(0, 4))


def check_every_query_returns_data(prom: Prometheus) -> None:
    """Every dashboard query and every rule expression returns data through /api/v1/query."""
    for title, expr in dashboard_targets():
        result = prom.query(substitute(expr))
        assert result, f"dashboard panel {title!r}: no data for {expr}"
        values = [float(sample["value"][1]) for sample in result]
        assert any(math.isfinite(v) for v in values), f"panel {title!r}: only NaN/Inf for {expr}: {values}"
        # One stream picked: a single job's series carry stream="main", and a stream that is not there has none.
        assert prom.query(substitute(expr, stream=SINGLE_STREAM)), f"panel {title!r}: no data for stream main"
        if 'stream=~"$stream"' in expr:
            assert not prom.query(substitute(expr, stream="no-such-stream")), f"panel {title!r} ignores $stream"

    rules = alert_rules(prom)
    assert {rule["name"] for rule in rules} == {
        "RifestreamLatencyBudgetExceeded",
        "RifestreamOutputFpsBelowTarget",
        "RifestreamFallbackShareHigh",
        "RifestreamSourceDown",
        "RifestreamDown",
    }
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        prom.query(rule["query"])  # the rule itself parses and runs; empty while it does not fire
        underlying = with_bool(rule["query"]) or rule["query"]
        assert prom.query(underlying), f"rule {rule['name']}: no data for {underlying}"


def alert_rules(prom: Prometheus) -> list[dict]:
    groups = http_json(f"{prom.url}/api/v1/rules")["data"]["groups"]
    return [rule for group in groups for rule in group["rules"]]


def rule_states(prom: Prometheus) -> dict[str, str]:
    return {rule["name"]: rule["state"] for rule in alert_rules(prom)}


def wait_for_rule_evaluation(prom: Prometheus, timeout: float = 10) -> None:
    """Until every rule has been evaluated once (Prometheus reports year 1 before that)."""
    deadline = time.monotonic() + timeout
    while any(rule["lastEvaluation"].startswith("0001") for rule in alert_rules(prom)):
        assert time.monotonic() < deadline, f"the alert rules were not evaluated in {timeout:.0f} s"
        time.sleep(0.25)


@pytest.mark.slow
@needs_prometheus
def test_prometheus_scraping_simulated_job_answers_every_query(start_prometheus) -> None:
    metrics = PipelineMetrics(
        CollectorRegistry(), model="rifestream-v1", device="cpu", queues=("interpolate", "encode")
    )
    with metrics.serve(port=0, host="127.0.0.1") as server, SimulatedJob(metrics, seconds=40):
        prom = start_prometheus(f"127.0.0.1:{server.port}")
        # rate() needs two scrapes in its window; wait for a few, and for the rules to be evaluated.
        prom.wait_for("count_over_time(rifestream_input_frames_total[1m]) >= 4", 20, "four scrapes")
        prom.wait_for('ALERTS{alertname="RifestreamLatencyBudgetExceeded"}', 10, "the rules to be evaluated")
        check_every_query_returns_data(prom)

        states = rule_states(prom)
        assert states["RifestreamLatencyBudgetExceeded"] in ("pending", "firing")  # the budget is 10 ms
        assert states["RifestreamSourceDown"] == "inactive"
        assert states["RifestreamDown"] == "inactive"
        assert 20 < prom.counted_rate("rifestream_input_frames_total[30s]") < 40
        assert prom.value("rifestream_input_frames_per_second") > 0
        (blend,) = prom.query('rifestream_fallbacks_total{reason="blend"}')
        assert float(blend["value"][1]) >= 1


# ---------------------------------------------------------------------------------------------
# The real thing: `rifestream run` with its built-in test scene
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A random-weights two-block IFNet file: the real model path of the engine, fast on a CPU."""
    import torch

    from rifestream.model import IFNet, IFNetConfig, save_model

    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_model(IFNet(IFNetConfig("tiny", (16, 8), (2, 1), head=False, pad=32)), path)
    return path


@pytest.fixture
def rifestream_job(tmp_path: Path, tiny_model: Path) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    """``rifestream run`` on the built-in 30 fps test scene (→ 60 fps, null sink) serving metrics
    on a free port; yields (process, metrics port, its directory with run.out and run.err) once
    /healthz says it is ready."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # Output to files, not pipes: a pipe nobody reads while the job runs could fill and stall it.
    stdout, stderr = open(tmp_path / "run.out", "w+"), open(tmp_path / "run.err", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rifestream", "run", "--source", "testsrc:?size=160x96&fps=30", "--sink", "null",
         "--model", str(tiny_model), "--device", "cpu", "--metrics-port", str(port), "--duration", "50"],
        cwd=tmp_path, env=env, stdout=stdout, stderr=stderr, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 40
        while True:
            assert proc.poll() is None, (tmp_path / "run.err").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:  # not listening yet, or 503 before the first frame
                pass
            assert time.monotonic() < deadline, "rifestream run did not become ready in 40 s"
            time.sleep(0.2)
        yield proc, port, tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        stdout.close()
        stderr.close()


@pytest.mark.slow
@needs_prometheus
def test_prometheus_scraping_rifestream_run_answers_every_query(start_prometheus, rifestream_job) -> None:
    proc, port, run_dir = rifestream_job
    prom = start_prometheus(f"127.0.0.1:{port}")
    prom.wait_for("count_over_time(rifestream_input_frames_total[1m]) >= 4", 20, "four scrapes of the job")
    wait_for_rule_evaluation(prom)

    check_every_query_returns_data(prom)
    if PROMTOOL is not None:  # the names the real job exposes pass promtool's linter too
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            exposition = resp.read().decode()
        lint = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition, capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr

    states = rule_states(prom)
    assert states["RifestreamSourceDown"] == "inactive"
    assert states["RifestreamDown"] == "inactive"
    (info,) = prom.query("rifestream_build_info")
    assert info["metric"]["model"].endswith("tiny.safetensors")
    assert info["metric"]["device"] == "cpu" and info["metric"]["job"] == "rifestream"
    # The fps gauges agree with Prometheus's own rate of the frame counters (both drop alike when
    # a loaded machine makes the job drop frames); the test scene runs at 30 fps, raised to 60.
    fps_in = prom.value("avg_over_time(rifestream_input_frames_per_second[30s])")
    fps_out = prom.value("avg_over_time(rifestream_output_frames_per_second[30s])")
    rate_in = prom.counted_rate("rifestream_input_frames_total[30s]")
    rate_out = sum(prom.counted_rate(f'rifestream_output_frames_total{{kind="{k}"}}[30s]') for k in OUTPUT_KINDS)
    assert 20 < fps_in < 40 and fps_in == pytest.approx(rate_in, rel=0.15)
    assert fps_out > 1.2 * fps_in and fps_out == pytest.approx(rate_out, rel=0.15)
    (made,) = prom.query('rifestream_output_frames_total{kind="interpolated"}')
    assert float(made["value"][1]) > 0  # the model, not only fallbacks, made frames

    # Stop the job cleanly; what Prometheus scraped last is at most what the job counted in all.
    scraped_in = float(prom.query("max_over_time(rifestream_input_frames_total[5m])")[0]["value"][1])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, (run_dir / "run.err").read_text()
    summary = (run_dir / "run.out").read_text()
    match = re.search(r"frames in\s+(\d+)", summary)
    assert match, summary
    assert 30 <= scraped_in <= int(match.group(1))


# ---------------------------------------------------------------------------------------------
# A Ray fleet's actors, found through the targets file the driver writes
# ---------------------------------------------------------------------------------------------


def active_targets(prom: Prometheus, job: str) -> dict[str, dict]:
    """instance → labels of each target Prometheus scrapes for ``job``."""
    targets = http_json(f"{prom.url}/api/v1/targets?state=active")["data"]["activeTargets"]
    return {t["labels"]["instance"]: t["labels"] for t in targets if t["labels"]["job"] == job}


@pytest.mark.slow
@needs_prometheus
def test_prometheus_finds_ray_actors_through_the_fleets_targets_file(start_prometheus, tmp_path: Path) -> None:
    """prometheus.yml's job rifestream-ray reads the file_sd targets file ``rifestream fleet --ray
    --targets-file`` writes (``fleet_ray.write_file_sd``, into ``targets/`` beside the config, as its
    comment suggests), picks up a file that appears after Prometheus started, and follows it when an
    actor comes back on another port; the static job goes on scraping a single job beside them."""
    from rifestream.metrics import FleetMetrics
    from rifestream.pipeline.fleet_ray import write_file_sd

    single = PipelineMetrics(CollectorRegistry(), model="rifestream-v1", device="cpu")
    actors = {"rifestream-cam1": FleetMetrics(), "rifestream-cam2+1": FleetMetrics()}
    actors["rifestream-cam1"].stream("cam1")
    actors["rifestream-cam2+1"].stream("cam2")
    actors["rifestream-cam2+1"].stream("cam3")
    for metrics in [single, *(m for fleet in actors.values() for m in fleet.families.streams())]:
        metrics.set_source_up(True)
        metrics.frame_in()
    targets_file = tmp_path / "targets" / "fleet.json"
    targets_file.parent.mkdir()  # what the repository's monitoring/prometheus/targets/ is

    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(fleet.serve(0)) for name, fleet in actors.items()}
        single_server = stack.enter_context(single.serve(0))
        prom = start_prometheus(f"127.0.0.1:{single_server.port}")

        write_file_sd(targets_file, [(name, f"127.0.0.1:{s.port}") for name, s in sorted(servers.items())])
        prom.wait_for('count(up{job="rifestream-ray"} == 1) == 2', 20, "both actors scraped")
        prom.wait_for('count(rifestream_stream_running{job="rifestream-ray"}) == 3', 10, "every actor's streams")
        found = {
            (s["metric"]["rifestream_actor"], s["metric"]["stream"], s["metric"]["instance"])
            for s in prom.query('rifestream_stream_running{job="rifestream-ray"} == 1')
        }
        assert found == {
            ("rifestream-cam1", "cam1", f"127.0.0.1:{servers['rifestream-cam1'].port}"),
            ("rifestream-cam2+1", "cam2", f"127.0.0.1:{servers['rifestream-cam2+1'].port}"),
            ("rifestream-cam2+1", "cam3", f"127.0.0.1:{servers['rifestream-cam2+1'].port}"),
        }
        (main,) = prom.wait_for('rifestream_stream_running{job="rifestream"}', 10, "the static job")
        assert main["metric"]["stream"] == SINGLE_STREAM

        # Ray restarts actor cam2+1 in a new process: it serves on another port, and the driver rewrites the file.
        old = f"127.0.0.1:{servers['rifestream-cam2+1'].port}"
        servers["rifestream-cam2+1"].stop()
        servers["rifestream-cam2+1"] = stack.enter_context(actors["rifestream-cam2+1"].serve(0))
        new = f"127.0.0.1:{servers['rifestream-cam2+1'].port}"
        write_file_sd(targets_file, [(name, f"127.0.0.1:{s.port}") for name, s in sorted(servers.items())])
        prom.wait_for(f'up{{job="rifestream-ray",instance="{new}"}} == 1', 20, "the restarted actor's new port")
        assert set(active_targets(prom, "rifestream-ray")) == {f"127.0.0.1:{servers['rifestream-cam1'].port}", new}
        assert old not in active_targets(prom, "rifestream-ray")
