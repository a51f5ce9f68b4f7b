"""Supervision with Erlang/OTP's semantics and words: child specs, strategies, restarts,
and the supervisor node that hosts a tree built from an app file."""

from edgeloop.supervisor._devices import (
    DeviceDown,
    DeviceMessage,
    DevicePort,
    DevicePortStatistics,
    DeviceUp,
    Sink,
    Tap,
    TapRecord,
    device_port,
)
from edgeloop.supervisor._node import ROOT_PATH, Node
from edgeloop.supervisor._operations import ChildCounts, ChildInfo, SupervisorRef
from edgeloop.supervisor._remote import (
    EndpointFactory,
    EndpointLike,
    LinkSettings,
    RemoteRef,
    RemoteStatistics,
    Remoting,
    split_address,
)
from edgeloop.supervisor._status import STATUS_PATH, fetch_status
from edgeloop.supervisor._supervisor import Supervisor, resolve_start
from edgeloop.supervisor.config import AppConfig, NodeConfig, check_starts, load_app, parse_app
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
    "STATUS_PATH",
    "fetch_status",
    "Node",
    "ROOT_PATH",
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
    "AppConfig",
    "NodeConfig",
    "load_app",
    "parse_app",
    "check_starts",
    "DEFAULT_WORKER_SHUTDOWN",
    "resolve_start",
    # remote actors
    "RemoteRef",
    "Remoting",
    "RemoteStatistics",
    "LinkSettings",
    "EndpointLike",
    "EndpointFactory",
    "split_address",
    # the device boundary
    "DevicePort",
    "DeviceMessage",
    "DeviceUp",
    "DeviceDown",
    "TapRecord",
    "Tap",
    "Sink",
    "DevicePortStatistics",
    "device_port",
]
