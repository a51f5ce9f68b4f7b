"""Remote actors over the real ZeroMQ endpoint: two nodes in one process, ipc:// and tcp://."""

from __future__ import annotations

import dataclasses
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from edgeloop import ChildSpec, Node
from edgeloop.actors import Down
from edgeloop.errors import AskTimeout, PathNotFoundError, PeerLostError, RemoteError
from edgeloop.supervisor import RemoteRef
from edgeloop.transport import Endpoint, LinkConfig
from tests.helpers import WAIT, wait_for
from tests.supervisor.sample_actors import Blocker, Echo, Recorder, Relay

pytestmark = pytest.mark.integration

LINK = LinkConfig(id="unused", heartbeat_interval=0.1, liveness_timeout=1.0)
"""Quick timing, so that a silent peer is declared lost within a second."""


@dataclasses.dataclass
class Pair:
    """Node ``a`` linked to node ``b`` over real sockets."""

    a: Node
    b: Node
    out_a: queue.Queue[Any]
    out_b: queue.Queue[Any]
    gate: threading.Event

    def remote(self, address: str) -> RemoteRef:
        ref = self.a.ref(address)
        assert isinstance(ref, RemoteRef)
        return ref

    def watch_from_a(self, ref: RemoteRef) -> None:
        """Make a's /recorder watch ``ref`` and wait until b serves the watch."""
        assert self.b.remoting is not None
        before = self.b.remoting.statistics().watched_by
        recorder = self.a.lookup("/recorder")
        assert recorder is not None
        assert recorder.ask(("watch", ref)).get(WAIT) == "watching"
        wait_for(lambda: self.b.remoting.statistics().watched_by == before + 1)  # type: ignore[union-attr]

    def next_down(self) -> Down:
        message = self.out_a.get(timeout=WAIT)
        assert isinstance(message, Down), f"expected Down, got {message!r}"
        return message


@pytest.fixture(params=["ipc", "tcp"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    """edge-a dialling edge-b over ipc:// or tcp://127.0.0.1, both stopped afterwards."""
    folder = tempfile.mkdtemp(prefix="edgeloop-")  # ipc paths must stay short
    listen = f"ipc://{folder}/edge-b.sock" if request.param == "ipc" else "tcp://127.0.0.1:*"
    out_a: queue.Queue[Any] = queue.Queue()
    out_b: queue.Queue[Any] = queue.Queue()
    gate = threading.Event()
    b = Node(
        "edge-b",
        children=[
            ChildSpec("echo", Echo),
            ChildSpec("recorder", Recorder, args={"out": out_b}),
            ChildSpec("blocker", Blocker, args={"gate": gate}),
        ],
        listen=[listen],
        link=LINK,
    ).start()
    try:
        assert isinstance(b.endpoint, Endpoint)
        a = Node(
            "edge-a",
            children=[ChildSpec("recorder", Recorder, args={"out": out_a})],
            peers=[b.endpoint.bound[0]],
            link=LINK,
        ).start()
        try:
            wait_for(lambda: a.peers() == ["edge-b"] and b.peers() == ["edge-a"], what="linked")
            yield Pair(a, b, out_a, out_b, gate)
        finally:
            gate.set()
            a.stop()
    finally:
        gate.set()
        b.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_remote_tell(pair: Pair) -> None:
    """A tell reaches the actor on the other node."""
    pair.a.ref("edge-b:/recorder").tell({"zone": "gate", "n": 1})
    assert pair.out_b.get(timeout=WAIT) == {"zone": "gate", "n": 1}


def test_remote_ask_reply(pair: Pair) -> None:
    """An ask returns the remote handler's answer, many times over one link."""
    ref = pair.a.ref("edge-b:/echo")
    assert [ref.ask(n).get(WAIT) for n in range(20)] == [f"hello {n}" for n in range(20)]


def test_an_actor_asks_an_actor_on_another_node(pair: Pair) -> None:
    """An actor reaches another node's actor by address through self.system.ref."""
    out: queue.Queue[Any] = queue.Queue()
    relay = pair.a.root.start_child(
        ChildSpec("relay", Relay, args={"target": "edge-b:/echo", "out": out})
    )
    relay.tell("from a")
    assert out.get(timeout=WAIT) == ("from a", "hello from a")
    relay.tell("crash")
    message, error = out.get(timeout=WAIT)
    assert message == "crash"
    assert isinstance(error, RemoteError)


def test_remote_exception_is_a_remote_error(pair: Pair) -> None:
    """A remote exception arrives as RemoteError with type, message and traceback."""
    with pytest.raises(RemoteError) as info:
        pair.a.ref("edge-b:/echo").ask("crash").get(WAIT)
    assert info.value.remote_type == "builtins.RuntimeError"
    assert info.value.remote_message == "asked to crash"
    assert "sample_actors.py" in info.value.traceback


def test_unknown_path_is_path_not_found_with_dead_letters_on_both_nodes(pair: Pair) -> None:
    """An ask to a missing path fails with PathNotFoundError; both nodes record it."""
    with pytest.raises(PathNotFoundError, match="edge-b:/nobody"):
        pair.a.ref("edge-b:/nobody").ask("hi").get(WAIT)
    assert pair.a.system.dead_letters.recent()[0].recipient == "edge-b:/nobody"
    wait_for(lambda: pair.b.system.dead_letters.count == 1)
    assert pair.b.system.dead_letters.recent()[0].recipient == "/nobody"


def test_ask_timeout(pair: Pair) -> None:
    """An unanswered ask times out; its late reply is counted, not delivered."""
    future = pair.a.ref("edge-b:/blocker").ask("block", timeout=0.2)
    with pytest.raises(AskTimeout):
        future.get()
    wait_for(future.done)
    pair.gate.set()
    assert pair.a.remoting is not None
    remoting = pair.a.remoting
    wait_for(lambda: remoting.statistics().counters.get("late_replies") == 1)


def test_remote_watch_down_on_stop(pair: Pair) -> None:
    """A watcher gets Down(ref, shutdown) when the remote actor is stopped."""
    ref = pair.remote("edge-b:/echo")
    pair.watch_from_a(ref)
    pair.b.root.terminate_child("echo")
    down = pair.next_down()
    assert down.ref == ref
    assert down.reason.kind == "shutdown"


def test_remote_watch_down_on_crash(pair: Pair) -> None:
    """A watcher gets Down(ref, crash) when the remote actor crashes."""
    ref = pair.remote("edge-b:/echo")
    pair.watch_from_a(ref)
    with pytest.raises(RemoteError):
        ref.ask("crash").get(WAIT)
    down = pair.next_down()
    assert down.ref == ref
    assert down.reason.kind == "crash"
    assert "asked to crash" in down.reason.detail


def test_silent_peer_is_lost_asks_fail_and_watches_go_down(pair: Pair) -> None:
    """A peer that goes silent without a Close is declared lost by the liveness timeout:
    pending asks fail with PeerLostError and watches get Down(noconnection)."""
    ref = pair.remote("edge-b:/echo")
    pair.watch_from_a(ref)
    future = pair.a.ref("edge-b:/blocker").ask("block", timeout=WAIT * 2)
    endpoint = pair.b.endpoint
    assert isinstance(endpoint, Endpoint)
    endpoint._goodbye = lambda: None  # type: ignore[method-assign]  # vanish without a Close
    endpoint.close()
    with pytest.raises(PeerLostError, match="edge-b"):
        future.get(WAIT)
    down = pair.next_down()
    assert down.ref == ref
    assert down.reason.kind == "noconnection"
    assert "liveness_timeout" in down.reason.detail
