"""Devices: one supervised twin per device named in the app file.

A supervisor whose children are built from a list of device tables, so an app file
declares its devices as data::

    [[supervisor.children]]
    id = "devices"
    start = "edgeloop.sensors:Devices"
    shutdown = "infinity"
    args.subscribers = ["/fusion"]
    args.devices = [
        { name = "cam-1", desired = { report_threshold = 0.6 } },
        { name = "trap-1", kind = "trap" },
    ]

Each twin lives at ``<devices path>/<name>`` and is restarted on its own
(``one_for_one``); a twin that keeps crashing escalates like any child.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from edgeloop.errors import ConfigError
from edgeloop.sensors.twins._actuator import ActuatorTwin
from edgeloop.sensors.twins._twin import SensorTwin
from edgeloop.supervisor import ChildSpec, Supervisor, SupervisorFlags

__all__ = ["Devices", "twin_specs", "TWIN_KINDS"]

TWIN_KINDS: Mapping[str, type[SensorTwin]] = {"camera": SensorTwin, "trap": ActuatorTwin}
"""The twin class of each device ``kind``."""

_TWIN_KEYS = frozenset(
    {
        "subscribers",
        "desired",
        "buffer_events",
        "reorder_limit",
        "gap_timeout",
        "ack_every",
        "ack_delay",
        "frames",
    }
)
_DEVICE_KEYS = _TWIN_KEYS | {"name", "kind", "restart"}


def twin_specs(
    devices: Sequence[Mapping[str, Any]],
    subscribers: Sequence[str] = (),
    key: str = "devices",
    **defaults: Any,
) -> tuple[ChildSpec, ...]:
    """One child spec per device table; ``subscribers`` and ``defaults`` (twin arguments)
    apply to every device unless its table says otherwise. Errors name ``devices[i].key``."""
    if isinstance(devices, str | Mapping) or not isinstance(devices, Sequence):
        raise ConfigError(key, f"expected a list of device tables, got {devices!r}")
    for name in defaults:
        _known(name, _TWIN_KEYS, "")
    specs: list[ChildSpec] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(devices):
        where = f"{key}[{index}]"
        if not isinstance(table, Mapping):
            raise ConfigError(
                where, f"expected a table such as {{ name = 'cam-1' }}, got {table!r}"
            )
        for name in table:
            _known(name, _DEVICE_KEYS, where)
        if "name" not in table:
            raise ConfigError(f"{where}.name", "missing: every device needs its name")
        device = table["name"]
        if device in seen:
            raise ConfigError(f"{where}.name", f"{device!r} is already {key}[{seen[device]}]")
        kind = table.get("kind", "camera")
        if kind not in TWIN_KINDS:
            raise ConfigError(
                f"{where}.kind", f"expected one of {', '.join(TWIN_KINDS)}, got {kind!r}"
            )
        args: dict[str, Any] = {"subscribers": list(subscribers), **defaults}
        args.update({k: v for k, v in table.items() if k in _TWIN_KEYS})
        args["device"] = device
        twin = TWIN_KINDS[kind]
        try:
            twin(**args)  # validates the arguments now, with their keys
        except ConfigError as error:
            raise ConfigError(f"{where}.{error.key}", error.problem) from None
        try:
            spec = ChildSpec(
                str(device), twin, args=args, restart=table.get("restart", "permanent")
            )
        except ConfigError as error:
            raise ConfigError(f"{where}.{error.key}", error.problem) from None
        seen[device] = index
        specs.append(spec)
    return tuple(specs)


class Devices(Supervisor):
    """A supervisor of one twin per device (``one_for_one``; ``intensity`` restarts in
    ``period`` seconds before it escalates)."""

    def __init__(
        self,
        devices: Sequence[Mapping[str, Any]],
        subscribers: Sequence[str] = (),
        *,
        intensity: int = 5,
        period: float = 10.0,
        **defaults: Any,
    ) -> None:
        flags = SupervisorFlags(intensity=intensity, period=period)
        super().__init__(flags, twin_specs(devices, subscribers, **defaults))


def _known(name: str, allowed: frozenset[str], where: str) -> None:
    if name not in allowed:
        close = difflib.get_close_matches(name, sorted(allowed), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {sorted(allowed)}"
        raise ConfigError(f"{where}.{name}" if where else name, f"unknown key{hint}")
