"""Build an agent from its device file, with the source its ``[device.source]`` names, and
run it until told to stop (the body of ``edgeloop device run``)."""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from typing import TYPE_CHECKING

import structlog

from edgeloop.errors import ConfigError
from edgeloop.messages import encode_head
from edgeloop.sensors.device._agent import DeviceAgent
from edgeloop.sensors.device._config import DeviceConfig
from edgeloop.sensors.device._heads import yard_head_loader
from edgeloop.sensors.device._settings import CameraSettings
from edgeloop.sensors.device._source import ObservationSource, SyntheticSource, TrapView
from edgeloop.sensors.device._yard import YardCamera, YardTrap, camera_reach

if TYPE_CHECKING:
    from edgeloop.sensors.world import World

__all__ = ["build_agent", "run_agent"]

_log = structlog.get_logger("edgeloop.sensors.device")


def build_agent(config: DeviceConfig, *, start_at: float | None = None) -> DeviceAgent:
    """The agent ``config`` describes, with its source (and, in the yard, its world's
    extractor, the initial head and the camera's reach). ``start_at`` is the wall time
    (``time.time()``) at which source time 0 happened: a device started later begins at
    the present instead of replaying the past, so a restarted device rejoins its peers."""
    source_config = config.source
    if source_config.kind == "synthetic":
        source: ObservationSource | None = None
        if config.kind == "camera":
            settings = config.settings
            source = SyntheticSource(
                seed=source_config.seed or 0,
                rate=source_config.rate,
                zones=settings.zones,
                limit=source_config.limit,
            )
        return DeviceAgent(config, source=source, start_at=start_at)
    assert source_config.scenario is not None
    world = _world(source_config.scenario, source_config.seed)
    scenario = world.scenario
    if config.kind == "trap":
        traps = [z.id for z in scenario.zones if z.trap]
        if config.trap.zone not in traps:
            raise ConfigError(
                "device.trap.zone",
                f"scenario {scenario.name!r} has no trap zone {config.trap.zone!r} "
                f"(it has {', '.join(traps) or 'none'})",
            )
        trap: TrapView = YardTrap(world, config.trap.zone)
        return DeviceAgent(config, trap_view=trap, start_at=start_at)
    cameras = [c.id for c in scenario.cameras]
    if config.name not in cameras:
        raise ConfigError(
            "device.name",
            f"scenario {scenario.name!r} has no camera {config.name!r}; a yard camera is "
            f"named after one of its cameras: {', '.join(cameras)}",
        )
    camera = YardCamera(world, config.name)
    reach = config.reachable or camera_reach(world, config.name)
    if config.initial is None:
        initial = CameraSettings(zones=tuple(world.scenario.camera(config.name).zones))
        config = dataclasses.replace(config, reachable=reach, initial=initial)
    else:
        config = dataclasses.replace(config, reachable=reach)
    if start_at is not None:
        camera.skip_to(max(0.0, (time.time() - start_at) * source_config.speed))
    return DeviceAgent(
        config,
        source=camera,
        head_loader=yard_head_loader(world.extractor.id, world.extractor.dim),
        initial_head=encode_head(world.initial_head()),
        start_at=start_at,
    )


@functools.lru_cache(maxsize=4)
def _world(scenario: str, seed: int | None) -> World:
    """One world per scenario and seed in this process (agents run in one process share it)."""
    from edgeloop.sensors.world import World  # scikit-learn only for yard devices

    return World(scenario, seed)


def run_agent(agent: DeviceAgent, stop: threading.Event) -> int:
    """Run ``agent`` until ``stop`` is set (or it fails); 0 after a clean stop, 1 if the
    agent failed."""
    agent.start()
    try:
        while not stop.wait(0.5):
            if agent.failure is not None:
                break
    finally:
        agent.stop()
    if agent.failure is not None:
        _log.error("device_failed", device=agent.name, error=str(agent.failure))
        return 1
    return 0
