"""Where a camera's observations come from: a small protocol, and a synthetic source.

The agent pulls :class:`Observation`\\s from an :class:`ObservationSource` in time order;
``t`` is seconds on the source's own scale (simulated seconds for the yard), which the
agent maps to wall time with its speed factor and stamps on the events as ``ts``. The
world of ``edgeloop.sensors.world`` is one source; :class:`SyntheticSource` is another,
deterministic under a seed, for tests and benchmarks that need a stream and no world.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Observation", "ObservationSource", "SyntheticSource", "TrapView"]


@dataclasses.dataclass(frozen=True, slots=True)
class Observation:
    """One detection by a camera: when (source seconds), in which zone, its int8
    embedding, its full frame (if the camera renders one) and what it really was
    (ground truth: never sent, kept for scoring)."""

    t: float
    zone: str
    embedding: npt.NDArray[np.int8]
    frame: npt.NDArray[np.uint8] | None = None
    truth: str | None = None


@runtime_checkable
class ObservationSource(Protocol):
    """A camera's stream: the next observation in time order, ``None`` when it ends."""

    def next(self) -> Observation | None: ...

    def configure(self, *, zones: Sequence[str], exposure: float) -> None:
        """The camera now points at ``zones`` with ``exposure`` (sources that simulate
        the camera apply it to what they render; others may ignore it). A source may also
        have ``check(zones=, exposure=)``, raising ConfigError for settings it cannot
        take: the device then refuses them before applying anything."""


@runtime_checkable
class TrapView(Protocol):
    """What a trap's mechanism would hold if it closed at source time ``t``: the animals
    in its zone (ground truth, for scoring the demo)."""

    def occupants(self, t: float) -> tuple[str, ...]: ...


class SyntheticSource:
    """Seeded observations: ``rate`` a second, labels drawn from ``labels``, each label's
    embeddings around its own centre, frames of ``frame_shape`` noise with the label's
    index drawn in (so a pulled frame is checkable). Deterministic under ``seed``."""

    def __init__(
        self,
        *,
        seed: int = 0,
        rate: float = 10.0,
        zones: Sequence[str] = ("zone",),
        labels: Sequence[str] = ("skunk", "cat"),
        dim: int = 16,
        frame_shape: tuple[int, int] = (64, 64),
        limit: int | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.labels = tuple(labels)
        self.frame_shape = frame_shape
        self.limit = limit
        self._rng = np.random.default_rng(seed)
        self._centres = self._rng.integers(-60, 60, size=(len(self.labels), dim))
        self._zones = tuple(zones)
        self._count = 0
        self.exposure = 0.5

    def configure(self, *, zones: Sequence[str], exposure: float) -> None:
        self._zones = tuple(zones)
        self.exposure = exposure

    def next(self) -> Observation | None:
        if self.limit is not None and self._count >= self.limit:
            return None
        index = int(self._rng.integers(len(self.labels)))
        noise = self._rng.normal(0.0, 8.0 / self.exposure, size=self._centres.shape[1])
        embedding = np.clip(self._centres[index] + noise, -127, 127).astype(np.int8)
        frame = self._rng.integers(0, 32, size=self.frame_shape, dtype=np.uint8)
        frame[: 4 + 4 * index, : 4 + 4 * index] = 255
        zone = self._zones[int(self._rng.integers(len(self._zones)))]
        t = self._count / self.rate
        self._count += 1
        return Observation(
            t=t, zone=zone, embedding=embedding, frame=frame, truth=self.labels[index]
        )
