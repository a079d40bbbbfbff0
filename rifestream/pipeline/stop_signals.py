"""SIGINT/SIGTERM as a stop request: the handlers on a running event loop (the live job, the fleet) and
the exit at once on a second signal (those two and the offline job)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import NoReturn

log = logging.getLogger(__name__)


def install_stop_handlers(loop: asyncio.AbstractEventLoop, on_signal: Callable[[int], None]) -> list[int]:
    """Have SIGINT and SIGTERM call ``on_signal(sig)`` on ``loop``; return the signals installed, which the
    caller removes (``loop.remove_signal_handler``) when its job ends.

    None outside the main thread (only it receives signals) and none on event loops without signal
    handlers (Windows').
    """
    if threading.current_thread() is not threading.main_thread():
        return []
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError):
            continue
        installed.append(sig)
    return installed


def exit_at_once(sig: int, unfinished: str = "the outputs") -> NoReturn:
    """A second SIGINT/SIGTERM while the clean stop runs: exit now, with the shell's status for that signal
    (128 + its number), leaving ``unfinished`` as they are."""
    log.warning("second %s: exiting without finishing %s", signal.Signals(sig).name, unfinished)
    logging.shutdown()
    os._exit(128 + sig)
