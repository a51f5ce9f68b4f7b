"""A whole yard scenario against a real node: every camera streams from its view of the
shared world, traps take commands and record their catches."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeloop import Node
from edgeloop.messages import Command, CommandResult, DeviceStatus
from edgeloop.sensors._runner import YardRunner, yard_devices
from tests.helpers import wait_for
from tests.integration.procs import Process
from tests.sensors.device.conftest import node_address
from tests.sensors.device.twin import RECORDS

TINY = """
name = "tiny"
seed = 4
duration = 60.0
tick = 1.0
embedding_dim = 12

[[zones]]
id = "lawn"
adjacent = ["trap-lawn"]
exit = true

[[zones]]
id = "trap-lawn"
trap = true

[[cameras]]
id = "cam-lawn"
zones = ["lawn", "trap-lawn"]

[[species]]
name = "skunk"
digit = 3
bait = 3.0

[[species]]
name = "cat"
digit = 5

[[animals]]
id = "skunk-1"
species = "skunk"
zone = "lawn"
"""


def test_a_scenario_in_one_process_streams_and_its_trap_records_a_catch(
    node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(TINY)
    names = [c.name for c in yard_devices(str(scenario), connect="tcp://127.0.0.1:1")]
    assert names == ["cam-lawn", "trap-lawn"]
    node = node_factory(names)
    runner = YardRunner.from_scenario(
        str(scenario),
        connect=node_address(node),
        mode="in-process",
        speed=20.0,
        run_dir=tmp_path / "run",
    )
    with runner:
        camera = RECORDS["cam-lawn"]
        wait_for(lambda: camera.count() >= 10, timeout=20, what="the camera's events")
        assert {e.zone for e in camera.events} <= {"lawn", "trap-lawn"}
        assert {e.head_version for e in camera.events} == {1}
        wait_for(lambda: node.devices.connected("trap-lawn"))
        node.devices.send("trap-lawn", Command(id=1, device="trap-lawn", name="close"))
        wait_for(lambda: RECORDS["trap-lawn"].of(CommandResult))
        assert RECORDS["trap-lawn"].of(CommandResult)[0].ok
        assert runner.wait(timeout=10), "the scenario played to its end"
    catches = runner.catches()
    assert len(catches) == 1
    assert catches[0]["trap"] == "trap-lawn"
    assert all(c.startswith("skunk:") for c in catches[0]["caught"])


@pytest.mark.integration
def test_sim_yard_runs_each_device_as_a_process(
    node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(TINY.replace("duration = 60.0", "duration = 6000.0"))
    node = node_factory(["cam-lawn", "trap-lawn"])
    run_dir = tmp_path / "run"
    sim = Process(
        "sim",
        "yard",
        "--scenario",
        str(scenario),
        "--connect",
        node_address(node),
        "--speed",
        "20",
        "--run-dir",
        str(run_dir),
        "--log-format",
        "json",
    )
    try:
        started = sim.wait_for_event("yard_started", timeout=20)
        assert started["mode"] == "processes"
        wait_for(lambda: RECORDS["cam-lawn"].count() >= 5, timeout=30, what="camera events")
        wait_for(lambda: node.devices.connected("trap-lawn"), timeout=20)
        sim.proc.send_signal(signal.SIGTERM)  # stops every device in order, then exits 0
        code, _ = sim.finish(timeout=30)
    finally:
        sim.kill()
    assert code == 0
    assert RECORDS["cam-lawn"].duplicates == 0
    logs = (run_dir / "cam-lawn.log").read_text().splitlines()
    assert any(json.loads(line).get("event") == "device_started" for line in logs)


@pytest.mark.integration
def test_the_runner_restarts_a_device_process_killed_mid_stream(
    node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(TINY.replace("duration = 60.0", "duration = 6000.0"))
    node = node_factory(["cam-lawn", "trap-lawn"])
    runner = YardRunner.from_scenario(
        str(scenario), connect=node_address(node), speed=20.0, run_dir=tmp_path / "run"
    )
    with runner:
        camera = RECORDS["cam-lawn"]
        wait_for(lambda: camera.count() >= 5, timeout=30, what="events before the kill")
        first = runner.processes["cam-lawn"]
        first.kill()  # SIGKILL, mid-stream
        first.wait()
        wait_for(lambda: runner.restarts.get("cam-lawn") == 1, timeout=10, what="a restart")
        wait_for(
            lambda: any(s.boot == 2 for s in camera.of(DeviceStatus)),
            timeout=30,
            what="the restarted device linked",
        )
        mark = camera.count()
        wait_for(lambda: camera.count() >= mark + 5, timeout=30, what="events after it")
    seqs = camera.seqs()
    assert seqs == list(range(1, len(seqs) + 1)), "nothing lost or twice across the kill"
