"""Waiting helpers shared by the test suites: nothing here sleeps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

WAIT = 5.0
"""Seconds a test waits for something that should happen promptly (generous for slow CI)."""


def wait_for(predicate: Callable[[], object], timeout: float = WAIT, what: str = "") -> None:
    """Return once ``predicate()`` is true; fail the test if it is not within ``timeout``.

    Polls every 5 ms by waiting on an event that is never set, so the wait is a timeout
    of a synchronisation primitive rather than ``time.sleep``.
    """
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout} s: {what or predicate!r}")
        tick.wait(0.005)
