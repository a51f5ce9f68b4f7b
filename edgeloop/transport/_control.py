"""Control messages as the link sees them, and the handshake's checks.

The link tells *control* messages from *data* by class name alone: ``Hello``,
``Welcome``, ``Heartbeat`` and ``Close`` are control, anything else is data and opaque.
So the msgspec Structs of :mod:`edgeloop.messages` and the plain dataclasses below are
interchangeable: received control messages are read by attribute (a peer's missing or
mistyped field is a ``malformed`` rejection, not an exception), and outgoing ones are
built by a :class:`ControlFactory`, which the ZeroMQ adapter points at the wire types.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Final

from edgeloop.transport._config import LinkConfig, check_peer_id

__all__ = [
    "CONTROL_KINDS",
    "Hello",
    "Welcome",
    "Heartbeat",
    "Close",
    "ControlFactory",
    "Terms",
    "Rejection",
    "kind_of",
    "negotiate_version",
    "read_hello",
    "read_welcome",
    "read_close_reason",
]

CONTROL_KINDS: Final = frozenset({"Hello", "Welcome", "Heartbeat", "Close"})
"""Class names the link owns; every other message is data."""

ACCEPTOR_ROLE: Final = "node"
"""Only nodes bind a ROUTER, so a connector's peer is always a node."""


def kind_of(message: object) -> str:
    """A message's kind: its class name (the msgspec tag of :mod:`edgeloop.messages`)."""
    return type(message).__name__


@dataclasses.dataclass(frozen=True, slots=True)
class Hello:
    """Connector to acceptor: who I am, my highest protocol version, what I can do."""

    peer: str
    role: str
    protocol: int
    capabilities: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Welcome:
    """Acceptor to connector: who I am, the agreed version and capabilities, the timing."""

    peer: str
    protocol: int
    capabilities: tuple[str, ...]
    heartbeat_interval: float
    liveness_timeout: float


@dataclasses.dataclass(frozen=True, slots=True)
class Heartbeat:
    """Either way, when a side has sent nothing for ``heartbeat_interval`` seconds."""

    seq: int


@dataclasses.dataclass(frozen=True, slots=True)
class Close:
    """Either way: this side is done (or refuses the handshake), and why."""

    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class ControlFactory:
    """Builds the control messages a link sends; each is called with keyword arguments
    named as the fields above (``capabilities`` as a sorted tuple).

    The default builds this module's dataclasses; the ZeroMQ adapter passes the
    :mod:`edgeloop.messages` Structs of the same names and fields.
    """

    hello: Callable[..., object] = Hello
    welcome: Callable[..., object] = Welcome
    heartbeat: Callable[..., object] = Heartbeat
    close: Callable[..., object] = Close


@dataclasses.dataclass(frozen=True, slots=True)
class Terms:
    """What a successful handshake agreed on, as seen from this side."""

    peer: str
    role: str
    protocol: int
    capabilities: frozenset[str]
    heartbeat_interval: float
    liveness_timeout: float


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    """Why a handshake message was refused: a stable ``reason`` code and a sentence."""

    reason: str
    detail: str


_MISSING: Final = object()


class _Malformed(Exception):
    """A control message's field is missing or of the wrong type; carries the rejection."""

    def __init__(self, kind: str, field: str, problem: str) -> None:
        super().__init__(problem)
        self.rejection = Rejection("malformed", f"{kind}.{field}: {problem}")

    @classmethod
    def expected(cls, message: object, field: str, what: str, value: object) -> _Malformed:
        return cls(kind_of(message), field, f"expected {what}, got {type(value).__name__}")


def _field(message: object, name: str) -> object:
    value = getattr(message, name, _MISSING)
    if value is _MISSING:
        raise _Malformed(kind_of(message), name, "missing")
    return value


def _str(message: object, name: str) -> str:
    value = _field(message, name)
    if not isinstance(value, str):
        raise _Malformed.expected(message, name, "a string", value)
    return value


def _int(message: object, name: str) -> int:
    value = _field(message, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Malformed.expected(message, name, "an integer", value)
    return value


def _seconds(message: object, name: str) -> float:
    value = _field(message, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Malformed.expected(message, name, "seconds", value)
    return float(value)


def _capabilities(message: object) -> frozenset[str]:
    value = _field(message, "capabilities")
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple | set | frozenset):
        raise _Malformed.expected(message, "capabilities", "a list of strings", value)
    for item in value:
        if not isinstance(item, str):
            raise _Malformed.expected(message, "capabilities[]", "a string", item)
    return frozenset(value)


def negotiate_version(offered: int, supported: tuple[int, ...]) -> int | None:
    """The highest version in ``supported`` not above ``offered``, or ``None``."""
    candidates = [v for v in supported if v <= offered]
    return max(candidates) if candidates else None


def _speaks(supported: tuple[int, ...]) -> str:
    return ", ".join(str(v) for v in supported)


def _missing(required: frozenset[str], offered: frozenset[str], peer: str) -> Rejection | None:
    missing = required - offered
    if not missing:
        return None
    names = ", ".join(sorted(missing))
    return Rejection("missing_capability", f"peer {peer!r} lacks required capability {names}")


def read_hello(message: object, config: LinkConfig, bound_peer: str | None) -> Terms | Rejection:
    """An acceptor's check of a ``Hello``; ``bound_peer`` is the peer this link already
    serves (a re-handshake must come from the same id), or ``None``."""
    try:
        peer = _str(message, "peer")
        role = _str(message, "role")
        offered = _int(message, "protocol")
        theirs = _capabilities(message)
    except _Malformed as bad:
        return bad.rejection
    problem = check_peer_id(peer)
    if problem is not None:
        return Rejection("bad_peer", problem)
    if peer == config.id:
        return Rejection("bad_peer", f"peer id {peer!r} is this side's own id")
    if bound_peer is not None and peer != bound_peer:
        return Rejection(
            "bad_peer", f"this link serves {bound_peer!r}; a Hello from {peer!r} cannot take it"
        )
    if role not in config.accept_roles:
        accepted = ", ".join(sorted(config.accept_roles))
        return Rejection("bad_role", f"role {role!r} is not accepted here (accepted: {accepted})")
    version = negotiate_version(offered, config.protocols)
    if version is None:
        return Rejection(
            "bad_version",
            f"unsupported protocol version {offered}: {config.id!r} speaks "
            f"{_speaks(config.protocols)}; upgrade the peer",
        )
    missing = _missing(config.required_capabilities, theirs, peer)
    if missing is not None:
        return missing
    return Terms(
        peer=peer,
        role=role,
        protocol=version,
        capabilities=config.capabilities & theirs,
        heartbeat_interval=config.heartbeat_interval,
        liveness_timeout=config.liveness_timeout,
    )


def read_welcome(
    message: object, config: LinkConfig, expected_peer: str | None
) -> Terms | Rejection:
    """A connector's check of a ``Welcome`` answering its ``Hello``."""
    try:
        peer = _str(message, "peer")
        version = _int(message, "protocol")
        theirs = _capabilities(message)
        interval = _seconds(message, "heartbeat_interval")
        timeout = _seconds(message, "liveness_timeout")
    except _Malformed as bad:
        return bad.rejection
    problem = check_peer_id(peer)
    if problem is not None:
        return Rejection("bad_peer", problem)
    if expected_peer is not None and peer != expected_peer:
        return Rejection("bad_peer", f"expected to reach {expected_peer!r}, reached {peer!r}")
    if version not in config.protocols:
        return Rejection(
            "bad_version",
            f"the peer chose protocol version {version}, which {config.id!r} does not speak "
            f"({_speaks(config.protocols)})",
        )
    if not (math.isfinite(interval) and math.isfinite(timeout) and 0 < interval < timeout):
        return Rejection(
            "bad_timing",
            f"heartbeat_interval {interval} and liveness_timeout {timeout}: expected "
            "0 < heartbeat_interval < liveness_timeout",
        )
    missing = _missing(config.required_capabilities, theirs, peer)
    if missing is not None:
        return missing
    return Terms(
        peer=peer,
        role=ACCEPTOR_ROLE,
        protocol=version,
        capabilities=config.capabilities & theirs,
        heartbeat_interval=interval,
        liveness_timeout=timeout,
    )


def read_close_reason(message: object) -> str:
    """A ``Close``'s reason, or ``"unknown"`` when the peer sent none we can read."""
    try:
        return _str(message, "reason")
    except _Malformed:
        return "unknown"
