"""Links between nodes and devices.

The protocol core is sans-IO: :class:`Link` is a table-driven state machine (handshake,
heartbeats, close, reconnect with backoff, a bounded send queue) that takes messages and
``now`` in and returns :data:`Effect` values out; the socket adapters only apply them.
The state table and its rules are in ``edgeloop/transport/_state.py`` and
``docs/link-protocol-state-machine.md``.
"""

from edgeloop.transport._config import PEER_ROLES, LinkConfig, QueueOverflow, ReconnectBackoff
from edgeloop.transport._control import (
    CONTROL_KINDS,
    Close,
    ControlFactory,
    Heartbeat,
    Hello,
    Terms,
    Welcome,
    kind_of,
    negotiate_version,
)
from edgeloop.transport._effects import (
    Closed,
    Deliver,
    Dropped,
    Effect,
    LinkStatistics,
    Lost,
    LostReason,
    Queued,
    Ready,
    Reconnect,
    Refused,
    Transmit,
    Violation,
)
from edgeloop.transport._endpoint import (
    WIRE_CONTROL,
    Endpoint,
    EndpointConfig,
    EndpointStatistics,
    PeerAddress,
    PeerDown,
    PeerStatus,
    PeerUp,
    SocketSecurity,
)
from edgeloop.transport._protocol import CLOSE_ACK, Link, RandomSource
from edgeloop.transport._security import (
    CURVE_MODES,
    CurveMode,
    CurveSecurity,
    KeyGuard,
    KeyGuardStatistics,
    KeyPair,
    SecurityConfig,
    curve_required,
    generate_keypair,
    is_loopback,
    keys_generate,
    load_public,
    load_secret,
)
from edgeloop.transport._state import TRANSITIONS, LinkSide, LinkState, Trigger

__all__ = [
    # the ZeroMQ adapter
    "Endpoint",
    "EndpointConfig",
    "EndpointStatistics",
    "PeerAddress",
    "PeerStatus",
    "PeerUp",
    "PeerDown",
    "SocketSecurity",
    "WIRE_CONTROL",
    # CurveZMQ
    "CurveSecurity",
    "CurveMode",
    "CURVE_MODES",
    "SecurityConfig",
    "KeyGuard",
    "KeyGuardStatistics",
    "KeyPair",
    "curve_required",
    "is_loopback",
    "generate_keypair",
    "keys_generate",
    "load_public",
    "load_secret",
    # the state machine
    "Link",
    "LinkConfig",
    "LinkSide",
    "LinkState",
    "LinkStatistics",
    "QueueOverflow",
    "ReconnectBackoff",
    "RandomSource",
    "Trigger",
    "TRANSITIONS",
    # effects
    "Effect",
    "Transmit",
    "Deliver",
    "Queued",
    "Dropped",
    "Refused",
    "Ready",
    "Lost",
    "LostReason",
    "Reconnect",
    "Closed",
    "Violation",
    # control messages and the handshake
    "CONTROL_KINDS",
    "Hello",
    "Welcome",
    "Heartbeat",
    "Close",
    "ControlFactory",
    "Terms",
    "CLOSE_ACK",
    "PEER_ROLES",
    "kind_of",
    "negotiate_version",
]
