"""edgeloop: a runtime for intelligent real-time IoT at the cloud edge.

The names most programs need live here; each subpackage has its own curated ``__all__``.
Importing edgeloop imports neither JAX nor ZeroMQ.
"""

import logging

from edgeloop.actors import (
    Actor,
    ActorRef,
    ActorRefLike,
    ActorSystem,
    Down,
    ExitReason,
    Future,
    MailboxConfig,
    Overflow,
    monitor,
)
from edgeloop.clock import Clock, MonotonicClock, VirtualClock
from edgeloop.supervisor import (
    Backoff,
    ChildSpec,
    ChildType,
    Node,
    RemoteRef,
    Restart,
    Strategy,
    Supervisor,
    SupervisorFlags,
    SupervisorRef,
)

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "ActorRef",
    "ActorRefLike",
    "RemoteRef",
    "monitor",
    "ActorSystem",
    "Future",
    "Down",
    "ExitReason",
    "MailboxConfig",
    "Overflow",
    "Node",
    "Supervisor",
    "SupervisorRef",
    "ChildSpec",
    "SupervisorFlags",
    "Backoff",
    "Restart",
    "Strategy",
    "ChildType",
    "Clock",
    "MonotonicClock",
    "VirtualClock",
    "__version__",
]

# A library adds no handlers of its own; the CLI configures logging (structlog).
logging.getLogger("edgeloop").addHandler(logging.NullHandler())
