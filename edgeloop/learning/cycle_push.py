"""The cycle's push: one head version to every camera, acks tracked, retries with
backoff, catch-up counted when a camera comes back (a mixin of
:class:`~edgeloop.learning.cycle.KnowledgeCycle`, sharing its state and thread)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from edgeloop.actors import ActorRef, send_signal
from edgeloop.errors import DeviceRefusedError
from edgeloop.learning.cycle_config import CycleConfig
from edgeloop.learning.cycle_core import CycleRecord
from edgeloop.learning.cycle_messages import ClassLearned, Due, Fleet, Pushed

if TYPE_CHECKING:
    from edgeloop.learning.core.openworld import OpenWorld

__all__ = ["CyclePush"]

_log = structlog.get_logger("edgeloop.learning.cycle")


class CyclePush:
    """Step 5 of the cycle (see the module docstring)."""

    config: CycleConfig
    counters: Counter[str]
    ref: ActorRef
    system: Any
    _fleet: Fleet | None
    _current: CycleRecord | None
    _head: bytes
    _model: OpenWorld | None
    _now: Callable[[], float]
    _publish: Callable[[], None]
    _after: Callable[[float, Due], None]

    def _push_one(self, record: CycleRecord, camera: str) -> None:
        fleet = self._fleet
        assert fleet is not None
        cycle, version, me = record.cycle, record.head_version, self.ref

        def done(error: BaseException | None) -> None:
            send_signal(me, Pushed(cycle, camera, version, error))

        self.counters["heads_sent"] += 1
        fleet.push_head(camera, self._head, version, self.config.push_timeout, done)

    def _on_pushed(self, answer: Pushed) -> None:
        record = self._current
        if record is None or record.cycle != answer.cycle or record.push is None:
            return
        push, now = record.push, self._now()
        if answer.error is None:
            if push.acked(answer.device, answer.version, now):
                self._acked(record, answer.device, "ack")
            return
        if isinstance(answer.error, DeviceRefusedError):
            self.counters["heads_refused"] += 1
            push.refused(answer.device, str(answer.error), now)
            _log.warning("cycle_head_refused", device=answer.device, error=str(answer.error))
        else:
            delay = push.failed(answer.device, str(answer.error))
            self.counters["push_retries" if delay is not None else "push_given_up"] += 1
            _log.info(
                "cycle_push_retry" if delay is not None else "cycle_push_away",
                device=answer.device,
                error=str(answer.error),
                retry_in=delay,
            )
            if delay is not None:
                self._after(delay, Due("retry", record.cycle, answer.device))
        self._maybe_finish(record)

    def _acked(self, record: CycleRecord, camera: str, how: str) -> None:
        self.counters["heads_acked"] += 1
        _log.debug("cycle_head_acked", device=camera, version=record.head_version, by=how)
        self._maybe_finish(record)

    def _maybe_finish(self, record: CycleRecord) -> None:
        """Settle the push once no camera is still being sent to: ``done`` when all
        acked, else ``partial``; a camera away at that time may still catch up (its
        twin resends on reconnect; a retry or an event with the new version says so)."""
        push = record.push
        assert push is not None
        if not all(e.state != "sent" for e in push.cameras.values()):
            self._publish()
            return
        all_acked = push.names("acked") == sorted(push.cameras)
        first = "push" not in record.ends
        if first or all_acked:
            record.end("push", push.last_ack() or self._now())
        record.state = "done" if all_acked else "partial"
        if first:
            _log.info(
                "cycle_pushed",
                cycle=record.cycle,
                state=record.state,
                head_version=record.head_version,
                acked=len(push.names("acked")),
                refused=push.names("refused"),
                away=push.names("away"),
                stage_ms=record.stage_ms(),
                cycle_latency_ms=record.latency_ms(),
            )
            self._announce(record)
        elif all_acked:
            _log.info("cycle_caught_up", cycle=record.cycle, stage_ms=record.stage_ms())
        if push.done:
            self._current = None
        self._publish()

    def _announce(self, record: CycleRecord) -> None:
        model = self._model
        assert model is not None
        message = ClassLearned(
            name=record.name,
            head_version=record.head_version,
            labels=tuple(model.labels),
            previous=record.renamed_from or None,
        )
        for address in self.config.announce_to:
            try:
                self.system.ref(address).tell(message)
            except Exception as error:  # noqa: BLE001 (counted; the cycle goes on)
                self.counters["announce_failed"] += 1
                _log.warning("cycle_announce_failed", to=address, error=str(error))
