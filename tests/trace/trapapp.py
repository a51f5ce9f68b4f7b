"""A small deterministic app for the trace tests: one twin per trap camera.

The twin acks every event and decides, from its state and the clock, when to close its
trap (a skunk seen with a score at or above ``threshold``: the "model") and when to open
it again (``hold`` seconds later, by a clock timer). A cat seen while closed is counted
and reported with the open command. Decisions use only the message, the twin's state and
the node's clock, so a replay under a virtual clock reproduces them.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

from edgeloop.actors import Actor
from edgeloop.clock import Clock
from edgeloop.messages import Command, Event, EventAck
from edgeloop.supervisor import ChildSpec, DeviceMessage, Node, device_port


@dataclasses.dataclass(frozen=True)
class Reopen:
    """The twin's own timer fired: open the trap again."""


class TrapTwin(Actor):
    def __init__(self, device: str, threshold: float = 0.6, hold: float = 2.0) -> None:
        super().__init__()
        self.device = device
        self.threshold = threshold
        self.hold = hold
        self.closed = False
        self.next_id = 1
        self.cats_while_closed = 0

    def on_start(self) -> None:
        device_port(self.system).register(self.device, self.ref)

    def on_receive(self, message: Any) -> Any:
        port = device_port(self.system)
        if isinstance(message, DeviceMessage) and isinstance(message.message, Event):
            event = message.message
            port.send(self.device, EventAck(device=self.device, seq=event.seq))
            if event.label == "skunk" and event.score >= self.threshold and not self.closed:
                self.closed = True
                self._command("close", {"zone": event.zone, "seq": event.seq})
                ref = self.ref
                self.system.clock.call_later(self.hold, lambda: ref.tell(Reopen()))
            elif event.label == "cat" and self.closed:
                self.cats_while_closed += 1
        elif isinstance(message, Reopen) and self.closed:
            self.closed = False
            self._command("open", {"cats": self.cats_while_closed})
            self.cats_while_closed = 0
        return None

    def _command(self, name: str, args: dict[str, Any]) -> None:
        device_port(self.system).send(
            self.device, Command(id=self.next_id, device=self.device, name=name, args=args)
        )
        self.next_id += 1


DEVICES = ("cam-1", "cam-2")

LIVE_HOLD = 3600.0
"""The live recording keeps traps closed for an hour, so no timer fires while it runs
(however slow the machine) and replays of it must use the same."""


def children(threshold: float = 0.6, hold: float = 2.0) -> list[ChildSpec]:
    return [
        ChildSpec(device, TrapTwin, args={"device": device, "threshold": threshold, "hold": hold})
        for device in DEVICES
    ]


def make_node(clock: Clock | None = None, threshold: float = 0.6, hold: float = 2.0) -> Node:
    return Node("traps", children=children(threshold, hold), clock=clock, seed=1)


def event(device: str, seq: int, label: str, score: float, ts: float = 0.0) -> Event:
    return Event(
        device=device,
        seq=seq,
        ts=ts,
        zone="gate",
        label=label,
        score=score,
        embedding=bytes([seq % 256, 1, 2, 3]),
        head_version=1,
        config_version=1,
    )


def scenario(count: int, seed: int = 3) -> list[tuple[float, Event]]:
    """``count`` events over both cameras at seeded times 0.2 s to 1.5 s apart."""
    rng = random.Random(seed)
    seqs = dict.fromkeys(DEVICES, 0)
    t = 10.0
    out = []
    for _ in range(count):
        t += rng.uniform(0.2, 1.5)
        device = rng.choice(DEVICES)
        seqs[device] += 1
        label = rng.choice(("skunk", "cat", "cat", "opossum"))
        out.append((round(t, 3), event(device, seqs[device], label, round(rng.random(), 3), t)))
    return out


APP_TOML = """
[node]
name = "traps"
seed = 1

[[supervisor.children]]
id = "cam-1"
start = "tests.trace.trapapp:TrapTwin"
args = {{ device = "cam-1", threshold = {threshold}, hold = {hold} }}

[[supervisor.children]]
id = "cam-2"
start = "tests.trace.trapapp:TrapTwin"
args = {{ device = "cam-2", threshold = {threshold}, hold = {hold} }}
"""


def write_app(path: Path, threshold: float = 0.6, hold: float = LIVE_HOLD) -> Path:
    path.write_text(APP_TOML.format(threshold=threshold, hold=hold))
    return path
