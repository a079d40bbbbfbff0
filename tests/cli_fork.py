"""Run many ``rifestream`` commands quickly, each as its own process with its own timeout.

One helper process imports the package (and torch) once, then forks a child per command that runs
``rifestream.cli.main(ARGS)`` exactly as ``python -m rifestream ARGS`` would, with stdout and stderr
in a log file. A child past its timeout is killed and reported as timed out (a hang). Forking from
a fresh helper, not from pytest, keeps the children clear of thread pools that other tests started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_HELPER = r"""
import json, os, select, signal, sys, time, traceback
import torch
torch.set_num_threads(1)
import rifestream.cli as cli
import rifestream.engine, rifestream.io.sinks, rifestream.io.sources, rifestream.pipeline.offline  # noqa: E401

def child(argv, log):
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

cases = json.load(open(sys.argv[1]))
results = []
for case in cases:
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        child(case["argv"], case["log"])
    pidfd = os.pidfd_open(pid)
    ready, _, _ = select.select([pidfd], [], [], case["timeout"])
    timed_out = not ready
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(pidfd)
    results.append({"rc": os.waitstatus_to_exitcode(status), "seconds": time.monotonic() - start,
                    "timed_out": timed_out})
json.dump(results, open(sys.argv[2], "w"))
"""


@dataclass
class CommandResult:
    argv: list[str]
    returncode: int
    output: str  # stdout and stderr together
    seconds: float
    timed_out: bool


def run_commands(commands: list[list[str]], workdir: Path, timeout: float = 30.0) -> list[CommandResult]:
    """Run each ``rifestream`` argument list in its own forked process; results in the same order."""
    workdir.mkdir(parents=True, exist_ok=True)
    logs = [workdir / f"command-{k}.log" for k in range(len(commands))]
    cases = [{"argv": argv, "log": str(log), "timeout": timeout} for argv, log in zip(commands, logs, strict=True)]
    cases_file, results_file = workdir / "cases.json", workdir / "results.json"
    cases_file.write_text(json.dumps(cases))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-c", _HELPER, str(cases_file), str(results_file)],
        check=True,
        env=env,
        timeout=60 + timeout * len(commands),
    )
    results = json.loads(results_file.read_text())
    return [
        CommandResult(argv, r["rc"], log.read_text(errors="replace"), r["seconds"], r["timed_out"])
        for argv, log, r in zip(commands, logs, results, strict=True)
    ]
