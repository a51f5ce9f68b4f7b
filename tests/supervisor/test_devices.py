"""The node's device port: routing, taps, the replay sink, rejection of unknown devices,
and a real device-role link over ZeroMQ."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from edgeloop import ChildSpec, Node
from edgeloop.actors import Actor, ActorSystem
from edgeloop.errors import NodeError, PathTakenError
from edgeloop.messages import ErrorReply, Event, EventAck
from edgeloop.supervisor import (
    DeviceDown,
    DeviceMessage,
    DeviceUp,
    TapRecord,
    device_port,
)
from edgeloop.transport import LinkConfig, ReconnectBackoff
from tests.helpers import WAIT, wait_for
from tests.integration.endpoint_helpers import Peer

SEEN: queue.Queue[Any] = queue.Queue()


class Twin(Actor):
    """Registers for its device, forwards what it gets to SEEN and acks every event."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.device = device

    def on_start(self) -> None:
        device_port(self.system).register(self.device, self.ref)

    def on_receive(self, message: Any) -> Any:
        SEEN.put(message)
        if isinstance(message, DeviceMessage) and isinstance(message.message, Event):
            device_port(self.system).send(
                self.device, EventAck(device=self.device, seq=message.message.seq)
            )
        return None


def event(seq: int, device: str = "cam-1") -> Event:
    return Event(
        device=device,
        seq=seq,
        ts=float(seq),
        zone="z1",
        label="cat",
        score=0.9,
        embedding=b"\x01\x02",
        head_version=1,
        config_version=1,
    )


def next_seen(kind: type) -> Any:
    while True:
        item = SEEN.get(timeout=WAIT)
        if isinstance(item, kind):
            return item


@pytest.fixture
def node() -> Iterator[Node]:
    while not SEEN.empty():
        SEEN.get_nowait()
    with Node("edge", children=[ChildSpec("twin", Twin, args={"device": "cam-1"})]) as started:
        yield started


def test_inject_reaches_the_registered_actor_and_taps_see_both_directions(node: Node) -> None:
    port = node.devices
    records: list[TapRecord] = []
    remove = port.add_tap(records.append)
    sent: list[tuple[str, Any]] = []
    port.set_sink(lambda device, message: sent.append((device, message)) is None)

    port.inject("cam-1", event(1))

    got = next_seen(DeviceMessage)
    assert got.device == "cam-1"
    assert got.message == event(1)
    wait_for(lambda: len(sent) == 1, what="the twin's ack reached the sink")
    assert sent == [("cam-1", EventAck(device="cam-1", seq=1))]
    assert [(r.direction, r.device, type(r.message)) for r in records] == [
        ("in", "cam-1", Event),
        ("out", "cam-1", EventAck),
    ]
    remove()
    port.inject("cam-1", event(2))
    next_seen(DeviceMessage)
    wait_for(lambda: len(sent) == 2)
    assert len(records) == 2, "a removed tap sees nothing more"
    counters = port.statistics().counters
    assert counters["received"] == 2
    assert counters["sent"] == 2


def test_without_link_or_sink_a_send_fails_and_is_counted(node: Node) -> None:
    assert node.devices.send("cam-1", EventAck(device="cam-1", seq=1)) is False
    assert node.devices.statistics().counters["unsent"] == 1


def test_an_unknown_device_is_rejected_counted_and_nothing_else_is_disturbed(node: Node) -> None:
    port = node.devices
    records: list[TapRecord] = []
    port.add_tap(records.append)
    port.inject("cam-9", event(1, device="cam-9"))
    port.inject("cam-1", event(1))
    assert next_seen(DeviceMessage).device == "cam-1"
    assert port.statistics().counters["unknown_device"] == 1
    assert [r.device for r in records if r.direction == "in"] == ["cam-1"]


def test_a_device_has_one_live_actor(node: Node) -> None:
    twin = node.lookup("/twin")
    assert twin is not None
    other = node.system.spawn(Twin, "/other", args={"device": "cam-2"})
    with pytest.raises(PathTakenError, match="cam-1"):
        node.devices.register("cam-1", other)
    node.devices.unregister("cam-1", other)  # not its holder: nothing changes
    assert node.devices.route("cam-1") is twin
    assert node.devices.devices() == ["cam-1", "cam-2"]
    other.stop()


class Stuck(Actor):
    """Blocks in its handler until released: a twin killed mid-handler."""

    def __init__(self, entered: threading.Event, release: threading.Event) -> None:
        self.entered = entered
        self.release = release

    def on_receive(self, message: Any) -> Any:
        self.entered.set()
        self.release.wait(WAIT)
        return None


def test_a_killed_actor_gives_up_its_device_at_once(node: Node) -> None:
    """Killed while its handler still runs, an actor no longer holds its device: the
    restarted one registers at once (it used to fail with PathTakenError until the old
    thread ended, which under load cost the supervisor its restart intensity)."""
    entered, release = threading.Event(), threading.Event()
    stuck = node.system.spawn(Stuck, "/stuck", args={"entered": entered, "release": release})
    node.devices.register("cam-9", stuck)
    stuck.tell("work")
    assert entered.wait(WAIT)
    stuck.kill()
    assert not stuck.is_alive()
    fresh = node.system.spawn(Twin, "/fresh", args={"device": "cam-9"})
    try:
        node.devices.register("cam-9", fresh)
        assert node.devices.route("cam-9") is fresh
    finally:
        release.set()
        assert stuck.wait_stopped(WAIT)
        fresh.stop()
        assert fresh.wait_stopped(WAIT)


def test_a_stopped_actor_turns_device_messages_into_dead_letters(node: Node) -> None:
    twin = node.lookup("/twin")
    assert twin is not None
    node.root.terminate_child("twin")
    wait_for(lambda: not twin.is_alive())
    node.devices.inject("cam-1", event(1))
    assert node.devices.statistics().counters["actor_dead"] == 1
    assert node.system.dead_letters.count >= 1


def test_device_port_outside_a_node_says_so() -> None:
    system = ActorSystem("bare")
    try:
        with pytest.raises(NodeError, match="belongs to no edgeloop Node"):
            device_port(system)
    finally:
        system.close()


FAST = {
    "heartbeat_interval": 0.1,
    "liveness_timeout": 1.0,
    "handshake_timeout": 1.0,
    "close_timeout": 0.5,
    "backoff": ReconnectBackoff(min=0.05, max=0.2),
}


def test_a_device_over_a_real_link_is_routed_acked_and_seen_going_down() -> None:
    while not SEEN.empty():
        SEEN.get_nowait()
    node = Node(
        "edge",
        children=[ChildSpec("twin", Twin, args={"device": "cam-1"})],
        listen=["tcp://127.0.0.1:*"],
        link=LinkConfig("edge", **FAST),
    )
    with node:
        address = node.endpoint.statistics().bound[0]  # type: ignore[union-attr]
        camera = Peer("cam-1", role="device", peers=(address,)).start()
        stranger = Peer("cam-9", role="device", peers=(address,)).start()
        try:
            assert next_seen(DeviceUp) == DeviceUp("cam-1", False)
            camera.up("edge")  # the device's side of the link is ready too
            stranger.up("edge")
            assert camera.endpoint.send("edge", event(1))
            assert next_seen(DeviceMessage).message == event(1)
            peer, ack = camera.message()
            assert (peer, ack) == ("edge", EventAck(device="cam-1", seq=1))

            assert stranger.endpoint.send("edge", event(1, device="cam-9"))
            _, reply = stranger.message()
            assert isinstance(reply, ErrorReply)
            assert reply.code == "unknown_device"
            assert "cam-9" in reply.message
            assert node.status()["devices"]["connected"] == ["cam-1", "cam-9"]
        finally:
            stranger.endpoint.close()
            camera.endpoint.close()
        down = next_seen(DeviceDown)
        assert down.device == "cam-1"
        wait_for(lambda: not node.devices.connected("cam-1"))
