"""Sensors: device agents, device twins, the simulated yard and its on-device heads.

The device side (:mod:`edgeloop.sensors.device`: the agents cameras and traps run; the
head runtime below is what a device runs on each detection's embedding;
:mod:`edgeloop.sensors.world`: the simulated yard they observe) and the node side
(:mod:`edgeloop.sensors.twins`: one supervised twin per device) speak only through
:mod:`edgeloop.messages`, over a link.
"""

from __future__ import annotations

from edgeloop.sensors._head import (
    Head,
    HeadResult,
    check_head,
    compile_head,
    fit_head,
    load_head,
)
from edgeloop.sensors.device import (
    DeviceAgent,
    DeviceConfig,
    DeviceCore,
    load_device,
)
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
