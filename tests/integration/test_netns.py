"""Nodes on two "hosts": separate network namespaces joined by a veth pair, CurveZMQ on.

Namespace ``a`` holds ``edge-a`` (an `edgeloop node start` process) and ``drv``, a node the
test drives over stdin (:mod:`tests.integration.nodedriver`); namespace ``b`` holds
``edge-b`` with a collector actor. Both ``edge-a`` and ``drv`` dial ``edge-b`` across the
veth, so cutting it (``ip link set ... down``) cuts every link. The test process stays in
the root namespace and only ever runs ``ip`` there: all traffic goes between the
namespaces' own addresses.

Needs root (CAP_NET_ADMIN) for ``ip netns add``; the module is skipped where that is not
permitted. The delay part needs ``tc netem`` (the ``sch_netem`` kernel module) and is
skipped, with the reason, where the kernel lacks it.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.procs import Process

pytestmark = pytest.mark.integration

HEARTBEAT = 0.2
LIVENESS = 1.0
DETECTION_BOUND = LIVENESS + 2.0
"""How long after the cut every side may take to declare its peer lost."""
HEAL_BOUND = 10.0
"""How long after the link comes back every side may take to be linked again."""
PORT = 7400
ANSWER = 20.0
"""Seconds to wait for the driver's answer to a command."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS`` (root namespace, or ``-n NS`` inside one)."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


@pytest.fixture(scope="module", autouse=True)
def netns_permitted() -> None:
    """Skip the module unless this process may create network namespaces."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2's `ip` is not installed")
    probe = f"elt-probe-{uuid.uuid4().hex[:8]}"
    result = ip("netns", "add", probe, check=False)
    if result.returncode != 0:
        pytest.skip(
            f"cannot create network namespaces here (`ip netns add` needs root or "
            f"CAP_NET_ADMIN): {result.stderr.strip()}"
        )
    ip("netns", "del", probe, check=False)


@dataclasses.dataclass(frozen=True)
class Net:
    """Two namespaces joined by a veth pair: ``a`` has ``addr_a`` on ``veth_a``, ``b`` the
    same for ``b``."""

    ns_a: str
    ns_b: str
    veth_a: str
    veth_b: str
    addr_a: str
    addr_b: str

    def exec_prefix(self, ns: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", ns)

    def cut(self) -> None:
        ip("-n", self.ns_a, "link", "set", self.veth_a, "down")

    def heal(self) -> None:
        ip("-n", self.ns_a, "link", "set", self.veth_a, "up")

    def netem(self, verb: str, *spec: str) -> subprocess.CompletedProcess[str]:
        """``tc qdisc VERB dev VETH root netem SPEC`` on both ends (stops at the first error)."""
        result = None
        for ns, dev in ((self.ns_a, self.veth_a), (self.ns_b, self.veth_b)):
            command = ["ip", "netns", "exec", ns, "tc", "qdisc", verb, "dev", dev, "root"]
            if spec or verb != "del":
                command += ["netem", *spec]
            result = subprocess.run(command, capture_output=True, text=True, timeout=10)
            if result.returncode != 0:
                return result
        assert result is not None
        return result


@pytest.fixture
def net() -> Iterator[Net]:
    """A fresh pair of namespaces (unique names), deleted afterwards even if the test fails."""
    tag = uuid.uuid4().hex[:6]
    subnet = 1 + int(tag, 16) % 254  # the namespaces' own: nothing outside sees it
    net = Net(
        ns_a=f"elt-{tag}-a",
        ns_b=f"elt-{tag}-b",
        veth_a=f"elta{tag}",
        veth_b=f"eltb{tag}",
        addr_a=f"10.77.{subnet}.1",
        addr_b=f"10.77.{subnet}.2",
    )
    created: list[str] = []
    try:
        for ns in (net.ns_a, net.ns_b):
            ip("netns", "add", ns)
            created.append(ns)
        ip("link", "add", net.veth_a, "netns", net.ns_a, "type", "veth",
           "peer", "name", net.veth_b, "netns", net.ns_b)  # fmt: skip
        for ns, dev, addr in (
            (net.ns_a, net.veth_a, net.addr_a),
            (net.ns_b, net.veth_b, net.addr_b),
        ):
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield net
    finally:
        for ns in created:  # the veth pair goes with its namespaces
            ip("netns", "del", ns, check=False)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Key pairs for edge-a, edge-b and drv, written by `edgeloop keys generate`."""
    folder = tmp_path_factory.mktemp("netns") / "keys"
    generators = [
        Process("keys", "generate", name, "--dir", str(folder))
        for name in ("edge-a", "edge-b", "drv")
    ]
    for generator in generators:
        code, out = generator.finish()
        assert code == 0, (out, generator.seen)
    return folder


LINK = f"""
[node.link]
heartbeat_interval = {HEARTBEAT}
liveness_timeout = {LIVENESS}
handshake_timeout = 1.0

[node.link.backoff]
min = 0.05
max = 0.5
"""


def app_files(net: Net) -> dict[str, str]:
    """The three app files; key paths are relative to the app files' folder (``keys/``)."""
    edge_b = f'{{ address = "tcp://{net.addr_b}:{PORT}", server_key = "keys/edge-b.key" }}'
    return {
        "edge-b": f"""
[node]
name = "edge-b"
listen = ["tcp://{net.addr_b}:{PORT}"]
{LINK}
[node.security]
secret_key = "keys/edge-b.key_secret"
allowed = ["keys/edge-a.key", "keys/drv.key"]

[supervisor]
[[supervisor.children]]
id = "inbox"
start = "tests.integration.multinode_actors:Collector"
""",
        "edge-a": f"""
[node]
name = "edge-a"
listen = ["tcp://{net.addr_a}:{PORT}"]
peers = [{edge_b}]
{LINK}
[node.security]
secret_key = "keys/edge-a.key_secret"
allowed = ["keys/edge-b.key"]

[supervisor]
""",
        "drv": f"""
[node]
name = "drv"
peers = [{edge_b}]
{LINK}
[node.security]
secret_key = "keys/drv.key_secret"

[supervisor]
""",
    }


@dataclasses.dataclass
class Mesh:
    """edge-a and drv in namespace a, edge-b in namespace b, all linked to edge-b."""

    net: Net
    procs: dict[str, Process]

    @property
    def driver(self) -> Process:
        return self.procs["drv"]

    def marks(self) -> dict[str, int]:
        return {name: proc.mark() for name, proc in self.procs.items()}

    def wait_links(
        self, event: str, marks: dict[str, int], timeout: float, **fields: Any
    ) -> dict[str, float]:
        """Wait until each side of each link logs ``event``; when each line arrived."""
        sides = [("edge-a", "edge-b"), ("drv", "edge-b"), ("edge-b", "edge-a"), ("edge-b", "drv")]
        arrived = {}
        for name, peer in sides:
            record = self.procs[name].wait_for_event(
                event, timeout=timeout, after=marks[name], peer=peer, **fields
            )
            arrived[f"{name}->{peer}"] = record["_arrived"]
        return arrived

    def tell(self, numbers: range) -> None:
        self.driver.request(op="tell", to="edge-b:/inbox", bodies=list(numbers), wait=ANSWER)

    def send_acks(self, numbers: range, timeout: float) -> None:
        """Ask ``["ack", n]`` for each number; read the outcome with :meth:`acked`."""
        bodies = [["ack", n] for n in numbers]
        self.driver.send(op="ask", to="edge-b:/inbox", bodies=bodies, timeout=timeout)

    def acked(self, timeout: float = ANSWER) -> tuple[list[int], list[dict[str, Any]]]:
        """The numbers the last :meth:`send_acks` got answered, and its failures."""
        reply = self.driver.answer(timeout)
        assert "ok" in reply, reply
        done = [r["ok"] for r in reply["ok"] if "ok" in r]
        return done, [r for r in reply["ok"] if "ok" not in r]

    def report(self) -> list[int]:
        [outcome] = self.driver.request(
            op="ask", to="edge-b:/inbox", bodies=["report"], timeout=5.0
        )
        assert "ok" in outcome, outcome
        return outcome["ok"]  # type: ignore[no-any-return]


def start_mesh(net: Net, keys: Path, folder: Path, procs: dict[str, Process]) -> None:
    """Start edge-b, edge-a and drv in their namespaces, adding each to ``procs`` at once."""
    shutil.copytree(keys, folder / "keys")
    for name, text in app_files(net).items():
        (folder / name).mkdir()
        app = folder / f"{name}.toml"
        app.write_text(text)
        ns = net.ns_b if name == "edge-b" else net.ns_a
        env = {"XDG_RUNTIME_DIR": str(folder / name)}
        if name == "drv":
            procs[name] = Process(
                str(app), module="tests.integration.nodedriver", prefix=net.exec_prefix(ns),
                env=env, stdin=True,
            )  # fmt: skip
        else:
            procs[name] = Process(
                "node", "start", str(app), "--log-format", "json",
                prefix=net.exec_prefix(ns), env=env,
            )  # fmt: skip


@pytest.fixture
def mesh(net: Net, keys: Path, tmp_path: Path) -> Iterator[Mesh]:
    """The three nodes running in their namespaces and linked; killed and reaped afterwards."""
    procs: dict[str, Process] = {}
    try:
        start_mesh(net, keys, tmp_path, procs)
        mesh = Mesh(net, procs)
        for name, proc in procs.items():
            proc.wait_for_event("node_started", node=name)
        mesh.wait_links("peer_up", dict.fromkeys(procs, 0), timeout=20.0)
        yield mesh
    finally:
        for proc in procs.values():
            proc.kill()


def test_cut_link_is_detected_healed_and_loses_no_acknowledged_message(mesh: Mesh) -> None:
    """A cut veth is detected by both sides within the liveness timeout, the links come back
    when it is healed, and every acknowledged message arrives exactly once."""
    acked: list[int] = []
    assert mesh.driver.request(op="watch", to="edge-b:/inbox")
    # Before the cut: tells, then asks whose answers acknowledge them all (one ordered link).
    mesh.tell(range(20))
    mesh.send_acks(range(100, 120), timeout=5.0)
    done, failed = mesh.acked()
    assert (done, failed) == (list(range(100, 120)), [])
    acked += done

    marks = mesh.marks()
    cut_at = time.monotonic()
    mesh.net.cut()
    # In flight while nobody knows yet: these may be lost with the connection, never doubled.
    mesh.tell(range(20, 40))
    lost_at = mesh.wait_links("peer_down", marks, timeout=DETECTION_BOUND + 1)
    for side, arrived in lost_at.items():
        assert arrived - cut_at <= DETECTION_BOUND, (side, arrived - cut_at)
    for name in mesh.procs:
        reasons = {e["reason"] for e in mesh.procs[name].events() if e["event"] == "peer_down"}
        assert reasons <= {"liveness_timeout", "transport_lost"}, (name, reasons)

    # drv's remote actors have seen the loss too: the watch got Down(noconnection), and the
    # asks that were pending then have failed. (Its link logs peer_down a moment earlier.)
    down = mesh.driver.request(op="down", timeout=DETECTION_BOUND)
    assert (down["address"], down["kind"]) == ("edge-b:/inbox", "noconnection"), down

    # Sent while the link is known lost: queued, and delivered first once it is back.
    mesh.tell(range(40, 60))
    mesh.send_acks(range(140, 160), timeout=HEAL_BOUND + 5)
    marks = mesh.marks()
    healed_at = time.monotonic()
    mesh.net.heal()
    back_at = mesh.wait_links("peer_up", marks, timeout=HEAL_BOUND, reconnected=True)
    for side, arrived in back_at.items():
        assert arrived - healed_at <= HEAL_BOUND, (side, arrived - healed_at)
    done, failed = mesh.acked()
    assert (done, failed) == (list(range(140, 160)), [])
    acked += done

    # After the heal, as before the cut.
    mesh.tell(range(60, 80))
    mesh.send_acks(range(160, 180), timeout=5.0)
    done, failed = mesh.acked()
    assert (done, failed) == (list(range(160, 180)), [])
    acked += done

    received = mesh.report()
    assert len(received) == len(set(received)), f"duplicates: {received}"
    assert set(acked) <= set(received)
    # Tells followed by an acknowledged ask on the same link were delivered, in order.
    for numbers in (range(20), range(40, 60), range(60, 80)):
        assert [n for n in received if n in numbers] == list(numbers)
    assert mesh.driver.request(op="peers") == ["edge-b"]


def test_delayed_link_stays_up_and_a_long_delay_is_detected(
    net: Net, request: pytest.FixtureRequest
) -> None:
    """With tc netem a delay under the liveness timeout keeps the links up (asks just take
    longer); a delay beyond it is detected as loss, and removing it heals the links."""
    trial = net.netem("add", "delay", "150ms")
    if trial.returncode != 0:
        pytest.skip(
            "tc netem is not available on this kernel, so the delay part cannot run "
            f"(`tc qdisc add ... netem` said: {trial.stderr.strip()})"
        )
    # Delay only links that are up: a CurveZMQ handshake under delay outlasts handshake_timeout.
    assert net.netem("del").returncode == 0
    mesh: Mesh = request.getfixturevalue("mesh")
    assert net.netem("add", "delay", "150ms").returncode == 0
    started = time.monotonic()
    for number in range(6):  # one after another: longer than the liveness timeout in all
        mesh.send_acks(range(number, number + 1), timeout=5.0)
        assert mesh.acked() == ([number], [])
    assert time.monotonic() - started >= 6 * 0.3  # each round trip crosses the delay twice
    assert not any(e["event"] == "peer_down" for p in mesh.procs.values() for e in p.events())

    assert mesh.driver.request(op="watch", to="edge-b:/inbox")
    marks = mesh.marks()
    delayed_at = time.monotonic()
    assert net.netem("change", "delay", f"{int((LIVENESS + 1.5) * 1000)}ms").returncode == 0
    lost_at = mesh.wait_links("peer_down", marks, timeout=DETECTION_BOUND + 1)
    for side, arrived in lost_at.items():
        assert arrived - delayed_at <= DETECTION_BOUND, (side, arrived - delayed_at)
    down = mesh.driver.request(op="down", timeout=DETECTION_BOUND)  # drv's remoting knows too
    assert down["kind"] == "noconnection", down
    mesh.send_acks(range(10, 20), timeout=HEAL_BOUND + 5)  # queued until the links are back
    marks = mesh.marks()
    assert net.netem("del").returncode == 0
    mesh.wait_links("peer_up", marks, timeout=HEAL_BOUND, reconnected=True)
    assert mesh.acked() == (list(range(10, 20)), [])
    received = mesh.report()
    assert len(received) == len(set(received)), f"duplicates: {received}"
    assert set(range(6)) | set(range(10, 20)) <= set(received)
