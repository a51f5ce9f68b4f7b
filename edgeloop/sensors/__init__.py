"""The device side of the loop as the node sees it: device twins (and, as they land, the
device agent, the simulated yard and the on-device head)."""

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
