"""The fleet on a real two-node Ray cluster on loopback: three test-scene streams as actors spread over
both nodes into three files (2x their input at the right times), a file_sd targets file of their
metrics, an actor whose process is killed restarted by Ray, its output resumed; and
``rifestream interpolate FOLDER OUT --ray`` spreading files over the cluster.

Ray advertises the machine's first non-loopback address even when told 127.0.0.1, so the cluster
and the fleet run inside a fresh network namespace with only loopback (``unshare -n``): traffic
cannot leave the machine. The test skips only where ``unshare -n`` is refused or Ray is missing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from rifestream.config import load_fleet
from rifestream.pipeline.fleet_ray import groups_of, restart_path
from tests.test_fleet import assert_doubled, frame_times
from tests.test_fleet_offline import CLIPS, make_clips

ROOT = Path(__file__).resolve().parents[1]


def loopback_namespace_refusal() -> str | None:
    """Why a test cannot run in a loopback-only namespace here (None: it can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux, iproute2) is not installed"
    probe = subprocess.run(
        ["unshare", "-n", "bash", "-c", "ip link set lo up && ip -o link | wc -l"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"unshare -n is refused here ({probe.stderr.strip() or probe.returncode}): needs root or user namespaces"
    return None


@pytest.fixture(scope="module")
def loopback_only() -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    why = loopback_namespace_refusal()
    if why is not None:
        pytest.skip(why)


FLEET = """
[defaults]
latency = {{ force_step = "blend" }}
reconnect = {{ start_timeout_s = 30 }}

[[streams]]
name = "north"
source = {{ url = "testsrc:?size=96x64&fps=30&frames=45" }}
sinks = ["{dir}/north.mp4"]

[[streams]]
name = "south"
source = {{ url = "testsrc:?size=128x72&fps=30&frames=60" }}
sinks = ["{dir}/south.mp4"]

[[streams]]
name = "east"
source = {{ url = "testsrc:?size=96x64&fps=30&frames=30" }}
sinks = ["{dir}/east.mp4"]
"""

LIVE = """
[[streams]]
name = "live"
source = {{ url = "testsrc:?size=96x64&fps=30" }}
sinks = ["{dir}/live.mkv"]
latency = {{ force_step = "blend" }}
"""


@pytest.mark.slow
def test_a_fleet_on_a_two_node_ray_cluster_with_an_actor_killed(tmp_path: Path, loopback_only) -> None:
    (tmp_path / "fleet.toml").write_text(FLEET.format(dir=tmp_path))
    (tmp_path / "live.toml").write_text(LIVE.format(dir=tmp_path))
    make_clips(tmp_path / "in", CLIPS)
    script = f"ip link set lo up; exec {sys.executable} {ROOT / 'tests' / 'fleet_ray_cluster.py'} {tmp_path}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen(
        ["unshare", "-n", "bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: on a timeout, it and only it is stopped
    )
    try:
        out, err = proc.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the Ray cluster test did not finish in 420 s:\n{err[-3000:]}")
    assert proc.returncode == 0, err[-5000:]
    report = json.loads(out.strip().splitlines()[-1])

    assert report["nodes"] == 2
    # three actors, spread over both nodes, every file 2x its input at 1/60 s steps
    assert report["finite"] == {"north": None, "south": None, "east": None}
    assert report["finite_nodes"] == 2
    for name, frames in (("north", 45), ("south", 60), ("east", 30)):
        assert_doubled(tmp_path / f"{name}.mp4", frames)
    assert report["actors"] == {f"rifestream-{name}": [name] for name in ("north", "south", "east")}
    # one scrape target per actor, on loopback (the namespace has nothing else)
    targets = {group["labels"]["rifestream_actor"]: group["targets"] for group in report["targets"]}
    assert targets == {name: [where] for name, where in report["endpoints"].items()}
    assert all(where.startswith("127.0.0.1:") for (where,) in targets.values())

    # the killed actor came back in a new process and its stream went on in a new file
    restart = report["restart"]
    assert restart["restarted"] is True and restart["second_pid"] != restart["first_pid"]
    assert report["live"] == {"live": None}
    # (30 frames had gone out before the kill; what of them the muxer had written stays as it was)
    assert (tmp_path / "live.mkv").exists()
    after = frame_times(tmp_path / "live.restart1.mkv")  # closed cleanly by the stop
    assert len(after) >= 30
    steps = [b - a for a, b in zip(after, after[1:], strict=False)]
    assert all(abs(step - Fraction(1, 60)) <= Fraction(1, 1000) for step in steps)
    # offline: every clip of in/ interpolated on the cluster into many/, each 2x its frames
    many = report["many"]
    assert many["returncode"] == 0, many["stderr"]
    assert f"interpolate: {len(CLIPS)} of {len(CLIPS)} files done" in many["stdout"]
    for name, frames in CLIPS.items():
        assert_doubled(tmp_path / "many" / name, frames)
    print(f"ray cluster up in {report['cluster_up_s']} s; resumed {report['resumed_after_s']} s after the kill; "
          f"total {report['total_s']} s")  # fmt: skip


def test_streams_share_an_actor_only_with_streams_of_their_engine(tmp_path: Path) -> None:
    body = ""
    for name, device in (("a", "cpu"), ("b", "cuda"), ("c", "cpu"), ("d", "cpu"), ("e", "cuda")):
        body += f'[[streams]]\nname = "{name}"\nsource = {{ url = "testsrc:" }}\nsinks = ["{name}.mp4"]\n'
        body += f'engine = {{ device = "{device}" }}\n'
    (tmp_path / "fleet.toml").write_text(body)
    streams = load_fleet(tmp_path / "fleet.toml").streams
    names = [[s.name for s in group] for group in groups_of(streams, 2)]
    assert names == [["a", "c"], ["b", "e"], ["d"]]
    assert [[s.name for s in group] for group in groups_of(streams, 1)] == [["a"], ["b"], ["c"], ["d"], ["e"]]
    assert restart_path("/rec/cam.mkv", 2) == "/rec/cam.restart2.mkv"
