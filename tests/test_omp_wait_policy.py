"""Importing rifestream makes torch's OpenMP threads sleep between parallel ops unless the user chose.

On a CPU the models' frames are made by OpenCV and OpenVINO threads right after the frame loop's
torch ops; spinning OpenMP threads took their cores (rifestream/__init__.py). libgomp reads the
policy when torch loads it, so each check runs in a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = "import os, rifestream, torch; print(os.environ['OMP_WAIT_POLICY'])"


def _policy(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, env=env)
    return out.stdout.strip()


def test_torch_threads_sleep_between_ops_by_default() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy(env) == "PASSIVE"


def test_a_policy_the_user_set_is_kept() -> None:
    assert _policy({**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
