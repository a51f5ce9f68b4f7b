"""The link state machine as data: states, triggers and the transition table.

Rules (after h11's ``_state.py``):

1. Everything that changes a link's state lives in :data:`TRANSITIONS`. This module
   knows no messages, sockets, clocks or queues; :class:`~edgeloop.transport.Link`
   turns a message, a call or a timer into a :class:`Trigger`, looks the next state up
   here, and only then performs the effects.
2. A link has one side for its whole life. The *connector* (the DEALER side) sends
   ``Hello`` and waits for ``Welcome``; the *acceptor* (the ROUTER side) waits for
   ``Hello`` and answers ``Welcome``. The sides differ only in the ``IDLE``,
   ``CONNECTING`` and ``LOST`` rows; ``READY``, ``CLOSING`` and ``CLOSED`` are shared.
3. A trigger with no entry for the current state is illegal. A *local* trigger (a call
   this side made) raises :class:`~edgeloop.errors.LinkStateError` and changes nothing:
   that is a bug in the caller. A *remote* trigger (a message from the peer) changes
   nothing either, but becomes a counted ``Violation`` effect, never an exception: a
   misbehaving peer must not crash the node.
4. Data flows only in ``READY`` (and inbound while ``CLOSING``, for messages already in
   flight). Sending in any other live state queues the message, bounded; entering
   ``READY`` flushes the queue in order before anything sent later.
5. Timer triggers (``*_TIMEOUT``, ``*_DUE``) are raised only by ``Link.tick(now)``, and
   only in the rows listed here; nothing in the link reads a clock.
6. ``LOST`` is recoverable (the connector reconnects after a backoff, the acceptor takes
   a fresh ``Hello``); ``CLOSED`` is terminal, reached only by a ``Close`` from either
   side, a rejected handshake, or a timed-out close.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "LinkState",
    "LinkSide",
    "Trigger",
    "LOCAL_TRIGGERS",
    "REMOTE_TRIGGERS",
    "TIMER_TRIGGERS",
    "TRANSITIONS",
    "next_state",
]


class LinkState(StrEnum):
    """Where a link is in its life."""

    IDLE = "idle"  # created; the connector has not connected, the acceptor awaits Hello
    CONNECTING = "connecting"  # connector only: Hello sent, Welcome awaited
    READY = "ready"  # handshake done: data flows both ways, heartbeats run
    CLOSING = "closing"  # this side sent Close and awaits the peer's Close
    CLOSED = "closed"  # finished for good; a new link is a new object
    LOST = "lost"  # no traffic within the timeout, or the transport dropped


class LinkSide(StrEnum):
    """Which end of the link this side is (not to be confused with the peer's *role*,
    ``node`` or ``device``, which it announces in ``Hello``)."""

    CONNECTOR = "connector"  # DEALER: connects, sends Hello, reconnects with backoff
    ACCEPTOR = "acceptor"  # ROUTER: binds, answers Hello with Welcome


class Trigger(StrEnum):
    """Everything that can move a link: local calls, remote messages, timers."""

    # local: calls made by this side
    CONNECT = "connect"
    SEND = "send"
    CLOSE = "close"
    TRANSPORT_LOST = "transport_lost"
    # remote: messages from the peer (the *_REJECTED ones failed validation)
    HELLO = "hello"
    HELLO_REJECTED = "hello_rejected"
    WELCOME = "welcome"
    WELCOME_REJECTED = "welcome_rejected"
    HEARTBEAT = "heartbeat"
    DATA = "data"
    PEER_CLOSE = "peer_close"
    # timers: raised by tick(now) only
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    HEARTBEAT_DUE = "heartbeat_due"
    LIVENESS_TIMEOUT = "liveness_timeout"
    CLOSE_TIMEOUT = "close_timeout"
    RECONNECT_DUE = "reconnect_due"


LOCAL_TRIGGERS = frozenset({Trigger.CONNECT, Trigger.SEND, Trigger.CLOSE, Trigger.TRANSPORT_LOST})
REMOTE_TRIGGERS = frozenset(
    {
        Trigger.HELLO,
        Trigger.HELLO_REJECTED,
        Trigger.WELCOME,
        Trigger.WELCOME_REJECTED,
        Trigger.HEARTBEAT,
        Trigger.DATA,
        Trigger.PEER_CLOSE,
    }
)
TIMER_TRIGGERS = frozenset(
    {
        Trigger.HANDSHAKE_TIMEOUT,
        Trigger.HEARTBEAT_DUE,
        Trigger.LIVENESS_TIMEOUT,
        Trigger.CLOSE_TIMEOUT,
        Trigger.RECONNECT_DUE,
    }
)

_S = LinkState
_T = Trigger

# Rows shared by both sides (rule 2).
_READY: dict[Trigger, LinkState] = {
    _T.SEND: _S.READY,
    _T.DATA: _S.READY,
    _T.HEARTBEAT: _S.READY,
    _T.HEARTBEAT_DUE: _S.READY,
    _T.CLOSE: _S.CLOSING,
    _T.PEER_CLOSE: _S.CLOSED,
    _T.LIVENESS_TIMEOUT: _S.LOST,
    _T.TRANSPORT_LOST: _S.LOST,
}
_CLOSING: dict[Trigger, LinkState] = {
    _T.CLOSE: _S.CLOSING,  # closing twice is a no-op
    _T.DATA: _S.CLOSING,  # still in flight when we sent Close: delivered
    _T.HEARTBEAT: _S.CLOSING,
    _T.PEER_CLOSE: _S.CLOSED,
    _T.CLOSE_TIMEOUT: _S.CLOSED,
    _T.TRANSPORT_LOST: _S.CLOSED,
}
_CLOSED: dict[Trigger, LinkState] = {
    _T.CLOSE: _S.CLOSED,  # closing a closed link is a no-op
    _T.PEER_CLOSE: _S.CLOSED,  # the peer's late answer to our Close
    _T.TRANSPORT_LOST: _S.CLOSED,
}

_CONNECTOR: dict[LinkState, dict[Trigger, LinkState]] = {
    _S.IDLE: {
        _T.CONNECT: _S.CONNECTING,
        _T.SEND: _S.IDLE,  # queued
        _T.CLOSE: _S.CLOSED,
        _T.TRANSPORT_LOST: _S.IDLE,
    },
    _S.CONNECTING: {
        _T.SEND: _S.CONNECTING,  # queued
        _T.WELCOME: _S.READY,
        _T.WELCOME_REJECTED: _S.CLOSED,
        _T.PEER_CLOSE: _S.CLOSED,  # the acceptor refused our Hello
        _T.CLOSE: _S.CLOSED,
        _T.HANDSHAKE_TIMEOUT: _S.LOST,
        _T.TRANSPORT_LOST: _S.LOST,
    },
    _S.READY: _READY,
    _S.CLOSING: _CLOSING,
    _S.CLOSED: _CLOSED,
    _S.LOST: {
        _T.SEND: _S.LOST,  # queued until the reconnect succeeds
        _T.RECONNECT_DUE: _S.CONNECTING,
        _T.CLOSE: _S.CLOSED,
        _T.TRANSPORT_LOST: _S.LOST,
    },
}

_ACCEPTOR: dict[LinkState, dict[Trigger, LinkState]] = {
    _S.CONNECTING: {},  # never entered: an acceptor does not connect
    _S.IDLE: {
        _T.HELLO: _S.READY,
        _T.HELLO_REJECTED: _S.CLOSED,
        _T.SEND: _S.IDLE,  # queued
        _T.PEER_CLOSE: _S.CLOSED,
        _T.CLOSE: _S.CLOSED,
        _T.TRANSPORT_LOST: _S.IDLE,
    },
    _S.READY: {
        **_READY,
        _T.HELLO: _S.READY,  # the peer restarted before we noticed: handshake again
        _T.HELLO_REJECTED: _S.CLOSED,
    },
    _S.CLOSING: _CLOSING,
    _S.CLOSED: _CLOSED,
    _S.LOST: {
        _T.HELLO: _S.READY,  # the peer came back
        _T.HELLO_REJECTED: _S.CLOSED,
        _T.SEND: _S.LOST,  # queued until the peer comes back
        _T.CLOSE: _S.CLOSED,
        _T.TRANSPORT_LOST: _S.LOST,
    },
}


def _freeze(
    table: dict[LinkState, dict[Trigger, LinkState]],
) -> Mapping[LinkState, Mapping[Trigger, LinkState]]:
    return MappingProxyType({state: MappingProxyType(dict(row)) for state, row in table.items()})


TRANSITIONS: Mapping[LinkSide, Mapping[LinkState, Mapping[Trigger, LinkState]]] = MappingProxyType(
    {LinkSide.CONNECTOR: _freeze(_CONNECTOR), LinkSide.ACCEPTOR: _freeze(_ACCEPTOR)}
)
"""``TRANSITIONS[side][state][trigger]`` is the next state; a missing key is illegal."""


def next_state(side: LinkSide, state: LinkState, trigger: Trigger) -> LinkState | None:
    """The state ``trigger`` leads to from ``state``, or ``None`` if it is illegal there."""
    return TRANSITIONS[side][state].get(trigger)
