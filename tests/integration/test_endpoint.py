"""The ZeroMQ endpoint over real sockets and real processes.

Handshakes over tcp:// and ipc://, data both ways, peer events, orderly close, reconnect
after the node restarts (in this process and as a killed and restarted process), the
liveness timeout against a SIGKILLed process, statistics, and a node process serving two
devices at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeloop import messages
from edgeloop.errors import LinkError
from edgeloop.transport import LinkSide, LinkState, PeerDown, PeerUp
from tests.helpers import wait_for
from tests.integration.endpoint_helpers import (
    WAIT,
    Peer,
    PeerProcess,
    RawSockets,
    handshake,
    ipc_folder,
    number,
    port_of,
    receive_kind,
    tell,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def peers() -> Iterator[Callable[..., Peer]]:
    """Start in-process endpoints; every one is closed after the test."""
    made: list[Peer] = []

    def make(*args: Any, **kwargs: Any) -> Peer:
        peer = Peer(*args, **kwargs)
        made.append(peer)
        return peer.start()

    yield make
    for peer in reversed(made):
        peer.endpoint.close()


@pytest.fixture
def raw() -> Iterator[RawSockets]:
    """Raw ZeroMQ sockets, closed with linger 0 and their context terminated."""
    sockets = RawSockets()
    yield sockets
    sockets.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., PeerProcess]]:
    """Start endpoint processes; each is killed (if still running) and reaped after."""
    made: list[PeerProcess] = []

    def spawn(*args: str) -> PeerProcess:
        process = PeerProcess(tmp_path / f"peer-{len(made)}.log", *args)
        made.append(process)
        return process.ready()

    yield spawn
    for process in made:
        process.cleanup()


@pytest.fixture(params=["tcp", "ipc"])
def listen_address(request: pytest.FixtureRequest) -> Iterator[str]:
    """Where a node listens: loopback TCP on a free port, or an ipc:// socket file."""
    if request.param == "tcp":
        yield "tcp://127.0.0.1:*"
        return
    with ipc_folder() as folder:
        yield f"ipc://{folder}/node.sock"


# -- handshake and data ------------------------------------------------------------------


def test_handshake_and_data_both_ways(peers: Callable[..., Peer], listen_address: str) -> None:
    """A device connects, both sides see PeerUp, and data flows in both directions."""
    node = peers("node-a", listen=(listen_address,))
    if listen_address.startswith("tcp"):
        assert port_of(node.address) > 0
    else:
        assert node.address == listen_address
    device = peers("dev-1", "device", peers=(node.address,))
    assert device.event() == PeerUp("node-a", "node", reconnected=False)
    assert node.event() == PeerUp("dev-1", "device", reconnected=False)
    assert device.endpoint.connected_peers() == ["node-a"]
    assert node.endpoint.connected_peers() == ["dev-1"]

    assert device.endpoint.send("node-a", tell(1))
    assert node.message() == ("dev-1", tell(1))
    reply = messages.Reply(id=7, body=b"\x01")
    assert node.endpoint.send("dev-1", reply)
    assert device.message() == ("node-a", reply)


def test_node_connects_to_node(peers: Callable[..., Peer]) -> None:
    """A node may connect to another node: the handshake announces the role ``node``."""
    b = peers("node-b", listen=("tcp://127.0.0.1:*",))
    a = peers("node-a", listen=("tcp://127.0.0.1:*",), peers=(b.address,))
    assert a.event() == PeerUp("node-b", "node", reconnected=False)
    assert b.event() == PeerUp("node-a", "node", reconnected=False)
    a.endpoint.send("node-b", tell(1))
    b.endpoint.send("node-a", tell(2))
    assert b.message() == ("node-a", tell(1))
    assert a.message() == ("node-b", tell(2))


def test_many_messages_arrive_in_order(peers: Callable[..., Peer]) -> None:
    """Thousands of messages sent from another thread arrive whole and in order."""
    node = peers("node-a", listen=("tcp://127.0.0.1:*",))
    device = peers("dev-1", "device", peers=(node.address,))
    device.up("node-a")
    for n in range(5000):
        assert device.endpoint.send("node-a", tell(n))
    assert [number(node.message()[1]) for _ in range(5000)] == list(range(5000))


def test_send_to_unknown_peer_returns_false(peers: Callable[..., Peer]) -> None:
    """``send`` refuses a peer it has no link to, and any peer before start or after close."""
    node = peers("node-a", listen=("tcp://127.0.0.1:*",))
    assert not node.endpoint.send("nobody", tell(1))
    node.endpoint.close()
    assert not node.endpoint.send("nobody", tell(1))


def test_closed_endpoint_cannot_start_again(peers: Callable[..., Peer]) -> None:
    """A closed endpoint refuses to start again instead of running with stale links."""
    node = peers("node-a", listen=("tcp://127.0.0.1:*",))
    node.endpoint.close()
    with pytest.raises(LinkError, match="build a new Endpoint"):
        node.endpoint.start()


def test_bind_failure_raises_link_error(peers: Callable[..., Peer]) -> None:
    """Binding an address already in use fails start() with a LinkError and no thread."""
    node = peers("node-a", listen=("tcp://127.0.0.1:*",))
    with pytest.raises(LinkError, match="could not start links of 'node-b'"):
        peers("node-b", listen=(node.address,))


def test_close_from_a_callback_does_not_deadlock(peers: Callable[..., Peer]) -> None:
    """An endpoint closed from its own on_peer callback stops instead of joining itself."""
    node = peers("node-a", listen=("tcp://127.0.0.1:*",))
    device: Peer | None = None
    closed = threading.Event()

    def close_on_up(event: PeerUp | PeerDown) -> None:
        assert device is not None
        device.endpoint.close()
        closed.set()

    device = Peer("dev-1", "device", peers=(node.address,))
    device.endpoint._on_peer = close_on_up
    device.start()
    assert closed.wait(WAIT)
    assert node.event() == PeerUp("dev-1", "device", reconnected=False)
    assert node.event() == PeerDown("dev-1", "closed")
    device.endpoint.close()  # the thread has ended: this only tidies up


# -- orderly close -----------------------------------------------------------------------


def test_orderly_close_sends_close(peers: Callable[..., Peer], raw: RawSockets) -> None:
    """A closing node sends Close to every ready peer, with its reason."""
    node = peers("node-a", listen=("tcp://127.0.0.1:*",))
    dealer = raw.dealer(node.address, identity=b"raw-1")
    welcome = handshake(dealer, "raw-1")
    assert welcome.peer == "node-a"
    node.endpoint.close()
    close = receive_kind(dealer, messages.Close)
    assert close == messages.Close(reason="node stopping")


def test_device_close_is_peer_down_closed_at_the_node(peers: Callable[..., Peer]) -> None:
    """A device that closes is PeerDown(closed) at the node, which forgets the link."""
    node = peers("node-a", listen=("tcp://127.0.0.1:*",))
    device = peers("dev-1", "device", peers=(node.address,))
    node.up("dev-1")
    device.endpoint.close()
    assert node.event() == PeerDown("dev-1", "closed")
    assert node.endpoint.connected_peers() == []
    assert node.endpoint.statistics().peers == ()
    assert not node.endpoint.send("dev-1", tell(1))


def test_device_closed_before_its_welcome_arrives_still_says_goodbye(
    peers: Callable[..., Peer],
) -> None:
    """A device closed just after the node welcomed it, before the Welcome reached it,
    still sends Close: the node sees PeerDown(closed), never a lost transport."""
    node = peers("node-a", listen=("tcp://127.0.0.1:*",), heartbeat_interval=0.002)
    for n in range(20):
        device = peers(f"dev-{n}", "device", peers=(node.address,))
        node.up(f"dev-{n}")
        device.endpoint.close()  # its link may still be waiting for the Welcome
        assert node.event() == PeerDown(f"dev-{n}", "closed")
    assert dict(node.endpoint.statistics().rejected) == {}


def test_node_close_is_peer_down_closed_at_the_device(peers: Callable[..., Peer]) -> None:
    """A node that closes is PeerDown(closed) at the device."""
    node = peers("node-a", listen=("tcp://127.0.0.1:*",))
    device = peers("dev-1", "device", peers=(node.address,))
    device.up("node-a")
    node.endpoint.close()
    assert device.event() == PeerDown("node-a", "closed")


# -- reconnect ---------------------------------------------------------------------------


def test_reconnect_after_node_restarts_on_same_port(peers: Callable[..., Peer]) -> None:
    """After the node closes and a new one binds its port, the device reconnects
    (PeerUp reconnected=True) and what it sent meanwhile arrives first, in order."""
    node = peers("node-a", listen=("tcp://127.0.0.1:*",))
    address = node.address
    device = peers("dev-1", "device", peers=(address,))
    device.up("node-a")
    node.endpoint.close()
    assert device.event() == PeerDown("node-a", "closed")
    for n in range(5):
        assert device.endpoint.send("node-a", tell(n)), "queued while the node is away"

    again = peers("node-a", listen=(address,))
    device.up("node-a", reconnected=True)
    again.up("dev-1")
    device.endpoint.send("node-a", tell(5))
    assert [number(again.message()[1]) for _ in range(6)] == list(range(6))
    assert device.undelivered.empty()


def test_reconnect_after_killed_node_restarts(
    peers: Callable[..., Peer], processes: Callable[..., PeerProcess]
) -> None:
    """A SIGKILLed node is lost by the liveness timeout; the device backs off and
    reconnects to its replacement, and what it queued meanwhile arrives in order."""
    node = processes("--id", "node-a", "--listen", "tcp://127.0.0.1:*", "--liveness", "1.0")
    address = node.bound[0]
    device = peers("dev-1", "device", peers=(address,))
    device.up("node-a")
    node.kill()
    assert device.event() == PeerDown("node-a", "liveness_timeout")
    for n in range(5):
        assert device.endpoint.send("node-a", tell(n))

    processes("--id", "node-a", "--listen", address, "--liveness", "1.0")
    device.up("node-a", reconnected=True)
    assert [number(device.message()[1]) for _ in range(5)] == list(range(5))  # echoed
    [status] = device.endpoint.statistics().peers
    assert status.link.reconnects == 1
    assert status.link.reconnect_attempts >= 1


def test_device_notices_a_node_restart_before_its_liveness_timeout(
    peers: Callable[..., Peer], processes: Callable[..., PeerProcess]
) -> None:
    """A node killed and restarted at once answers the device's traffic with
    ErrorReply(bad_state): the device takes that as a lost link and shakes hands again,
    long before its liveness timeout (which the new node's answers would keep resetting)."""
    args = ("--id", "node-a", "--heartbeat", "0.1", "--liveness", "30")
    node = processes(*args, "--listen", "tcp://127.0.0.1:*")
    address = node.bound[0]
    device = peers("dev-1", "device", peers=(address,))
    device.up("node-a")
    node.kill()
    replacement = processes(*args, "--listen", address)
    assert device.event(timeout=10.0) == PeerDown("node-a", "transport_lost")
    device.up("node-a", reconnected=True)
    replacement.wait_for("peer_up", peer="dev-1")
    device.endpoint.send("node-a", tell(1))
    assert device.message() == ("node-a", tell(1))


# -- liveness against killed processes ----------------------------------------------------


def test_killed_device_is_lost_within_the_liveness_timeout(
    peers: Callable[..., Peer], processes: Callable[..., PeerProcess]
) -> None:
    """A SIGKILLed device process is declared lost within the liveness timeout: by the
    timeout itself, or sooner when the node's next heartbeat finds the connection gone."""
    node = peers("node-a", listen=("tcp://127.0.0.1:*",), liveness_timeout=1.0)
    device = processes("--id", "dev-x", "--role", "device", "--peer", node.address)
    node.up("dev-x")
    device.wait_for("peer_up", peer="node-a")
    killed = time.monotonic()
    device.kill()
    event = node.event()
    took = time.monotonic() - killed
    assert isinstance(event, PeerDown), event
    assert event.peer == "dev-x"
    assert event.reason in {"liveness_timeout", "transport_lost"}
    assert took < 1.0 + 1.0, f"lost after {took:.2f} s"


def test_node_process_serves_two_devices_and_its_death_is_noticed(
    peers: Callable[..., Peer], processes: Callable[..., PeerProcess]
) -> None:
    """A node in its own process echoes two devices' streams, each to its own sender in
    order; when it is SIGKILLed both devices see PeerDown(liveness_timeout) in time."""
    node = processes("--id", "node-a", "--listen", "tcp://127.0.0.1:*", "--liveness", "0.6")
    d1 = peers("dev-1", "device", peers=(node.bound[0],))
    d2 = peers("dev-2", "device", peers=(node.bound[0],))
    for device in (d1, d2):
        device.up("node-a")
    node.wait_for("peer_up", peer="dev-1")
    node.wait_for("peer_up", peer="dev-2")
    for n in range(200):
        d1.endpoint.send("node-a", tell(n))
        d2.endpoint.send("node-a", tell(1000 + n))
    assert [number(d1.message()[1]) for _ in range(200)] == list(range(200))
    assert [number(d2.message()[1]) for _ in range(200)] == list(range(1000, 1200))
    assert d1.messages.empty()
    assert d2.messages.empty()

    killed = time.monotonic()
    node.kill()
    for device in (d1, d2):
        assert device.event() == PeerDown("node-a", "liveness_timeout")
    assert time.monotonic() - killed < 0.6 + 1.5


# -- statistics ----------------------------------------------------------------------------


def test_statistics_count_rejections_and_link_traffic(
    peers: Callable[..., Peer], raw: RawSockets
) -> None:
    """Statistics count rejected input by reason and each link's traffic and state."""
    node = peers("node-a", listen=("tcp://127.0.0.1:*",))
    device = peers("dev-1", "device", peers=(node.address,))
    device.up("node-a")
    node.up("dev-1")
    for n in range(3):
        device.endpoint.send("node-a", tell(n))
    for _ in range(3):
        node.message()
    for n in range(2):
        node.endpoint.send("dev-1", tell(n))
    for _ in range(2):
        device.message()

    garbage = raw.dealer(node.address)
    garbage.send(b"\xc1 not msgpack")
    error = receive_kind(garbage, messages.ErrorReply)
    assert isinstance(error, messages.ErrorReply)
    assert error.code == "malformed"

    stats = node.endpoint.statistics()
    assert stats.bound == (node.address,)
    assert dict(stats.rejected) == {"malformed": 1}
    assert stats.rejected_total == 1
    [at_node] = stats.peers
    assert (at_node.peer, at_node.address, at_node.side, at_node.state) == (
        "dev-1",
        node.address,
        LinkSide.ACCEPTOR,
        LinkState.READY,
    )
    assert (at_node.link.received, at_node.link.sent) == (3, 2)
    assert at_node.link.violations_total == 0

    [at_device] = device.endpoint.statistics().peers
    assert (at_device.peer, at_device.address, at_device.side, at_device.state) == (
        "node-a",
        node.address,
        LinkSide.CONNECTOR,
        LinkState.READY,
    )
    assert (at_device.link.sent, at_device.link.received) == (3, 2)
    assert device.endpoint.statistics().rejected_total == 0


def test_heartbeats_keep_an_idle_link_ready(peers: Callable[..., Peer]) -> None:
    """An idle link exchanges heartbeats and stays ready past several liveness timeouts."""
    node = peers(
        "node-a", listen=("tcp://127.0.0.1:*",), heartbeat_interval=0.05, liveness_timeout=0.4
    )
    device = peers("dev-1", "device", peers=(node.address,))
    device.up("node-a")

    def heartbeats() -> int:
        [status] = device.endpoint.statistics().peers
        return min(status.link.heartbeats_sent, status.link.heartbeats_received)

    wait_for(lambda: heartbeats() >= 20, what="twenty heartbeats each way (2.5 timeouts)")
    assert device.events.empty()
    assert node.endpoint.connected_peers() == ["dev-1"]


def test_handler_failure_is_counted_and_the_link_carries_on(peers: Callable[..., Peer]) -> None:
    """An on_message handler that raises is counted as handler_failed; later messages
    are still delivered."""
    got: list[int] = []
    seen = threading.Event()

    def handler(peer: str, message: messages.Message) -> None:
        n = number(message)
        if n == 0:
            raise RuntimeError("a bug in the handler")
        got.append(n)
        seen.set()

    node = peers("node-a", listen=("tcp://127.0.0.1:*",), on_message=handler)
    device = peers("dev-1", "device", peers=(node.address,))
    device.up("node-a")
    device.endpoint.send("node-a", tell(0))
    device.endpoint.send("node-a", tell(1))
    assert seen.wait(WAIT)
    assert got == [1]
    assert dict(node.endpoint.statistics().rejected) == {"handler_failed": 1}


def test_two_nodes_that_dial_each_other_settle_on_one_link() -> None:
    """When each node lists the other as a peer, both keep the lower id's link and close
    the other: one PeerUp each, no PeerDown, and traffic both ways for many heartbeats."""
    with ipc_folder() as folder:
        a_address, b_address = f"ipc://{folder}/a", f"ipc://{folder}/b"
        a = Peer("edge-a", listen=(a_address,), peers=(b_address,)).start()
        b = Peer("edge-b", listen=(b_address,), peers=(a_address,)).start()
        try:
            a.up("edge-b")
            b.up("edge-a")
            deadline = time.monotonic() + 1.5  # fifteen heartbeat intervals
            n = 0
            while time.monotonic() < deadline:
                assert a.endpoint.send("edge-b", tell(n))
                assert number(b.message()[1]) == n
                assert b.endpoint.send("edge-a", tell(n))
                assert number(a.message()[1]) == n
                n += 1
            assert a.events.empty(), a.events.get()
            assert b.events.empty(), b.events.get()
            for peer, other in ((a, "edge-b"), (b, "edge-a")):
                ready = [
                    status
                    for status in peer.endpoint.statistics().peers
                    if status.peer == other and status.state is LinkState.READY
                ]
                assert len(ready) == 1, ready
            kept = [s for s in a.endpoint.statistics().peers if s.state is LinkState.READY]
            assert kept[0].side is LinkSide.CONNECTOR  # edge-a < edge-b: a's dial stays
        finally:
            b.endpoint.close()
            a.endpoint.close()


def test_a_crashed_io_thread_reports_its_peers_down_and_refuses_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the I/O thread dies of a bug, its ready peers are reported down, sends are
    refused, and what was queued is reported undelivered instead of piling up."""
    with ipc_folder() as folder:
        node = Peer("edge-a", listen=(f"ipc://{folder}/a",)).start()
        device = Peer("cam-01", role="device", peers=(node.address,)).start()
        try:
            node.up("cam-01")
            device.up("edge-a")
            broken = threading.Event()

            def fail(now: float) -> None:
                broken.set()
                raise RuntimeError("injected bug in the I/O loop")

            monkeypatch.setattr(node.endpoint, "_tick", fail)
            node.endpoint._soon()  # make the loop run housekeeping now
            assert broken.wait(WAIT)
            event = node.event()
            assert event == PeerDown("cam-01", "transport_lost")
            wait_for(lambda: not node.endpoint.alive, what="the I/O thread ended")
            assert not node.endpoint.send("cam-01", tell(1))
        finally:
            device.endpoint.close()
            node.endpoint.close()
