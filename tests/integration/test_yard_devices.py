"""Real device processes (``edgeloop device run``) against a real node with its twins.

The node runs in the test's process with a ``Devices`` supervisor (one SensorTwin per
device) and a subscriber that records what the twins deliver; each camera is an agent
process with a synthetic source. What the issue asks of the twins, end to end: a device
killed with SIGKILL mid-stream and restarted loses and duplicates nothing at the twin; a
restarted node gets everything resent; malformed configs and heads are refused while the
old ones keep working; buffer eviction and outbox overflow are reported at the twin; a
frame pulled by ref arrives intact over the automatically chosen provider.
"""

from __future__ import annotations

import functools
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeloop import ChildSpec, Node
from edgeloop.actors import Actor
from edgeloop.errors import DeviceRefusedError
from edgeloop.messages import Event
from edgeloop.sensors import GetState, TwinClient, TwinState
from edgeloop.transport import LinkConfig, ReconnectBackoff
from tests.helpers import wait_for
from tests.integration.procs import Process, free_tcp_ports
from tests.sensors.device.device_files import device_file

pytestmark = pytest.mark.integration

FAST_LINK = {
    "heartbeat_interval": 0.1,
    "liveness_timeout": 1.0,
    "handshake_timeout": 1.0,
    "close_timeout": 0.5,
    "backoff": ReconnectBackoff(min=0.05, max=0.2),
}
WAIT = 30.0


class Seen:
    """What the subscriber was told, in order (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[Event] = []

    def add(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def seqs(self, device: str) -> list[int]:
        with self.lock:
            return [e.seq for e in self.events if e.device == device]

    def count(self, device: str) -> int:
        return len(self.seqs(device))

    def last(self, device: str) -> Event:
        with self.lock:
            return [e for e in self.events if e.device == device][-1]


class Subscriber(Actor):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Event):
            self.seen.add(message)
        return None


@contextmanager
def yard_node(address: str, seen: Seen, devices: list[dict[str, Any]]) -> Iterator[Node]:
    children = [
        ChildSpec("subscriber", Subscriber, args={"seen": seen}),
        ChildSpec(
            "devices",
            "edgeloop.sensors:Devices",
            args={"devices": devices, "subscribers": ["/subscriber"]},
            shutdown="infinity",
        ),
    ]
    node = Node("edge", children=children, listen=[address], link=LinkConfig("edge", **FAST_LINK))
    with node:
        yield node


camera_file = functools.partial(device_file, reachable=("porch", "yard"), zones=("porch",))
"""A camera that reaches two zones and points at the porch (the config tests move it)."""


def run_device(path: Path) -> Process:
    return Process("device", "run", str(path), "--log-format", "json")


def state(node: Node, device: str) -> TwinState:
    twin = node.lookup(f"/devices/{device}")
    assert twin is not None
    result: TwinState = twin.ask(GetState()).get()
    return result


def client(node: Node, device: str) -> TwinClient:
    twin = node.lookup(f"/devices/{device}")
    assert twin is not None
    return TwinClient(twin)


def address() -> str:
    (port,) = free_tcp_ports(1)
    return f"tcp://127.0.0.1:{port}"


def test_a_device_killed_mid_stream_and_restarted_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    seen = Seen()
    where = address()
    path = camera_file(tmp_path, "cam-k", where)
    with yard_node(where, seen, [{"name": "cam-k"}]) as node:
        device = run_device(path)
        try:
            wait_for(lambda: seen.count("cam-k") >= 40, timeout=WAIT, what="events streaming")
            device.kill()  # SIGKILL mid-stream: unacknowledged events sit in its journal
            before = seen.count("cam-k")
            device = run_device(path)
            recovered = device.wait_for_event("outbox_recovered")
            assert recovered["boot"] == 2
            wait_for(lambda: seen.count("cam-k") >= before + 40, timeout=WAIT, what="more")
        finally:
            device.kill()
        twin = state(node, "cam-k")
    seqs = seen.seqs("cam-k")
    assert seqs == list(range(1, len(seqs) + 1)), "exactly once and in order at the twin"
    assert twin.counters["lost"] == 0
    assert twin.counters["device_boot"] == 2
    assert twin.counters["connects"] == 2


def test_a_twin_killed_mid_stream_is_restarted_and_delivers_each_event_once(
    tmp_path: Path,
) -> None:
    seen = Seen()
    where = address()
    path = camera_file(tmp_path, "cam-t", where)
    with yard_node(where, seen, [{"name": "cam-t"}]) as node:
        device = run_device(path)
        try:
            wait_for(lambda: seen.count("cam-t") >= 30, timeout=WAIT, what="events streaming")
            old = node.lookup("/devices/cam-t")
            assert old is not None
            old.kill()  # events in its mailbox are lost with it, unacknowledged
            before = seen.count("cam-t")
            wait_for(lambda: seen.count("cam-t") >= before + 40, timeout=WAIT, what="resumed")
            twin = state(node, "cam-t")
        finally:
            device.kill()
    seqs = seen.seqs("cam-t")
    assert seqs == list(range(1, len(seqs) + 1)), "exactly once and in order across the crash"
    assert twin.counters["lost"] == 0


def test_a_restarted_node_gets_everything_resent(tmp_path: Path) -> None:
    first, second = Seen(), Seen()
    where = address()
    path = camera_file(tmp_path, "cam-n", where)
    device = run_device(path)
    try:
        with yard_node(where, first, [{"name": "cam-n"}]):
            wait_for(lambda: first.count("cam-n") >= 30, timeout=WAIT, what="events streaming")
            mark = device.mark()
        unlinked = device.wait_for_event("device_unlinked", after=mark)
        with yard_node(where, second, [{"name": "cam-n"}]) as node:
            device.wait_for_event("device_linked", after=unlinked["_line"])
            wait_for(lambda: second.count("cam-n") >= 30, timeout=WAIT, what="resent and new")
            twin = state(node, "cam-n")
    finally:
        device.kill()
    old, new = first.seqs("cam-n"), second.seqs("cam-n")
    assert old == list(range(1, len(old) + 1))
    assert new == list(range(new[0], new[0] + len(new))), "in order, once, at the new twin"
    # An orderly stop acks what its twins delivered: the new node starts right after.
    assert new[0] == old[-1] + 1, "nothing lost or twice between the two nodes"
    assert twin.counters["lost"] == 0


def test_malformed_configs_and_heads_are_refused_and_the_old_ones_keep_working(
    tmp_path: Path,
) -> None:
    seen = Seen()
    where = address()
    path = camera_file(tmp_path, "cam-c", where)
    with yard_node(where, seen, [{"name": "cam-c", "desired": {"exposure": 0.8}}]) as node:
        device = run_device(path)
        try:
            wait_for(lambda: state(node, "cam-c").in_sync, timeout=WAIT, what="desired applied")
            version = state(node, "cam-c").reported_config
            assert version is not None
            assert version.settings is not None
            assert version.settings["exposure"] == 0.8
            twin = client(node, "cam-c")
            with pytest.raises(DeviceRefusedError, match="report_mode"):
                twin.configure({"report_mode": "sideways"}, timeout=10).get()
            with pytest.raises(DeviceRefusedError, match="head version"):
                twin.push_head(b"not a head at all", timeout=10).get()
            count = seen.count("cam-c")
            wait_for(lambda: seen.count("cam-c") >= count + 20, timeout=WAIT, what="still going")
            last = seen.last("cam-c")
            assert last.config_version == version.version, "the old config keeps running"
            now = state(node, "cam-c")
            assert now.reported_config is not None
            assert now.reported_config.error is not None
            assert now.counters["configs_refused"] == 1
            assert now.counters["heads_refused"] == 1
            done = twin.configure({"threshold": 0.0, "exposure": 0.6}, timeout=10).get()
            assert done.settings["exposure"] == 0.6
            wait_for(
                lambda: seen.last("cam-c").config_version == done.version,
                timeout=WAIT,
                what="events under the new config",
            )
        finally:
            device.kill()


def test_buffer_eviction_and_outbox_overflow_are_reported_at_the_twin(tmp_path: Path) -> None:
    seen = Seen()
    where = address()
    path = camera_file(tmp_path, "cam-o", where, limit=20, overflow="drop_oldest")
    devices = [{"name": "cam-o", "buffer_events": 10}]
    device = run_device(path)
    try:
        with yard_node(where, seen, devices) as node:
            wait_for(lambda: seen.count("cam-o") >= 15, timeout=WAIT, what="events streaming")
            twin = state(node, "cam-o")
            assert twin.counters["buffer_evicted"] >= 5
            batch = client(node, "cam-o").events_since(0).get()
            assert not batch.complete, "the oldest events are no longer held"
        device.wait_for_event("device_unlinked")
        device.wait_for_event("outbox_overflow")  # no node: the outbox overflows
        with yard_node(where, seen, devices) as node:
            wait_for(
                lambda: state(node, "cam-o").counters.get("device_outbox_dropped", 0) > 0,
                timeout=WAIT,
                what="the overflow reported at the twin",
            )
    finally:
        device.kill()


def test_a_frame_pulled_by_ref_arrives_intact_over_the_chosen_provider(tmp_path: Path) -> None:
    seen = Seen()
    where = address()
    path = camera_file(tmp_path, "cam-f", where)
    with yard_node(where, seen, [{"name": "cam-f"}]) as node:
        device = run_device(path)
        try:
            wait_for(lambda: seen.count("cam-f") >= 5, timeout=WAIT, what="events streaming")
            ref = seen.last("cam-f").frame
            assert ref is not None
            with client(node, "cam-f").pull_frame(ref, timeout=15).get(20) as frame:
                data = np.array(frame.array)
                descriptor = frame.descriptor
            assert data.shape == tuple(ref.shape)
            assert zlib.crc32(data.tobytes()) == ref.checksum
            assert descriptor.frame_id == ref.frame_id
            assert state(node, "cam-f").counters["frames_pulled"] == 1
            opened = device.wait_for_event("bulk_lane_open")
            assert opened["provider"] == "shm", "one host: the handshake picks shm"
        finally:
            device.kill()


def test_a_trap_opens_closes_and_is_refused_at_the_twin_while_in_fault(tmp_path: Path) -> None:
    seen = Seen()
    where = address()
    path = tmp_path / "trap-1.toml"
    path.write_text(
        "\n".join(
            [
                "[device]",
                'name = "trap-1"',
                'kind = "trap"',
                f'node = "{where}"',
                "[device.link]",
                "heartbeat_interval = 0.1",
                "liveness_timeout = 1.0",
                "[device.trap]",
                'zone = "porch"',
            ]
        )
        + "\n"
    )
    with yard_node(where, seen, [{"name": "trap-1", "kind": "trap"}]) as node:
        device = run_device(path)
        try:
            wait_for(lambda: state(node, "trap-1").connected, timeout=WAIT, what="linked")
            trap = client(node, "trap-1")
            assert trap.command("close", timeout=10).get().result == {"state": "closed"}
            assert state(node, "trap-1").extra == {"position": "closed", "fault": None}
            trap.command("fault", {"on": True, "reason": "spring broken"}, timeout=10).get()
            wait_for(
                lambda: state(node, "trap-1").extra["fault"] == "spring broken",
                timeout=WAIT,
                what="the fault reported",
            )
            with pytest.raises(DeviceRefusedError, match="reports a fault"):
                trap.command("open", timeout=10).get(5)
            trap.command("fault", {"on": False}, timeout=10).get()
            wait_for(lambda: state(node, "trap-1").extra["fault"] is None, what="cleared")
            assert trap.command("open", timeout=10).get().result == {"state": "open"}
        finally:
            device.kill()
