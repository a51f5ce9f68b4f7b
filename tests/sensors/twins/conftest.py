"""A node with twins and no links: the test plays the devices through the port's
``inject`` (inbound) and its sink (outbound), on a virtual clock it moves itself."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from edgeloop import ChildSpec, Node
from edgeloop.actors import Actor
from edgeloop.clock import VirtualClock
from edgeloop.messages import ConfigReported, DeviceStatus, Event, Message
from edgeloop.sensors import Devices
from tests.helpers import WAIT

SINK_PATH = "/sink"


class Collector(Actor):
    """A subscriber: puts every message it gets on its queue."""

    def __init__(self, out: queue.Queue[Any]) -> None:
        self.out = out

    def on_receive(self, message: Any) -> Any:
        self.out.put(message)
        return None


class Wire:
    """What the twins sent out (the port's sink), with an optional auto-responder."""

    def __init__(self) -> None:
        self.sent: queue.Queue[tuple[str, Message]] = queue.Queue()
        self.respond: Callable[[str, Message], None] | None = None
        self.up = True
        self.lock = threading.Lock()

    def __call__(self, device: str, message: Message) -> bool:
        if not self.up:
            return False
        self.sent.put((device, message))
        if self.respond is not None:
            self.respond(device, message)
        return True

    def next(self, kind: type, timeout: float = WAIT) -> Any:
        while True:
            _, message = self.sent.get(timeout=timeout)
            if isinstance(message, kind):
                return message

    def drain(self) -> list[Message]:
        out = []
        while not self.sent.empty():
            out.append(self.sent.get_nowait()[1])
        return out


class Yard:
    """The node, its clock, the wire and the subscriber's queue."""

    def __init__(self, node: Node, clock: VirtualClock, wire: Wire, seen: queue.Queue[Any]):
        self.node = node
        self.clock = clock
        self.wire = wire
        self.seen = seen

    @property
    def port(self) -> Any:
        return self.node.devices

    def twin(self, device: str) -> Any:
        ref = self.node.lookup(f"/devices/{device}")
        assert ref is not None, f"no twin for {device}"
        return ref

    def up(self, device: str, *, config_version: int = 1, head_version: int = 1) -> None:
        """The device's link comes up, and it reports itself as a device agent does."""
        self.port.on_peer(device, True)
        self.port.inject(device, status(device, config_version, head_version))
        self.port.inject(
            device,
            ConfigReported(device=device, version=config_version, settings=dict(SETTINGS)),
        )

    def down(self, device: str) -> None:
        self.port.on_peer(device, False, reason="test")

    def events(self, n: int, timeout: float = WAIT) -> list[Event]:
        return [self.seen.get(timeout=timeout) for _ in range(n)]


SETTINGS = {"report_mode": "thumbnails", "report_threshold": 0.5}
"""What a simulated device reports as its configuration when it connects."""


def status(
    device: str, config_version: int = 1, head_version: int = 1, **fields: Any
) -> DeviceStatus:
    values: dict[str, Any] = {
        "device": device,
        "ts": 1.0,
        "boot": 1,
        "next_seq": 1,
        "oldest_seq": 1,
        "outbox_depth": 0,
        "outbox_dropped": 0,
        "frames_held": 0,
        "frames_evicted": 0,
        "head_version": head_version,
        "config_version": config_version,
    }
    values.update(fields)
    return DeviceStatus(**values)


def event(seq: int, device: str = "cam-1", **extra: Any) -> Event:
    return Event(
        device=device,
        seq=seq,
        ts=1000.0 + seq,
        zone="z1",
        label="cat",
        score=0.5,
        embedding=bytes([seq % 256]),
        head_version=1,
        config_version=1,
        extra=extra,
    )


@contextmanager
def make_yard(devices: list[dict[str, Any]], **defaults: Any) -> Iterator[Yard]:
    clock = VirtualClock()
    seen: queue.Queue[Any] = queue.Queue()
    wire = Wire()
    children = [
        ChildSpec("sink", Collector, args={"out": seen}),
        ChildSpec(
            "devices",
            Devices,
            args={"devices": devices, "subscribers": [SINK_PATH], **defaults},
            shutdown="infinity",
        ),
    ]
    node = Node("yard", children=children, clock=clock, seed=7)
    with node:
        node.devices.set_sink(wire)
        yield Yard(node, clock, wire, seen)


@pytest.fixture
def yard() -> Iterator[Yard]:
    with make_yard([{"name": "cam-1"}, {"name": "trap-1", "kind": "trap"}]) as started:
        yield started
