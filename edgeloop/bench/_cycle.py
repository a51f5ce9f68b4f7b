"""One knowledge cycle on loopback, measured: the yard's eight cameras as device agents
over real ZeroMQ links to a node with their twins and a :class:`YardCycle`.

The scenario is the shipped ``opossum`` yard with the opossum entering at once (``enter``
below) and the run cut short, so each run is a few wall seconds: the cycle's figures do
not depend on when the animal arrives. Shared by ``edgeloop bench knowledge`` and the
tests.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import edgeloop.sensors
from edgeloop.sensors._runner import Mode, YardRunner
from edgeloop.supervisor import ChildSpec, Node
from edgeloop.transport import LinkConfig, ReconnectBackoff

__all__ = ["quick_opossum", "cycle_node", "wait_cycle", "run_cycle", "FAST_LINK"]

FAST_LINK: dict[str, Any] = {
    "heartbeat_interval": 0.1,
    "liveness_timeout": 1.0,
    "handshake_timeout": 1.0,
    "close_timeout": 0.5,
    "backoff": ReconnectBackoff(min=0.05, max=0.2),
}
"""Link settings that notice a dead device within a second (tests kill devices)."""


def quick_opossum(where: Path, enter: float = 2.0, duration: float = 120.0) -> Path:
    """The ``opossum`` scenario with the opossum entering at ``enter`` simulated seconds,
    lasting ``duration``, written to ``where`` (a directory); its path."""
    text = (Path(edgeloop.sensors.__file__).parent / "scenarios" / "opossum.toml").read_text()
    text = re.sub(r"(?m)^duration = [0-9.]+", f"duration = {duration}", text)
    text = text.replace(
        'species = "opossum"\nzone = "hedge"\nenter = 120.0',
        f'species = "opossum"\nzone = "hedge"\nenter = {enter}',
    )
    where.mkdir(parents=True, exist_ok=True)
    path = where / "opossum-now.toml"
    path.write_text(text)
    return path


def _free_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


@contextlib.contextmanager
def cycle_node(
    scenario: str,
    *,
    cycle: Any = "edgeloop.apps.yard_cycle:YardCycle",
    with_cycle: bool = True,
    **options: Any,
) -> Iterator[tuple[Node, str]]:
    """A started node listening on a free loopback port with the twins of ``scenario``'s
    devices (under ``/devices``) and a cycle at ``/knowledge`` (unless ``with_cycle`` is
    false: the caller spawns one there); yields it and its address."""
    address = _free_address()
    children = [
        ChildSpec(
            "devices",
            "edgeloop.apps.yard:YardDevices",
            args={"scenario": scenario, "subscribers": ["/knowledge"]},
            shutdown="infinity",
        ),
    ]
    if with_cycle:
        children.append(ChildSpec("knowledge", cycle, args={"scenario": scenario, **options}))
    node = Node("yard", children=children, listen=[address], link=LinkConfig("yard", **FAST_LINK))
    with node:
        yield node, address


def wait_cycle(node: Node, timeout: float, cycle: int = 1) -> dict[str, Any] | None:
    """Cycle ``cycle``'s record once it has pushed (or ``None`` after ``timeout`` s)."""
    from edgeloop.learning.cycle import STATUS_SERVICE

    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while time.monotonic() < deadline:
        section = node.system.services.get(STATUS_SERVICE)
        cycles = section()["cycles"] if section is not None else []
        for record in cycles:
            if record["cycle"] == cycle and "push" in record["stage_ms"]:
                return dict(record)
        tick.wait(0.01)
    return None


def run_cycle(
    where: Path, *, speed: float = 10.0, mode: Mode = "in-process", timeout: float = 30.0
) -> dict[str, Any] | None:
    """One cycle on a fresh node and fresh devices; its record (``None``: no cycle)."""
    scenario = str(quick_opossum(where))
    with cycle_node(scenario) as (node, address):
        runner = YardRunner.from_scenario(
            scenario, connect=address, mode=mode, speed=speed, run_dir=where / "devices"
        )
        runner.start(lead=0.5)
        try:
            return wait_cycle(node, timeout)
        finally:
            runner.stop()


CYCLE_SPEED = 10.0
"""Simulated seconds per wall second in the cycle runs: a camera frame every 100 ms."""


def cycle_rows(runs: int, where: Path) -> tuple[list[Any], dict[str, Any]]:
    """Rows ``cycle_latency_p50_ms`` and ``cycle_wait_for_examples_ms`` over ``runs``
    fresh cycles, and the environment's per-stage medians and counts."""
    import numpy as np

    from edgeloop.bench._report import Result

    records = []
    for run in range(runs):
        record = run_cycle(where / f"run-{run}", speed=CYCLE_SPEED)
        if record is not None:
            records.append(record)
    latency = [r["cycle_latency_ms"] for r in records if r["cycle_latency_ms"] is not None]
    wait = [r["wait_for_examples_ms"] for r in records]
    nan = float("nan")
    shots = 5  # CycleConfig.shots: the k-th example is k - 1 frames after the first
    frames_ms = (shots - 1) * 1000.0 / CYCLE_SPEED
    rows = [
        Result(
            "cycle_latency_p50_ms",
            "ms",
            float(np.percentile(latency, 50)) if latency else nan,
            1000.0,
            "issue budget 1000 ms",
            "<= 1",
        ),
        Result(
            "cycle_wait_for_examples_ms",
            "ms",
            float(np.percentile(wait, 50)) if wait else nan,
            frames_ms,
            f"{shots} frames at the cameras' rate",
            "<= 3",
        ),
    ]
    stages = ("notice", "query", "learn", "recompile", "push")
    env = {
        "cycle_runs": runs,
        "cycle_completed": len(latency),
        "cycle_all_acked": sum(len(r["cameras_acked"]) == 8 for r in records),
        "cycle_latency_max_ms": max(latency) if latency else None,
        "cycle_stage_p50_ms": {
            s: float(np.percentile([r["stage_ms"][s] for r in records], 50))
            for s in stages
            if records and all(s in r["stage_ms"] for r in records)
        },
        "cycle_head_bytes": max((r["head_bytes"] for r in records), default=None),
    }
    return rows, env
