"""The simulated yard: a scenario, its seed, and everything that follows from them."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgeloop.messages import HeadSpec
from edgeloop.sensors._head import fit_head
from edgeloop.sensors.world._appearance import FeatureExtractor, digits
from edgeloop.sensors.world._camera import CameraView, Observation
from edgeloop.sensors.world._motion import AnimalInfo, Trajectory, is_night, simulate
from edgeloop.sensors.world._scenario import Scenario, load_scenario

__all__ = ["World", "Sighting", "Pacer"]

_LOOK_STREAM = 3
_IDENTITY_STREAM = 4
_LOOKS_PER_ANIMAL = 12  # each animal has its own handful of handwritings of its digit


@dataclasses.dataclass(frozen=True, slots=True)
class Sighting:
    """Ground truth: animal ``animal`` of ``species`` was in ``zone`` at ``tick``."""

    tick: int
    t: float
    animal: str
    species: str
    zone: str


class World:
    """Everything a scenario and a seed determine: motion, looks, cameras and the extractor.

    Building one simulates the whole trajectory and fits the extractor (tens of ms), so
    each device process builds its own from ``(scenario, seed)`` and keeps only its
    camera's view (:meth:`camera`); all processes agree on every animal and frame.
    """

    def __init__(self, scenario: Scenario | str | Path, seed: int | None = None) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.seed = self.scenario.seed if seed is None else seed
        self.trajectory: Trajectory = simulate(self.scenario, self.seed)
        self.extractor = FeatureExtractor(
            [s.digit for s in self.scenario.known], self.scenario.embedding_dim
        )
        self._digit = {s.name: s.digit for s in self.scenario.species}
        self._looks: dict[int, npt.NDArray[np.int64]] = {}

    def __repr__(self) -> str:
        s = self.scenario
        return (
            f"World({s.name!r}, seed={self.seed}: {len(s.cameras)} cameras, "
            f"{len(self.trajectory.animals)} animals, {s.ticks} ticks)"
        )

    @property
    def ticks(self) -> int:
        """How many ticks the world lasts."""
        return self.scenario.ticks

    def time(self, tick: int) -> float:
        """Simulated seconds at ``tick``."""
        return tick * self.scenario.tick

    def night(self, tick: int) -> bool:
        """Whether ``tick`` falls in the night."""
        return is_night(self.scenario, self.time(tick))

    def camera(self, camera_id: str) -> CameraView:
        """The view of camera ``camera_id`` (ScenarioError if the scenario has none)."""
        camera = self.scenario.camera(camera_id)
        index = self.scenario.cameras.index(camera)
        return CameraView(
            self.scenario, self.seed, index, self.trajectory, self.extractor, self.sprite
        )

    def observe(self, tick: int, *, render: bool = True) -> list[Observation]:
        """What every camera sees at ``tick``, in scenario order."""
        return [self.camera(c.id).observe(tick, render=render) for c in self.scenario.cameras]

    def sprite(self, animal: AnimalInfo, tick: int) -> npt.NDArray[np.float64]:
        """The 8x8 digit image ``animal`` shows at ``tick`` (the same to every camera)."""
        looks = self._looks.get(animal.index)
        if looks is None:
            pool = digits().wild(self._digit[animal.species])
            rng = np.random.default_rng([self.seed, _IDENTITY_STREAM, animal.index])
            looks = rng.choice(pool, size=min(_LOOKS_PER_ANIMAL, len(pool)), replace=False)
            self._looks[animal.index] = looks
        rng = np.random.default_rng([self.seed, _LOOK_STREAM, animal.index, tick])
        image: npt.NDArray[np.float64] = digits().images[int(looks[rng.integers(len(looks))])]
        return image

    def truth(self, tick: int) -> list[Sighting]:
        """Every animal in the yard at ``tick`` and its zone."""
        t = self.time(tick)
        zones = self.scenario.zones
        return [
            Sighting(tick, t, a.id, a.species, zones[z].id)
            for a, z in self.trajectory.present(tick)
        ]

    def in_zone(self, zone: str, tick: int) -> list[Sighting]:
        """The animals in ``zone`` at ``tick`` (a trap device asks what it holds)."""
        return [s for s in self.truth(tick) if s.zone == zone]

    def sightings(self, start: int = 0, stop: int | None = None) -> Iterator[Sighting]:
        """The ground truth of ticks ``start`` to ``stop`` (exclusive), tick by tick."""
        for tick in range(start, self.ticks if stop is None else min(stop, self.ticks)):
            yield from self.truth(tick)

    def initial_head(self, *, version: int = 1, fpr: float = 0.05) -> HeadSpec:
        """The head every camera starts with, in closed form from the extractor's gallery
        of known classes; its novelty gate passes ``fpr`` of the known gallery."""
        embeddings, classes = self.extractor.gallery()
        name = {s.digit: s.name for s in self.scenario.known}
        labels = [name[int(c)] for c in classes]
        return fit_head(embeddings, labels, extractor=self.extractor.id, version=version, fpr=fpr)


@dataclasses.dataclass(frozen=True, slots=True)
class Pacer:
    """Maps simulated time to wall time: tick ``k`` is due at ``start + k * tick / speed``.

    ``start`` is a reading of the runner's Clock; ``speed`` 10 plays ten simulated
    seconds per wall second.
    """

    start: float
    tick: float
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not (self.speed > 0 and math.isfinite(self.speed)):
            raise ValueError(f"speed must be a positive number, got {self.speed}")

    def due(self, tick: int) -> float:
        """The clock reading at which ``tick`` is due."""
        return self.start + tick * self.tick / self.speed

    def tick_at(self, now: float) -> int:
        """The latest tick due at clock reading ``now`` (-1 before the start)."""
        return math.floor((now - self.start) * self.speed / self.tick + 1e-9)
