"""Three nodes as separate `edgeloop node start` processes on loopback, driven from a fourth.

Nodes ``edge-a``, ``edge-b`` and ``edge-c`` each run in their own process and are linked in
a full mesh (a dials b and c, b dials c). The test process is a fourth node, ``probe``,
linked to all three: it sends remote tells, asks and watches, and reads every node's JSON
log lines to see links come up and go down.

An actor started from an app file cannot reach its node's links (there is no API that
gives it a :class:`RemoteRef`), so the traffic between actors is driven by ``probe``; the
links between a, b and c carry their handshakes and heartbeats, and their failure detection
is what the SIGKILL test checks.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeloop import Node
from edgeloop.actors import Down, monitor
from edgeloop.errors import PeerLostError, RemoteError
from edgeloop.supervisor import STATUS_PATH, RemoteRef
from edgeloop.transport import LinkConfig
from tests.helpers import WAIT, wait_for
from tests.integration.procs import Process, free_tcp_ports

pytestmark = pytest.mark.integration

NAMES = ("edge-a", "edge-b", "edge-c")
DIALS = {"edge-a": ("edge-b", "edge-c"), "edge-b": ("edge-c",), "edge-c": ()}
"""Who connects to whom: every pair of nodes has exactly one link."""

HEARTBEAT = 0.2
LIVENESS = 1.0
DETECTION_BOUND = LIVENESS + 2.0
"""How long after a SIGKILL its peers may take to declare the node lost."""

ACTORS = "tests.integration.multinode_actors"


def app_file(name: str, ports: dict[str, int]) -> str:
    """The app file of node ``name``: its listener, whom it dials, quick link timing."""
    peers = ", ".join(f'"tcp://127.0.0.1:{ports[peer]}"' for peer in DIALS[name])
    return f"""
[node]
name = "{name}"
listen = ["tcp://127.0.0.1:{ports[name]}"]
peers = [{peers}]

[node.link]
heartbeat_interval = {HEARTBEAT}
liveness_timeout = {LIVENESS}
handshake_timeout = 1.0

[node.link.backoff]
min = 0.05
max = 0.5

[supervisor]
intensity = 10
period = 5.0

[[supervisor.children]]
id = "echo"
start = "{ACTORS}:Echo"
args = {{ node = "{name}" }}

[[supervisor.children]]
id = "doomed"
start = "{ACTORS}:Echo"
restart = "temporary"
args = {{ node = "{name}" }}

[[supervisor.children]]
id = "inbox"
start = "{ACTORS}:Collector"
"""


@dataclasses.dataclass
class Cluster:
    """Three node processes and the in-process ``probe`` node linked to each of them."""

    procs: dict[str, Process]
    probe: Node

    def ref(self, address: str) -> RemoteRef:
        ref = self.probe.ref(address)
        assert isinstance(ref, RemoteRef)
        return ref

    def ask(self, address: str, message: Any) -> Any:
        return self.ref(address).ask(message, timeout=WAIT).get()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """edge-a, edge-b and edge-c running and fully linked, and probe linked to all three;
    every process is killed and reaped afterwards, whatever happened."""
    ports = dict(zip(NAMES, free_tcp_ports(len(NAMES)), strict=True))
    procs: dict[str, Process] = {}
    probe: Node | None = None
    try:
        for name in NAMES:
            folder = tmp_path / name
            (folder / "runtime").mkdir(parents=True)
            app = folder / "app.toml"
            app.write_text(app_file(name, ports))
            procs[name] = Process(
                "node", "start", str(app), "--log-format", "json",
                env={"XDG_RUNTIME_DIR": str(folder / "runtime")},
            )  # fmt: skip
        for name, proc in procs.items():
            proc.wait_for_event("node_started", node=name)
        for name, proc in procs.items():
            for peer in NAMES:
                if peer != name:
                    proc.wait_for_event("peer_up", peer=peer)
        probe = Node(
            "probe",
            peers=[f"tcp://127.0.0.1:{ports[name]}" for name in NAMES],
            link=LinkConfig(id="probe", heartbeat_interval=HEARTBEAT, liveness_timeout=LIVENESS),
        ).start()
        wait_for(lambda: probe.peers() == list(NAMES), what="probe linked to every node")
        yield Cluster(procs, probe)
    finally:
        if probe is not None:
            probe.stop()
        for proc in procs.values():
            proc.kill()


def test_remote_tell_and_ask_reach_every_node(cluster: Cluster) -> None:
    """Remote tells and asks reach the actors of each node process and come back answered."""
    for name in NAMES:
        for number in range(5):
            cluster.ref(f"{name}:/inbox").tell(number)
    for name in NAMES:
        assert cluster.ask(f"{name}:/echo", {"n": 1}) == [name, {"n": 1}]
        assert cluster.ask(f"{name}:/inbox", "report") == [0, 1, 2, 3, 4]
    futures = [cluster.ref(f"{NAMES[n % 3]}:/echo").ask(n, timeout=WAIT) for n in range(60)]
    assert [f.get() for f in futures] == [[NAMES[n % 3], n] for n in range(60)]


def test_remote_exception_is_a_remote_error(cluster: Cluster) -> None:
    """A handler that raises in another process fails the ask with a typed RemoteError."""
    with pytest.raises(RemoteError) as info:
        cluster.ask("edge-b:/echo", "crash")
    assert info.value.remote_type == "builtins.ValueError"
    assert info.value.remote_message == "edge-b was asked to crash"
    assert "multinode_actors.py" in info.value.traceback
    # The supervisor restarted the echo actor; the same remote ref reaches the new one.
    cluster.procs["edge-b"].wait_for_event("child_restarted", child="echo")
    assert cluster.ask("edge-b:/echo", "again") == ["edge-b", "again"]


def test_remote_watch_gets_down_when_the_actor_stops(cluster: Cluster) -> None:
    """Watching an actor in another process delivers Down with its real reason when it stops."""
    downs: queue.Queue[Down] = queue.Queue()
    ref = cluster.ref("edge-c:/doomed")
    monitor(ref, downs.put)
    # The Watch and this ask travel on one link in order: once answered, edge-c serves it.
    assert cluster.ask("edge-c:/doomed", "ping") == ["edge-c", "ping"]
    assert downs.empty()
    assert cluster.ask("edge-c:/doomed", "stop") == "stopping"
    down = downs.get(timeout=WAIT)
    assert down.ref == ref
    assert down.reason.kind == "normal"
    assert cluster.ask("edge-c:/echo", "still here") == ["edge-c", "still here"]


def test_sigkilled_node_is_detected_by_its_peers_and_survivors_keep_working(
    cluster: Cluster,
) -> None:
    """A node killed with SIGKILL is declared lost by every peer within the liveness timeout
    (peer_down logged, watches get Down(noconnection), pending asks fail); the rest go on."""
    downs: queue.Queue[Down] = queue.Queue()
    ref = cluster.ref("edge-c:/echo")
    monitor(ref, downs.put)
    assert cluster.ask("edge-c:/echo", "ping") == ["edge-c", "ping"]  # the watch is served
    marks = {name: cluster.procs[name].mark() for name in ("edge-a", "edge-b")}

    victim = cluster.procs["edge-c"].proc
    killed_at = time.monotonic()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(WAIT)
    # Sent after the kill, before anyone noticed: it can only fail, with PeerLostError.
    pending = cluster.ref("edge-c:/echo").ask("anyone?", timeout=WAIT * 2)

    for name in ("edge-a", "edge-b"):
        lost = cluster.procs[name].wait_for_event(
            "peer_down", timeout=DETECTION_BOUND + 1, after=marks[name], peer="edge-c"
        )
        assert lost["reason"] == "liveness_timeout", lost
        assert lost["_arrived"] - killed_at <= DETECTION_BOUND, (name, lost)
    down = downs.get(timeout=DETECTION_BOUND + 1)
    assert time.monotonic() - killed_at <= DETECTION_BOUND
    assert down.ref == ref
    assert down.reason.kind == "noconnection"
    with pytest.raises(PeerLostError, match="edge-c"):
        pending.get()
    assert cluster.probe.peers() == ["edge-a", "edge-b"]

    # The survivors keep answering, and keep their link to each other.
    for name in ("edge-a", "edge-b"):
        assert cluster.ask(f"{name}:/echo", "after") == [name, "after"]
    for name, other in (("edge-a", "edge-b"), ("edge-b", "edge-a")):
        status = cluster.ask(f"{name}:{STATUS_PATH}", "status")
        states = {p["peer"]: p["state"] for p in status["peers"]}
        assert states[other] == "ready", status["peers"]
        assert states["probe"] == "ready", status["peers"]
        assert states.get("edge-c") != "ready", status["peers"]
        assert not any(
            e["event"] == "peer_down" and e["peer"] == other for e in cluster.procs[name].events()
        )
