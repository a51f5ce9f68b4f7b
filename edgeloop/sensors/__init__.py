"""Sensors: device agents, device twins, the simulated yard and its on-device heads.

The device side (:mod:`edgeloop.sensors.device`: the agents cameras and traps run) and
the node side (:mod:`edgeloop.sensors.twins`: one supervised twin per device) speak only
through :mod:`edgeloop.messages`, over a link.
"""

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
]
