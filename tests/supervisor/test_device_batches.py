"""The device port's per-turn batches: what one turn of the endpoint's I/O loop reads for
a twin reaches it at the turn's end, in one mailbox put, in order; a full mailbox drops
and counts the excess; a device that goes down is seen down after its last message."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from edgeloop import ChildSpec, Node
from edgeloop.actors import Actor, ActorSystem, MailboxConfig
from edgeloop.messages import Event
from edgeloop.supervisor import DeviceDown, DeviceMessage, DevicePort, DeviceUp, device_port
from edgeloop.transport import Endpoint, EndpointConfig, LinkConfig
from tests.helpers import WAIT
from tests.integration.endpoint_helpers import Peer
from tests.supervisor.test_devices import FAST, event


class Recorder(Actor):
    """Puts what it gets on ``out``; ``"block"`` parks it until ``gate`` opens."""

    def __init__(self, out: queue.Queue[Any], gate: threading.Event | None = None) -> None:
        self.out = out
        self.gate = gate

    def on_receive(self, message: Any) -> Any:
        if message == "block":
            assert self.gate is not None
            self.out.put("blocked")
            assert self.gate.wait(WAIT)
            return None
        self.out.put(message)
        return None


class Registered(Recorder):
    """A Recorder that registers for ``device`` with its node's port."""

    def __init__(self, out: queue.Queue[Any], device: str) -> None:
        super().__init__(out)
        self.device = device

    def on_start(self) -> None:
        device_port(self.system).register(self.device, self.ref)


@pytest.fixture
def turn() -> Iterator[tuple[DevicePort, ActorSystem, Endpoint]]:
    """A port attached to a real (unstarted) endpoint, the test's thread playing its I/O
    thread in the middle of a turn."""
    system = ActorSystem("edge")
    endpoint = Endpoint(EndpointConfig(LinkConfig("edge")), on_message=lambda p, m: None)
    port = DevicePort(system)
    port.attach(endpoint)
    endpoint._io_thread_id = threading.get_ident()
    yield port, system, endpoint
    assert not system.close()


def test_a_turn_reaches_the_twin_at_its_end_in_order(
    turn: tuple[DevicePort, ActorSystem, Endpoint],
) -> None:
    port, system, endpoint = turn
    out: queue.Queue[Any] = queue.Queue()
    ref = system.spawn(Recorder, "/twin", args={"out": out})
    port.register("cam-1", ref)
    for seq in range(1, 6):
        port.on_message("cam-1", event(seq))
    assert out.empty()  # gathered, not yet handed over
    assert ref.statistics().queue_depth == 0
    endpoint._end_turn()  # the hook the port registered
    got = [out.get(timeout=WAIT) for _ in range(5)]
    assert [(m.device, m.message.seq) for m in got] == [("cam-1", s) for s in range(1, 6)]
    assert port.statistics().counters["received"] == 5


def test_what_a_full_mailbox_cannot_take_is_dropped_and_counted(
    turn: tuple[DevicePort, ActorSystem, Endpoint],
) -> None:
    port, system, _ = turn
    out: queue.Queue[Any] = queue.Queue()
    gate = threading.Event()
    ref = system.spawn(
        Recorder, "/twin", args={"out": out, "gate": gate}, mailbox=MailboxConfig(capacity=3)
    )
    port.register("cam-1", ref)
    ref.tell("block")
    assert out.get(timeout=WAIT) == "blocked"
    for seq in range(1, 6):
        port.on_message("cam-1", event(seq))
    port.flush()
    assert port.statistics().counters["mailbox_full"] == 2
    gate.set()
    assert [out.get(timeout=WAIT).message.seq for _ in range(3)] == [1, 2, 3]
    other: queue.Queue[Any] = queue.Queue()  # nothing else was disturbed
    port.register("cam-2", system.spawn(Recorder, "/other", args={"out": other}))
    port.on_message("cam-2", event(1, device="cam-2"))
    port.flush()
    assert other.get(timeout=WAIT).message.seq == 1


def test_off_the_io_thread_a_message_goes_at_once(
    turn: tuple[DevicePort, ActorSystem, Endpoint],
) -> None:
    """A replay injects from its own thread: no turn will end there, so no batch."""
    port, system, endpoint = turn
    out: queue.Queue[Any] = queue.Queue()
    port.register("cam-1", system.spawn(Recorder, "/twin", args={"out": out}))
    endpoint._io_thread_id = None
    port.inject("cam-1", event(1))
    assert out.get(timeout=WAIT).message.seq == 1


def test_a_burst_over_a_real_link_arrives_whole_and_before_the_device_goes_down() -> None:
    out: queue.Queue[Any] = queue.Queue()
    node = Node(
        "edge",
        children=[ChildSpec("twin", Registered, args={"out": out, "device": "cam-1"})],
        listen=["tcp://127.0.0.1:*"],
        link=LinkConfig("edge", **FAST),
    )
    with node:
        address = node.endpoint.statistics().bound[0]  # type: ignore[union-attr]
        camera = Peer("cam-1", role="device", peers=(address,)).start()
        try:
            assert out.get(timeout=WAIT) == DeviceUp("cam-1", False)
            camera.up("edge")
            n = 500
            for seq in range(1, n + 1):
                assert camera.endpoint.send("edge", event(seq))
        finally:
            camera.endpoint.close()
        got = [out.get(timeout=WAIT) for _ in range(n + 1)]
        assert [m.message.seq for m in got[:n] if isinstance(m, DeviceMessage)] == list(
            range(1, n + 1)
        )
        assert isinstance(got[n], DeviceDown)
        assert all(isinstance(m.message, Event) for m in got[:n])


def test_a_turn_in_progress_still_hands_over_after_the_port_is_detached(
    turn: tuple[DevicePort, ActorSystem, Endpoint],
) -> None:
    """A stopping node detaches its port before it closes the endpoint: what the last
    turn gathered still reaches the twin when the turn ends."""
    port, system, endpoint = turn
    out: queue.Queue[Any] = queue.Queue()
    port.register("cam-1", system.spawn(Recorder, "/twin", args={"out": out}))
    port.on_message("cam-1", event(1))
    port.on_message("cam-1", event(2))
    port.attach(None)
    port.on_message("cam-1", event(3))  # detached: at once, behind what was gathered
    endpoint._end_turn()
    assert [out.get(timeout=WAIT).message.seq for _ in range(3)] == [1, 2, 3]
