"""The simulated yard as a device's source: a camera's view, or what a trap's zone holds.

Each device process builds the whole :class:`~edgeloop.sensors.world.World` from
``(scenario, seed)`` and keeps only its own view, so every process agrees on every animal
and frame. A camera turns each detection of a frame into an :class:`Observation` (several
detections of one frame share the frame object, so the ring keeps it once); a trap asks
the world which animals are in its zone when it closes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from edgeloop.sensors.device._source import Observation
from edgeloop.sensors.world import World

__all__ = ["YardCamera", "YardTrap", "camera_reach", "exposure_noise"]


def exposure_noise(base: float, exposure: float) -> float:
    """The pixel noise of a camera whose scenario noise is ``base`` at ``exposure``: the
    default exposure (0.5) keeps it, more light halves it, less multiplies it (at most 1)."""
    return min(1.0, base * 0.5 / exposure)


def camera_reach(world: World, camera_id: str) -> tuple[str, ...]:
    """The zones a camera may pan to: its own and their neighbours."""
    camera = world.scenario.camera(camera_id)
    reach = list(camera.zones)
    for zone in camera.zones:
        for near in world.scenario.zone(zone).adjacent:
            if near not in reach:
                reach.append(near)
    return tuple(reach)


class YardCamera:
    """Camera ``camera_id`` of ``world`` as an :class:`ObservationSource`, from ``tick``."""

    def __init__(self, world: World, camera_id: str, *, start_tick: int = 0) -> None:
        self.world = world
        self.view = world.camera(camera_id)
        self._tick = start_tick
        self._pending: list[Observation] = []
        self._zones: tuple[str, ...] = tuple(self.view.camera.zones)
        self._noise = self.view.camera.noise
        self.frames = 0
        self.dropped = 0

    def check(self, *, zones: Sequence[str], exposure: float) -> None:
        """ConfigError (naming the setting) for a view this camera cannot render."""
        self.view.check_settings(
            zones=zones, noise=exposure_noise(self.view.camera.noise, exposure)
        )

    def configure(self, *, zones: Sequence[str], exposure: float) -> None:
        self._zones = tuple(zones)
        self._noise = exposure_noise(self.view.camera.noise, exposure)

    def next(self) -> Observation | None:
        while not self._pending:
            if self._tick >= self.world.ticks:
                return None
            seen = self.view.observe(self._tick, zones=self._zones, noise=self._noise)
            self._tick += 1
            if seen.dropped:
                self.dropped += 1
                continue
            self.frames += 1
            self._pending = [
                Observation(
                    t=seen.t,
                    zone=d.zone,
                    embedding=d.embedding,
                    frame=seen.frame,
                    truth=f"{d.species}:{d.animal}",
                )
                for d in seen.detections
            ]
            self._pending.reverse()
        return self._pending.pop()

    def skip_to(self, t: float) -> None:
        """Start at simulated second ``t`` (a restarted device does not replay the past)."""
        self._tick = max(self._tick, math.ceil(t / self.world.scenario.tick))
        self._pending.clear()


class YardTrap:
    """What trap zone ``zone`` of ``world`` holds at a simulated second (a :class:`TrapView`)."""

    def __init__(self, world: World, zone: str) -> None:
        self.world = world
        self.zone = zone

    def occupants(self, t: float) -> tuple[str, ...]:
        tick = min(self.world.ticks - 1, max(0, int(t // self.world.scenario.tick)))
        held = [s for s in self.world.truth(tick) if s.zone == self.zone]
        return tuple(f"{s.species}:{s.animal}" for s in held)
