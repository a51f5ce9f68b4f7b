"""The device's rules without a link: bad input from the node is answered with a reason,
counted, and disturbs nothing else; configuration versions; status after losses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeloop.messages import (
    Command,
    CommandResult,
    ConfigDesired,
    ConfigReported,
    DeviceStatus,
    ErrorReply,
    Event,
    EventAck,
    FrameReady,
    FrameRequest,
    HeadAck,
    HeadUpdate,
)
from edgeloop.sensors.device import (
    CameraSettings,
    DeviceConfig,
    DeviceCore,
    Journal,
    Observation,
    OutboxConfig,
    ServeFrame,
)


def core(**kwargs: object) -> DeviceCore:
    config = DeviceConfig(
        name="cam-1",
        node="tcp://127.0.0.1:1",
        reachable=("porch", "yard"),
        initial=CameraSettings(zones=("porch",), frame_rate=60.0),
        **kwargs,  # type: ignore[arg-type]
    )
    return DeviceCore(config)


def seen(t: float, zone: str = "porch") -> Observation:
    return Observation(
        t=t,
        zone=zone,
        embedding=np.arange(8, dtype=np.int8),
        frame=np.full((4, 4), int(t) % 256, dtype=np.uint8),
    )


def test_messages_for_another_device_or_of_the_wrong_kind_are_refused_and_counted() -> None:
    device = core()
    device.observe(seen(0.0), 0.0)
    (reply,) = device.receive(EventAck(device="cam-2", seq=1), 0.0)
    assert isinstance(reply, ErrorReply)
    assert reply.code == "wrong_device"
    assert "cam-2" in reply.message
    assert len(device.outbox) == 1, "the ack for another device acknowledged nothing"
    stray = Event(
        device="cam-1",
        seq=1,
        ts=0.0,
        zone="porch",
        label="cat",
        score=0.1,
        embedding=b"",
        head_version=0,
        config_version=0,
    )
    (reply,) = device.receive(stray, 0.0)
    assert isinstance(reply, ErrorReply)
    assert reply.code == "unexpected_kind"
    assert device.counters["wrong_device"] == 1
    assert device.counters["unexpected"] == 1
    assert device.receive(EventAck(device="cam-1", seq=1), 0.0) == []
    assert len(device.outbox) == 0


def test_config_versions_only_move_forward() -> None:
    device = core()
    (applied,) = device.receive(
        ConfigDesired(device="cam-1", version=3, settings={"threshold": 0.5}), 0.0
    )
    assert isinstance(applied, ConfigReported)
    assert applied.error is None
    assert applied.settings["threshold"] == 0.5
    (again,) = device.receive(
        ConfigDesired(device="cam-1", version=3, settings={"threshold": 0.5}), 0.0
    )
    assert isinstance(again, ConfigReported)
    assert again.error is None, "a resend of the version in effect is fine"
    (other,) = device.receive(
        ConfigDesired(device="cam-1", version=3, settings={"threshold": 0.6}), 0.0
    )
    assert isinstance(other, ConfigReported)
    assert "new version" in (other.error or "")
    (stale,) = device.receive(ConfigDesired(device="cam-1", version=2, settings={}), 0.0)
    assert isinstance(stale, ConfigReported)
    assert "older" in (stale.error or "")
    assert device.settings.threshold == 0.5
    assert device.config_version == 3


def test_a_head_without_a_runtime_or_a_frame_not_held_is_refused_with_a_reason() -> None:
    device = core()
    (ack,) = device.receive(HeadUpdate(device="cam-1", version=1, head=b"x", checksum=0), 0.0)
    assert isinstance(ack, HeadAck)
    assert not ack.ok
    device.observe(seen(1.0), 0.0)
    ref = device.outbox.pending()[0].frame
    assert ref is not None
    (serve,) = device.receive(FrameRequest(id=1, device="cam-1", frame_id=ref.frame_id), 0.0)
    assert isinstance(serve, ServeFrame)
    assert serve.ref == ref
    (missing,) = device.receive(FrameRequest(id=2, device="cam-1", frame_id=12345), 0.0)
    assert isinstance(missing, FrameReady)
    assert "not held" in (missing.error or "")


def test_a_camera_refuses_commands_and_a_trap_refuses_settings() -> None:
    (result,) = core().receive(Command(id=4, device="cam-1", name="close"), 0.0)
    assert isinstance(result, CommandResult)
    assert not result.ok
    trap = DeviceCore(DeviceConfig(name="trap-1", node="tcp://127.0.0.1:1", kind="trap"))
    (reported,) = trap.receive(
        ConfigDesired(device="trap-1", version=1, settings={"zones": ["a"]}), 0.0
    )
    assert isinstance(reported, ConfigReported)
    assert "no settings" in (reported.error or "")
    (bad,) = trap.receive(Command(id=5, device="trap-1", name="fault", args={"on": "yes"}), 0.0)
    assert isinstance(bad, CommandResult)
    assert not bad.ok
    assert trap.trap is not None
    assert trap.trap.state == "open"


def test_overflow_and_evictions_bring_a_status_report_forward() -> None:
    device = core(outbox=OutboxConfig(limit=2), frame_budget=32)
    device.link_up(0.0)
    assert device.tick(0.1) == []
    for t in range(4):
        device.observe(seen(float(t)), 0.1)
    (status,) = device.tick(0.6)
    assert isinstance(status, DeviceStatus)
    assert status.outbox_dropped == 2
    assert status.outbox_depth == 2
    assert status.next_seq == 3
    assert status.frames_evicted == 2
    assert status.frames_held == 2
    assert device.tick(0.7) == [], "one report per burst"
    assert [e.seq for e in device.pending_events(0.7)] == [1, 2]


def test_with_drop_oldest_and_no_node_the_journal_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    device = DeviceCore(
        DeviceConfig(
            name="cam-1",
            node="tcp://127.0.0.1:1",
            reachable=("porch",),
            initial=CameraSettings(zones=("porch",), frame_rate=60.0),
            outbox=OutboxConfig(limit=20, overflow="drop_oldest"),
        ),
        journal=Journal.open(path, compact_bytes=8192),
    )
    for t in range(500):
        device.observe(seen(t / 50), 0.0)
    device.close()
    assert path.stat().st_size < 3 * 8192
    recovered = Journal.open(path).recovered
    assert [e.seq for e in recovered.events] == list(range(481, 501))
    assert recovered.dropped == 480
    assert recovered.next_seq == 501


def test_settings_the_simulated_camera_cannot_render_are_refused() -> None:
    from edgeloop.sensors.device import YardCamera
    from edgeloop.sensors.world import World

    world = World("calm")
    camera = YardCamera(world, "cam-hedge")
    zones = tuple(z.id for z in world.scenario.zones)
    device = DeviceCore(
        DeviceConfig(
            name="cam-hedge",
            node="tcp://127.0.0.1:1",
            reachable=zones,
            initial=CameraSettings(zones=("hedge",)),
        ),
        check_settings=lambda s: camera.check(zones=s.zones, exposure=s.exposure),
    )
    (refused,) = device.receive(
        ConfigDesired(device="cam-hedge", version=1, settings={"zones": list(zones[:7])}), 0.0
    )
    assert isinstance(refused, ConfigReported)
    assert "do not fit" in (refused.error or "")
    assert device.settings.zones == ("hedge",)
    (applied,) = device.receive(
        ConfigDesired(device="cam-hedge", version=1, settings={"zones": list(zones[:3])}), 0.0
    )
    assert isinstance(applied, ConfigReported)
    assert applied.error is None


def test_an_embedding_the_head_cannot_score_is_reported_as_novel_and_counted() -> None:
    from edgeloop.messages import encode_head
    from edgeloop.sensors import load_head
    from edgeloop.sensors.world import World

    head = encode_head(World("calm").initial_head())  # scores 20-value embeddings
    device = DeviceCore(
        DeviceConfig(
            name="cam-1",
            node="tcp://127.0.0.1:1",
            reachable=("porch",),
            initial=CameraSettings(zones=("porch",), frame_rate=60.0),
        ),
        head_loader=load_head,
        initial_head=head,
    )
    assert device.head_version == 1
    device.observe(seen(0.0), 0.0)  # an 8-value embedding
    (event,) = device.outbox.pending()
    assert event.label == "unknown"
    assert event.extra["novel"] is True
    assert event.head_version == 1
    assert device.counters["head_failed"] == 1
