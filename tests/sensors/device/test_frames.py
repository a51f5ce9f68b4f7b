"""Full frames stay on the device and are pulled by ref over the bulk lane (the provider
chosen automatically: shared memory on one host), including frames from before the event
that prompted the pull; evicted frames are refused and the eviction reported."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from itertools import count

import numpy as np

from edgeloop import Node
from edgeloop.messages import ConfigDesired, DeviceStatus, FrameReady, FrameRequest
from edgeloop.sensors.device import (
    CameraSettings,
    DeviceAgent,
    DeviceConfig,
    SourceConfig,
    SyntheticSource,
)
from edgeloop.transport import bulk
from tests.helpers import wait_for
from tests.sensors.device.conftest import node_address
from tests.sensors.device.twin import RECORDS

FRAME_BYTES = 64 * 64


def test_frames_pulled_by_ref_arrive_intact_and_evicted_ones_are_refused(
    node_factory: Callable[..., Node],
) -> None:
    node = node_factory(["cam-f"])
    config = DeviceConfig(
        name="cam-f",
        node=node_address(node),
        reachable=("porch",),
        initial=CameraSettings(zones=("porch",), frame_rate=60.0),
        frame_budget=40 * FRAME_BYTES,  # forty frames; older ones are evicted
        heartbeat_interval=0.1,
        liveness_timeout=1.0,
        status_interval=0.2,
        source=SourceConfig(speed=2.0),
    )
    source = SyntheticSource(seed=5, zones=("porch",), rate=25.0, limit=120)
    port = node.devices
    ids = count(1)
    with DeviceAgent(config, source=source) as agent:
        record = RECORDS["cam-f"]
        wait_for(lambda: port.connected("cam-f"))
        lane = bulk.BulkConfig(slot_size=1 << 16, slot_count=4)
        receiver = node.endpoint.open_bulk_receiver("cam-f", lane, timeout=5.0)  # type: ignore[union-attr]
        try:
            assert receiver.provider == "shm", "both ends are on this host"

            def request(ref: object) -> None:
                frame_id = ref.frame_id  # type: ignore[attr-defined]
                port.send("cam-f", FrameRequest(id=next(ids), device="cam-f", frame_id=frame_id))

            fetcher = bulk.FrameFetcher(receiver, request=request)
            wait_for(lambda: record.count() >= 30, timeout=10, what="events with frame refs")
            latest = record.events[-1]
            earlier = record.events[-20]  # the pre-event buffer: a frame from before
            for event in (latest, earlier):
                assert event.frame is not None
                with fetcher.fetch(event.frame, timeout=5.0) as frame:
                    data = np.array(frame.array)
                assert zlib.crc32(data.tobytes()) == event.frame.checksum
                assert data.shape == (64, 64)
            wait_for(lambda: len(record.of(FrameReady)) >= 2)
            assert all(r.ref is not None for r in record.of(FrameReady))

            wait_for(lambda: agent.statistics().source_done, timeout=20)
            wait_for(lambda: record.count() == 120, timeout=10)
            first = record.events[0].frame
            assert first is not None
            port.send("cam-f", FrameRequest(id=99, device="cam-f", frame_id=first.frame_id))
            wait_for(lambda: any(r.id == 99 for r in record.of(FrameReady)))
            refused = next(r for r in record.of(FrameReady) if r.id == 99)
            assert refused.ref is None
            assert "not held" in (refused.error or "")
            wait_for(lambda: any(s.frames_evicted >= 80 for s in record.of(DeviceStatus)))
            stats = agent.statistics()
            assert stats.ring.held == 40
            assert stats.frames_sent == 2
        finally:
            receiver.close()


def test_report_mode_full_pushes_each_reported_frame_unasked(
    node_factory: Callable[..., Node],
) -> None:
    node = node_factory(["cam-p"])
    config = DeviceConfig(
        name="cam-p",
        node=node_address(node),
        reachable=("porch",),
        initial=CameraSettings(zones=("porch",), frame_rate=60.0),
        heartbeat_interval=0.1,
        liveness_timeout=1.0,
        source=SourceConfig(speed=1.0),
    )
    source = SyntheticSource(seed=6, zones=("porch",), rate=20.0)
    port = node.devices
    with DeviceAgent(config, source=source):
        record = RECORDS["cam-p"]
        wait_for(lambda: port.connected("cam-p"))
        lane = bulk.BulkConfig(slot_size=1 << 16, slot_count=8)
        receiver = node.endpoint.open_bulk_receiver("cam-p", lane, timeout=5.0)  # type: ignore[union-attr]
        try:
            desired = ConfigDesired(device="cam-p", version=1, settings={"report_mode": "full"})
            port.send("cam-p", desired)
            pushed: list[int] = []
            while len(pushed) < 5:
                with receiver.recv(timeout=5.0) as frame:  # checked against its CRC-32
                    assert frame.frame_id is not None
                    pushed.append(frame.frame_id)
            wait_for(lambda: sum(e.config_version == 1 for e in record.events) >= 5)
            full = [e.frame for e in record.events if e.config_version == 1]
            assert [ref.frame_id for ref in full[:5] if ref is not None] == pushed
        finally:
            receiver.close()


def test_a_new_lane_replaces_one_the_node_closed(node_factory: Callable[..., Node]) -> None:
    node = node_factory(["cam-l"])
    config = DeviceConfig(
        name="cam-l",
        node=node_address(node),
        reachable=("porch",),
        initial=CameraSettings(zones=("porch",), frame_rate=60.0),
        heartbeat_interval=0.1,
        liveness_timeout=1.0,
        source=SourceConfig(speed=1.0),
    )
    port = node.devices
    ids = count(1)
    with DeviceAgent(config, source=SyntheticSource(seed=7, zones=("porch",), rate=20.0)):
        record = RECORDS["cam-l"]
        wait_for(lambda: port.connected("cam-l"))
        wait_for(lambda: record.count() >= 3)
        lane = bulk.BulkConfig(slot_size=1 << 16, slot_count=2)
        for _ in range(2):  # the second offer must not wait for the device's old lane
            receiver = node.endpoint.open_bulk_receiver("cam-l", lane, timeout=3.0)  # type: ignore[union-attr]
            try:
                ref = record.events[-1].frame
                assert ref is not None
                port.send(
                    "cam-l", FrameRequest(id=next(ids), device="cam-l", frame_id=ref.frame_id)
                )
                with bulk.FrameFetcher(receiver).fetch(ref, timeout=5.0) as frame:
                    assert zlib.crc32(np.array(frame.array).tobytes()) == ref.checksum
            finally:
                receiver.close()
