"""The device agent in this process against a real node: events delivered exactly once and
in order and acknowledged, configuration applied or refused, a trap's commands, status."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgeloop import Node
from edgeloop.messages import (
    Command,
    CommandResult,
    ConfigDesired,
    ConfigReported,
    DeviceStatus,
)
from edgeloop.sensors.device import (
    CameraSettings,
    DeviceAgent,
    DeviceConfig,
    SourceConfig,
    SyntheticSource,
    TrapConfig,
)
from tests.helpers import wait_for
from tests.integration.procs import free_tcp_ports
from tests.sensors.device.conftest import node_address
from tests.sensors.device.twin import RECORDS


def camera(
    name: str, node: str, zones: tuple[str, ...] = ("porch",), **kwargs: object
) -> DeviceConfig:
    return DeviceConfig(
        name=name,
        node=node,
        reachable=("porch", "yard"),
        initial=CameraSettings(zones=zones, frame_rate=60.0),
        heartbeat_interval=0.1,
        liveness_timeout=1.0,
        source=SourceConfig(speed=kwargs.pop("speed", 50.0)),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def test_events_arrive_once_in_order_and_the_outbox_empties(
    node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    node = node_factory(["cam-1"])
    source = SyntheticSource(seed=1, zones=("porch",), limit=200, rate=50.0)
    config = camera("cam-1", node_address(node), data_dir=tmp_path / "cam-1")
    with DeviceAgent(config, source=source) as agent:
        record = RECORDS["cam-1"]
        wait_for(lambda: record.count() == 200, what="200 events at the twin")
        wait_for(lambda: agent.statistics().outbox.depth == 0, what="every event acked")
        stats = agent.statistics()
    assert record.seqs() == list(range(1, 201))
    assert stats.ring.held == 200
    events = record.events
    assert all(e.frame is not None and e.frame.device == "cam-1" for e in events)
    assert all(len(e.embedding) == 16 for e in events)
    assert {e.zone for e in events} == {"porch"}
    assert record.of(DeviceStatus), "the device reported its status on connecting"


def test_desired_config_is_applied_and_a_bad_one_is_refused_with_the_old_kept(
    node_factory: Callable[..., Node],
) -> None:
    node = node_factory(["cam-2"])
    source = SyntheticSource(seed=2, zones=("porch", "yard"), rate=50.0)
    with DeviceAgent(camera("cam-2", node_address(node)), source=source) as agent:
        record = RECORDS["cam-2"]
        wait_for(lambda: record.of(ConfigReported), what="the config in effect on connecting")
        port = node.devices
        port.send("cam-2", ConfigDesired(device="cam-2", version=1, settings={"zones": ["yard"]}))
        wait_for(lambda: len(record.of(ConfigReported)) >= 2)
        applied = record.of(ConfigReported)[-1]
        assert applied.version == 1
        assert applied.error is None
        assert applied.settings["zones"] == ["yard"]
        wait_for(
            lambda: sum(e.config_version == 1 for e in record.events) > 20,
            what="events under version 1",
        )
        assert {e.zone for e in record.events if e.config_version == 1} == {"yard"}

        bad = ConfigDesired(device="cam-2", version=2, settings={"exposure": 7.0})
        port.send("cam-2", bad)
        wait_for(lambda: len(record.of(ConfigReported)) >= 3)
        refused = record.of(ConfigReported)[-1]
        assert refused.version == 1, "the old configuration stays in effect"
        assert refused.error is not None
        assert "exposure" in refused.error
        port.send("cam-2", ConfigDesired(device="cam-2", version=2, settings={"colour": 1}))
        wait_for(lambda: len(record.of(ConfigReported)) >= 4)
        assert "unknown setting" in (record.of(ConfigReported)[-1].error or "")
        mark = record.count()
        wait_for(lambda: record.count() > mark + 10, what="the camera keeps reporting")
        assert agent.statistics().counters["config_rejected"] == 2
        assert agent.statistics().config_version == 1


def test_a_trap_obeys_reports_and_refuses_while_in_fault(
    node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    node = node_factory(["trap-1"])
    catches = tmp_path / "catches.jsonl"
    config = DeviceConfig(
        name="trap-1",
        node=node_address(node),
        kind="trap",
        heartbeat_interval=0.1,
        liveness_timeout=1.0,
        trap=TrapConfig(zone="porch", catches=catches),
    )

    class Porch:
        def occupants(self, t: float) -> tuple[str, ...]:
            return ("skunk",)

    with DeviceAgent(config, trap_view=Porch()) as agent:
        record = RECORDS["trap-1"]
        port = node.devices
        wait_for(lambda: port.connected("trap-1"))
        port.send("trap-1", Command(id=1, device="trap-1", name="close"))
        wait_for(lambda: record.of(CommandResult))
        closed = record.of(CommandResult)[-1]
        assert closed.ok
        assert closed.result == {"state": "closed"}
        wait_for(lambda: any(s.state == "closed" for s in record.of(DeviceStatus)))
        port.send("trap-1", Command(id=2, device="trap-1", name="fault", args={"reason": "jam"}))
        port.send("trap-1", Command(id=3, device="trap-1", name="open"))
        wait_for(lambda: len(record.of(CommandResult)) == 3)
        refused = record.of(CommandResult)[-1]
        assert refused.id == 3
        assert not refused.ok
        assert "fault" in refused.detail
        wait_for(lambda: any(s.state == "fault" for s in record.of(DeviceStatus)))
        assert agent.statistics().state == "fault"
    assert catches.read_text().count("skunk") == 1


def test_a_restarted_node_gets_everything_resent(node_factory: Callable[..., Node]) -> None:
    (port,) = free_tcp_ports(1)
    address = f"tcp://127.0.0.1:{port}"
    node = node_factory(["cam-r"], address=address)
    source = SyntheticSource(seed=4, zones=("porch",), rate=50.0, limit=300)
    with DeviceAgent(camera("cam-r", address, speed=2.0), source=source) as agent:
        record = RECORDS["cam-r"]
        wait_for(lambda: record.count() >= 20, what="events before the node stops")
        node.stop()
        wait_for(lambda: not agent.statistics().connected, what="the device saw it go")
        held = agent.statistics().outbox.depth
        wait_for(lambda: agent.statistics().outbox.depth > held + 10, what="events held meanwhile")
        node_factory(["cam-r"], address=address)
        wait_for(lambda: agent.statistics().connected, what="the device reconnected")
        wait_for(lambda: agent.statistics().source_done, timeout=15)
        wait_for(lambda: agent.statistics().outbox.depth == 0, what="all acknowledged")
    assert record.seqs() == list(range(1, 301))
