"""Run inside a fresh network namespace by tests/test_fleet_ray.py: a two-node Ray cluster on loopback
(``ray.cluster_utils.Cluster``), the fleet of ``WORKDIR/fleet.toml`` on it, then ``WORKDIR/live.toml``
with one stream's actor process killed mid-stream, then ``rifestream interpolate WORKDIR/in
WORKDIR/many --ray``. Prints one JSON line of what it saw; the test
checks the files. Stops the cluster it started (its own processes only), whatever happens.

    unshare -n bash -c 'ip link set lo up; python3 tests/fleet_ray_cluster.py WORKDIR'
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def output_frames(host: str, port: int) -> float:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(v) for v in re.findall(r"^rifestream_output_frames_total\{[^}]*\} (\S+)$", text, re.M))


def wait_for(what: str, check, seconds: float):
    """``check()``'s first truthy value within ``seconds`` (exceptions while it is not ready count as no)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:  # noqa: BLE001 - an actor restarting, a port not yet open
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not within {seconds:g} s")


def main(workdir: Path) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from rifestream.config import load_fleet
    from rifestream.pipeline.fleet_ray import RayFleet

    report: dict = {}
    started = time.monotonic()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "include_dashboard": False, "node_ip_address": "127.0.0.1"},
    )
    try:
        cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
        ray.init(address=cluster.address, logging_level="WARNING")
        report["nodes"] = sum(1 for n in ray.nodes() if n["Alive"])
        report["cluster_up_s"] = round(time.monotonic() - started, 1)

        # 1. three finite streams into three files; the actors' endpoints into a file_sd targets file
        seen: dict = {}
        outcome = RayFleet(
            load_fleet(workdir / "fleet.toml").streams,
            address=cluster.address,
            targets_file=str(workdir / "targets.json"),
        ).run(on_started=lambda fleet: seen.update(fleet.infos()))
        report["finite"] = {s.name: s.error for s in outcome.streams}
        report["finite_nodes"] = len({info.node_id for info in seen.values()})
        report["actors"] = {name: list(info.streams) for name, info in seen.items()}
        report["targets"] = json.loads((workdir / "targets.json").read_text())
        report["endpoints"] = {name: f"{info.host}:{info.port}" for name, info in seen.items()}

        # 2. an endless stream whose actor process is killed: Ray restarts it, its output resumes
        fleet = RayFleet(load_fleet(workdir / "live.toml").streams, address=cluster.address, duration=120)
        fleet.start()
        try:
            first = fleet.infos(timeout=120)["rifestream-live"]
            wait_for("frames before the kill", lambda: output_frames(first.host, first.port) >= 30, 60)
            os.kill(first.pid, signal.SIGKILL)  # a process of the cluster this script started
            killed_at = time.monotonic()
            again = wait_for(
                "the restarted actor",
                lambda: (i := fleet.infos(timeout=5)["rifestream-live"]).pid != first.pid and i,
                90,
            )
            wait_for("frames after the restart", lambda: output_frames(again.host, again.port) >= 30, 60)
            report["resumed_after_s"] = round(time.monotonic() - killed_at, 1)
            report["restart"] = {"first_pid": first.pid, "second_pid": again.pid, "restarted": again.restarted}
        finally:
            fleet.stop()
        report["live"] = {s.name: s.error for s in fleet.wait().streams}
        fleet.close()

        # 3. offline: the files of WORKDIR/in spread over the cluster's workers by `interpolate --ray`
        ray.shutdown()  # the command is a driver of its own
        command = [sys.executable, "-m", "rifestream", "interpolate", str(workdir / "in"), str(workdir / "many"),
                   "--ray", cluster.address, "--device", "cpu", "--no-progress"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        report["many"] = {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr[-3000:]}
    finally:
        ray.shutdown()
        cluster.shutdown()
    report["total_s"] = round(time.monotonic() - started, 1)
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))), flush=True)
