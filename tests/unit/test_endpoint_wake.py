"""The endpoint's wake-up pipe never strands a wake, whatever a sender does while the I/O
thread drains the pipe (a white-box regression test: no thread, no socket)."""

from __future__ import annotations

import os
import select
from collections.abc import Iterator

import pytest

from edgeloop.transport import Endpoint, EndpointConfig, LinkConfig, _endpoint


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """An endpoint that is never started, with its wake-up pipe opened by hand."""
    ep = Endpoint(EndpointConfig(LinkConfig("node-a")), on_message=lambda peer, message: None)
    ep._wake_r, ep._wake_w = os.pipe()
    os.set_blocking(ep._wake_r, False)
    os.set_blocking(ep._wake_w, False)
    yield ep
    ep._release()


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_a_wake_during_the_drain_is_never_lost(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sender that wakes the thread just as it reads the pipe leaves either the flag
    clear or a byte in the pipe, never a set flag over an empty pipe (which would make
    every later sender skip its wake and wait for the poll timeout)."""
    endpoint._wake()
    assert endpoint._wake_pending
    assert _readable(endpoint._wake_r)
    real_read = os.read

    def racing_read(fd: int, n: int) -> bytes:
        endpoint._wake()  # another thread's send, just before the thread's read
        return real_read(fd, n)

    monkeypatch.setattr(_endpoint.os, "read", racing_read)
    endpoint._drain_wake()
    monkeypatch.undo()
    assert not endpoint._wake_pending or _readable(endpoint._wake_r)
    endpoint._wake()  # and the next sender does wake the thread
    assert endpoint._wake_pending
    assert _readable(endpoint._wake_r)


def test_drained_pipe_clears_the_flag(endpoint: Endpoint) -> None:
    """After a drain with no sender about, the flag is clear and the pipe empty."""
    endpoint._wake()
    endpoint._wake()  # a second wake while one is pending writes nothing
    endpoint._drain_wake()
    assert not endpoint._wake_pending
    assert not _readable(endpoint._wake_r)
