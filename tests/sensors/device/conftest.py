"""Fixtures for the device agent's tests: a real node with a recording twin per device."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from edgeloop import ChildSpec, Node
from edgeloop.transport import LinkConfig, ReconnectBackoff
from tests.sensors.device.twin import RECORDS, RecordingTwin

FAST_LINK = {
    "heartbeat_interval": 0.1,
    "liveness_timeout": 1.0,
    "handshake_timeout": 1.0,
    "close_timeout": 0.5,
    "backoff": ReconnectBackoff(min=0.05, max=0.2),
}


def make_node(devices: list[str], *, address: str = "tcp://127.0.0.1:*", ack: bool = True) -> Node:
    children = [
        ChildSpec(f"twin-{d}", RecordingTwin, args={"device": d, "ack": ack}) for d in devices
    ]
    return Node("edge", children=children, listen=[address], link=LinkConfig("edge", **FAST_LINK))


def node_address(node: Node) -> str:
    return node.endpoint.statistics().bound[0]  # type: ignore[union-attr]


@pytest.fixture
def node_factory() -> Iterator[Callable[..., Node]]:
    RECORDS.clear()
    started: list[Node] = []

    def factory(devices: list[str], **kwargs: object) -> Node:
        node = make_node(devices, **kwargs)  # type: ignore[arg-type]
        node.start()
        started.append(node)
        return node

    yield factory
    for node in started:
        node.stop()  # idempotent: a node a test stopped already returns its reason
