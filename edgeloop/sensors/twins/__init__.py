"""Device twins: the node's live copy of each device (``SensorTwin``, ``ActuatorTwin``),
and ``Devices``, which starts one per device named in the app file."""

from edgeloop.sensors.twins._actuator import MOVES, ActuatorTwin
from edgeloop.sensors.twins._buffer import EventBuffer
from edgeloop.sensors.twins._devices import TWIN_KINDS, Devices, twin_specs
from edgeloop.sensors.twins._frames import (
    FrameSource,
    FrameSourceFactory,
    LaneFrames,
    LinkFrames,
    link_frames,
)
from edgeloop.sensors.twins._requests import (
    DEFAULT_TIMEOUT,
    Configure,
    GetState,
    PullFrame,
    PushHead,
    RunCommand,
    Subscribe,
    TwinAnswer,
    TwinClient,
    Unsubscribe,
)
from edgeloop.sensors.twins._sequencer import Offer, Sequencer, SequencerCounters
from edgeloop.sensors.twins._state import TwinState, Versioned
from edgeloop.sensors.twins._twin import TWINS_SERVICE, SensorTwin, twin_states

__all__ = [
    # twins
    "SensorTwin",
    "ActuatorTwin",
    "Devices",
    "twin_specs",
    "TWIN_KINDS",
    "MOVES",
    # requests and answers
    "TwinClient",
    "RunCommand",
    "Configure",
    "PushHead",
    "PullFrame",
    "Subscribe",
    "Unsubscribe",
    "GetState",
    "TwinAnswer",
    "DEFAULT_TIMEOUT",
    # state
    "TwinState",
    "Versioned",
    "twin_states",
    "TWINS_SERVICE",
    # frames
    "FrameSource",
    "FrameSourceFactory",
    "LaneFrames",
    "LinkFrames",
    "link_frames",
    # pure cores
    "Sequencer",
    "SequencerCounters",
    "Offer",
    "EventBuffer",
]
