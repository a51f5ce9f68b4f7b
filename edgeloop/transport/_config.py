"""What a link is told: who this side is, what it speaks, and its timing and queue bounds."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Final

from edgeloop.clock import exponential_backoff
from edgeloop.errors import ConfigError

__all__ = [
    "PEER_ROLES",
    "QueueOverflow",
    "ReconnectBackoff",
    "LinkConfig",
    "check_peer_id",
]

PEER_ROLES: Final = frozenset({"node", "device"})
"""What a peer may announce itself as in ``Hello``."""

# fullmatch, not ``^...$``: ``$`` also matches before a trailing newline. No ':' or '/',
# so that "edge-b:/yard/fusion" splits unambiguously into a node id and an actor path.
_PEER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


def check_peer_id(value: object) -> str | None:
    """What is wrong with ``value`` as a node or device id, or ``None`` if it is valid."""
    if not isinstance(value, str):
        return f"expected a string id, got {type(value).__name__}"
    if not _PEER_ID.fullmatch(value):
        return (
            f"invalid id {value!r}: use 1 to 64 letters, digits and _.@- "
            "starting with a letter or digit, such as 'edge-a' or 'cam-01'"
        )
    return None


class QueueOverflow(StrEnum):
    """What a full send queue does with one more message (a sans-IO link cannot block)."""

    DROP_OLDEST = "drop_oldest"  # the oldest queued message is dropped to make room
    DROP_NEWEST = "drop_newest"  # the new message is dropped; the queue is unchanged
    FAIL = "fail"  # the new message is refused; the sender finds out at once


def _number(key: str, value: object, *, minimum: float, inclusive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(key, f"expected a number of seconds, got {value!r}")
    if value < minimum or (value == minimum and not inclusive):
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise ConfigError(key, f"expected a number {bound}, got {value}")
    if math.isinf(value):
        raise ConfigError(key, f"expected a finite number, got {value}")
    return float(value)


def _strings(key: str, value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise ConfigError(key, f"expected a list of strings, got the string {value!r}")
    items = frozenset(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise ConfigError(key, f"expected non-empty strings, got {item!r}")
    return items


@dataclasses.dataclass(frozen=True, slots=True)
class ReconnectBackoff:
    """Exponential backoff with jitter between a connector's reconnect attempts.

    Attempt ``n`` (0-based, reset once a handshake succeeds) waits
    ``min(max, min * 2**n) * (1 + u * random_factor)`` seconds, ``u`` in ``[0, 1)``
    drawn from the link's injected random source: the same formula as supervisor
    restarts, so a fleet of devices that lost the same node do not return in lockstep.
    """

    min: float = 0.1
    max: float = 10.0
    random_factor: float = 0.2

    def __post_init__(self) -> None:
        _number("link.backoff.min", self.min, minimum=0.0, inclusive=False)
        _number("link.backoff.max", self.max, minimum=0.0, inclusive=False)
        _number("link.backoff.random_factor", self.random_factor, minimum=0.0, inclusive=True)
        if self.max < self.min:
            raise ConfigError(
                "link.backoff.max", f"must be >= link.backoff.min ({self.min}), got {self.max}"
            )

    def delay(self, attempt: int, u: float) -> float:
        """Seconds before reconnect attempt ``attempt`` (0-based); ``u`` in ``[0, 1)``."""
        return exponential_backoff(self.min, self.max, self.random_factor, attempt, u)


@dataclasses.dataclass(frozen=True, slots=True)
class LinkConfig:
    """One side's identity, what it speaks, its timing and its send-queue bound.

    ``id`` and ``role`` go into this side's ``Hello`` or ``Welcome``. ``protocols`` are
    the versions this side speaks; the connector offers its highest and the acceptor
    answers with the highest it speaks that is not above the offer. ``capabilities``
    are intersected with the peer's; a peer that lacks one of ``required_capabilities``
    is refused. An acceptor refuses peers whose role is not in ``accept_roles``.

    Timing: the acceptor's ``heartbeat_interval`` and ``liveness_timeout`` travel in
    ``Welcome`` and bind both sides. ``handshake_timeout`` bounds the wait for
    ``Welcome``; ``close_timeout`` the wait for the peer's ``Close``.

    ``queue_limit`` messages may wait while the link is not ready (``0``: none);
    ``overflow`` says what happens to one more.
    """

    id: str
    role: str = "node"
    protocols: tuple[int, ...] = (1,)
    capabilities: frozenset[str] = frozenset()
    required_capabilities: frozenset[str] = frozenset()
    accept_roles: frozenset[str] = PEER_ROLES
    heartbeat_interval: float = 1.0
    liveness_timeout: float = 3.0
    handshake_timeout: float = 5.0
    close_timeout: float = 1.0
    queue_limit: int = 1000
    overflow: QueueOverflow = QueueOverflow.FAIL
    backoff: ReconnectBackoff = ReconnectBackoff()

    def __post_init__(self) -> None:
        problem = check_peer_id(self.id)
        if problem is not None:
            raise ConfigError("link.id", problem)
        roles = ", ".join(sorted(PEER_ROLES))
        if self.role not in PEER_ROLES:
            raise ConfigError("link.role", f"expected one of {roles}, got {self.role!r}")
        self._set("protocols", self._check_protocols())
        self._set("capabilities", _strings("link.capabilities", self.capabilities))
        required = _strings("link.required_capabilities", self.required_capabilities)
        if not required <= self.capabilities:
            missing = ", ".join(sorted(required - self.capabilities))
            raise ConfigError(
                "link.required_capabilities",
                f"this side does not offer {missing}: add it to link.capabilities",
            )
        self._set("required_capabilities", required)
        accept = _strings("link.accept_roles", self.accept_roles)
        if not accept <= PEER_ROLES:
            bad = ", ".join(sorted(accept - PEER_ROLES))
            raise ConfigError("link.accept_roles", f"unknown role {bad}: expected {roles}")
        self._set("accept_roles", accept)
        for key in ("heartbeat_interval", "liveness_timeout", "handshake_timeout"):
            self._set(key, _number(f"link.{key}", getattr(self, key), minimum=0, inclusive=False))
        self._set(
            "close_timeout",
            _number("link.close_timeout", self.close_timeout, minimum=0, inclusive=True),
        )
        if self.liveness_timeout <= self.heartbeat_interval:
            raise ConfigError(
                "link.liveness_timeout",
                f"must exceed link.heartbeat_interval ({self.heartbeat_interval}), "
                f"got {self.liveness_timeout}: a healthy peer would be declared lost",
            )
        if isinstance(self.queue_limit, bool) or not isinstance(self.queue_limit, int):
            raise ConfigError("link.queue_limit", f"expected an integer, got {self.queue_limit!r}")
        if self.queue_limit < 0:
            raise ConfigError(
                "link.queue_limit", f"expected an integer >= 0, got {self.queue_limit}"
            )
        try:
            self._set("overflow", QueueOverflow(self.overflow))
        except ValueError:
            choices = ", ".join(repr(o.value) for o in QueueOverflow)
            raise ConfigError(
                "link.overflow", f"expected one of {choices}, got {self.overflow!r}"
            ) from None
        if not isinstance(self.backoff, ReconnectBackoff):
            raise ConfigError("link.backoff", f"expected a ReconnectBackoff, got {self.backoff!r}")

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def _check_protocols(self) -> tuple[int, ...]:
        versions = tuple(self.protocols)
        if not versions:
            raise ConfigError("link.protocols", "expected at least one protocol version")
        for version in versions:
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise ConfigError("link.protocols", f"expected integers >= 1, got {version!r}")
        return tuple(sorted(set(versions)))
