"""The supervision demo: sensors that crash, supervisors that restart them.

``edgeloop demo supervision`` starts :data:`APP_FILE` for a few seconds: the sensors send
readings to the aggregator and now and then raise :class:`SensorGlitch`; their supervisor
restarts them with backoff, and when ``cam-03`` crashes too often its supervisor gives up
and escalates, so the root supervisor restarts the whole ``sensors`` subtree. Then the
node stops in order and a table shows what happened.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from edgeloop.actors import Actor
from edgeloop.clock import Timer
from edgeloop.supervisor import ChildType, Node, SupervisorRef

__all__ = ["APP_FILE", "Aggregator", "Reading", "Sensor", "SensorGlitch", "run_demo"]

APP_FILE = Path(__file__).with_name("supervision.toml")


class SensorGlitch(RuntimeError):
    """A simulated sensor fault: the reading came back out of range."""


@dataclasses.dataclass(frozen=True, slots=True)
class Reading:
    sensor: str
    value: float


class _Tick:
    """Time for the next reading."""


class Sensor(Actor):
    """Reads every ``interval`` seconds and reports to the aggregator; with probability
    ``glitch`` a reading fails and the actor crashes."""

    def __init__(
        self, interval: float = 0.1, glitch: float = 0.02, aggregator: str = "/aggregator"
    ) -> None:
        self.interval = interval
        self.glitch = glitch
        self.aggregator = aggregator
        self._timer: Timer | None = None

    def on_start(self) -> None:
        self._schedule()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Tick):
            draw = self.system.random.random()
            if draw < self.glitch:
                msg = f"{self.path}: reading out of range ({draw:.3f} < {self.glitch})"
                raise SensorGlitch(msg)
            self.system.tell(self.aggregator, Reading(self.path, draw))
            self._schedule()
            return None
        return super().on_receive(message)

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _schedule(self) -> None:
        ref = self.ref
        self._timer = self.system.clock.call_later(self.interval, lambda: ref.tell(_Tick()))


class Aggregator(Actor):
    """Counts readings per sensor; ``ask`` it anything to get the counts."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Reading):
            self.counts[message.sensor] = self.counts.get(message.sensor, 0) + 1
            return None
        return dict(self.counts)


def run_demo(seconds: float = 6.0, *, console: Console | None = None) -> int:
    """Run the demo app for ``seconds``, stop it in order, print a summary; returns 0."""
    console = console or Console()
    node = Node.from_app(APP_FILE).start()
    console.rule(f"[bold]edgeloop supervision demo[/] — node {node.name!r} for {seconds:g} s")
    node.wait(seconds)
    aggregator = node.lookup("/aggregator")
    counts: dict[str, int] = aggregator.ask("counts").get() if aggregator else {}
    rows = _tree_rows(node.root, "")
    dead = node.system.dead_letters.count
    began = time.perf_counter()
    reason = node.stop()
    stop_ms = (time.perf_counter() - began) * 1000

    table = Table(title="what happened (restarts and crashes count since the parent's last start)")
    for column in ("actor", "state", "restarts", "handled", "crashes", "readings sent"):
        table.add_column(column, justify="left" if column in ("actor", "state") else "right")
    for path, state, restarts, handled, crashes in rows:
        readings = str(counts.get(path, "")) if path.startswith("/sensors/") else ""
        table.add_row(path, state, str(restarts), handled, crashes, readings)
    console.print(table)
    console.print(
        f"readings received: {sum(counts.values())}; dead letters: {dead}; "
        f"orderly stop ({reason}) in {stop_ms:.1f} ms"
    )
    return 0


def _tree_rows(supervisor: SupervisorRef, prefix: str) -> list[tuple[str, str, int, str, str]]:
    """One row per child, depth first: path, state, restarts, handled, crashes."""
    rows: list[tuple[str, str, int, str, str]] = []
    for info in supervisor.which_children():
        path = f"{prefix}/{info.id}"
        stats = info.ref.statistics() if info.ref is not None else None
        handled = str(stats.processed) if stats else "-"
        crashes = str(stats.failed) if stats else "-"
        rows.append((path, info.state, info.restarts, handled, crashes))
        if info.type is ChildType.SUPERVISOR and info.ref is not None:
            rows.extend(_tree_rows(SupervisorRef(info.ref), path))
    return rows
