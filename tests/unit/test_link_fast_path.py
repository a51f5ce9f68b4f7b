"""The link's hot paths (``send_ready``, ``receive_data``) agree with ``send`` and
``receive`` in every state, on both sides, for data and control messages alike.

Two identical links are driven with the same calls, one through the full methods, the
other through the fast path (falling back to the full method when it declines); their
effects, states and statistics must stay identical.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from edgeloop.errors import LinkStateError
from edgeloop.transport import (
    Close,
    Deliver,
    Effect,
    Heartbeat,
    Hello,
    Link,
    LinkConfig,
    LinkSide,
    LinkState,
    Transmit,
    Welcome,
)


@dataclasses.dataclass(frozen=True)
class Data:
    """An opaque data message."""

    n: int


class FixedRandom:
    """A random source that always draws 0."""

    def random(self) -> float:
        return 0.0


NODE = LinkConfig(id="edge-a")
DEVICE = LinkConfig(id="cam-01", role="device")


def _ready_pair() -> tuple[Link, Link]:
    connector = Link.connector(DEVICE, rng=FixedRandom())
    acceptor = Link.acceptor(NODE)
    [hello] = [e.message for e in connector.connect(0.0) if isinstance(e, Transmit)]
    welcome = next(e.message for e in acceptor.receive(hello, 0.0) if isinstance(e, Transmit))
    connector.receive(welcome, 0.0)
    assert connector.state is acceptor.state is LinkState.READY
    return connector, acceptor


def _in_state(side: LinkSide, state: LinkState) -> Link:
    """A link of ``side`` brought to ``state`` through its public calls only."""
    if state in {LinkState.IDLE, LinkState.CONNECTING}:
        if side is LinkSide.ACCEPTOR:
            return Link.acceptor(NODE)
        fresh = Link.connector(DEVICE, rng=FixedRandom())
        if state is LinkState.CONNECTING:
            fresh.connect(0.0)
        return fresh
    connector, acceptor = _ready_pair()
    link = connector if side is LinkSide.CONNECTOR else acceptor
    if state is LinkState.CLOSING:
        link.close(0.5)
    elif state is LinkState.CLOSED:
        link.receive(Close(reason="bye"), 0.5)
    elif state is LinkState.LOST:
        link.transport_lost(0.5)
    assert link.state is state
    return link


STATES = [
    (side, state)
    for side in LinkSide
    for state in LinkState
    if not (side is LinkSide.ACCEPTOR and state is LinkState.CONNECTING)
]
MESSAGES = [
    Data(1),
    Heartbeat(seq=0),
    Close(reason="x"),
    Hello(peer="cam-01", role="device", protocol=1),
    Welcome(
        peer="edge-a", protocol=1, capabilities=(), heartbeat_interval=1.0, liveness_timeout=3.0
    ),
]


def _full_send(link: Link, message: object) -> list[Effect] | str:
    try:
        return link.send(message, 1.0)
    except LinkStateError as error:
        return f"LinkStateError: {error}"


def _fast_send(link: Link, message: object) -> list[Effect] | str:
    if link.send_ready(message, 1.0):
        return [Transmit(message)]
    return _full_send(link, message)


def _full_receive(link: Link, message: object) -> list[Effect]:
    return link.receive(message, 1.0)


def _fast_receive(link: Link, message: object) -> list[Effect]:
    if link.receive_data(message, 1.0):
        return [Deliver(message)]
    return link.receive(message, 1.0)


@pytest.mark.parametrize(("side", "state"), STATES)
@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize(
    ("full", "fast"),
    [(_full_send, _fast_send), (_full_receive, _fast_receive)],
    ids=["send", "receive"],
)
def test_fast_path_matches_the_full_method(
    side: LinkSide,
    state: LinkState,
    message: object,
    full: Callable[[Link, object], object],
    fast: Callable[[Link, object], object],
) -> None:
    """The fast path leaves the same effects, state and statistics as the full method."""
    a, b = _in_state(side, state), _in_state(side, state)
    assert full(a, message) == fast(b, message)
    assert a.state is b.state
    assert a.statistics() == b.statistics()


@pytest.mark.parametrize(("side", "state"), STATES)
def test_fast_paths_take_data_exactly_where_the_table_allows(
    side: LinkSide, state: LinkState
) -> None:
    """send_ready takes data only when ready; receive_data when ready or closing; neither
    ever takes a control message."""
    link = _in_state(side, state)
    assert link.send_ready(Data(1), 1.0) is (state is LinkState.READY)
    assert link.receive_data(Data(2), 1.0) is (state in {LinkState.READY, LinkState.CLOSING})
    for control in MESSAGES[1:]:
        assert not link.send_ready(control, 1.0)
        assert not link.receive_data(control, 1.0)
