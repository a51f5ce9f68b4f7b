"""Shared fixtures: every test must leave no thread, actor or system behind.

JAX's compilation cache is the run's own, under .pytest_cache, set before anything imports
JAX: the nodes and demos that tests start through the console script would otherwise
write to the user's ``~/.cache/edgeloop/jax``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import settings

from edgeloop.actors import ActorSystem
from edgeloop.clock import VirtualClock
from tests.apps.jax_env import CACHE

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(CACHE))

settings.register_profile("ci", deadline=None, max_examples=100)
settings.load_profile("ci")

LEAK_GRACE = 5.0
"""Seconds a test's threads get to finish after it returns, before they count as leaked."""


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail the test if it leaves threads running (actors, clocks, sockets' helpers)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + LEAK_GRACE
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leaked:
        thread.join(max(0.0, deadline - time.monotonic()))
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked threads: {still}"


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    """Route structlog to a list so tests stay readable; assert with capture_logs()."""
    structlog.reset_defaults()
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.testing.LogCapture()],
        cache_logger_on_first_use=False,
    )
    yield
    structlog.reset_defaults()


@pytest.fixture
def system() -> Iterator[ActorSystem]:
    """A fresh actor system on a real clock, closed after the test."""
    actor_system = ActorSystem("test")
    yield actor_system
    stuck = actor_system.close()
    assert not stuck, f"actors did not stop: {stuck}"


@pytest.fixture
def clock() -> VirtualClock:
    """A clock that moves only when the test advances it."""
    return VirtualClock()


@pytest.fixture
def virtual_system(clock: VirtualClock) -> Iterator[ActorSystem]:
    """An actor system on a VirtualClock (backoff and restart windows under test control)."""
    actor_system = ActorSystem("test", clock=clock)
    yield actor_system
    stuck = actor_system.close()
    assert not stuck, f"actors did not stop: {stuck}"
