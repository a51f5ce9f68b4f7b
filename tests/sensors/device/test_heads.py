"""Heads on a yard camera against a real node: it starts with the world's initial head;
a malformed or damaged head is refused with a reason while the old one keeps scoring; a
valid newer head is acknowledged and every later event carries its version."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import msgspec

from edgeloop import Node
from edgeloop.messages import HeadAck, HeadUpdate, encode_head
from edgeloop.sensors.device import DeviceConfig, SourceConfig, build_agent
from edgeloop.sensors.world import World
from tests.helpers import wait_for
from tests.sensors.device.conftest import node_address
from tests.sensors.device.twin import RECORDS


def update(version: int, head: bytes, checksum: int | None = None) -> HeadUpdate:
    crc = zlib.crc32(head) if checksum is None else checksum
    return HeadUpdate(device="cam-shed", version=version, head=head, checksum=crc)


def test_bad_heads_are_refused_while_the_old_one_keeps_working(
    node_factory: Callable[..., Node],
) -> None:
    node = node_factory(["cam-shed"])
    config = DeviceConfig(
        name="cam-shed",
        node=node_address(node),
        heartbeat_interval=0.1,
        liveness_timeout=1.0,
        source=SourceConfig(kind="yard", scenario="calm", speed=40.0),
    )
    world = World("calm")
    good = world.initial_head(version=2)
    port = node.devices
    record = RECORDS["cam-shed"]
    with build_agent(config) as agent:
        wait_for(lambda: record.count() >= 5, timeout=20, what="events scored by head 1")
        assert {e.head_version for e in record.events} == {1}
        assert {e.label for e in record.events} <= {"skunk", "cat", "raccoon", "unknown"}

        port.send("cam-shed", update(2, b"\x93not a head"))
        damaged = encode_head(good)
        port.send("cam-shed", update(2, damaged, checksum=zlib.crc32(damaged) ^ 1))
        alien = msgspec.structs.replace(good, extractor="another-net")
        port.send("cam-shed", update(2, msgspec.msgpack.encode(alien)))
        wait_for(lambda: len(record.of(HeadAck)) == 3)
        acks = record.of(HeadAck)
        assert [a.ok for a in acks] == [False, False, False]
        assert "HeadError" in (acks[0].error or "")
        assert "CRC-32" in (acks[1].error or "")
        assert "extractor" in (acks[2].error or "")
        assert all("still running version 1" in (a.error or "") for a in acks)
        mark = record.count()
        wait_for(lambda: record.count() > mark + 3, timeout=20, what="the old head at work")
        assert agent.statistics().head_version == 1

        port.send("cam-shed", update(2, encode_head(good)))
        wait_for(lambda: len(record.of(HeadAck)) == 4)
        assert record.of(HeadAck)[-1] == HeadAck(device="cam-shed", version=2, ok=True)
        wait_for(lambda: record.events[-1].head_version == 2, timeout=20, what="head 2 in use")
        port.send("cam-shed", update(1, encode_head(world.initial_head(version=1))))
        wait_for(lambda: len(record.of(HeadAck)) == 5)
        stale = record.of(HeadAck)[-1]
        assert not stale.ok
        assert "not newer" in (stale.error or "")
        assert agent.statistics().counters["head_rejected"] == 4
