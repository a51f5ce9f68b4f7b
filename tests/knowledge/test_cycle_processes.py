"""The knowledge cycle with real ``edgeloop device run`` processes on the ``opossum``
yard (the opossum entering at once): a camera killed with SIGKILL as the push starts is
restarted by the runner and catches up with the new head on reconnect, while the other
seven take it at once."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgeloop.apps.yard_cycle import YardCycle
from edgeloop.bench._cycle import cycle_node, quick_opossum, wait_cycle
from edgeloop.learning import GetCycles
from edgeloop.learning.cycle_core import CycleRecord
from edgeloop.sensors import GetState
from edgeloop.sensors._runner import YardRunner
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

WAIT = 60.0
VICTIM = "cam-lawn"


class KillingCycle(YardCycle):
    """A YardCycle that runs ``victim`` as its first push starts (fault injection)."""

    def __init__(self, scenario: str, victim: Callable[[], None], **options: Any) -> None:
        super().__init__(scenario, **options)
        self.victim = victim

    def before_push(self, record: CycleRecord) -> None:
        if record.cycle == 1:
            self.victim()


def test_a_camera_killed_during_the_push_catches_up_on_reconnect(tmp_path: Path) -> None:
    scenario = str(quick_opossum(tmp_path, duration=900.0))
    runners: list[YardRunner] = []

    def kill() -> None:
        process = runners[0].processes[VICTIM]
        process.send_signal(signal.SIGKILL)
        process.wait()

    with cycle_node(scenario, with_cycle=False) as (node, at):
        runner = YardRunner.from_scenario(
            scenario, connect=at, mode="processes", speed=10.0, run_dir=tmp_path / "dev"
        )
        runners.append(runner)
        runner.start()
        try:
            # Ten fresh interpreters can take many seconds on a loaded machine: the cycle
            # starts once every device is linked (the opossum stays in the yard meanwhile).
            wait_for(lambda: len(node.devices.connected_devices()) == 10, WAIT, "devices up")
            node.system.spawn(
                KillingCycle,
                "/knowledge",
                args={"scenario": scenario, "victim": kill, "push_timeout": 1.0},
            )
            record = wait_cycle(node, WAIT)
            assert record is not None, "no cycle"
            cycle = node.lookup("/knowledge")
            assert cycle is not None

            def caught_up() -> bool:
                first = cycle.ask(GetCycles()).get(WAIT)["cycles"][0]
                return bool(first["state"] == "done")

            wait_for(caught_up, WAIT, f"{VICTIM} acked the new head")
            first = cycle.ask(GetCycles()).get(WAIT)["cycles"][0]
            assert len(first["cameras_acked"]) == 8
            assert first["name"] == "species-4"
            assert runner.restarts.get(VICTIM, 0) >= 1  # it was killed and came back
            twin = node.lookup(f"/devices/{VICTIM}")
            assert twin is not None
            state = twin.ask(GetState()).get(WAIT)
            assert state.reported_head == first["head_version"] == state.desired_head
            assert state.counters["connects"] >= 2  # it took the head on its new link
        finally:
            runner.stop()
