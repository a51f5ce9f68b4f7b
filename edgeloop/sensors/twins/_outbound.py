"""Requests a twin carries to its device: commands, desired config and head, frame pulls.

Each request goes out as its wire message, waits in a table of requests in flight (with a
deadline on the node's clock) and is answered, to a future or an actor, when the device
answers, refuses, or does not answer in time: a typed :class:`~edgeloop.errors.DeviceError`
then says which. :class:`DeviceRequests` is the part of :class:`SensorTwin` that does
this; it shares the twin's state and runs in the twin's thread.
"""

from __future__ import annotations

import itertools
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from edgeloop.actors import ActorRef, Future, send_signal
from edgeloop.clock import Timer
from edgeloop.errors import (
    DecodeError,
    DeviceAwayError,
    DeviceError,
    DeviceRefusedError,
    DeviceTimeout,
    FrameError,
    InvalidRequestError,
    MailboxFull,
)
from edgeloop.messages import (
    Command,
    CommandResult,
    ConfigDesired,
    ConfigReported,
    ErrorReply,
    FrameReady,
    FrameRef,
    FrameRequest,
    HeadAck,
    HeadUpdate,
    Message,
    validate,
)
from edgeloop.sensors.twins._desired import DesiredConfig
from edgeloop.sensors.twins._frames import FramePuller, Pull, frame_mismatch
from edgeloop.sensors.twins._requests import (
    DEFAULT_TIMEOUT,
    Configure,
    PullFrame,
    PushHead,
    ReplyTo,
    RunCommand,
    TwinAnswer,
)

__all__ = ["DeviceRequests", "Due", "Fetched", "Request", "describe", "invalid_request"]

_log = structlog.get_logger("edgeloop.sensors.twins")


class Due:
    """A timer fired: ``what`` is ``ack``, ``gap``, ``settle`` or ``deadline`` (``key``
    says which)."""

    __slots__ = ("key", "what")

    def __init__(self, what: str, key: Any = None) -> None:
        self.what = what
        self.key = key


class Fetched:
    """The puller's outcome for request ``rid``."""

    __slots__ = ("error", "frame", "rid")

    def __init__(self, rid: int, frame: Any, error: BaseException | None) -> None:
        self.rid = rid
        self.frame = frame
        self.error = error


class Request:
    """One request in flight to the device: what to resend, and where its answer goes."""

    __slots__ = ("job", "kind", "message", "reply_to", "request", "timer")

    def __init__(
        self, kind: str, request: Any, message: Message, reply_to: ReplyTo, timer: Timer
    ) -> None:
        self.kind = kind
        self.request = request
        self.message = message
        self.reply_to = reply_to
        self.timer = timer
        self.job: Pull | None = None  # a frame pull's fetch, cancelled if it fails first


class DeviceRequests:
    """The request half of a twin (a mixin of :class:`SensorTwin`, sharing its state)."""

    device: str
    connected: bool
    counters: Counter[str]
    config: DesiredConfig
    desired_head: int | None
    reported_head: int | None
    _head: HeadUpdate | None
    _pending: dict[tuple[str, int], Request]
    _ids: itertools.count[int]
    _puller: FramePuller | None
    ref: ActorRef
    _send: Callable[[Message], bool]
    _after: Callable[[float, Due], Timer]
    _count_rejected: Callable[[str, str], None]

    def _track(
        self, kind: str, rid: int, request: Any, message: Message, timeout: float | None
    ) -> None:
        reply_to = getattr(request, "reply_to", None)
        wait = timeout if timeout is not None else DEFAULT_TIMEOUT
        timer = self._after(wait, Due("deadline", (kind, rid)))
        self._pending[kind, rid] = Request(kind, request, message, reply_to, timer)

    def _run_command(
        self, name: str, args: dict[str, Any], timeout: float | None, request: Any
    ) -> None:
        refusal = self.refuse_command(name, args)
        if refusal is not None:
            self.counters["commands_refused"] += 1
            reply_to = getattr(request, "reply_to", None)
            self._reply(reply_to, request, None, refusal)
            return
        rid = next(self._ids)
        command = Command(id=rid, device=self.device, name=name, args=args)
        self.counters["commands_sent"] += 1
        if not self.connected or not self._send(command):
            self.counters["commands_away"] += 1
            error = DeviceAwayError(
                self.device,
                f"device {self.device} has no link to the node, so command {name!r} was not "
                "sent; retry once it is back (check that its agent runs and reaches the node)",
            )
            self._reply(getattr(request, "reply_to", None), request, None, error)
            return
        self._track("command", rid, request, command, timeout)

    def refuse_command(self, name: str, args: Mapping[str, Any]) -> DeviceError | None:
        """Why this twin will not send command ``name`` now (None: it will). Subclasses
        refuse what their device cannot do (a trap in fault)."""
        return None

    def _configure(self, settings: dict[str, Any], timeout: float | None, request: Any) -> None:
        at_least = request.version if isinstance(request, ConfigDesired) else 0
        self.config.want(settings, at_least)
        rid = next(self._ids)
        placeholder = ConfigDesired(device=self.device, version=at_least, settings=settings)
        self._track("config", rid, request, placeholder, timeout)
        if self.config.in_effect:
            self._config_settled(None)  # the device runs these settings already
        else:
            self._push_config()

    def _push_config(self) -> None:
        """Send the desired configuration if it is due (the device connected and has
        reported its version, and it runs something else)."""
        if not self.connected:
            return
        message = self.config.to_send(self.device)
        if message is not None and self._send(message):
            self.counters["configs_sent"] += 1

    def _config_settled(self, report: ConfigReported | None) -> None:
        """Answer every pending configure: in effect, or refused."""
        reported = self.config.reported
        for kind, rid in list(self._pending):
            if kind != "config":
                continue
            entry = self._finish(kind, rid)
            assert entry is not None
            if report is None or report.error is None:
                settings = dict(reported.settings or {}) if reported is not None else {}
                version = reported.version if reported is not None else 0
                done = report or ConfigReported(
                    device=self.device, version=version, settings=settings
                )
                self._answer(entry, done, None)
            else:
                error = DeviceRefusedError(
                    self.device,
                    f"device {self.device} refused the configuration: {report.error}; it "
                    f"still runs version {report.version}",
                    report.error,
                )
                self._answer(entry, None, error)

    def _push_head(self, head: bytes, timeout: float | None, request: Any) -> None:
        version = max(self.desired_head or 0, self.reported_head or 0) + 1
        wanted = request.version if isinstance(request, HeadUpdate | PushHead) else 0
        last = self._head
        if wanted and last is not None and last.version == wanted and last.head == head:
            version = wanted  # the same head again: a retry, not a new version
            stale = self._finish("head", version)
            if stale is not None:
                self._answer(stale, None, DeviceTimeout(self.device, "superseded by a retry"))
        else:
            version = max(version, wanted)
        update = HeadUpdate(
            device=self.device, version=version, head=head, checksum=zlib.crc32(head)
        )
        self.desired_head = version
        self._head = update
        self.counters["heads_sent"] += 1
        sent = self.connected and self._send(update)
        self._track("head", version, request, update, timeout)
        if not sent:
            self.counters["heads_deferred"] += 1

    def _pull_frame(self, request: PullFrame) -> None:
        ref = request.ref
        error: DeviceError | None = None
        if ref.device != self.device:
            error = FrameError(
                self.device,
                f"frame {ref.frame_id} belongs to {ref.device!r}; ask that device's twin",
            )
        elif self._puller is None:
            error = FrameError(
                self.device,
                f"the twin of {self.device} has no bulk lane to pull frames over; give it a "
                "frames= source",
            )
        if error is not None:
            self.counters["frames_failed"] += 1
            self._reply(request.reply_to, request, None, error)
            return
        rid = next(self._ids)
        message = FrameRequest(id=rid, device=self.device, frame_id=ref.frame_id)
        if not self.connected or not self._send(message):
            self.counters["frames_failed"] += 1
            away = DeviceAwayError(
                self.device,
                f"device {self.device} has no link to the node, so frame {ref.frame_id} "
                "cannot be pulled now; retry once it is back",
            )
            self._reply(request.reply_to, request, None, away)
            return
        self.counters["frames_requested"] += 1
        self._track("frame", rid, request, message, request.timeout)
        # The puller opens the lane (if it must) and waits for the frame meanwhile: a
        # device writes the frame before it answers, and it needs the lane to write it.
        twin = self.ref

        def done(frame: Any, error: BaseException | None) -> None:
            if not send_signal(twin, Fetched(rid, frame, error)) and frame is not None:
                frame.release()  # the twin is gone: give the slot back

        assert self._puller is not None
        self._pending["frame", rid].job = self._puller.pull(ref, request.timeout, done)

    def _on_command_result(self, result: CommandResult) -> None:
        entry = self._finish("command", result.id)
        if entry is None:
            self.counters["late_answers"] += 1
            return
        if result.ok:
            self.counters["commands_ok"] += 1
            self._answer(entry, result, None)
        else:
            self.counters["commands_failed"] += 1
            name = entry.message.name  # type: ignore[union-attr]
            error = DeviceRefusedError(
                self.device,
                f"device {self.device} refused command {name!r}: {result.detail or 'no reason'}",
                result.detail,
            )
            self._answer(entry, None, error)

    def _on_config_reported(self, report: ConfigReported) -> None:
        config = self.config
        config.report(report)
        if report.error is not None:
            self.counters["configs_refused"] += 1
            _log.warning("config_refused", device=self.device, error=report.error)
            self._config_settled(report)
        elif config.in_effect:
            self._config_settled(report)
        else:
            self._push_config()

    def _on_head_ack(self, ack: HeadAck) -> None:
        if ack.ok:
            self.reported_head = ack.version
        else:
            self.counters["heads_refused"] += 1
            _log.warning("head_refused", device=self.device, version=ack.version, error=ack.error)
            if self._head is not None and self._head.version == ack.version:
                self._head = None  # do not push a refused head again on reconnect
        entry = self._finish("head", ack.version)
        if entry is None:
            return
        if ack.ok:
            self._answer(entry, ack, None)
        else:
            error = DeviceRefusedError(
                self.device,
                f"device {self.device} refused head version {ack.version}: {ack.error}; it "
                f"keeps running version {self.reported_head}",
                ack.error or "",
            )
            self._answer(entry, None, error)

    def _on_frame_ready(self, ready: FrameReady) -> None:
        entry = self._pending.get(("frame", ready.id))
        if entry is None:
            self.counters["late_answers"] += 1
            return
        wanted = entry.request.ref
        problem = ready.error
        if ready.ref is not None:
            problem = frame_mismatch(wanted, ready.ref)
        if problem is not None:
            self._finish("frame", ready.id)
            self.counters["frames_failed"] += 1
            error = FrameError(
                self.device, f"device {self.device} cannot serve frame {wanted.frame_id}: {problem}"
            )
            self._answer(entry, None, error)
        # Otherwise the frame is on its way: the puller hands it over (Fetched).

    def _on_fetched(self, fetched: Fetched) -> None:
        entry = self._finish("frame", fetched.rid)
        if entry is None:
            if fetched.frame is not None:
                fetched.frame.release()  # its request timed out meanwhile
            return
        if fetched.error is not None:
            self.counters["frames_failed"] += 1
            error = FrameError(
                self.device,
                f"frame {entry.request.ref.frame_id} could not be pulled from {self.device}: "
                f"{fetched.error}",
            )
            self._answer(entry, None, error)
            return
        self.counters["frames_pulled"] += 1
        self._answer(entry, fetched.frame, None)

    def _on_error_reply(self, reply: ErrorReply) -> None:
        self._count_rejected(f"device_error_{reply.code}", reply.message)
        rid = reply.in_reply_to
        entry = None
        for kind in ("command", "frame"):
            if entry is None and rid is not None:
                entry = self._finish(kind, rid)
        if entry is None:
            return
        error = DeviceRefusedError(
            self.device, f"device {self.device} rejected the request: {reply.message}", reply.code
        )
        self._answer(entry, None, error)

    def _finish(self, kind: str, rid: int) -> Request | None:
        entry = self._pending.pop((kind, rid), None)
        if entry is not None:
            entry.timer.cancel()
            if entry.job is not None:
                entry.job.cancel()
        return entry

    def _answer(self, entry: Request, result: Any, error: BaseException | None) -> None:
        self._reply(entry.reply_to, entry.request, result, error)

    def _reply(
        self, reply_to: ReplyTo, request: Any, result: Any, error: BaseException | None
    ) -> None:
        if reply_to is None:
            if error is not None:
                _log.warning("device_request_failed", device=self.device, error=str(error))
            return
        if isinstance(reply_to, Future):
            if error is not None:
                reply_to.try_set_exception(error)
            elif not reply_to.try_set_result(result) and hasattr(result, "release"):
                result.release()  # nobody waits for this frame any more
            return
        try:
            reply_to.tell(TwinAnswer(self.device, request, result, error))
        except MailboxFull:
            self._count_rejected("reply_failed", reply_to.path)

    def _on_deadline(self, key: tuple[str, int]) -> None:
        entry = self._finish(*key)
        if entry is None:
            return
        self.counters[f"{entry.kind}s_timed_out"] += 1
        what = describe(entry)
        error: DeviceError
        if self.connected:
            error = DeviceTimeout(
                self.device, f"device {self.device} did not answer {what} in time"
            )
        else:
            error = DeviceAwayError(
                self.device,
                f"device {self.device} went away before it answered {what}; it gets the "
                "desired state again when it reconnects",
            )
        self._answer(entry, None, error)

    def _fail_pending(self, error: DeviceError) -> None:
        """Answer every request in flight with ``error`` (the twin is stopping)."""
        for key in list(self._pending):
            entry = self._finish(*key)
            assert entry is not None
            self._answer(entry, None, error)


def invalid_request(device: str, request: Any) -> InvalidRequestError | None:
    """Why ``request`` cannot go to ``device`` as a valid message, or None.

    Checked as the device would decode it (:func:`~edgeloop.messages.validate`), before
    anything is sent, so a bad value fails its requester instead of the link.
    """
    try:
        timeout = getattr(request, "timeout", DEFAULT_TIMEOUT)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout < 1e6
        ):
            msg = f"timeout must be a positive number of seconds, got {timeout!r}"
            raise ValueError(msg)
        if isinstance(request, RunCommand):
            validate(Command(id=0, device=device, name=request.name, args=dict(request.args)))
        elif isinstance(request, Configure):
            validate(ConfigDesired(device=device, version=0, settings=dict(request.settings)))
        elif isinstance(request, PushHead):
            head: object = request.head  # a request's fields are unchecked until here
            if not isinstance(head, bytes):
                msg = f"a head is bytes (HeadSpec), got {type(head).__name__}"
                raise TypeError(msg)
            version: object = request.version
            if isinstance(version, bool) or not isinstance(version, int) or version < 0:
                msg = f"a head's version is an integer >= 0, got {version!r}"
                raise ValueError(msg)
            validate(HeadUpdate(device=device, version=0, head=request.head, checksum=0))
        elif isinstance(request, PullFrame):
            ref: object = request.ref
            if not isinstance(ref, FrameRef):
                msg = f"a frame pull needs a FrameRef, got {type(ref).__name__}"
                raise TypeError(msg)
            validate(FrameRequest(id=0, device=device, frame_id=request.ref.frame_id))
        elif isinstance(request, Command | ConfigDesired | HeadUpdate):
            validate(request)
    except (DecodeError, TypeError, ValueError, AttributeError) as error:
        what = type(request).__name__
        return InvalidRequestError(device, f"invalid {what} for {device}: {error}")
    return None


def describe(entry: Request) -> str:
    message = entry.message
    if isinstance(message, Command):
        return f"command {message.name!r}"
    if isinstance(message, ConfigDesired):
        return f"configuration version {message.version}"
    if isinstance(message, HeadUpdate):
        return f"head version {message.version}"
    if isinstance(message, FrameRequest):
        return f"the request for frame {message.frame_id}"
    return type(message).__name__
