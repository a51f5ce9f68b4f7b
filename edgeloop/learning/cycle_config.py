"""What the knowledge cycle starts from and how it is set (plain data, checked on build)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeloop.errors import ConfigError
from edgeloop.learning.cycle_messages import FleetFactory

if TYPE_CHECKING:  # the open-world core loads JAX (its package does)
    from edgeloop.learning.core.openworld import OpenWorld

__all__ = ["Knowledge", "CycleConfig", "resolve"]


@dataclasses.dataclass(frozen=True, slots=True)
class Knowledge:
    """What the cycle starts from: the open-world ``model`` of the known species, its
    threshold calibrated; ``held_out`` known embeddings (the device gate's calibration);
    the cameras' ``extractor`` and the head version they run now."""

    model: OpenWorld
    held_out: np.ndarray
    extractor: str
    head_version: int = 1


@dataclasses.dataclass(frozen=True, slots=True)
class CycleConfig:
    """The cycle's settings. ``knowledge`` and ``fleet`` are factories (or
    ``"module:name"``): ``knowledge()`` gives the starting :class:`Knowledge`,
    ``fleet(system)`` the way to the cameras. ``window`` and ``query_window`` are
    seconds of source time; the timeouts and backoffs, seconds of the node's clock.
    ``track_threshold`` is the log-odds of NEW over the known species that the noticed
    sightings together must pass (5: about 150 to 1; single frames and device gates,
    5% false alarms each, cross by chance); a cycle learns from ``min_examples`` at least.
    ``store`` (a SQLite path) keeps the model under ``key`` after every change, so a
    restarted cycle keeps what it learnt. ``learner`` (a Learner's path) adds a third way
    to notice: every ``learner_every`` seconds the cycle asks it for its tracks' beliefs,
    and a live track whose P(NEW) reaches ``p_new`` starts a cycle on the sightings at
    hand (at least ``min_examples``, whose log-odds favour NEW).
    """

    cameras: tuple[str, ...]
    knowledge: Callable[[], Knowledge] | str
    fleet: FleetFactory | str
    devices_at: str = "/devices"
    window: float = 10.0
    shots: int = 5
    gate_cameras: int = 2
    track_threshold: float = 5.0
    min_examples: int = 3
    query_window: float = 30.0
    query_timeout: float = 2.0
    max_examples: int = 50
    max_frames: int = 5
    push_timeout: float = 2.0
    retry_min: float = 0.1
    retry_max: float = 1.0
    attempts: int = 8
    announce_to: tuple[str, ...] = ()
    keep: int = 32
    store: str | None = None
    key: str = "knowledge"
    learner: str | None = None
    p_new: float = 0.99
    learner_every: float = 2.0

    def __post_init__(self) -> None:
        if not self.cameras or not all(isinstance(c, str) and c for c in self.cameras):
            raise ConfigError("cameras", f"expected camera names, got {self.cameras!r}")
        for key in ("shots", "gate_cameras", "min_examples", "max_examples", "attempts", "keep"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(key, f"expected an integer >= 1, got {value!r}")
        for key in ("window", "query_window", "query_timeout", "push_timeout", "retry_min"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(key, f"expected a number > 0, got {value!r}")
        if not self.retry_max >= self.retry_min:
            raise ConfigError("retry_max", f"must be >= retry_min ({self.retry_min})")
        if not 0.0 < self.p_new <= 1.0:
            raise ConfigError("p_new", f"expected a probability in (0, 1], got {self.p_new!r}")
        if not self.learner_every > 0:
            raise ConfigError("learner_every", f"expected seconds > 0, got {self.learner_every}")


def _resolve(factory: Any) -> Any:
    if isinstance(factory, str):
        from edgeloop.supervisor import resolve_start

        return resolve_start(factory)
    return factory


def resolve(factory: Any) -> Any:
    """``factory`` itself, or the object a ``"module:name"`` string names."""
    if isinstance(factory, str):
        from edgeloop.supervisor import resolve_start

        return resolve_start(factory)
    return factory
