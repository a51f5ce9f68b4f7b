"""Sensors: device agents, device twins, the simulated yard and its on-device heads.

The device side (:mod:`edgeloop.sensors.device`: the agents cameras and traps run; the
on-device head runtime; :mod:`edgeloop.sensors.world`: the simulated yard they observe)
and the node side (:mod:`edgeloop.sensors.twins`: one supervised twin per device) speak
only through :mod:`edgeloop.messages`, over a link.

The device side's names load on first use: a node that only runs twins does not import
the simulated yard (scikit-learn and its data) to start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgeloop.sensors.twins import (
    MOVES,
    TWIN_KINDS,
    ActuatorTwin,
    Configure,
    Devices,
    GetState,
    LaneFrames,
    LinkFrames,
    PullFrame,
    PushHead,
    RunCommand,
    SensorTwin,
    Subscribe,
    TwinAnswer,
    TwinClient,
    TwinState,
    Unsubscribe,
    Versioned,
    twin_specs,
    twin_states,
)

if TYPE_CHECKING:
    from edgeloop.sensors._head import (
        Head,
        HeadResult,
        check_head,
        compile_head,
        fit_head,
        load_head,
    )
    from edgeloop.sensors.device import DeviceAgent, DeviceConfig, DeviceCore, load_device

__all__ = [
    # the on-device head
    "Head",
    "HeadResult",
    "check_head",
    "load_head",
    "compile_head",
    "fit_head",
    # device agents (edgeloop.sensors.device)
    "DeviceAgent",
    "DeviceConfig",
    "DeviceCore",
    "load_device",
    # twins (edgeloop.sensors.twins)
    "SensorTwin",
    "ActuatorTwin",
    "Devices",
    "twin_specs",
    "TWIN_KINDS",
    "MOVES",
    "TwinClient",
    "RunCommand",
    "Configure",
    "PushHead",
    "PullFrame",
    "Subscribe",
    "Unsubscribe",
    "GetState",
    "TwinAnswer",
    "TwinState",
    "Versioned",
    "twin_states",
    "LaneFrames",
    "LinkFrames",
]

_LAZY = {
    **dict.fromkeys(
        ("Head", "HeadResult", "check_head", "load_head", "compile_head", "fit_head"),
        "edgeloop.sensors._head",
    ),
    **dict.fromkeys(
        ("DeviceAgent", "DeviceConfig", "DeviceCore", "load_device"), "edgeloop.sensors.device"
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'edgeloop.sensors' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
