"""`.ci/run`'s clean-up after a crashed test run (issue 19, item 13): it stops the servers the test helpers
started, by the PIDs they recorded, and nothing else — not even a process whose command line carries the
test-server mark, which the old `pkill -f rifestream-test-server` would have killed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import MARK, PID_FILE_ENV, NginxRtmp, ServerUnavailable, _accepts, process_start_time

REPO = Path(__file__).resolve().parents[1]
STOP = REPO / ".ci" / "stop_test_servers"


@pytest.mark.slow
def test_the_clean_up_stops_the_recorded_servers_by_pid_and_nothing_else(tmp_path, monkeypatch):
    pid_file = tmp_path / "pids"
    monkeypatch.setenv(PID_FILE_ENV, str(pid_file))
    try:
        nginx = NginxRtmp(tmp_path).start()
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    # Not the tests' own: same mark in its command line, and once with its PID in the file but another start
    # time (what a PID reused by another program after the test server exited looks like).
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", MARK])
    try:
        with open(pid_file, "a") as pids:
            pids.write(f"{bystander.pid} 1\n")
        assert process_start_time(bystander.pid) != "1"
        recorded = [line.split() for line in pid_file.read_text().splitlines()]
        assert [nginx.proc.pid, process_start_time(nginx.proc.pid)] in [[int(p), s] for p, s in recorded]

        started = time.monotonic()
        done = subprocess.run([str(STOP), str(pid_file)], capture_output=True, text=True, timeout=30)
        took = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        assert nginx.proc.wait(timeout=5) is not None  # nginx got SIGTERM and exited
        assert not _accepts(nginx.port)
        assert bystander.poll() is None  # untouched
        assert took < 3.0, took  # nginx exits on SIGTERM at once: no wait for the SIGKILL stage
    finally:
        nginx.stop()
        bystander.kill()
        bystander.wait(timeout=5)


def test_the_clean_up_of_a_missing_or_empty_pid_file_does_nothing(tmp_path):
    for path in (tmp_path / "absent", tmp_path / "empty"):
        if path.name == "empty":
            path.write_text("")
        done = subprocess.run([str(STOP), str(path)], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0 and done.stderr == ""


def test_ci_run_no_longer_kills_by_name():
    script = (REPO / ".ci" / "run").read_text()
    assert "pkill" not in script and "killall" not in script
    assert ".ci/stop_test_servers" in script and f"export {PID_FILE_ENV}" in script


@pytest.mark.slow
def test_a_recorded_process_that_ignores_sigterm_gets_sigkill_after_five_seconds(tmp_path, monkeypatch):
    from tests.servers import record_pid

    pid_file = tmp_path / "pids"
    monkeypatch.setenv(PID_FILE_ENV, str(pid_file))
    stubborn = record_pid(
        subprocess.Popen(
            [sys.executable, "-c", "import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             "print('ready', flush=True)\ntime.sleep(120)"],
            stdout=subprocess.PIPE,
            text=True,
        )
    )  # fmt: skip
    try:
        assert stubborn.stdout.readline().strip() == "ready"  # its SIGTERM handler is set
        started = time.monotonic()
        subprocess.run([str(STOP), str(pid_file)], timeout=30, check=True)
        assert stubborn.wait(timeout=5) == -9
        assert 5.0 <= time.monotonic() - started < 7.0  # 5 s of grace after SIGTERM, then SIGKILL
    finally:
        stubborn.kill()
        stubborn.wait(timeout=5)
