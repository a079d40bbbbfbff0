"""SIGINT/SIGTERM as a stop request (pipeline/stop_signals.py): the loop handlers and the exit on a second signal."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading

from rifestream.pipeline.stop_signals import install_stop_handlers


def test_a_signal_reaches_the_handler_on_the_loop_and_the_handlers_come_off() -> None:
    loop = asyncio.new_event_loop()
    received: list[int] = []
    try:
        installed = install_stop_handlers(loop, received.append)
        assert installed == [signal.SIGINT, signal.SIGTERM]
        loop.call_soon(os.kill, os.getpid(), signal.SIGTERM)
        loop.run_until_complete(asyncio.sleep(0.2))  # the handler runs on the loop within this
        assert received == [signal.SIGTERM]
        for sig in installed:
            assert loop.remove_signal_handler(sig)
    finally:
        loop.close()


def test_no_handlers_outside_the_main_thread() -> None:
    installed: list[list[int]] = []

    def off_main() -> None:
        loop = asyncio.new_event_loop()
        try:
            installed.append(install_stop_handlers(loop, lambda sig: None))
        finally:
            loop.close()

    thread = threading.Thread(target=off_main)
    thread.start()
    thread.join(timeout=10)
    assert installed == [[]]


def test_exit_at_once_exits_with_the_shells_status_for_the_signal() -> None:
    code = "import signal; from rifestream.pipeline.stop_signals import exit_at_once; exit_at_once(signal.SIGINT)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGINT
    assert "second SIGINT: exiting without finishing the outputs" in proc.stderr
