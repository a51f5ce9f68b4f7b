"""Everything a device decides, with no sockets and no threads.

:class:`DeviceCore` takes observations, messages from the node, link changes and ``now``
(monotonic seconds of the agent's clock, for timeouts and intervals) in, and returns
what to send (messages) and what its frame server should do (:class:`ServeFrame`,
:class:`PushFrame`). The agent shell (``_agent.py``) owns the link, the threads and the
clock; this module owns the rules:

- numbering, journalling and resending events (the outbox);
- keeping full frames (the ring) and answering frame requests;
- applying desired configuration and head updates, or refusing them with a reason while
  the old ones stay in effect;
- a trap's mechanism;
- ``DeviceStatus``: when a loss counter moved or the state changed (at most every
  ``_STATUS_GAP`` seconds) and every ``status_interval`` seconds.
"""

from __future__ import annotations

import collections
import dataclasses
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import structlog

from edgeloop.errors import ConfigError
from edgeloop.messages import (
    Command,
    CommandResult,
    ConfigDesired,
    ConfigReported,
    DeviceStatus,
    ErrorReply,
    Event,
    EventAck,
    FrameReady,
    FrameRef,
    FrameRequest,
    HeadAck,
    HeadUpdate,
    Message,
)
from edgeloop.sensors.device._config import DeviceConfig
from edgeloop.sensors.device._heads import Head, HeadLoader, NoHead, Scored, Verdict
from edgeloop.sensors.device._journal import Journal, Recovered
from edgeloop.sensors.device._outbox import Outbox
from edgeloop.sensors.device._ring import FrameRing
from edgeloop.sensors.device._settings import CameraSettings
from edgeloop.sensors.device._source import Observation, TrapView
from edgeloop.sensors.device._state import StateFile
from edgeloop.sensors.device._trap import CatchLog, TrapMechanism

__all__ = ["DeviceCore", "ServeFrame", "PushFrame", "Action"]

_log = structlog.get_logger("edgeloop.sensors.device")

_STATUS_GAP = 0.5
"""Least seconds between two status reports prompted by a change (a burst of evictions
or drops makes one report, not one per frame)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ServeFrame:
    """Send frame ``ref`` over the bulk lane, then answer ``request`` with FrameReady."""

    request: FrameRequest
    ref: FrameRef


@dataclasses.dataclass(frozen=True, slots=True)
class PushFrame:
    """Send frame ``ref`` over the bulk lane unasked (report mode ``full``), if a lane is
    open and has a credit; skip it otherwise."""

    ref: FrameRef


Action = Message | ServeFrame | PushFrame


class DeviceCore:
    """The rules of one device (see the module docstring). Not thread-safe: one thread
    (the agent's) calls it; only :attr:`ring` is shared with the frame server."""

    def __init__(
        self,
        config: DeviceConfig,
        *,
        head_loader: HeadLoader | None = None,
        journal: Journal | None = None,
        state_file: StateFile | None = None,
        trap_view: TrapView | None = None,
        initial_head: bytes | None = None,
        device_time: Callable[[], float] | None = None,
        check_settings: Callable[[CameraSettings], object] | None = None,
    ) -> None:
        self.config = config
        self._check_settings = check_settings
        self._device_time = device_time or (lambda: 0.0)
        self.name = config.name
        self.counters: collections.Counter[str] = collections.Counter()
        self._head_loader = head_loader
        self._journal = journal
        self._state_file = state_file or StateFile(None)
        self._state = self._state_file.load()
        if not self._state.head and initial_head:
            self._state.head, self._state.head_version = initial_head, _head_version(initial_head)
        self._state.boot += 1
        self.boot = self._state.boot
        recovered = journal.recovered if journal is not None else Recovered([], 1, 0, 0, 0)
        box = config.outbox
        self.outbox = Outbox(
            box.limit,
            overflow=box.overflow,
            window=box.window,
            ack_timeout=box.ack_timeout,
            next_seq=recovered.next_seq,
            acked=recovered.acked,
            dropped=recovered.dropped,
        )
        self.outbox.restore(recovered.events)
        self.ring = FrameRing(config.name, config.frame_budget)
        self.reachable = frozenset(config.reachable)
        self.settings = self._initial_settings()
        self.head: Head = self._initial_head()
        self.trap = TrapMechanism(config.name) if config.kind == "trap" else None
        self._trap_view = trap_view
        self.catch_log = CatchLog(config.trap.catches)
        self._frames = 0
        self._last_capture: float | None = None
        self._last_frame: tuple[object, FrameRef | None] = (None, None)
        self._status_due: float | None = 0.0  # send one at the first chance
        self._status_sent = -1e18
        self._save()
        if recovered.events or recovered.next_seq > 1:
            _log.info(
                "outbox_recovered",
                device=self.name,
                boot=self.boot,
                pending=len(recovered.events),
                next_seq=recovered.next_seq,
                acked=recovered.acked,
            )

    # -- start-up ----------------------------------------------------------------------

    def _initial_settings(self) -> CameraSettings:
        saved = self._state.settings
        if self._state.config_version > 0 and saved:
            try:
                return CameraSettings.check(saved, self.reachable)
            except (ConfigError, KeyError) as error:
                _log.warning("saved_config_invalid", device=self.name, error=str(error))
                self._state.config_version = 0
        return self.config.settings

    def _initial_head(self) -> Head:
        if self._state.head and self._head_loader is not None:
            try:
                return self._head_loader(self._state.head)
            except Exception as error:  # noqa: BLE001 (any loader failure: run no head)
                _log.warning("saved_head_invalid", device=self.name, error=str(error))
                self._state.head, self._state.head_version = b"", 0
        return NoHead()

    def _save(self) -> None:
        self._state.settings = self.settings.to_params()
        self._state_file.save(self._state)

    @property
    def config_version(self) -> int:
        return self._state.config_version

    @property
    def head_version(self) -> int:
        return self._state.head_version

    # -- the link ----------------------------------------------------------------------

    def link_up(self, now: float) -> list[Message]:
        """The node is (back): report status and configuration; the outbox follows."""
        self.outbox.unsend()
        self._status_sent = now
        self._status_due = None
        return [self.status(now), self._reported()]

    def link_down(self) -> None:
        """Whatever was in flight goes again once the link is back."""
        self.outbox.unsend()

    def pending_events(self, now: float) -> list[Event]:
        """The events to send now (call while the link is up)."""
        return self.outbox.due(now)

    def next_deadline(self) -> float | None:
        """The earliest ``now`` at which :meth:`tick` or :meth:`pending_events` may have
        something to send without new input."""
        candidates = [self.outbox.next_deadline(), self._status_due]
        candidates.append(self._status_sent + self.config.status_interval)
        return min((c for c in candidates if c is not None), default=None)

    def tick(self, now: float) -> list[Message]:
        """A status report, if one is due."""
        periodic = now - self._status_sent >= self.config.status_interval
        if periodic or (self._status_due is not None and now >= self._status_due):
            self._status_sent = now
            self._status_due = None
            return [self.status(now)]
        return []

    def _changed(self, now: float) -> None:
        """A loss counter moved or the state changed: report soon."""
        if self._status_due is None:
            self._status_due = max(now, self._status_sent + _STATUS_GAP)

    def device_time(self) -> float:
        """Now on the source's scale (simulated seconds): what reports are stamped with."""
        return self._device_time()

    def status(self, now: float) -> DeviceStatus:
        ring = self.ring.statistics()
        return DeviceStatus(
            device=self.name,
            ts=max(0.0, self.device_time()),
            boot=self.boot,
            next_seq=self.outbox.next_seq,
            oldest_seq=self.outbox.oldest_seq,
            outbox_depth=len(self.outbox),
            outbox_dropped=self.outbox.dropped,
            frames_held=ring.held,
            frames_evicted=ring.evicted,
            head_version=self.head_version,
            config_version=self.config_version,
            state=self.trap.state if self.trap is not None else "ok",
            detail=(self.trap.fault or "") if self.trap is not None else "",
            extra={
                "resent": self.outbox.statistics().resent,
                "bad_acks": self.outbox.statistics().bad_acks,
                "config_rejected": self.counters["config_rejected"],
                "head_rejected": self.counters["head_rejected"],
            },
        )

    # -- observations ------------------------------------------------------------------

    def observe(self, observation: Observation, now: float) -> list[Action]:
        """A camera saw something: keep its frame, run the head, maybe make an event."""
        self.counters["observed"] += 1
        settings = self.settings
        if observation.zone not in settings.zones:
            self.counters["outside_zones"] += 1
            return []
        last = self._last_capture
        same_frame = last is not None and observation.t == last
        if (
            last is not None
            and not same_frame
            and observation.t - last < 1.0 / settings.frame_rate - 1e-9
        ):
            self.counters["over_frame_rate"] += 1
            return []
        self._last_capture = observation.t
        ref = self._keep_frame(observation, now)
        if settings.report_mode == "off":
            self.counters["not_reported"] += 1
            return []
        embedding = np.asarray(observation.embedding, dtype=np.int8)
        try:
            verdict: Scored = self.head.score(embedding)
        except ValueError as error:  # an embedding the head cannot score: report it as novel
            self.counters["head_failed"] += 1
            if self.counters["head_failed"] <= 10:
                _log.warning("head_failed", device=self.name, error=str(error)[:200])
            verdict = Verdict("unknown", 0.0, True)
        if verdict.score < settings.threshold and not verdict.novel:
            self.counters["below_threshold"] += 1
            return []
        label = "unknown" if verdict.novel else verdict.label
        extra: dict[str, bool | int | float | str] = {"novel": verdict.novel}
        if verdict.novel:
            extra["nearest"] = verdict.label

        def build(seq: int) -> Event:
            return Event(
                device=self.name,
                seq=seq,
                ts=max(0.0, observation.t),
                zone=observation.zone,
                label=label,
                score=min(1.0, max(0.0, float(verdict.score))),
                embedding=embedding.tobytes(),
                frame=ref,
                head_version=self.head_version,
                config_version=self.config_version,
                extra=extra,
            )

        added = self.outbox.add(build)
        if added.event is None:
            self.counters["outbox_overflow"] += 1
            self._changed(now)
            _log_loss("outbox_overflow", self.name, self.outbox.dropped)
            return []
        if self._journal is not None:
            self._journal.event(added.event)
            if added.dropped:
                self._journal.drop(self.outbox.dropped, self.outbox.oldest_seq)
            self._compact()
        if added.dropped:
            self.counters["outbox_overflow"] += len(added.dropped)
            self._changed(now)
            _log_loss("outbox_overflow", self.name, self.outbox.dropped)
        self.counters["events"] += 1
        if settings.report_mode == "full" and ref is not None:
            return [PushFrame(ref)]
        return []

    def _keep_frame(self, observation: Observation, now: float) -> FrameRef | None:
        if observation.frame is None:
            return None
        if observation.frame is self._last_frame[0]:  # another detection in the same frame
            return self._last_frame[1]
        self._frames += 1
        frame_id = (self.boot << 32) | (self._frames & 0xFFFFFFFF)
        ref, evicted = self.ring.put(frame_id, observation.frame)
        self._last_frame = (observation.frame, ref)
        if evicted:
            self._changed(now)
        return ref

    # -- messages from the node --------------------------------------------------------

    def receive(self, message: Message, now: float) -> list[Action]:
        """Handle one message from the node; what to send back."""
        device = getattr(message, "device", self.name)
        if device != self.name:
            self.counters["wrong_device"] += 1
            return [
                ErrorReply(
                    code="wrong_device",
                    message=(
                        f"this is device {self.name!r}, not {device!r}: the node sent a "
                        f"{type(message).__name__} over the wrong link"
                    ),
                )
            ]
        if isinstance(message, EventAck):
            return self._ack(message)
        if isinstance(message, ConfigDesired):
            return [self._configure(message, now)]
        if isinstance(message, HeadUpdate):
            return [self._update_head(message)]
        if isinstance(message, FrameRequest):
            return [self._frame(message)]
        if isinstance(message, Command):
            return self._command(message, now)
        if isinstance(message, ErrorReply):
            self.counters[f"error_reply:{message.code}"] += 1
            _log.warning("node_refused", device=self.name, code=message.code, error=message.message)
            return []
        self.counters["unexpected"] += 1
        _log.warning("unexpected_message", device=self.name, kind=type(message).__name__)
        return [
            ErrorReply(
                code="unexpected_kind",
                message=f"a device does not take {type(message).__name__} messages",
            )
        ]

    def _ack(self, ack: EventAck) -> list[Action]:
        before = self.outbox.statistics().bad_acks
        if self.outbox.ack(ack.seq) and self._journal is not None:
            self._journal.ack(ack.seq)
            self._compact()
        if self.outbox.statistics().bad_acks > before:
            self.counters["bad_acks"] += 1
            _log.warning(
                "ack_beyond_sent", device=self.name, seq=ack.seq, next_seq=self.outbox.next_seq
            )
        return []

    def _compact(self) -> None:
        """Rewrite the journal as what the outbox holds, once it has grown past its bound
        (acks shrink the outbox; drop_oldest overflow replaces events)."""
        journal = self._journal
        if journal is not None and journal.should_compact():
            journal.compact(
                self.outbox.pending(),
                next_seq=self.outbox.next_seq,
                acked=self.outbox.acked,
                dropped=self.outbox.dropped,
            )

    def _reported(self, error: str | None = None) -> ConfigReported:
        settings: dict[str, Any] = self.settings.to_params() if self.trap is None else {}
        return ConfigReported(
            device=self.name, version=self.config_version, settings=settings, error=error
        )

    def _configure(self, desired: ConfigDesired, now: float) -> ConfigReported:
        current = self.config_version
        if desired.version < current:
            return self._refuse_config(
                desired, f"version {desired.version} is older than version {current} in effect"
            )
        try:
            if self.trap is not None:
                if desired.settings:
                    key = next(iter(desired.settings))
                    raise ConfigError(key, "a trap has no settings")
                settings = self.settings
            else:
                settings = self.settings.patched(desired.settings, self.reachable)
                if self._check_settings is not None:  # what the camera itself can take
                    self._check_settings(settings)
        except ConfigError as error:
            return self._refuse_config(desired, str(error))
        if desired.version == current and settings != self.settings:
            return self._refuse_config(
                desired, f"version {current} is in effect with other settings; use a new version"
            )
        self.settings = settings
        self._state.config_version = desired.version
        self._save()
        self.counters["config_applied"] += 1
        _log.info("config_applied", device=self.name, version=desired.version)
        self._changed(now)
        return self._reported()

    def _refuse_config(self, desired: ConfigDesired, reason: str) -> ConfigReported:
        self.counters["config_rejected"] += 1
        _log.warning(
            "config_rejected", device=self.name, version=desired.version, reason=reason[:200]
        )
        return self._reported(f"config version {desired.version} refused: {reason}")

    def _update_head(self, update: HeadUpdate) -> HeadAck:
        current = self.head_version
        if update.version == current and update.head == self._state.head and current > 0:
            return HeadAck(device=self.name, version=update.version, ok=True)
        if update.version <= current:
            return self._refuse_head(
                update, f"version {update.version} is not newer than version {current} in use"
            )
        checksum = zlib.crc32(update.head)
        if checksum != update.checksum:
            return self._refuse_head(
                update,
                f"the head's CRC-32 is {checksum:#010x}, the update says {update.checksum:#010x}: "
                "it was damaged on the way; send it again",
            )
        if self._head_loader is None:
            return self._refuse_head(update, "this device has no head runtime")
        try:
            head = self._head_loader(update.head)
        except Exception as error:  # noqa: BLE001 (whatever the loader refuses, the old head stays)
            return self._refuse_head(update, f"{type(error).__name__}: {error}")
        self.head = head
        self._state.head, self._state.head_version = update.head, update.version
        self._save()
        self.counters["head_applied"] += 1
        _log.info("head_applied", device=self.name, version=update.version)
        return HeadAck(device=self.name, version=update.version, ok=True)

    def _refuse_head(self, update: HeadUpdate, reason: str) -> HeadAck:
        self.counters["head_rejected"] += 1
        _log.warning("head_rejected", device=self.name, version=update.version, reason=reason[:200])
        return HeadAck(
            device=self.name,
            version=update.version,
            ok=False,
            error=f"head version {update.version} refused ({reason}); still running version "
            f"{self.head_version}",
        )

    def _frame(self, request: FrameRequest) -> Action:
        held = self.ring.get(request.frame_id)
        if held is None:
            self.counters["frame_missing"] += 1
            oldest = self.ring.oldest()
            return FrameReady(
                id=request.id,
                error=f"frame {request.frame_id} is not held (evicted, or taken before the "
                f"device restarted); the oldest frame held is {oldest}",
            )
        return ServeFrame(request, held[0])

    def _command(self, command: Command, now: float) -> list[Action]:
        if self.trap is None:
            self.counters["command_refused"] += 1
            return [
                CommandResult(
                    id=command.id,
                    ok=False,
                    detail=f"unknown command {command.name!r}: a camera takes its settings "
                    "through config_desired",
                )
            ]
        t = self.device_time()
        occupants = self._trap_view.occupants(t) if self._trap_view is not None else ()
        before = self.trap.state
        outcome = self.trap.command(command.name, command.args, t, occupants)
        if outcome.catch is not None:
            self.catch_log.write(outcome.catch)
            _log.info("trap_caught", device=self.name, t=t, caught=list(outcome.catch.caught))
        if self.trap.state != before:
            self._changed(now)
            self._status_due = now  # a trap's state change is news at once
        self.counters["command_ok" if outcome.ok else "command_refused"] += 1
        return [
            CommandResult(
                id=command.id,
                ok=outcome.ok,
                detail=outcome.detail,
                result={"state": outcome.state},
            )
        ]

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()


def _head_version(head: bytes) -> int:
    """The version inside an encoded head (0 if it has none a loader could read)."""
    from edgeloop.messages import decode_head

    try:
        return decode_head(head).version
    except Exception:  # noqa: BLE001 (a bad factory head: the loader refuses it next)
        return 0


def _log_loss(event: str, device: str, total: int) -> None:
    if total <= 10 or total % 1000 == 0:
        _log.warning(event, device=device, dropped=total)
