"""Fixtures for the bulk-lane tests: every test must leave no segment and no descriptor."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from multiprocessing import resource_tracker
from pathlib import Path

import pytest
import zmq

from edgeloop.transport.bulk import SEGMENT_PREFIX
from tests.helpers import wait_for

SHM = Path("/dev/shm")


def segments() -> set[str]:
    """The bulk-lane rings that exist now (their names under /dev/shm)."""
    return {path.name for path in SHM.glob(f"{SEGMENT_PREFIX}*")}


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="session", autouse=True)
def resource_tracker_running() -> None:
    """Start the shared-memory resource tracker up front: its pipe is the one descriptor a
    process keeps for good after its first segment, and must not count as a leak."""
    resource_tracker.ensure_running()


@pytest.fixture(scope="session", autouse=True)
def zmq_garbage_collector_running() -> None:
    """Start pyzmq's garbage-collector thread up front: the first zero-copy send in a
    process starts it (a thread, a context and its descriptors, kept for good), and it
    must not count as a leak of the test that happens to send first."""
    zmq.Frame(bytes(zmq.COPY_THRESHOLD), copy=False)  # a zero-copy frame: starts it


@pytest.fixture(autouse=True)
def no_leaked_segments_or_fds() -> Iterator[None]:
    """Fail the test if it leaves a bulk-lane segment in /dev/shm or a file descriptor open."""
    gc.collect()
    rings, fds = segments(), open_fds()
    yield
    gc.collect()
    wait_for(lambda: segments() <= rings, what=f"segments left: {segments() - rings}")
    wait_for(lambda: open_fds() <= fds, what=f"descriptors: {open_fds()} now, {fds} before")
