"""Device agents as real processes (``edgeloop device run``) against a real node: a
``kill -9`` mid-stream, while the node is away, loses nothing (the journal brings the
outbox back) and duplicates nothing at the twin; a restarted node gets everything resent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edgeloop import Node
from edgeloop.messages import ConfigDesired, ConfigReported, DeviceStatus
from tests.helpers import wait_for
from tests.integration.procs import Process, free_tcp_ports
from tests.sensors.device.device_files import device_file
from tests.sensors.device.twin import RECORDS

pytestmark = pytest.mark.integration


def test_kill_9_while_the_node_is_away_loses_and_duplicates_nothing(
    node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    (port,) = free_tcp_ports(1)
    address = f"tcp://127.0.0.1:{port}"
    node = node_factory(["cam-k"], address=address)
    path = device_file(tmp_path, "cam-k", address)
    device = Process("device", "run", str(path), "--log-format", "json")
    try:
        record = RECORDS["cam-k"]
        wait_for(lambda: record.count() >= 30, timeout=20, what="events streaming")
        mark = device.mark()
        node.stop()  # the node goes away; the camera keeps numbering into its journal
        device.wait_for_event("device_unlinked", after=mark)
        delivered = record.count()
        journal = tmp_path / "cam-k" / "journal.bin"
        size = journal.stat().st_size
        wait_for(lambda: journal.stat().st_size > size + 2000, what="events journalled meanwhile")
        device.kill()  # kill -9 with unacknowledged events in its outbox
        node = node_factory(["cam-k"], address=address)
        device = Process("device", "run", str(path), "--log-format", "json")
        recovered = device.wait_for_event("outbox_recovered")
        assert recovered["pending"] > 0
        assert recovered["boot"] == 2
        wait_for(lambda: record.count() >= recovered["next_seq"] + 20, timeout=20)
    finally:
        device.kill()
    seqs = record.seqs()
    assert seqs == list(range(1, len(seqs) + 1)), "exactly once and in order at the twin"
    assert len(seqs) > delivered
    statuses = [s for s in record.of(DeviceStatus) if s.boot == 2]
    assert statuses, "the restarted device reported its status"
    assert statuses[0].outbox_dropped == 0
    frames = {e.frame.frame_id >> 32 for e in record.events if e.frame is not None}
    assert frames == {1, 2}, "frame ids carry the boot, so they never repeat"


def test_outbox_overflow_is_counted_and_reported(
    node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    node = node_factory(["cam-o"], ack=False)
    address = node.endpoint.statistics().bound[0]  # type: ignore[union-attr]
    path = device_file(tmp_path, "cam-o", address, limit=20, window=8)
    device = Process("device", "run", str(path), "--log-format", "json")
    try:
        record = RECORDS["cam-o"]
        overflow = device.wait_for_event("outbox_overflow", timeout=20)
        assert overflow["dropped"] >= 1
        wait_for(
            lambda: any(s.outbox_dropped > 0 for s in record.of(DeviceStatus)),
            what="a status report of the loss",
        )
        status = [s for s in record.of(DeviceStatus) if s.outbox_dropped > 0][-1]
        assert status.outbox_depth == 20
        assert status.next_seq == 21, "drop_newest: refused events take no number"
    finally:
        device.kill()


def test_a_device_process_refuses_a_bad_config_and_keeps_the_old_one(
    node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    node = node_factory(["cam-c"])
    address = node.endpoint.statistics().bound[0]  # type: ignore[union-attr]
    device = Process("device", "run", str(device_file(tmp_path, "cam-c", address)))
    try:
        record = RECORDS["cam-c"]
        wait_for(lambda: record.of(ConfigReported), timeout=20, what="the config on linking")
        port = node.devices
        port.send("cam-c", ConfigDesired(device="cam-c", version=1, settings={"threshold": 0.0}))
        wait_for(lambda: any(r.version == 1 for r in record.of(ConfigReported)))
        bad = ConfigDesired(device="cam-c", version=2, settings={"frame_rate": 0})
        port.send("cam-c", bad)
        wait_for(lambda: any(r.error for r in record.of(ConfigReported)))
        refused = next(r for r in record.of(ConfigReported) if r.error)
        assert refused.version == 1
        assert "frame_rate" in refused.error  # type: ignore[operator]
        mark = record.count()
        wait_for(lambda: record.count() > mark + 10, what="events under the old config")
        assert {e.config_version for e in record.events[mark:]} == {1}
    finally:
        device.kill()
    state = (tmp_path / "cam-c" / "state.msgpack").read_bytes()
    assert b"frame_rate" in state, "the config in effect is kept on disk"
