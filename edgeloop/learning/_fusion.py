"""The FusionGroup actor: the reports of its cameras in, fused observations out.

A thin shell over :class:`~edgeloop.learning._association.Associator`: it checks each
report (a bad one is counted under the field that was wrong and dropped), feeds the
associator, and tells each closed group to ``downstream`` (a Learner's address, looked up
at every send, so a restarted learner keeps receiving). Event time moves with the
reports; when they stop, a timer on the node's clock moves it on by the time that passed,
so a last group is not held back forever. On stop, whatever is open is flushed.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any

import structlog

from edgeloop.actors import Actor, send_signal
from edgeloop.clock import Timer
from edgeloop.errors import EdgeloopError, ObservationError
from edgeloop.learning._association import Associator, AssociatorCounts, FusionConfig
from edgeloop.learning._messages import FusedObservation, GetStatistics
from edgeloop.messages import Event

__all__ = ["FusionGroup", "FusionStatistics"]

_log = structlog.get_logger("edgeloop.learning")


class _Tick:
    """Signal: move event time on by the clock's time since the latest report."""


_TICK = _Tick()


@dataclasses.dataclass(frozen=True, slots=True)
class FusionStatistics:
    """The associator's counts, the rejected reports by field, and what is waiting."""

    counts: AssociatorCounts
    rejected: dict[str, int]
    pending: int
    undelivered: int
    """Observations the downstream actor could not take (its mailbox stayed full)."""


class FusionGroup(Actor):
    """Fuses the reports of ``config.cameras`` and tells the observations to
    ``downstream``. ``tick`` is how often (seconds on the node's clock) event time is moved
    on while no report arrives; ``None`` uses the window."""

    def __init__(self, config: FusionConfig, downstream: str, tick: float | None = None) -> None:
        self.config = config
        self.downstream = downstream
        self.tick = tick if tick is not None else max(config.window, 1e-3)
        self._associator = Associator(config)
        self._cameras = frozenset(config.cameras)
        self._dim = config.dim
        self._rejected: collections.Counter[str] = collections.Counter()
        self._seen_at = math.nan  # the clock's time when the latest report arrived
        self._timer: Timer | None = None
        self._undelivered = 0

    def on_start(self) -> None:
        self._arm()

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._emit(self._associator.flush())

    def on_receive(self, message: Any) -> Any:
        if message.__class__ is Event:
            return self._report(message)
        if message.__class__ is _Tick:
            self._on_tick()
            return None
        if isinstance(message, GetStatistics):
            return self.statistics()
        return self._reject("message", f"a FusionGroup takes Events, not {type(message).__name__}")

    def statistics(self) -> FusionStatistics:
        """What the group has done and what waits in it."""
        return FusionStatistics(
            counts=dataclasses.replace(self._associator.counts),
            rejected=dict(self._rejected),
            pending=self._associator.pending,
            undelivered=self._undelivered,
        )

    def _report(self, event: Event) -> ObservationError | None:
        if self._cameras and event.device not in self._cameras:
            return self._reject("device", f"{event.device!r} is not a camera of this group")
        if not math.isfinite(event.ts):
            return self._reject("ts", f"{event.ts!r} is not a finite time")
        if self._dim is None:
            self._dim = len(event.embedding)
        elif len(event.embedding) != self._dim:
            return self._reject("embedding", f"{len(event.embedding)} bytes, expected {self._dim}")
        before = self._associator.latest
        self._emit(self._associator.add(event))
        if self._associator.latest > before:
            self._seen_at = self.system.clock.now()
        return None

    def _on_tick(self) -> None:
        self._timer = None
        if not math.isnan(self._seen_at):
            idle = self.system.clock.now() - self._seen_at
            watermark = self._associator.latest + idle - self.config.lateness
            self._emit(self._associator.advance(watermark))
        self._arm()

    def _arm(self) -> None:
        ref = self.ref

        def due() -> None:
            send_signal(ref, _TICK)

        self._timer = self.system.clock.call_later(self.tick, due)

    def _emit(self, observations: list[FusedObservation]) -> None:
        for observation in observations:
            try:
                if self.downstream.startswith("/"):
                    self.system.tell(self.downstream, observation)
                else:
                    self.system.ref(self.downstream).tell(observation)
            except EdgeloopError as error:  # a full mailbox, a lost node: counted, logged
                self._undelivered += 1
                _log.warning("fusion_send_failed", to=self.downstream, error=str(error))

    def _reject(self, field: str, problem: str) -> ObservationError:
        self._rejected[field] += 1
        _log.warning("fusion_rejected", path=self.path, field=field, problem=problem)
        return ObservationError(field, problem)
