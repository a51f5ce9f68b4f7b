"""Endpoints linked over tcp on loopback, and bulk lanes opened over their link."""

from __future__ import annotations

import queue
import threading
from typing import Any

from edgeloop.transport import Endpoint, EndpointConfig, LinkConfig, PeerAddress, PeerUp, bulk

WAIT = 10.0
FAST: dict[str, Any] = {"heartbeat_interval": 0.1, "liveness_timeout": 2.0}


def endpoint(
    name: str, role: str, *, listen: tuple[str, ...] = (), peers: tuple[str, ...] = ()
) -> tuple[Endpoint, queue.SimpleQueue[object]]:
    """An endpoint whose peer events (and any non-bulk message) land in the queue."""
    events: queue.SimpleQueue[object] = queue.SimpleQueue()
    config = EndpointConfig(
        LinkConfig(name, role=role, **FAST),
        listen=listen,
        peers=tuple(PeerAddress(address) for address in peers),
    )
    return Endpoint(config, on_message=lambda peer, m: events.put(m), on_peer=events.put), events


def wait_up(events: queue.SimpleQueue[object], peer: str) -> None:
    """Wait for PeerUp(peer); AssertionError after WAIT seconds."""
    while True:
        event = events.get(timeout=WAIT)
        if isinstance(event, PeerUp) and event.peer == peer:
            return


def open_lane(
    node: Endpoint, device: Endpoint, config: bulk.BulkConfig
) -> tuple[bulk.Sender, bulk.Receiver]:
    """A lane from ``device`` into a ring on ``node``, set up over their link: the
    device takes the offer in a thread while the node makes it here."""
    got: list[bulk.Sender | BaseException] = []

    def accept() -> None:
        try:
            got.append(device.open_bulk_sender(node.config.link.id, config, timeout=WAIT))
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            got.append(error)

    thread = threading.Thread(target=accept, name="open-bulk-sender")
    thread.start()
    try:
        receiver = node.open_bulk_receiver(device.config.link.id, config, timeout=WAIT)
    finally:
        thread.join(WAIT)
    sender = got[0]
    if isinstance(sender, BaseException):
        receiver.close()
        raise sender
    if not receiver.wait_attached(WAIT):
        sender.close()
        receiver.close()
        raise AssertionError("the sender did not attach")
    return sender, receiver
