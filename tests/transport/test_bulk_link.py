"""Bulk lanes bound to a control link: handshake and credits on the link, frames on the
provider; the conformance suite over linked lanes, hostile bulk input, and a device in
its own process writing frames to a node."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeloop import messages
from edgeloop.errors import LinkError, PeerLostError
from edgeloop.transport import Endpoint, EndpointConfig, LinkConfig, PeerDown, bulk
from edgeloop.transport._lanes import MAX_PENDING_OFFERS
from edgeloop.transport.bulk import conformance
from edgeloop.transport.bulk.conformance import frame_for
from tests.helpers import wait_for
from tests.transport.linked import FAST, WAIT, endpoint, open_lane, wait_up

ROOT = Path(__file__).resolve().parents[2]


class Linked:
    """A node (listening) and a device (connected to it), both started."""

    def __init__(self) -> None:
        self.node, self.node_events = endpoint("edge-a", "node", listen=("tcp://127.0.0.1:*",))
        self.node.start()
        self.device, self.device_events = endpoint("cam-1", "device", peers=(self.node.bound[0],))
        self.device.start()
        wait_up(self.node_events, "cam-1")
        wait_up(self.device_events, "edge-a")

    def rejected(self, reason: str) -> int:
        return self.node.statistics().rejected.get(reason, 0)

    def data_sent(self, side: Endpoint) -> int:
        return sum(peer.link.sent for peer in side.statistics().peers)

    def close(self) -> None:
        self.device.close()
        self.node.close()


@pytest.fixture(scope="module")
def linked() -> Iterator[Linked]:
    pair = Linked()
    yield pair
    pair.close()


def factory_for(linked: Linked, provider: str) -> conformance.PairFactory:
    def factory(**overrides: Any) -> tuple[bulk.Sender, bulk.Receiver]:
        settings: dict[str, Any] = {"provider": provider, "slot_size": 64 * 1024, "slot_count": 4}
        settings.update(overrides)
        return open_lane(linked.node, linked.device, bulk.BulkConfig(**settings))

    return factory


@pytest.mark.parametrize("check", conformance.CHECKS, ids=lambda check: check.__name__[6:])
@pytest.mark.parametrize("provider", ["fake", "shm", "zmq"])
def test_conformance_over_the_link(
    linked: Linked, provider: str, check: Callable[[conformance.PairFactory], None]
):
    """Each provider obeys each rule of the protocol with its credits on the control link."""
    check(factory_for(linked, provider))


@pytest.mark.parametrize("provider", ["shm", "zmq"])
def test_credits_travel_on_the_link(linked: Linked, provider: str):
    """Every released frame sends one BulkCredit on the node's link, and the handshake
    three messages; none goes on the provider's own channel."""
    before = linked.data_sent(linked.node)
    sender, receiver = factory_for(linked, provider)(slot_count=2)
    with sender, receiver:
        # offer, ready, the initial credit (the link counts a message once it is sent)
        wait_for(lambda: linked.data_sent(linked.node) - before == 3)
        for seq in range(6):  # three times round the ring: only link credits can do this
            sender.send(frame_for(seq), timeout=WAIT)
            with receiver.recv(WAIT) as frame:
                assert np.array_equal(frame.array, frame_for(seq))
        wait_for(lambda: linked.data_sent(linked.node) - before == 3 + 6)
    assert linked.node_events.empty(), "a bulk message reached on_message"


def test_a_refused_offer_fails_both_sides(linked: Linked):
    """A sender that can use none of the offered providers refuses with BulkClose: the
    node's open fails with the device's reason, the device's with LinkError."""
    errors: list[BaseException] = []

    def accept() -> None:
        try:
            linked.device.open_bulk_sender("edge-a", bulk.BulkConfig(provider="shm"), timeout=WAIT)
        except BaseException as error:  # noqa: BLE001 - checked below
            errors.append(error)

    thread = threading.Thread(target=accept, name="open-bulk-sender")
    thread.start()
    try:
        with pytest.raises(LinkError, match=r"refused bulk lane .*configured"):
            linked.node.open_bulk_receiver("cam-1", bulk.BulkConfig(provider="fake"), timeout=WAIT)
    finally:
        thread.join(WAIT)
    assert len(errors) == 1, errors
    assert isinstance(errors[0], LinkError), errors


def test_no_offer_is_a_timely_link_error(linked: Linked):
    """open_bulk_sender without an offer from that peer fails after its timeout, saying
    what the other side must do."""
    with pytest.raises(LinkError, match="must call open_bulk_receiver"):
        linked.device.open_bulk_sender("edge-a", bulk.BulkConfig(), timeout=0.05)


def test_no_link_is_peer_lost(linked: Linked):
    """A lane to a peer this endpoint has no link to fails at once."""
    with pytest.raises(PeerLostError, match="no control link to 'nobody'"):
        linked.node.open_bulk_receiver("nobody", bulk.BulkConfig(), timeout=WAIT)


def test_hostile_bulk_messages_are_counted_and_harmless(linked: Linked):
    """Credits and handshake messages for lanes that do not exist, and an offer flood,
    are counted by reason; the flood is answered with BulkClose; lanes keep working."""
    unknown = linked.rejected("bulk_unknown_lane")
    flood = linked.rejected("bulk_too_many_offers")
    for message in (
        messages.BulkCredit(lane=999, slots=(0,)),
        messages.BulkReady(lane=999, provider="shm"),
        messages.BulkAccept(lane=999, host_id="h", provider="shm"),
    ):
        assert linked.device.send("edge-a", message)
    offers = [
        messages.BulkOffer(lane=lane, host_id="h", providers=("zmq",), slot_size=1, slot_count=1)
        for lane in range(1, 20)
    ]
    for offer in offers:
        assert linked.device.send("edge-a", offer)
    wait_for(lambda: linked.rejected("bulk_unknown_lane") == unknown + 3)
    extra = len(offers) - MAX_PENDING_OFFERS
    wait_for(lambda: linked.rejected("bulk_too_many_offers") == flood + extra)
    for offer in offers:  # withdraw them, as a receiver that gives up does
        assert linked.device.send("edge-a", messages.BulkClose(lane=offer.lane))
    sender, receiver = factory_for(linked, "shm")()  # its accept follows the closes
    with sender, receiver:
        sender.send(frame_for(1), timeout=WAIT)
        with receiver.recv(WAIT) as frame:
            assert np.array_equal(frame.array, frame_for(1))
    with pytest.raises(LinkError, match="no bulk-lane offer"):  # all withdrawn
        linked.node.open_bulk_sender("cam-1", bulk.BulkConfig(), timeout=0.05)


def test_a_lost_link_fails_the_waiting_sender():
    """When the node goes away, the device's sender waiting for a credit gets
    PeerLostError (from the link's PeerDown, or its provider, whichever is first)."""
    pair = Linked()
    try:
        sender, receiver = open_lane(
            pair.node,
            pair.device,
            bulk.BulkConfig(provider="fake", slot_size=1 << 16, slot_count=1),
        )
        with sender:
            sender.send(frame_for(0), timeout=WAIT)
            pair.node.close()
            event = pair.device_events.get(timeout=WAIT)
            assert isinstance(event, PeerDown), event
            with pytest.raises(PeerLostError):
                sender.send(frame_for(1), timeout=WAIT)
            receiver.close()
    finally:
        pair.close()


@pytest.mark.integration
@pytest.mark.parametrize("provider", ["shm", "zmq"])
def test_a_device_process_writes_frames_to_its_node(provider: str, tmp_path: Path):
    """A device-role endpoint in its own process answers the node's offer over a real
    link and writes frames; the node gets them in order, by frame id, and a SIGKILLed
    device becomes PeerLostError after the frames that arrived."""
    node, events = endpoint("edge-a", "node", listen=("tcp://127.0.0.1:*",))
    node.start()
    log = (tmp_path / "device.log").open("wb")
    device = subprocess.Popen(
        [sys.executable, "-m", "tests.transport.link_device", node.bound[0], provider, "6"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        wait_up(events, "cam-1")
        config = bulk.BulkConfig(provider=provider, slot_size=1 << 20, slot_count=4)  # type: ignore[arg-type]
        with node.open_bulk_receiver("cam-1", config, timeout=WAIT) as receiver:
            assert receiver.provider == provider
            for seq in range(6):  # 6 frames through 4 slots: credits came back on the link
                with receiver.recv(WAIT) as frame:
                    assert frame.frame_id == 100 + seq
                    assert np.array_equal(frame.array, frame_for(seq))
            assert device.stdout is not None
            assert device.stdout.readline().split() == [b"sent", b"6"]
            device.kill()
            device.wait(WAIT)
            with pytest.raises(PeerLostError):
                receiver.recv(WAIT)
        assert not [e for e in _drain(events) if isinstance(e, messages.BulkCredit)]
    finally:
        if device.poll() is None:
            device.kill()
            device.wait(WAIT)
        for stream in (device.stdin, device.stdout):
            if stream is not None:
                stream.close()
        log.close()
        node.close()


def _drain(events: queue.SimpleQueue[object]) -> list[object]:
    out = []
    while not events.empty():
        out.append(events.get())
    return out


def test_opening_a_lane_from_a_link_callback_is_refused():
    """A lane opened from on_message would wait for the very thread it blocks: LinkError."""
    errors: queue.SimpleQueue[BaseException] = queue.SimpleQueue()
    nodes: list[Endpoint] = []

    def on_message(peer: str, message: messages.Message) -> None:
        try:
            nodes[0].open_bulk_receiver(peer, bulk.BulkConfig(), timeout=WAIT)
        except LinkError as error:
            errors.put(error)

    config = EndpointConfig(LinkConfig("edge-a", **FAST), listen=("tcp://127.0.0.1:*",))
    node = Endpoint(config, on_message=on_message).start()
    nodes.append(node)
    device, device_events = endpoint("cam-1", "device", peers=(node.bound[0],))
    device.start()
    try:
        wait_up(device_events, "edge-a")
        assert device.send("edge-a", messages.Tell(to="/x", body=b""))
        assert "link callback" in str(errors.get(timeout=WAIT))
    finally:
        device.close()
        node.close()
