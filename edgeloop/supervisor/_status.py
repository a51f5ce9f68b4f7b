"""A node's live status as plain data, and the actor that answers it over the links.

``edgeloop node status`` connects to a node as a short-lived peer and asks the actor at
:data:`STATUS_PATH`; the answer is :func:`node_status`'s dictionary (builtins only, so it
crosses the wire as MessagePack and prints as JSON).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeloop.actors import Actor
from edgeloop.errors import NodeError

if TYPE_CHECKING:
    from edgeloop.supervisor._node import Node

__all__ = ["STATUS_PATH", "StatusActor", "fetch_status", "node_status"]

STATUS_PATH = "/_status"
"""Where a node with links answers status asks (outside its supervision tree)."""


def node_status(node: Node, started_at: float | None = None) -> dict[str, Any]:
    """The node's supervision tree (restarts, mailbox depths), its peers and their
    liveness, and the rejected-input and remoting counters, as builtins."""
    system = node.system
    actors = []
    for ref in system.actors():
        if ref.path == STATUS_PATH:
            continue
        stats = ref.statistics()
        actors.append(
            {
                "path": stats.path,
                "alive": stats.alive,
                "queue_depth": stats.queue_depth,
                "capacity": stats.capacity,
                "processed": stats.processed,
                "failed": stats.failed,
                "restarts": stats.restarts,
                "dropped": stats.dropped,
            }
        )
    status: dict[str, Any] = {
        "node": node.name,
        "uptime_s": round(time.monotonic() - started_at, 3) if started_at else None,
        "actors": sorted(actors, key=lambda a: a["path"]),
        "dead_letters": system.dead_letters.count,
        "peers": [],
        "rejected": {},
        "remoting": {},
        "devices": _devices(node),
    }
    # Sections offered by the layers above (e.g. "status:twins"): a callable each.
    for key, section in sorted(system.services.items()):
        if key.startswith("status:") and callable(section):
            try:
                status[key.removeprefix("status:")] = section()
            except Exception as error:  # noqa: BLE001 (status must answer even so)
                status[key.removeprefix("status:")] = {"error": repr(error)}
    endpoint = node.endpoint
    if endpoint is not None:
        stats_obj: Any = endpoint.statistics()
        now = time.monotonic()
        status["rejected"] = dict(getattr(stats_obj, "rejected", {}))
        status["listen"] = list(getattr(stats_obj, "bound", ()))
        peers = []
        for peer in getattr(stats_obj, "peers", ()):
            link = peer.link
            peers.append(
                {
                    "peer": peer.peer,
                    "address": peer.address,
                    "side": str(peer.side),
                    "state": str(peer.state),
                    "last_seen_s_ago": (
                        None if link.last_seen is None else round(now - link.last_seen, 3)
                    ),
                    "sent": link.sent,
                    "received": link.received,
                    "queued": link.queued,
                    "reconnects": link.reconnects,
                    "violations": dict(link.violations),
                }
            )
        status["peers"] = peers
    remoting = node.remoting
    if remoting is not None:
        remote = remoting.statistics()
        status["remoting"] = {
            "pending_asks": remote.pending_asks,
            "watching": remote.watching,
            "watched_by": remote.watched_by,
            **dict(remote.counters),
        }
    return status


@dataclasses.dataclass(eq=False)
class StatusActor(Actor):
    """Answers any ask with :func:`node_status` of its node."""

    node: Node
    started_at: float

    def on_receive(self, message: Any) -> Any:
        return node_status(self.node, self.started_at)


def fetch_status(
    address: str,
    *,
    server_key: str | None = None,
    secret_key: Path | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Connect to the node at ``address`` as a short-lived peer and ask for its status.

    With CurveZMQ (a non-loopback address), pass the node's public key and this client's
    secret key file; the node must list this client's public key as allowed.
    """
    from edgeloop.supervisor._node import Node
    from edgeloop.transport import PeerAddress, SecurityConfig

    security = None
    if secret_key is not None:
        security = SecurityConfig(secret_key=secret_key)
    probe = Node(
        f"status-{os.getpid()}",
        peers=[PeerAddress(address, server_key)],
        security=security,
    ).start()
    try:
        deadline = time.monotonic() + timeout
        ready = threading.Event()
        while not probe.peers():
            if time.monotonic() >= deadline:
                msg = f"no node answered at {address} within {timeout} s; is it running?"
                raise NodeError(msg)
            ready.wait(0.02)
        target = probe.peers()[0]
        left = max(0.1, deadline - time.monotonic())
        answer: dict[str, Any] = (
            probe.ref(f"{target}:{STATUS_PATH}").ask("status", timeout=left).get()
        )
        return answer
    finally:
        probe.stop()


def _devices(node: Node) -> dict[str, Any]:
    """The device port: registered and connected devices and its counters."""
    port = node.devices
    stats = port.statistics()
    return {
        "registered": port.devices(),
        "connected": port.connected_devices(),
        "counters": dict(stats.counters),
    }
