"""Where every animal is at every tick: per-species Markov chains over the zone graph.

The whole trajectory is simulated up front from ``(scenario, seed)`` with one random
stream, so any process that builds the same world knows where every animal is, which
is what lets each camera's process keep only what its camera sees and still agree with
the others.
"""

from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np
import numpy.typing as npt

from edgeloop.sensors.world._scenario import Scenario

__all__ = ["AnimalInfo", "Trajectory", "simulate", "is_night", "hour_of_day"]

ABSENT = -1
"""Zone index of an animal that is not in the yard at that tick."""

_MOTION_STREAM = 1
_VISITOR_RATE_AT_REST = 0.2  # visitors of a resting species come less often


@dataclasses.dataclass(frozen=True, slots=True)
class AnimalInfo:
    """One animal of the world: scripted in the scenario, or a random visitor."""

    index: int
    id: str
    species: str
    visitor: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Trajectory:
    """The ground truth of motion: ``zones[tick, animal]`` is a zone index or ABSENT."""

    animals: tuple[AnimalInfo, ...]
    zones: npt.NDArray[np.int16]

    def present(self, tick: int) -> list[tuple[AnimalInfo, int]]:
        """The animals in the yard at ``tick`` with their zone index, in animal order."""
        row = self.zones[tick]
        return [(self.animals[i], int(row[i])) for i in np.flatnonzero(row != ABSENT)]


def hour_of_day(scenario: Scenario, t: float) -> float:
    """The clock hour (0..24) at simulated second ``t``."""
    return (scenario.start_hour + 24.0 * t / scenario.day_length) % 24.0


def is_night(scenario: Scenario, t: float) -> bool:
    """Whether simulated second ``t`` falls between 20:00 and 06:00."""
    hour = hour_of_day(scenario, t)
    return hour >= 20.0 or hour < 6.0


def simulate(scenario: Scenario, seed: int | None = None) -> Trajectory:
    """Every animal's zone at every tick, deterministic under ``seed`` (default: the
    scenario's)."""
    return _Simulation(scenario, scenario.seed if seed is None else seed).run()


@dataclasses.dataclass(slots=True)
class _Walker:
    info: AnimalInfo
    home: int
    enter: float
    leave: float | None
    zone: int = ABSENT
    gone: bool = False


class _Simulation:
    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.s = scenario
        self.rng = np.random.default_rng([seed, _MOTION_STREAM])
        index = {z.id: i for i, z in enumerate(scenario.zones)}
        self.neighbours = [np.array([index[a] for a in z.adjacent]) for z in scenario.zones]
        self.trap = np.array([z.trap for z in scenario.zones])
        self.exits = np.flatnonzero([z.exit for z in scenario.zones])
        self.to_exit = _distances(self.neighbours, self.exits)
        self.species = {sp.name: sp for sp in scenario.species}
        self.walkers = [
            _Walker(AnimalInfo(i, a.id, a.species, False), index[a.zone], a.enter, a.leave)
            for i, a in enumerate(scenario.animals)
        ]
        self.visitors = dict.fromkeys(self.species, 0)

    def run(self) -> Trajectory:
        ticks = self.s.ticks
        rows: list[npt.NDArray[np.int16]] = []
        for k in range(ticks):
            t = k * self.s.tick
            night = is_night(self.s, t)
            for walker in self.walkers:
                if not walker.gone and walker.zone != ABSENT:
                    self._step(walker, t, night)
                elif not walker.gone and walker.enter <= t:
                    walker.zone = walker.home
            self._arrivals(t, night)
            rows.append(np.array([w.zone for w in self.walkers], dtype=np.int16))
        zones = np.full((ticks, len(self.walkers)), ABSENT, dtype=np.int16)
        for k, row in enumerate(rows):
            zones[k, : len(row)] = row
        return Trajectory(tuple(w.info for w in self.walkers), zones)

    def _active(self, species: str, night: bool) -> bool:
        active = self.species[species].active
        return active == "any" or (active == "night") == night

    def _step(self, walker: _Walker, t: float, night: bool) -> None:
        species = self.species[walker.info.species]
        leaving = walker.leave is not None and t >= walker.leave
        if leaving and self.s.zones[walker.zone].exit:
            walker.zone, walker.gone = ABSENT, True
            return
        stay = species.stay if self._active(species.name, night) else species.rest
        if leaving:
            stay /= 2.0
        u, pick = self.rng.random(), self.rng.random()
        options = self.neighbours[walker.zone]
        if u < stay or not len(options):
            return
        if leaving:  # head out: only the neighbours closest to an exit
            dist = self.to_exit[options]
            options = options[dist == dist.min()]
            weights = np.ones(len(options))
        else:
            weights = 1.0 + species.bait * self.trap[options]
        cdf = np.cumsum(weights) / weights.sum()
        walker.zone = int(options[min(int(np.searchsorted(cdf, pick, side="right")), len(cdf) - 1)])

    def _arrivals(self, t: float, night: bool) -> None:
        for spec in self.s.arrivals:
            due = spec.start <= t and (spec.end is None or t < spec.end)
            rate = spec.rate * (1.0 if self._active(spec.species, night) else _VISITOR_RATE_AT_REST)
            count = int(self.rng.poisson(rate * self.s.tick)) if due else 0
            for _ in range(count):
                zone = int(self.exits[self.rng.integers(len(self.exits))])
                stay = float(self.rng.exponential(spec.dwell))
                self.visitors[spec.species] += 1
                n = self.visitors[spec.species]
                info = AnimalInfo(len(self.walkers), f"{spec.species}-v{n}", spec.species, True)
                self.walkers.append(_Walker(info, zone, t, t + stay, zone=zone))


def _distances(
    neighbours: list[npt.NDArray[np.int64]], exits: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Hops from each zone to the nearest exit zone (a large number when none is reachable)."""
    far = len(neighbours) + 1
    dist = np.full(len(neighbours), far, dtype=np.int64)
    queue = deque(int(e) for e in exits)
    dist[exits] = 0
    while queue:
        zone = queue.popleft()
        for other in neighbours[zone]:
            if dist[other] == far:
                dist[other] = dist[zone] + 1
                queue.append(int(other))
    return dist
