"""Endpoint.send's fast path: a sender on another thread puts a data message on the wire
itself while the I/O thread waits in poll. Order, exactly once and back-pressure hold
whichever path a message takes (real sockets, in-process endpoints)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

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


def _count_calls(endpoint: Endpoint, name: str, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record what ``endpoint.name`` returns, call by call."""
    calls: list[Any] = []
    real = getattr(endpoint, name)

    def counted(*args: Any) -> Any:
        result = real(*args)
        calls.append(result)
        return result

    monkeypatch.setattr(endpoint, name, counted)
    return calls


def test_a_sender_off_the_io_thread_sends_itself_in_order(
    pair: tuple[Peer, Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    node, device = pair
    direct = _count_calls(device.endpoint, "_direct", monkeypatch)
    wakes = _count_calls(device.endpoint, "_wake", monkeypatch)
    n = 200
    for i in range(n):  # one at a time, as a paced sensor or an ask sends
        assert device.endpoint.send("node-a", tell(i))
        assert number(node.message()[1]) == i
    # The I/O thread is mostly asleep in poll: most sends never wake it. (A burst goes
    # to the outbox instead: the I/O thread has not drained it when the next one comes.)
    assert direct.count(True) > n // 2
    assert len(wakes) < n // 2
    assert device.endpoint.statistics().rejected_total == 0


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
    """A node answers on its I/O thread (outbox) while an actor thread of it sends too
    (fast path): the device gets both streams whole."""
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
    """The node stops reading; the device's direct sends fill ZeroMQ's pipe until one
    is refused (EAGAIN): it waits in the backlog, later sends queue behind it, and once
    the node reads again every message arrives once, in order."""
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
        direct = _count_calls(device.endpoint, "_direct", monkeypatch)
        pace = threading.Event()
        sent = 0
        while not device.endpoint._backlogged and sent < 20_000:
            assert device.endpoint.send("node-a", big(sent))
            sent += 1
            pace.wait(0.0002)  # apart, so not a burst: the sender sends itself
        assert device.endpoint._backlogged, "the pipe never filled"
        assert direct.count(True) > len(direct) // 2
        for _ in range(20):  # behind the backlog: the outbox, never the fast path
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
