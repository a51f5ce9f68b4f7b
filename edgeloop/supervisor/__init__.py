"""Supervision with Erlang/OTP's semantics and words: child specs, strategies, restarts."""

from edgeloop.supervisor._operations import ChildCounts, ChildInfo, SupervisorRef
from edgeloop.supervisor._supervisor import Supervisor, resolve_start
from edgeloop.supervisor.spec import (
    DEFAULT_WORKER_SHUTDOWN,
    Backoff,
    ChildSpec,
    ChildType,
    Restart,
    Shutdown,
    Strategy,
    SupervisorFlags,
)

__all__ = [
    "Supervisor",
    "SupervisorRef",
    "ChildSpec",
    "SupervisorFlags",
    "Backoff",
    "Restart",
    "Strategy",
    "ChildType",
    "Shutdown",
    "ChildInfo",
    "ChildCounts",
    "DEFAULT_WORKER_SHUTDOWN",
    "resolve_start",
]
