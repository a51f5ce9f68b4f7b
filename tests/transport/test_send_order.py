"""Endpoint.send from many threads and from callbacks: order per sender, exactly once, and
back-pressure (a full ZeroMQ pipe holds frames back in order and loses none), over real
sockets between in-process endpoints."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from edgeloop import messages
from edgeloop.transport import Endpoint, _endpoint
from tests.helpers import WAIT, wait_for
from tests.integration.endpoint_helpers import Peer, number, tell


@pytest.fixture
def pair() -> Iterator[tuple[Peer, Peer]]:
    node = Peer("node-a", listen=("tcp://127.0.0.1:*",)).start()
    device = Peer("cam-1", role="device", peers=(node.address,)).start()
    try:
        node.up("cam-1")
        device.up("node-a")
        yield node, device
    finally:
        device.endpoint.close()
        node.endpoint.close()


def test_senders_on_many_threads_each_keep_their_order(pair: tuple[Peer, Peer]) -> None:
    """Fast path and outbox mixed (threads contend for the lock): nothing lost, nothing
    doubled, and each sender's messages arrive in the order it sent them."""
    node, device = pair
    senders, each = 4, 300

    def send(sender: int) -> None:
        for i in range(each):
            assert device.endpoint.send("node-a", tell(sender * 100_000 + i))

    threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    got = [number(node.message()[1]) for _ in range(senders * each)]
    for sender in range(senders):
        mine = [v - sender * 100_000 for v in got if v // 100_000 == sender]
        assert mine == list(range(each))
    assert node.messages.empty()


def test_a_reply_from_the_nodes_callback_and_a_direct_send_both_arrive() -> None:
    """A node answers on its I/O thread while another thread of it sends too: the device
    gets both streams whole, each in order."""
    box: dict[str, Endpoint] = {}

    def answer(peer: str, message: messages.Message) -> None:
        box["node"].send(peer, tell(number(message) + 1_000))

    node = Peer("node-a", listen=("tcp://127.0.0.1:*",), on_message=answer)
    box["node"] = node.endpoint
    node.start()
    device = Peer("cam-1", role="device", peers=(node.address,)).start()
    try:
        node.up("cam-1")
        device.up("node-a")
        for i in range(100):
            assert device.endpoint.send("node-a", tell(i))
            assert node.endpoint.send("cam-1", tell(10_000 + i))
        got = [number(device.message()[1]) for _ in range(200)]
        assert [v for v in got if v < 10_000] == [1_000 + i for i in range(100)]
        assert [v for v in got if v >= 10_000] == [10_000 + i for i in range(100)]
    finally:
        device.endpoint.close()
        node.endpoint.close()


def big(n: int) -> messages.Tell:
    """A Tell of about 32 KiB, so that a few hundred fill the pipes and socket buffers."""
    return messages.Tell(to="/sink", body=messages.encode_body([n, "x" * 32_768]))


def test_a_full_pipe_holds_direct_sends_back_and_loses_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The node stops reading; the device's sends fill ZeroMQ's pipe until one is
    refused (EAGAIN): it waits in the backlog, later sends queue behind it, and once the
    node reads again every message arrives once, in order."""
    monkeypatch.setattr(_endpoint, "_HWM", 4)
    gate = threading.Event()
    got: list[int] = []

    def slow(peer: str, message: messages.Message) -> None:
        gate.wait(WAIT * 2)  # the node's I/O thread stalls on the first message
        assert isinstance(message, messages.Tell)
        got.append(messages.decode_body(message.body)[0])

    node = Peer("node-a", listen=("tcp://127.0.0.1:*",), on_message=slow, liveness_timeout=30.0)
    node.start()
    device = Peer("cam-1", role="device", peers=(node.address,), liveness_timeout=30.0).start()
    try:
        node.up("cam-1")
        device.up("node-a")
        sent = 0
        while not device.endpoint._backlogged and sent < 20_000:
            assert device.endpoint.send("node-a", big(sent))
            sent += 1
        assert device.endpoint._backlogged, "the pipe never filled"
        for _ in range(20):  # behind the backlog
            assert device.endpoint.send("node-a", big(sent))
            sent += 1
        gate.set()
        wait_for(lambda: len(got) >= sent, what=f"{sent} messages, got {len(got)}")
        assert got == list(range(sent))
        assert device.undelivered.empty()
    finally:
        gate.set()
        device.endpoint.close()
        node.endpoint.close()
