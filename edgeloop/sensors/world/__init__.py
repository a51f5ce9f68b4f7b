"""The simulated yard: zones, cameras, animals and their looks, deterministic under a seed.

Pure (numpy and scikit-learn; no actors, no I/O besides reading scenario files). A
:class:`World` is everything a scenario and a seed determine; each device process builds
its own and keeps only its camera's view, and all of them agree. ``docs/sensors-world.md``
describes the model.
"""

from __future__ import annotations

from edgeloop.sensors.world._appearance import EMBED_SCALE, FeatureExtractor, normalise
from edgeloop.sensors.world._camera import (
    NIGHT_GAIN,
    NIGHT_NOISE,
    CameraView,
    Detection,
    Observation,
    crop_to_digit,
    thumbnail,
)
from edgeloop.sensors.world._motion import AnimalInfo, Trajectory, hour_of_day, is_night, simulate
from edgeloop.sensors.world._scenario import (
    SHIPPED,
    Animal,
    Arrivals,
    Camera,
    Scenario,
    Species,
    Zone,
    load_scenario,
    parse_scenario,
)
from edgeloop.sensors.world._world import Pacer, Sighting, World

__all__ = [
    # the world and its views
    "World",
    "CameraView",
    "Observation",
    "Detection",
    "Sighting",
    "Pacer",
    # scenarios
    "Scenario",
    "Zone",
    "Camera",
    "Species",
    "Animal",
    "Arrivals",
    "SHIPPED",
    "load_scenario",
    "parse_scenario",
    # motion and appearance
    "Trajectory",
    "AnimalInfo",
    "simulate",
    "is_night",
    "hour_of_day",
    "FeatureExtractor",
    "EMBED_SCALE",
    "normalise",
    "crop_to_digit",
    "thumbnail",
    "NIGHT_GAIN",
    "NIGHT_NOISE",
]
