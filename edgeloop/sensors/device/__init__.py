"""The device side of the loop: camera and trap agents that speak the device protocol.

A :class:`DeviceAgent` connects to its node as link role ``device`` and keeps the promises
of ``docs/sensors.md``: numbered events held in a bounded, journalled outbox until
acknowledged (at-least-once, across reconnects and crashes), full frames in a bounded ring
served over the bulk lane on request, desired configuration and head updates applied or
refused with a reason, and a ``DeviceStatus`` report of what it holds and lost. The rules
live in the pure :class:`DeviceCore`; the agent adds the link, the clock and the threads.
"""

from edgeloop.sensors.device._agent import AgentStatistics, DeviceAgent
from edgeloop.sensors.device._config import (
    DeviceConfig,
    OutboxConfig,
    SourceConfig,
    TrapConfig,
    load_device,
)
from edgeloop.sensors.device._core import Action, DeviceCore, PushFrame, ServeFrame
from edgeloop.sensors.device._heads import (
    Head,
    HeadLoader,
    NoHead,
    Scored,
    Verdict,
    yard_head_loader,
)
from edgeloop.sensors.device._journal import Journal, Recovered
from edgeloop.sensors.device._outbox import Added, Outbox, OutboxStatistics, Overflow
from edgeloop.sensors.device._ring import FrameRing, RingStatistics
from edgeloop.sensors.device._run import build_agent, run_agent
from edgeloop.sensors.device._settings import REPORT_MODES, CameraSettings, ReportMode
from edgeloop.sensors.device._source import (
    Observation,
    ObservationSource,
    SyntheticSource,
    TrapView,
)
from edgeloop.sensors.device._state import DeviceState, StateFile
from edgeloop.sensors.device._trap import TRAP_COMMANDS, Catch, CatchLog, TrapMechanism
from edgeloop.sensors.device._yard import YardCamera, YardTrap, camera_reach, exposure_noise

__all__ = [
    # the agent
    "DeviceAgent",
    "AgentStatistics",
    "DeviceConfig",
    "OutboxConfig",
    "SourceConfig",
    "TrapConfig",
    "load_device",
    "build_agent",
    "run_agent",
    # the pure core and its parts
    "DeviceCore",
    "Action",
    "ServeFrame",
    "PushFrame",
    "Outbox",
    "OutboxStatistics",
    "Added",
    "Overflow",
    "Journal",
    "Recovered",
    "FrameRing",
    "RingStatistics",
    "CameraSettings",
    "ReportMode",
    "REPORT_MODES",
    "DeviceState",
    "StateFile",
    # heads and sources
    "Head",
    "HeadLoader",
    "NoHead",
    "Verdict",
    "Scored",
    "yard_head_loader",
    "Observation",
    "ObservationSource",
    "SyntheticSource",
    "TrapView",
    "YardCamera",
    "YardTrap",
    "camera_reach",
    "exposure_noise",
    # traps
    "TrapMechanism",
    "TRAP_COMMANDS",
    "Catch",
    "CatchLog",
]
