"""The knowledge cycle end to end on loopback: a node with the yard's twins and a
YardCycle, the eight cameras and two traps of the ``opossum`` yard as device agents over
real ZeroMQ links (in this process; ``test_cycle_processes`` runs them as processes).

The opossum enters at once (``quick_opossum``), so each cycle starts within a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from edgeloop.apps.yard_cycle import TwinFleet
from edgeloop.bench._cycle import cycle_node, quick_opossum, wait_cycle
from edgeloop.errors import KnowledgeError
from edgeloop.learning import GetCycles, NameClass
from edgeloop.learning.cycle_client import name_class
from edgeloop.messages import Event, FrameRef
from edgeloop.sensors import GetState
from edgeloop.sensors._runner import YardRunner
from edgeloop.supervisor import Node
from tests.helpers import wait_for
from tests.integration.procs import ROOT

pytestmark = pytest.mark.integration

WAIT = 30.0
CAMERAS = 8


@contextmanager
def yard(tmp_path: Path, **options: Any) -> Iterator[tuple[Node, str]]:
    scenario = str(quick_opossum(tmp_path))
    with cycle_node(scenario, **options) as (node, address):
        runner = YardRunner.from_scenario(
            scenario, connect=address, mode="in-process", speed=10.0, run_dir=tmp_path / "dev"
        )
        runner.start(lead=0.5)
        try:
            yield node, address
        finally:
            runner.stop()


def status(node: Node) -> dict[str, Any]:
    cycle = node.lookup("/knowledge")
    assert cycle is not None
    answer: dict[str, Any] = cycle.ask(GetCycles()).get(WAIT)
    return answer


def heads(node: Node) -> dict[str, int | None]:
    out = {}
    for camera in ("cam-gate", "cam-lawn", "cam-porch", "cam-deck"):
        twin = node.lookup(f"/devices/{camera}")
        assert twin is not None
        out[camera] = twin.ask(GetState()).get(WAIT).reported_head
    return out


def edgeloop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeloop", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cycle_learns_the_opossum_pushes_heads_and_takes_its_name(tmp_path: Path) -> None:
    with yard(tmp_path, store=str(tmp_path / "knowledge.db")) as (node, address):
        record = wait_cycle(node, WAIT)
        assert record is not None, "no cycle"
        assert record["state"] == "done", record
        assert record["name"] == "species-4"
        assert record["examples"] >= 5
        wait_for(  # pulled by FrameRef over the bulk lane, beside the learning
            lambda: status(node)["cycles"][0]["frame_bytes"] > 0, WAIT, "a frame pulled"
        )
        assert len(record["cameras_acked"]) == CAMERAS
        assert 0 < record["head_bytes"] < 1024
        assert list(record["stage_ms"]) == ["notice", "query", "learn", "recompile", "push"]
        assert record["cycle_latency_ms"] > 0
        version = record["head_version"]
        assert set(heads(node).values()) == {version}  # desired = reported at the twins
        # The cameras now name the opossum on-device, with the new head.
        wait_for(
            lambda: status(node)["counters"].get("events_of_learnt_classes", 0) > 0,
            WAIT,
            "an event labelled species-4",
        )
        # Naming it: through the API, then over the control link with the CLI.
        renamed = node.lookup("/knowledge").ask(NameClass("species-4", "opossum")).get(WAIT)
        assert renamed["renamed_from"] == "species-4"
        assert renamed["head_version"] == version + 1
        second = wait_cycle(node, WAIT, cycle=2)
        assert second is not None
        assert len(second["cameras_acked"]) == CAMERAS
        assert "opossum" in status(node)["labels"]
        run = edgeloop("knowledge", "name", "--connect", address, "opossum", "didelphis", "--json")
        assert run.returncode == 0, run.stderr[-2000:]
        assert json.loads(run.stdout)["renamed_from"] == "opossum"
        assert wait_cycle(node, WAIT, cycle=3) is not None
        refused = edgeloop("knowledge", "name", "--connect", address, "species-9", "x")
        assert refused.returncode == 1
        assert "no class 'species-9'" in refused.stderr
        with pytest.raises(KnowledgeError, match="taken"):
            name_class(address, "didelphis", "skunk")
        table = edgeloop("knowledge", "status", "--connect", address)
        assert table.returncode == 0, table.stderr[-2000:]
        assert "didelphis (was opossum)" in table.stdout
        shown = edgeloop("node", "status", "--connect", address, "--json")
        assert shown.returncode == 0, shown.stderr[-2000:]
        section = json.loads(shown.stdout)["knowledge"]
        assert [c["name"] for c in section["cycles"]] == ["species-4", "opossum", "didelphis"]
        assert status(node)["counters"]["bad_requests"] == 2
        # A crash: the restarted cycle takes up what it learnt from the store.
        crashed = node.lookup("/knowledge")
        assert crashed is not None
        crashed.kill()

        def restored() -> bool:
            ref = node.lookup("/knowledge")
            return ref is not None and ref is not crashed and "didelphis" in status(node)["labels"]

        wait_for(restored, WAIT, "the cycle restarted with its knowledge")
        assert status(node)["counters"]["restored"] == 1
        assert status(node)["head_version"] >= version + 2


class Damaging:
    """The twins' fleet, except that the head for ``victim`` is cut short on the way
    (what a broken compiler or a corrupted store would send): its device must refuse it."""

    def __init__(self, fleet: TwinFleet, victim: str) -> None:
        self.fleet = fleet
        self.victim = victim

    def push_head(
        self,
        device: str,
        head: bytes,
        version: int,
        timeout: float,
        done: Callable[[BaseException | None], None],
    ) -> None:
        data = head[: len(head) // 2] if device == self.victim else head
        self.fleet.push_head(device, data, version, timeout, done)

    def pull_frame(
        self, ref: FrameRef, timeout: float, done: Callable[[int, BaseException | None], None]
    ) -> None:
        self.fleet.pull_frame(ref, timeout, done)


def damaging_fleet(system: Any) -> Damaging:
    return Damaging(TwinFleet(system), "cam-porch")


def test_a_malformed_head_is_refused_by_one_camera_and_the_others_take_it(
    tmp_path: Path,
) -> None:
    with yard(tmp_path, fleet="tests.knowledge.test_cycle_actor:damaging_fleet") as (node, _):
        record = wait_cycle(node, WAIT)
        assert record is not None
        assert record["state"] == "partial"
        assert list(record["cameras_refused"]) == ["cam-porch"]
        assert "refused" in record["cameras_refused"]["cam-porch"]
        assert len(record["cameras_acked"]) == CAMERAS - 1
        assert heads(node)["cam-porch"] == 1  # it keeps its old head
        assert heads(node)["cam-gate"] == record["head_version"]
        now = status(node)
        assert now["running"] is False  # the cycle is free for the next species
        assert now["counters"]["heads_refused"] == 1


def test_bad_input_is_counted_and_disturbs_nothing(tmp_path: Path) -> None:
    scenario = str(quick_opossum(tmp_path))
    with cycle_node(scenario) as (node, _):
        cycle = node.lookup("/knowledge")
        assert cycle is not None

        def event(device: str, embedding: bytes) -> Event:
            return Event(
                device=device,
                seq=1,
                ts=1.0,
                zone="lawn",
                label="cat",
                score=0.9,
                embedding=embedding,
                head_version=1,
                config_version=1,
            )

        cycle.tell(event("cam-lawn", b"\x01\x02\x03"))  # 3 values, not 20
        cycle.tell(event("cam-elsewhere", bytes(20)))  # not one of the yard's cameras
        cycle.tell(object())
        answer = cycle.ask({"op": "forget"}).get(WAIT)
        assert answer["field"] == "op"
        counters = status(node)["counters"]
        assert counters["bad_embedding"] == 1
        assert counters["events_ignored"] == 1
        assert counters["unknown_message"] == 1
        assert counters["bad_requests"] == 1
        assert status(node)["labels"] == ["skunk", "cat", "raccoon"]
