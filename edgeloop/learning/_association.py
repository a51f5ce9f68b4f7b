"""Which camera reports are one occurrence: the pure core of a FusionGroup.

Reports are put in event-time order first: each waits until the *watermark* (the latest
report time seen, minus ``lateness``) passes it, so reports that arrive out of order by up
to ``lateness`` seconds are grouped as if they had come in order. A report then joins the
open group that explains it best, or starts one. It may join a group when

- it is within ``window`` seconds of the group's first report (time),
- its zone is a zone of the group or next to one (``adjacency``; space),
- its camera has not reported in the group yet (one report per camera and occurrence),
- its embedding is likelier under "same animal" than "another animal" (predictive
  likelihood): the difference from the group's mean embedding is Normal with spread
  ``same_sigma`` for the same animal and ``diff_sigma`` for another, per int8 unit; the
  log-likelihood ratio must exceed ``threshold``.

A group closes, and becomes a :class:`FusedObservation`, once the watermark is past its
window. A report older than what was already released is *late*: it is passed on alone,
marked ``late``, so it is never lost. No clocks and no actors here: the shell decides when
time moves (:meth:`Associator.advance`).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Collection, Mapping
from types import MappingProxyType

import numpy as np

from edgeloop.errors import ConfigError
from edgeloop.learning._messages import FusedObservation
from edgeloop.messages import Event

__all__ = ["FusionConfig", "Associator", "AssociatorCounts"]


def _symmetric(adjacency: Mapping[str, Collection[str]]) -> Mapping[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for zone, neighbours in adjacency.items():
        if isinstance(neighbours, str):
            raise ConfigError(
                f"adjacency.{zone}", f"expected a list of zones, got the string {neighbours!r}"
            )
        for other in neighbours:
            table.setdefault(zone, set()).add(other)
            table.setdefault(other, set()).add(zone)
    return MappingProxyType({zone: frozenset(near) for zone, near in table.items()})


@dataclasses.dataclass(frozen=True, slots=True)
class FusionConfig:
    """How a FusionGroup groups reports (seconds, int8 embedding units)."""

    cameras: tuple[str, ...] = ()
    """The devices this group fuses; empty takes any device."""
    window: float = 0.5
    lateness: float = 1.0
    adjacency: Mapping[str, Collection[str]] = dataclasses.field(default_factory=dict)
    same_sigma: float = 12.0
    diff_sigma: float = 40.0
    threshold: float = 0.0
    dim: int | None = None
    """Embedding length every report must have; ``None`` takes the first report's."""

    def __post_init__(self) -> None:
        for name in ("window", "lateness", "same_sigma", "diff_sigma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(name, f"expected a number, got {value!r}")
            if not math.isfinite(value) or value < 0 or (value == 0 and "sigma" in name):
                raise ConfigError(name, f"expected a finite number >= 0 (> 0), got {value!r}")
        if self.diff_sigma <= self.same_sigma:
            raise ConfigError(
                "diff_sigma",
                f"must exceed same_sigma ({self.same_sigma}), or no two reports ever join",
            )
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "adjacency", _symmetric(self.adjacency))

    def near(self, zone: str) -> frozenset[str]:
        """``zone`` and its neighbours."""
        return frozenset(self.adjacency.get(zone, ())) | {zone}


@dataclasses.dataclass(slots=True)
class AssociatorCounts:
    """What the associator has done: reports taken, reordered, late, duplicate; groups."""

    reports: int = 0
    reordered: int = 0
    late: int = 0
    duplicates: int = 0
    groups: int = 0
    fused: int = 0
    """Groups of two reports or more."""


@dataclasses.dataclass(slots=True)
class _Group:
    id: int
    start: float
    reports: list[Event]
    zones: set[str]
    devices: set[str]
    total: np.ndarray

    def mean(self) -> np.ndarray:
        return self.total / len(self.reports)


class Associator:
    """Groups reports into occurrences in event-time order; see the module docstring."""

    def __init__(self, config: FusionConfig) -> None:
        self.config = config
        self.counts = AssociatorCounts()
        self._pending: list[tuple[float, str, int, Event]] = []
        self._open: list[_Group] = []
        self._released = -math.inf  # reports at or before this time were processed
        self._latest = -math.inf
        self._last_seq: dict[str, int] = {}
        self._next_group = 0
        self._same_var = config.same_sigma**2
        self._diff_var = config.diff_sigma**2

    @property
    def latest(self) -> float:
        """The latest report time seen (``-inf`` before the first)."""
        return self._latest

    @property
    def pending(self) -> int:
        """Reports waiting for the watermark, plus reports in open groups."""
        return len(self._pending) + sum(len(g.reports) for g in self._open)

    def add(self, event: Event) -> list[FusedObservation]:
        """Take one report; returns the observations this closed (oldest first).

        A duplicate (a sequence number already seen from that device) is dropped.
        """
        last = self._last_seq.get(event.device, 0)
        if event.seq <= last:
            self.counts.duplicates += 1
            return []
        self._last_seq[event.device] = event.seq
        self.counts.reports += 1
        if event.ts < self._released:
            self.counts.late += 1
            return [self._observation(event.ts, [event], late=True)]
        if event.ts < self._latest:
            self.counts.reordered += 1
        self._latest = max(self._latest, event.ts)
        bisect.insort(self._pending, (event.ts, event.device, event.seq, event))
        return self.advance(self._latest - self.config.lateness)

    def advance(self, watermark: float) -> list[FusedObservation]:
        """Event time has reached ``watermark``: group every report up to it and close
        the groups whose window it has passed."""
        if watermark <= self._released:
            return []
        cut = bisect.bisect_right(self._pending, (watermark, "\U0010ffff", math.inf))
        ready, self._pending = self._pending[:cut], self._pending[cut:]
        for _, _, _, event in ready:
            self._assign(event)
        self._released = watermark
        closing = [g for g in self._open if g.start + self.config.window < watermark]
        return self._close(closing)

    def flush(self) -> list[FusedObservation]:
        """Group every report now and close every group (at shutdown or on demand)."""
        for _, _, _, event in self._pending:
            self._assign(event)
        self._pending = []
        self._released = max(self._released, self._latest)
        return self._close(list(self._open))

    def _assign(self, event: Event) -> None:
        vector = np.frombuffer(event.embedding, dtype=np.int8).astype(np.float64)
        best: _Group | None = None
        best_score = self.config.threshold
        for group in self._open:
            if (
                event.ts - group.start > self.config.window
                or event.device in group.devices
                or not (self.config.near(event.zone) & group.zones)
                or vector.shape != group.total.shape
            ):
                continue
            score = self._log_ratio(vector, group)
            if score > best_score:
                best, best_score = group, score
        if best is None:
            best = _Group(self._next_group, event.ts, [], set(), set(), np.zeros_like(vector))
            self._next_group += 1
            self._open.append(best)
        best.reports.append(event)
        best.zones.add(event.zone)
        best.devices.add(event.device)
        best.total += vector

    def _log_ratio(self, vector: np.ndarray, group: _Group) -> float:
        """log p(vector | same animal as the group) - log p(vector | another animal)."""
        n = len(group.reports)
        same = self._same_var * (1.0 + 1.0 / n)
        other = self._same_var / n + self._diff_var
        squared = float(np.sum((vector - group.mean()) ** 2))
        dims = int(vector.shape[0])
        return float(0.5 * (squared / other - squared / same) + 0.5 * dims * math.log(other / same))

    def _close(self, groups: list[_Group]) -> list[FusedObservation]:
        closed = {id(g) for g in groups}
        self._open = [g for g in self._open if id(g) not in closed]
        groups.sort(key=lambda g: (g.start, g.id))
        return [self._observation(g.start, g.reports, group=g.id) for g in groups]

    def _observation(
        self, ts: float, reports: list[Event], *, late: bool = False, group: int | None = None
    ) -> FusedObservation:
        if group is None:
            group = self._next_group
            self._next_group += 1
        self.counts.groups += 1
        if len(reports) > 1:
            self.counts.fused += 1
        return FusedObservation(group=group, ts=ts, reports=tuple(reports), late=late)
