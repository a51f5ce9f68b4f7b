"""The node side of ``bench e2e``: the yard app's per-event path with a rule that decides.

Tree (one_for_one)::

    devices    Devices: a SensorTwin per camera, an ActuatorTwin for the trap
    functions  the yard's EventStage with the yard's event functions (yard.toml)
    rule       TrapRule: a trap command for every event the functions pass
    relay      the yard's TrapRelay (its interlock subscribes to the camera twins)

The yard's fusion and learner decide a handful of times per scenario, too rarely for a
99th percentile; ``TrapRule`` decides on every event (``close`` on a skunk label,
``open`` otherwise) so each event has a command to time. Fusion and the learner are
measured by ``bench learner`` and ``bench world``.
"""

from __future__ import annotations

import tomllib
from typing import Any

from edgeloop.actors import Actor
from edgeloop.apps.yard import APP_FILE, GetLog
from edgeloop.messages import Command, Event

__all__ = [
    "TrapRule",
    "command_for",
    "camera_name",
    "RATE",
    "TRAP",
    "ZONE",
    "SCENARIO",
    "e2e_app",
    "yard_functions",
]

SCENARIO = "calm"
TRAP = "trap-shed"
"""The trap device (a trap zone of :data:`SCENARIO`, so the relay's interlock applies)."""
RATE = 30.0
"""Events a second per camera."""
ZONE = "porch"
"""Where the cameras look: not next to the trap, so the interlock never holds a close."""


def camera_name(index: int) -> str:
    """The device name of camera ``index`` (``cam-00``, ...)."""
    return f"cam-{index:02d}"


class TrapRule(Actor):
    """Commands ``trap`` (through ``relay``) for every Event: ``close`` on a ``target``
    label, ``open`` otherwise; the command's args name the event (device, seq, ts), so
    the trap device can tell which event it answers."""

    def __init__(self, relay: str, trap: str = TRAP, target: str = "skunk") -> None:
        self.relay = relay
        self.trap = trap
        self.target = target
        self.sent = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Event):
            self.sent += 1
            self.system.tell(self.relay, command_for(message, self.sent, self.trap, self.target))
            return None
        if isinstance(message, GetLog):
            return {"sent": self.sent}
        return super().on_receive(message)


def command_for(event: Event, id: int, trap: str = TRAP, target: str = "skunk") -> Command:
    """The command for ``event``: ``close`` on a ``target`` label, else ``open``, its args
    naming the event (the anchor's relay makes the same)."""
    name = "close" if event.label == target else "open"
    return Command(
        id=id,
        device=trap,
        name=name,
        args={"device": event.device, "seq": event.seq, "ts": event.ts},
    )


def yard_functions() -> list[dict[str, Any]]:
    """The event functions the yard app file registers (its EventStage's ``functions``)."""
    with APP_FILE.open("rb") as handle:
        data = tomllib.load(handle)
    for child in data["supervisor"]["children"]:
        for grandchild in child.get("children", []):
            if grandchild["id"] == "functions":
                functions: list[dict[str, Any]] = grandchild["args"]["functions"]
                return functions
    return []


def e2e_app(cameras: list[str], listen: str) -> dict[str, Any]:
    """The app document of the e2e node: ``cameras`` and the trap, listening on ``listen``."""
    devices: list[dict[str, Any]] = [{"name": name} for name in cameras]
    devices.append({"name": TRAP, "kind": "trap", "subscribers": []})
    return {
        "node": {"name": "bench-e2e", "seed": 7, "listen": [listen]},
        "supervisor": {
            "strategy": "one_for_one",
            "intensity": 10,
            "period": 10.0,
            "children": [
                {
                    "id": "devices",
                    "start": "edgeloop.sensors:Devices",
                    "shutdown": "infinity",
                    "args": {"devices": devices, "subscribers": ["/functions", "/relay"]},
                },
                {
                    "id": "functions",
                    "start": "edgeloop.apps.yard:EventStage",
                    "args": {"downstream": "/rule", "functions": yard_functions()},
                },
                {
                    "id": "rule",
                    "start": "edgeloop.bench._e2e_app:TrapRule",
                    "args": {"relay": "/relay"},
                },
                {
                    "id": "relay",
                    "start": "edgeloop.apps.yard:TrapRelay",
                    "args": {"twin": f"/devices/{TRAP}", "scenario": SCENARIO, "zone": TRAP},
                },
            ],
        },
    }
