"""Remote actors between two nodes in one process, linked by the in-memory fake endpoint."""

from __future__ import annotations

import dataclasses
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from edgeloop import ChildSpec, Node
from edgeloop.actors import ActorRef, Down, Future, monitor
from edgeloop.errors import (
    AskTimeout,
    ConfigError,
    LinkError,
    NodeError,
    PathNotFoundError,
    PeerLostError,
    RemoteError,
)
from edgeloop.messages import Ask, Tell, encode_body
from edgeloop.supervisor import LinkSettings, RemoteRef, parse_app
from tests.helpers import WAIT, wait_for
from tests.supervisor.fake_link import FakeNetwork
from tests.supervisor.sample_actors import BigNumber, Blocker, Echo, Opaque, Recorder

B_ADDRESS = "ipc:///fake/edge-b"


@dataclasses.dataclass
class Pair:
    """Node ``a`` linked to node ``b``, with what their actors report to the test."""

    a: Node
    b: Node
    network: FakeNetwork
    out_a: queue.Queue[Any]
    out_b: queue.Queue[Any]
    gate: threading.Event

    def counter(self, node: Node, name: str) -> int:
        assert node.remoting is not None
        return node.remoting.statistics().counters.get(name, 0)

    def watched_by(self, node: Node) -> int:
        assert node.remoting is not None
        return node.remoting.statistics().watched_by

    def watch_from_a(self, ref: RemoteRef) -> None:
        """Make a's /recorder watch ``ref`` and wait until b has the Watch."""
        before = self.watched_by(self.b)
        recorder = self.a.lookup("/recorder")
        assert recorder is not None
        assert recorder.ask(("watch", ref)).get(WAIT) == "watching"
        wait_for(lambda: self.watched_by(self.b) == before + 1, what="b serves the watch")


@pytest.fixture
def pair() -> Iterator[Pair]:
    """Two running nodes, edge-a dialling edge-b, torn down after the test."""
    network = FakeNetwork()
    out_a: queue.Queue[Any] = queue.Queue()
    out_b: queue.Queue[Any] = queue.Queue()
    gate = threading.Event()
    b = Node(
        "edge-b",
        children=[
            ChildSpec("echo", Echo),
            ChildSpec("recorder", Recorder, args={"out": out_b}),
            ChildSpec("blocker", Blocker, args={"gate": gate}),
            ChildSpec("opaque", Opaque),
        ],
        listen=[B_ADDRESS],
        endpoint_factory=network.factory,
    ).start()
    a = Node(
        "edge-a",
        children=[ChildSpec("recorder", Recorder, args={"out": out_a})],
        peers=[B_ADDRESS],
        endpoint_factory=network.factory,
    ).start()
    try:
        wait_for(lambda: a.peers() == ["edge-b"] and b.peers() == ["edge-a"], what="linked")
        yield Pair(a, b, network, out_a, out_b, gate)
    finally:
        gate.set()
        a.stop()
        b.stop()
    errors = [e for endpoint in (a, b) for e in getattr(endpoint.endpoint, "errors", [])]
    assert not errors


def next_item(q: queue.Queue[Any]) -> Any:
    try:
        return q.get(timeout=WAIT)
    except queue.Empty:
        raise AssertionError(f"nothing arrived within {WAIT} s") from None


def next_down(pair: Pair) -> Down:
    message = next_item(pair.out_a)
    assert isinstance(message, Down), f"expected Down, got {message!r}"
    return message


def remote(node: Node, address: str) -> RemoteRef:
    ref = node.ref(address)
    assert isinstance(ref, RemoteRef)
    return ref


# -- refs ------------------------------------------------------------------------------


def test_remote_ref_is_visibly_remote(pair: Pair) -> None:
    """node.ref('edge-b:/echo') is a RemoteRef with node, path, address and a clear repr."""
    ref = pair.a.ref("edge-b:/echo")
    assert isinstance(ref, RemoteRef)
    assert not isinstance(ref, ActorRef)
    assert ref.is_remote
    assert (ref.node, ref.path, ref.address, ref.name) == (
        "edge-b",
        "/echo",
        "edge-b:/echo",
        "echo",
    )
    assert repr(ref) == "<RemoteRef edge-b:/echo>"
    assert ref == pair.a.ref("edge-b:/echo")
    assert len({ref, pair.a.ref("edge-b:/echo"), pair.a.ref("edge-b:/recorder")}) == 2


def test_own_node_and_bare_paths_give_local_refs(pair: Pair) -> None:
    """An address naming this node, or a bare path, gives the local ActorRef."""
    local = pair.a.lookup("/recorder")
    assert pair.a.ref("edge-a:/recorder") is local
    assert pair.a.ref("/recorder") is local
    assert local is not None
    assert not local.is_remote
    with pytest.raises(PathNotFoundError, match="/nobody"):
        pair.a.ref("/nobody")


@pytest.mark.parametrize("address", ["edge-b", "edge-b:", "edge-b:yard", ":/x", "a/b:/x", ""])
def test_malformed_addresses_are_refused(pair: Pair, address: str) -> None:
    """An address that is not NODE:/path or /path raises ValueError."""
    with pytest.raises(ValueError, match="invalid"):
        pair.a.ref(address)


def test_node_without_links_has_no_remote_refs() -> None:
    """A node with neither listen nor peers refuses remote addresses and has no peers."""
    with Node("solo", children=[ChildSpec("echo", Echo)]) as node:
        assert node.peers() == []
        assert node.remoting is None
        with pytest.raises(LinkError, match="no links"):
            node.ref("edge-b:/echo")


# -- tell and ask ----------------------------------------------------------------------


def test_remote_tell_reaches_the_actor(pair: Pair) -> None:
    """A remote tell arrives at the actor at that path on the other node."""
    pair.a.ref("edge-b:/recorder").tell({"n": 1, "label": "skunk"})
    assert next_item(pair.out_b) == {"n": 1, "label": "skunk"}


def test_remote_tells_arrive_in_order(pair: Pair) -> None:
    """Tells from one node to one actor arrive in the order they were sent."""
    ref = pair.a.ref("edge-b:/recorder")
    for n in range(50):
        ref.tell(n)
    assert [next_item(pair.out_b) for _ in range(50)] == list(range(50))


def test_remote_ask_gets_the_reply(pair: Pair) -> None:
    """A remote ask returns the remote handler's answer."""
    assert pair.a.ref("edge-b:/echo").ask("there").get(WAIT) == "hello there"


def test_remote_ask_completes_callbacks(pair: Pair) -> None:
    """add_done_callback on a remote ask runs with the reply, as for a local ask."""
    replies: queue.Queue[Any] = queue.Queue()
    future = pair.a.ref("edge-b:/echo").ask([1, 2])
    future.add_done_callback(lambda f: replies.put(f.get(0)))
    assert next_item(replies) == "hello [1, 2]"


def test_unencodable_message_raises_at_once(pair: Pair) -> None:
    """A message MessagePack cannot carry raises TypeError in the sender, sending nothing."""
    ref = pair.a.ref("edge-b:/recorder")
    with pytest.raises(TypeError, match="cannot encode"):
        ref.tell(object())
    with pytest.raises(TypeError, match="cannot encode"):
        ref.ask(object())


def test_remote_exception_is_a_remote_error(pair: Pair) -> None:
    """A remote handler's exception comes back as RemoteError: type, message, traceback."""
    with pytest.raises(RemoteError) as info:
        pair.a.ref("edge-b:/echo").ask("crash").get(WAIT)
    error = info.value
    assert error.remote_type == "builtins.RuntimeError"
    assert error.remote_message == "asked to crash"
    assert "sample_actors.py" in error.traceback
    assert "on_receive" in error.traceback
    assert "remote builtins.RuntimeError: asked to crash" in str(error)


def test_unencodable_reply_is_a_remote_type_error(pair: Pair) -> None:
    """A reply MessagePack cannot carry fails the ask with RemoteError(TypeError)."""
    with pytest.raises(RemoteError) as info:
        pair.a.ref("edge-b:/opaque").ask("anything").get(WAIT)
    assert info.value.remote_type == "builtins.TypeError"
    wait_for(lambda: pair.counter(pair.b, "unencodable_replies") == 1)


def test_unknown_path_ask_is_path_not_found_and_dead_letters_on_both_nodes(pair: Pair) -> None:
    """An ask to a missing path fails with PathNotFoundError; both nodes count a dead letter."""
    with pytest.raises(PathNotFoundError, match="edge-b:/nobody"):
        pair.a.ref("edge-b:/nobody").ask("hi").get(WAIT)
    wait_for(lambda: pair.b.system.dead_letters.count == 1)
    assert pair.a.system.dead_letters.count == 1
    [here] = pair.a.system.dead_letters.recent()
    [there] = pair.b.system.dead_letters.recent()
    assert (here.recipient, here.message) == ("edge-b:/nobody", "hi")
    assert (there.recipient, there.message) == ("/nobody", "hi")
    assert "edge-a" in there.reason
    assert "edge-b" in here.reason


def test_unknown_path_tell_dead_letters_on_both_nodes(pair: Pair) -> None:
    """A tell to a missing path is a dead letter on the receiving node and the sending one."""
    pair.a.ref("edge-b:/nobody").tell({"x": 1})
    wait_for(lambda: pair.a.system.dead_letters.count == 1, what="the notice came back")
    assert pair.b.system.dead_letters.count == 1
    assert pair.a.system.dead_letters.recent()[0].recipient == "edge-b:/nobody"
    assert pair.b.system.dead_letters.recent()[0].message == {"x": 1}
    assert pair.counter(pair.b, "dead_letters_sent") == 1
    assert pair.counter(pair.a, "dead_letters_received") == 1


def test_ask_timeout_and_late_reply(pair: Pair) -> None:
    """get() raises AskTimeout at the ask's timeout; the future fails; a late reply is counted."""
    future = pair.a.ref("edge-b:/blocker").ask("block", timeout=0.2)
    with pytest.raises(AskTimeout, match="edge-b:/blocker"):
        future.get()
    wait_for(future.done, what="the ask expired, so that callbacks run")
    with pytest.raises(AskTimeout, match=r"within 0\.2 s"):
        future.get(0)
    assert pair.counter(pair.a, "ask_timeouts") == 1
    pair.gate.set()
    wait_for(lambda: pair.counter(pair.a, "late_replies") == 1, what="the late reply")
    assert pair.a.remoting is not None
    assert pair.a.remoting.statistics().pending_asks == 0


def test_get_waits_no_longer_than_the_ask_timeout(pair: Pair) -> None:
    """get() without a timeout of its own returns at the ask's deadline, not later."""
    future = pair.a.ref("edge-b:/blocker").ask("block", timeout=0.05)
    with pytest.raises(AskTimeout):
        future.get(WAIT)


def test_undecodable_body_is_answered_and_counted(pair: Pair) -> None:
    """An Ask whose body is not MessagePack gets a Failure back and is counted; a bad Tell
    body becomes a dead letter on both sides."""
    endpoint = pair.a.endpoint
    assert endpoint is not None
    endpoint.send("edge-b", Ask(id=10**9, to="/echo", body=b"\xc1", timeout=1.0))
    endpoint.send("edge-b", Tell(to="/recorder", body=b"\x92\x01"))
    wait_for(lambda: pair.counter(pair.b, "undecodable_bodies") == 2)
    wait_for(lambda: pair.counter(pair.a, "late_replies") == 1, what="the Failure came back")
    wait_for(lambda: pair.a.system.dead_letters.count == 1, what="the tell's notice came back")
    assert "undecodable" in pair.b.system.dead_letters.recent()[0].reason


def test_answers_for_asks_another_peer_made_are_ignored(pair: Pair) -> None:
    """A Reply from a peer that was not asked does not complete the ask."""
    future = pair.a.ref("edge-b:/blocker").ask("block")
    assert pair.a.remoting is not None
    [ask_id] = list(pair.a.remoting._pending)
    from edgeloop.messages import Reply

    pair.a.remoting.on_message("edge-c", Reply(id=ask_id, body=encode_body("forged")))
    assert not future.done()
    assert pair.counter(pair.a, "unexpected") == 1
    pair.gate.set()
    assert future.get(WAIT) == "unblocked"


# -- watch -----------------------------------------------------------------------------


def test_remote_watch_down_on_stop(pair: Pair) -> None:
    """A watcher of a remote actor receives Down(ref, shutdown) when it is stopped there."""
    ref = remote(pair.a, "edge-b:/echo")
    pair.watch_from_a(ref)
    pair.b.root.terminate_child("echo")
    down = next_down(pair)
    assert down.ref == ref
    assert down.reason.kind == "shutdown"
    assert not down.reason.abnormal


def test_remote_watch_down_on_crash(pair: Pair) -> None:
    """A remote crash gives Down(crash) with the error, where and node in its text."""
    ref = remote(pair.a, "edge-b:/echo")
    pair.watch_from_a(ref)
    with pytest.raises(RemoteError):
        ref.ask("crash").get(WAIT)
    down = next_down(pair)
    assert down.ref == ref
    assert down.reason.kind == "crash"
    assert down.reason.abnormal
    assert "RuntimeError: asked to crash" in down.reason.detail
    assert "on_receive" in down.reason.detail
    assert "edge-b" in str(down.reason)


def test_remote_watch_of_missing_path_is_noproc(pair: Pair) -> None:
    """Watching a remote path no actor holds gives Down(noproc) at once."""
    ref = remote(pair.a, "edge-b:/nobody")
    recorder = pair.a.lookup("/recorder")
    assert recorder is not None
    recorder.tell(("watch", ref))
    down = next_down(pair)
    assert down.ref == ref
    assert down.reason.kind == "noproc"


def test_remote_unwatch_stops_the_down(pair: Pair) -> None:
    """After unwatch, stopping the remote actor sends no Down."""
    ref = remote(pair.a, "edge-b:/echo")
    pair.watch_from_a(ref)
    recorder = pair.a.lookup("/recorder")
    assert recorder is not None
    assert recorder.ask(("unwatch", ref)).get(WAIT) == "unwatched"
    wait_for(lambda: pair.watched_by(pair.b) == 0, what="b dropped the watch")
    pair.b.root.terminate_child("echo")
    # A round trip on the same link: a Down sent before it would have arrived first.
    assert pair.a.ref("edge-b:/blocker").ask("ping").get(WAIT) == "pong"
    recorder.ask("sync").get(WAIT)
    assert next_item(pair.out_a) == "sync"


def test_watching_twice_gives_one_down(pair: Pair) -> None:
    """Watching the same remote actor twice still delivers a single Down."""
    ref = remote(pair.a, "edge-b:/echo")
    pair.watch_from_a(ref)
    recorder = pair.a.lookup("/recorder")
    assert recorder is not None
    recorder.ask(("watch", pair.a.ref("edge-b:/echo"))).get(WAIT)
    pair.b.root.terminate_child("echo")
    assert isinstance(next_down(pair), Down)
    recorder.ask("sync").get(WAIT)
    assert next_item(pair.out_a) == "sync"


def test_monitor_callback_on_remote_ref(pair: Pair) -> None:
    """monitor() works on a remote ref: the callback gets the Down; cancel stops it."""
    downs: queue.Queue[Down] = queue.Queue()
    ref = remote(pair.a, "edge-b:/echo")
    cancel_other = monitor(pair.a.ref("edge-b:/recorder"), downs.put)
    monitor(ref, downs.put)
    wait_for(lambda: pair.watched_by(pair.b) == 2)
    cancel_other()
    wait_for(lambda: pair.watched_by(pair.b) == 1)
    pair.b.root.terminate_child("echo")
    down = next_item(downs)
    assert down.ref == ref
    assert downs.empty()


# -- lost peers ------------------------------------------------------------------------


def test_peer_lost_fails_pending_asks_and_downs_watches(pair: Pair) -> None:
    """When the link is lost, pending asks fail with PeerLostError naming the peer and
    watches get Down(noconnection); the peer forgets the watches it served."""
    ref = remote(pair.a, "edge-b:/echo")
    pair.watch_from_a(ref)
    future = pair.a.ref("edge-b:/blocker").ask("block")
    pair.network.cut("edge-a", "edge-b")
    with pytest.raises(PeerLostError, match="edge-b") as info:
        future.get(WAIT)
    assert "liveness_timeout" in str(info.value)
    down = next_down(pair)
    assert down.ref == ref
    assert down.reason.kind == "noconnection"
    assert down.reason.abnormal
    assert "edge-b" in down.reason.detail
    wait_for(lambda: pair.watched_by(pair.b) == 0, what="b forgot the watch")
    assert pair.counter(pair.a, "peer_lost_asks") == 1
    assert pair.counter(pair.a, "watches_lost") == 1


def test_without_a_link_tell_ask_and_watch_fail_at_once(pair: Pair) -> None:
    """With no link: a tell is a dead letter, an ask fails, a watch gives Down(noconnection)."""
    pair.network.cut("edge-a", "edge-b")
    wait_for(lambda: pair.a.peers() == [])
    ref = remote(pair.a, "edge-b:/echo")
    ref.tell("lost")
    [letter] = pair.a.system.dead_letters.recent()
    assert (letter.recipient, letter.message) == ("edge-b:/echo", "lost")
    assert "no link" in letter.reason
    with pytest.raises(PeerLostError, match="no link to node 'edge-b'"):
        ref.ask("hi").get(0)
    recorder = pair.a.lookup("/recorder")
    assert recorder is not None
    recorder.tell(("watch", ref))
    assert next_down(pair).reason.kind == "noconnection"


def test_unknown_peer_is_like_a_lost_one(pair: Pair) -> None:
    """A ref to a node never linked behaves as one whose link is lost."""
    with pytest.raises(PeerLostError, match="edge-z"):
        pair.a.ref("edge-z:/echo").ask("hi").get(0)


def test_link_comes_back_after_a_cut(pair: Pair) -> None:
    """After the link heals, remote asks work again."""
    pair.network.cut("edge-a", "edge-b")
    wait_for(lambda: pair.a.peers() == [] and pair.b.peers() == [])
    pair.network.heal("edge-a", "edge-b")
    wait_for(lambda: pair.a.peers() == ["edge-b"])
    assert pair.a.ref("edge-b:/echo").ask("again").get(WAIT) == "hello again"


def test_dropped_by_the_link_fails_the_ask_and_dead_letters_the_tell(pair: Pair) -> None:
    """What the link accepts but then drops fails the ask (LinkError), dead-letters the
    tell and downs the watch."""
    pair.network.jam("edge-a", "edge-b", "queue_full")
    ref = remote(pair.a, "edge-b:/echo")
    with pytest.raises(LinkError, match="queue_full") as info:
        ref.ask("hi").get(WAIT)
    assert not isinstance(info.value, PeerLostError)
    ref.tell("gone")
    wait_for(lambda: pair.a.system.dead_letters.count == 2)
    recorder = pair.a.lookup("/recorder")
    assert recorder is not None
    recorder.tell(("watch", ref))
    assert next_down(pair).reason.kind == "noconnection"


def test_node_stop_fails_its_pending_asks(pair: Pair) -> None:
    """Stopping a node fails its pending remote asks; its peer sees the link closed."""
    future = pair.a.ref("edge-b:/blocker").ask("block")
    pair.a.stop()
    assert isinstance(future.exception(WAIT), LinkError)
    wait_for(lambda: pair.b.peers() == [])


def test_peer_stop_downs_watches_of_its_actors(pair: Pair) -> None:
    """Stopping the watched node delivers Down for its actors (shutdown, before the close)."""
    ref = remote(pair.a, "edge-b:/echo")
    pair.watch_from_a(ref)
    pair.b.stop()
    down = next_down(pair)
    assert down.ref == ref
    assert down.reason.kind == "shutdown"


# -- from an app file ------------------------------------------------------------------


def test_nodes_from_app_files_talk() -> None:
    """Nodes built from app files with listen and peers reach each other's actors."""
    network = FakeNetwork()
    echo = {"id": "echo", "start": "tests.supervisor.sample_actors:Echo"}
    server = parse_app(
        {"node": {"name": "edge-b", "listen": [B_ADDRESS]}, "supervisor": {"children": [echo]}}
    )
    client = parse_app({"node": {"name": "edge-a", "peers": [B_ADDRESS]}, "supervisor": {}})
    with (
        Node.from_app(server, endpoint_factory=network.factory) as b,
        Node.from_app(client, endpoint_factory=network.factory) as a,
    ):
        # Each side learns of the other on its own thread: wait for both.
        wait_for(lambda: a.peers() == ["edge-b"] and b.peers() == ["edge-a"], what="linked")
        future: Future[Any] = a.ref("edge-b:/echo").ask("app")
        assert future.get(WAIT) == "hello app"


def test_node_that_cannot_open_its_links_does_not_start() -> None:
    """If the endpoint cannot start, the node stops its tree and raises NodeError."""
    network = FakeNetwork()

    def failing(settings: LinkSettings, **callbacks: Any) -> Any:
        endpoint = network.factory(settings, **callbacks)

        def start() -> Any:
            raise LinkError("address already in use")

        endpoint.start = start  # type: ignore[method-assign]
        return endpoint

    node = Node(
        "edge-a", children=[ChildSpec("echo", Echo)], listen=[B_ADDRESS], endpoint_factory=failing
    )
    with pytest.raises(NodeError, match="could not open its links: address already in use"):
        node.start()
    with pytest.raises(NodeError, match="not running"):
        node.system  # noqa: B018


def test_importing_edgeloop_imports_no_zmq() -> None:
    """Remote actors import the transport (and zmq) only when a node opens links."""
    code = (
        "import sys, edgeloop, edgeloop.supervisor; "
        "edgeloop.supervisor.parse_app({'node': {'name': 'x'}, 'supervisor': {}}); "
        "assert 'zmq' not in sys.modules, 'zmq was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_unencodable_reply_fails_the_ask_at_once(pair: Pair) -> None:
    """A reply MessagePack cannot hold (an int past 64 bits) comes back as RemoteError."""
    pair.b.root.start_child(ChildSpec("big", BigNumber))
    with pytest.raises(RemoteError, match="cannot encode"):
        pair.a.ref("edge-b:/big").ask("n").get(WAIT)
    assert pair.b.remoting is not None
    assert pair.b.remoting.statistics().counters["unencodable_replies"] == 1


def test_the_status_id_is_reserved() -> None:
    """A root child may not take the id the node's status actor answers at."""
    with pytest.raises(ConfigError, match="reserved"):
        Node("n", children=[ChildSpec("_status", Echo)])
