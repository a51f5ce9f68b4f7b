"""What a Learner is told: the model, the names behind its indices, and whom to talk to.

Addresses (twins, traps, subscribers, the repair actor) are actor paths or
``node:/path`` addresses, looked up at every send: a restarted twin has a new ref at the
same path, and a learner must keep reaching it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from edgeloop.errors import ConfigError

__all__ = ["LearnerConfig", "TrapConfig"]


@dataclasses.dataclass(frozen=True, slots=True)
class TrapConfig:
    """A trap: its device, the zone it guards, its twin, and which species it is for
    (``targets``) and must never close on (``protected``)."""

    device: str
    zone: str
    twin: str
    targets: tuple[str, ...] = ("skunk",)
    protected: tuple[str, ...] = ("cat",)


def _positive(key: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"expected a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(key, f"expected a finite number > 0, got {value!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class LearnerConfig:
    """A Learner's configuration; checked when built (:class:`ConfigError` names the key).

    ``spec`` and ``dims`` are the core's ``YardSpec`` (or its digested ``Params``) and
    ``Dims``. ``cameras``,
    ``zones`` and ``labels`` name camera slots, zone indices and species slots (an
    on-device label not in ``labels`` is "unknown"). ``sources`` maps each device to its
    twin's address, asked for missed events after a restart; ``steerable`` maps a camera
    to the zones it can be pointed at. With a ``prior`` (the core's ``Posterior``) the
    filter runs under its posterior means and learns: streaming VB every ``learn_every``
    seconds, camera-quality SVI every ``svi_every``, a Gibbs repair by the actor at
    ``repair`` every ``repair_every``; a request with no answer after ``repair_timeout``
    seconds counts as lost, and learning goes on. ``window_shape`` ``(tracks, rows)``:
    the least shape a learning window is padded to, compiled at the start (each new shape
    compiles for seconds on the event path).
    """

    spec: Any
    dims: Any
    cameras: tuple[str, ...]
    zones: tuple[str, ...]
    labels: tuple[str, ...]
    adjacency: Mapping[str, Collection[str]] = dataclasses.field(default_factory=dict)
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)
    traps: tuple[TrapConfig, ...] = ()
    decisions_to: tuple[str, ...] = ()
    steerable: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    reconfigure_every: float | None = None
    high_rate: float = 10.0
    store: str | None = None
    key: str = "learner"
    snapshot_every: float | None = 5.0
    keep_snapshots: int | None = 10
    prior: Any = None
    learn_every: float | None = None
    svi_every: float | None = None
    sweeps: int = 3
    seed: int = 0
    repair: str | None = None
    repair_every: float = 5.0
    repair_timeout: float = 120.0
    window_shape: tuple[int, int] | None = None
    tracks: int = 1024
    tick: float = 1.0
    gate: float = 30.0
    embedding_scale: float = 1.0
    same_sigma: float = 12.0
    diff_sigma: float = 40.0
    max_batch: int = 4096
    warm_shapes: tuple[tuple[int, int], ...] = ((1, 16),)

    def __post_init__(self) -> None:
        dims = self.dims
        for name, names, size in (
            ("cameras", self.cameras, dims.cameras),
            ("zones", self.zones, dims.zones),
        ):
            if len(names) != size or len(set(names)) != size:
                raise ConfigError(name, f"expected {size} distinct names, got {list(names)}")
        if len(self.labels) > dims.classes or len(set(self.labels)) != len(self.labels):
            raise ConfigError(
                "labels", f"expected at most {dims.classes} distinct names, got {self.labels}"
            )
        for zone, near in self.adjacency.items():
            if zone not in self.zones or isinstance(near, str) or not set(near) <= set(self.zones):
                raise ConfigError(f"adjacency.{zone}", f"names zones not in {self.zones}")
        for i, trap in enumerate(self.traps):
            if trap.zone not in self.zones:
                raise ConfigError(f"traps[{i}].zone", f"{trap.zone!r} is not in {self.zones}")
            for species in (*trap.targets, *trap.protected):
                if species not in self.labels:
                    raise ConfigError(f"traps[{i}]", f"{species!r} is not in {self.labels}")
        for camera, zones in self.steerable.items():
            if camera not in self.cameras or not set(zones) <= set(self.zones):
                raise ConfigError(f"steerable.{camera}", "names an unknown camera or zone")
        for name in (
            "tick",
            "gate",
            "embedding_scale",
            "repair_every",
            "repair_timeout",
            "high_rate",
        ):
            _positive(name, getattr(self, name))
        _positive("snapshot_every", self.snapshot_every, allow_none=True)
        _positive("keep_snapshots", self.keep_snapshots, allow_none=True)
        _positive("reconfigure_every", self.reconfigure_every, allow_none=True)
        _positive("learn_every", self.learn_every, allow_none=True)
        _positive("svi_every", self.svi_every, allow_none=True)
        if self.prior is None and (self.learn_every or self.svi_every or self.repair):
            raise ConfigError("prior", "learning (learn_every, svi_every, repair) needs a prior")
        if self.window_shape is not None:
            shape = self.window_shape
            if (
                not isinstance(shape, tuple | list)
                or len(shape) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)
            ):
                raise ConfigError("window_shape", f"expected two integers >= 1, got {shape!r}")
            object.__setattr__(self, "window_shape", tuple(shape))
        for name in ("tracks", "max_batch", "sweeps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, f"expected an integer >= 1, got {value!r}")
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    def adjacent(self) -> np.ndarray:
        """bool ``[Z, Z]``: zones equal or next to each other (symmetric)."""
        index = {zone: i for i, zone in enumerate(self.zones)}
        matrix = np.eye(len(self.zones), dtype=bool)
        for zone, near in self.adjacency.items():
            for other in near:
                matrix[index[zone], index[other]] = matrix[index[other], index[zone]] = True
        return matrix
