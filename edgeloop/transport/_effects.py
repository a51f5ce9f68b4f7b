"""What a link asks its adapter to do, and what it reports about itself.

Every call on a :class:`~edgeloop.transport.Link` returns a list of effects, in the
order the adapter must apply them. Effects are frozen values; the adapter matches on
their type::

    for effect in link.receive(message, now):
        match effect:
            case Transmit(message=m):      socket.send_multipart([identity, encode(m)])
            case Deliver(message=m):       node.route(m)
            case Ready() | Lost() | Closed():  update watchers, fail pending asks
            case Dropped() | Refused():    dead letters
            case Violation():              count, log (rate-limited), answer if possible
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

from edgeloop.transport._state import LinkSide, LinkState

__all__ = [
    "Transmit",
    "Deliver",
    "Queued",
    "Dropped",
    "Refused",
    "Ready",
    "Lost",
    "Reconnect",
    "Closed",
    "Violation",
    "Effect",
    "LostReason",
    "LinkStatistics",
]

LostReason = Literal["liveness_timeout", "handshake_timeout", "transport_lost", "peer_restarted"]


@dataclasses.dataclass(frozen=True, slots=True)
class Transmit:
    """Put ``message`` (control or data) on the connection to the peer, in this order."""

    message: object


@dataclasses.dataclass(frozen=True, slots=True)
class Deliver:
    """A data message from the peer, for the node to route."""

    message: object


@dataclasses.dataclass(frozen=True, slots=True)
class Queued:
    """``message`` waits in the send queue (now ``depth`` long) until the link is ready."""

    message: object
    depth: int


@dataclasses.dataclass(frozen=True, slots=True)
class Dropped:
    """These messages will never be sent: the queue overflowed, or the link closed."""

    messages: tuple[object, ...]
    reason: Literal["overflow", "closed"]


@dataclasses.dataclass(frozen=True, slots=True)
class Refused:
    """The send queue is full and its policy is ``fail``: tell the sender now."""

    message: object
    reason: Literal["queue_full"] = "queue_full"


@dataclasses.dataclass(frozen=True, slots=True)
class Ready:
    """The handshake succeeded; data flows. ``reconnected`` if the link was ready before."""

    peer: str
    role: str
    protocol: int
    capabilities: frozenset[str]
    heartbeat_interval: float
    liveness_timeout: float
    reconnected: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Lost:
    """The peer is declared lost: fail its pending asks, send ``Down`` to its watchers.

    ``last_seen`` is when it was last heard from (``None``: never). A connector will
    reconnect at ``reconnect_at``; an acceptor waits for the peer's next ``Hello``.
    ``peer_restarted``: an acceptor got a fresh ``Hello`` on a ready link, so the peer
    dropped its side (or restarted) unnoticed; a ``Ready`` follows in the same list.
    """

    reason: LostReason
    last_seen: float | None
    reconnect_at: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class Reconnect:
    """Connector only: discard the old connection and open a new one now; the ``Hello``
    to send on it follows as a :class:`Transmit`. ``attempt`` counts from 1."""

    attempt: int


@dataclasses.dataclass(frozen=True, slots=True)
class Closed:
    """The link is finished for good; ``by_peer`` says which side closed it."""

    reason: str
    by_peer: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Violation:
    """The peer broke the protocol; counted under ``reason``, never raised.

    ``reason`` is a stable code: ``bad_state`` (not allowed now), ``malformed``,
    ``bad_version``, ``bad_peer``, ``bad_role``, ``bad_timing``, ``missing_capability``.
    ``kind`` is the offending message's class name.
    """

    reason: str
    detail: str
    kind: str
    message: object


Effect = (
    Transmit | Deliver | Queued | Dropped | Refused | Ready | Lost | Reconnect | Closed | Violation
)
"""Everything a link call can return."""


@dataclasses.dataclass(frozen=True, slots=True)
class LinkStatistics:
    """One link's counters at one moment. Times are the ``now`` values the link was given.

    ``sent`` and ``received`` count data messages only; ``dropped`` counts overflow and
    close drops, ``refused`` the sends refused under the ``fail`` policy.
    """

    local_id: str
    side: LinkSide
    state: LinkState
    peer: str | None
    protocol: int | None
    queued: int
    sent: int
    received: int
    dropped: int
    refused: int
    heartbeats_sent: int
    heartbeats_received: int
    last_seen: float | None
    last_sent: float | None
    reconnect_attempts: int
    reconnects: int
    violations: Mapping[str, int]

    @property
    def violations_total(self) -> int:
        """All protocol violations by the peer, whatever the reason."""
        return sum(self.violations.values())
