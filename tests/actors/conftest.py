"""Fixtures for the actor-core tests."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from edgeloop.actors import ActorSystem


@pytest.fixture
def gate(system: ActorSystem) -> Iterator[threading.Event]:
    """An event blocking handlers wait on; opened before ``system`` closes, so a test that
    fails while an actor is blocked still shuts down cleanly."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Make CPython switch threads as often as it can, to bring races out."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)
