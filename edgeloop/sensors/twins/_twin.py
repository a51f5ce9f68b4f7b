"""SensorTwin: the node's live copy of one device.

One twin per device, supervised like any actor, registered with the node's
:class:`~edgeloop.supervisor.DevicePort`. It turns the device's at-least-once event
stream into an exactly-once, in-order one for its subscribers (a :class:`Sequencer`),
acknowledges cumulatively (every ``ack_every`` events or ``ack_delay`` seconds, whichever
comes first), keeps recent events for actors that restarted (``EventsSince``), holds the
desired configuration and head against what the device reports (as IoT device twins
do), and runs commands and frame pulls with timeouts and typed failures.

Everything the twin waits for (acks, gaps, request deadlines) is a timer on the node's
clock that sends the twin a signal, so its thread never sleeps or blocks, and a replay on
a virtual clock times out the same way a live run does.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import structlog

from edgeloop.actors import Actor, ActorRefLike, Down, send_signal, split_address
from edgeloop.clock import Timer
from edgeloop.errors import (
    ConfigError,
    DeviceError,
    MailboxFull,
)
from edgeloop.messages import (
    Command,
    CommandResult,
    ConfigDesired,
    ConfigReported,
    DeviceStatus,
    ErrorReply,
    Event,
    EventAck,
    EventsBatch,
    EventsSince,
    FrameReady,
    HeadAck,
    HeadUpdate,
    Message,
)
from edgeloop.sensors.twins._buffer import EventBuffer
from edgeloop.sensors.twins._desired import DesiredConfig
from edgeloop.sensors.twins._frames import (
    FramePuller,
    FrameSourceFactory,
    link_frames,
)
from edgeloop.sensors.twins._outbound import (
    DeviceRequests,
    Due,
    Fetched,
    Request,
    invalid_request,
)
from edgeloop.sensors.twins._requests import (
    Configure,
    GetState,
    PullFrame,
    PushHead,
    RunCommand,
    Subscribe,
    Unsubscribe,
)
from edgeloop.sensors.twins._sequencer import Sequencer
from edgeloop.sensors.twins._state import TwinState
from edgeloop.supervisor import DeviceDown, DeviceMessage, DevicePort, DeviceUp, device_port

__all__ = ["SensorTwin", "TWINS_SERVICE", "STATUS_SERVICE", "twin_states"]

_log = structlog.get_logger("edgeloop.sensors.twins")

TWINS_SERVICE = "twins"
"""The key under which a node's twins are listed in ``ActorSystem.services``."""

_NAME = re.compile(r"[A-Za-z0-9_.@:-]{1,128}")


def _positive(key: str, value: Any, *, integer: bool = False) -> Any:
    number = isinstance(value, int) or (not integer and isinstance(value, float))
    if isinstance(value, bool) or not number or not value > 0:
        what = "an integer" if integer else "a number of seconds"
        raise ConfigError(key, f"expected {what} > 0, got {value!r}")
    return value


class SensorTwin(DeviceRequests, Actor):
    """The twin of one device (a camera, by default).

    ``subscribers`` are actor addresses (``/yard/fusion``, ``edge-b:/yard/fusion``) told
    every event once, in order; more can ``Subscribe``. ``desired`` is the configuration
    the node wants from the start. ``frames`` (a factory, or ``"module:name"``) gives the
    twin its frame source: by default a bulk lane over the node's link to the device,
    opened on the first pull; ``None`` or ``False``: frame pulls fail with ``FrameError``.
    """

    kind = "camera"

    def __init__(
        self,
        device: str,
        subscribers: Sequence[str] = (),
        *,
        desired: Mapping[str, Any] | None = None,
        buffer_events: int = 10_000,
        reorder_limit: int = 1024,
        gap_timeout: float = 5.0,
        ack_every: int = 32,
        ack_delay: float = 0.02,
        frames: FrameSourceFactory | str | bool | None = link_frames,
    ) -> None:
        if not isinstance(device, str) or not _NAME.fullmatch(device):
            raise ConfigError(
                "device", f"expected a device name of letters, digits and _.@:-, got {device!r}"
            )
        if isinstance(subscribers, str) or not all(isinstance(s, str) for s in subscribers):
            raise ConfigError(
                "subscribers", f"expected a list of actor addresses, got {subscribers!r}"
            )
        for index, address in enumerate(subscribers):
            try:
                split_address(address)
            except ValueError as error:
                raise ConfigError(f"subscribers[{index}]", str(error)) from None
        if desired is not None and not isinstance(desired, Mapping):
            raise ConfigError("desired", f"expected a table of settings, got {desired!r}")
        if not (frames is None or frames is False or isinstance(frames, str) or callable(frames)):
            raise ConfigError(
                "frames", f"expected 'module:factory', false or a callable, got {frames!r}"
            )
        self.device = device
        self.buffer = EventBuffer(_positive("buffer_events", buffer_events, integer=True))
        self.sequencer = Sequencer(_positive("reorder_limit", reorder_limit, integer=True))
        self.gap_timeout = float(_positive("gap_timeout", gap_timeout))
        self.ack_every = _positive("ack_every", ack_every, integer=True)
        self.ack_delay = float(_positive("ack_delay", ack_delay))
        self._frames_factory = None if frames is False or frames is None else frames
        self._addresses: list[str] = list(subscribers)
        self._refs: dict[int, ActorRefLike] = {}
        self._remote: dict[str, ActorRefLike] = {}
        self.counters: Counter[str] = Counter()
        self.connected = False
        self.config = DesiredConfig(desired)
        self.desired_head: int | None = None
        self.reported_head: int | None = None
        # Events with a lower number were made before the device's latest status: a resent
        # one carries the head and configuration the device ran then, not now.
        self._fresh_from = 0
        self._head: HeadUpdate | None = None
        self._pending: dict[tuple[str, int], Request] = {}
        self._ids: itertools.count[int] = itertools.count(1)
        self._unacked = 0
        self._ack_timer: Timer | None = None
        self._gap_timer: Timer | None = None
        self._settle_timer: Timer | None = None
        self._puller: FramePuller | None = None
        self._port: DevicePort | None = None
        self._watermarks: dict[str, int] = {}
        self._resume: int | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def on_start(self) -> None:
        # Ids apart across restarts of this twin (the node's generator moves on), so a
        # device that remembers a command id never takes a new command for an old one.
        self._ids = itertools.count(self.system.random.getrandbits(40) << 8)
        self._port = device_port(self.system)
        self._start_frames()
        self._watermarks = _watermarks(self.system)
        self._resume = self._watermarks.get(self.device)
        _directory(self.system)[self.device] = self
        self._port.register(self.device, self.ref)

    def on_stop(self) -> None:
        if self._port is not None:
            self._port.unregister(self.device, self.ref)
        directory = _directory(self.system)
        if directory.get(self.device) is self:
            del directory[self.device]
        for timer in (self._ack_timer, self._gap_timer, self._settle_timer):
            if timer is not None:
                timer.cancel()
        if self.connected and self._unacked:
            self._send_ack()
        self._fail_pending(DeviceError(self.device, f"the twin of {self.device} stopped"))
        if self._puller is not None:
            self._puller.close()

    def _start_frames(self) -> None:
        factory = self._frames_factory
        if factory is None:
            return
        if isinstance(factory, str):
            from edgeloop.supervisor import resolve_start

            factory = resolve_start(factory)
        source = factory(self.device, self.system)
        if source is not None:
            self._puller = FramePuller(source, f"edgeloop:frames:{self.device}")

    # -- messages ----------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        cls = message.__class__
        if cls is DeviceMessage:
            inner = message.message
            if inner.__class__ is Event:
                self._on_event(message.device, inner)
            else:
                self._on_device_message(message.device, inner)
            return None
        if cls is Due:
            self._on_due(message)
        elif cls is DeviceUp:
            self._on_up(message)
        elif cls is DeviceDown:
            self._on_down(message)
        elif cls is EventsSince:
            return self._events_since(message)
        elif cls is GetState:
            return self.state()
        elif cls is Fetched:
            self._on_fetched(message)
        elif cls is Subscribe:
            self._subscribe(message.subscriber)
        elif cls is Unsubscribe:
            self._unsubscribe(message.subscriber)
        elif cls is Down:
            self._refs.pop(id(message.ref), None)
        elif _is_events_since(message):
            request = EventsSince(
                device=message.device, after_seq=message.after_seq, reply_to=message.reply_to
            )
            return self._events_since(request)
        else:
            return self._on_request(message)
        return None

    def _on_request(self, message: Any) -> Any:
        problem = invalid_request(self.device, message)
        if problem is not None:
            self._count_rejected("bad_request", str(problem))
            self._reply(getattr(message, "reply_to", None), message, None, problem)
            return None
        if isinstance(message, RunCommand):
            self._run_command(message.name, dict(message.args), message.timeout, message)
        elif isinstance(message, Command):
            self._run_command(message.name, dict(message.args), None, message)
        elif isinstance(message, Configure):
            self._configure(dict(message.settings), message.timeout, message)
        elif isinstance(message, ConfigDesired):
            self._configure(dict(message.settings), None, message)
        elif isinstance(message, PushHead):
            self._push_head(message.head, message.timeout, message)
        elif isinstance(message, HeadUpdate):
            self._push_head(message.head, None, message)
        elif isinstance(message, PullFrame):
            self._pull_frame(message)
        else:
            self._count_rejected("unknown_request", type(message).__name__)
        return None

    # -- events ------------------------------------------------------------------------

    def _on_event(self, device: str, event: Event) -> None:
        if event.device != self.device or device != self.device:
            self._reject_from_device(
                "wrong_device",
                f"event of device {event.device!r} on the link of {device!r}, whose twin "
                f"serves {self.device!r}; an event's device must be its sender's name",
            )
            return
        if event.seq >= self._fresh_from:
            self._versions_from(event)
        sequencer = self.sequencer
        offer = sequencer.offer(event)
        if offer.deliver:
            self._deliver(offer.deliver)
        elif offer.opened_gap and sequencer.anchored:
            self._on_gap()
        elif offer.opened_gap:
            # A fresh twin waits for the device's status to say where the stream starts.
            self._settle_timer = self._after(self.gap_timeout, Due("settle"))
        if sequencer.full and sequencer.anchored:
            self._skip_gap("the hold of events behind it is full")
        elif sequencer.full:
            self._anchor(sequencer.lowest_held or event.seq, "the hold is full")
        self._unacked += 1
        if self._unacked >= self.ack_every:
            self._send_ack()
        elif self._ack_timer is None:
            self._ack_timer = self._after(self.ack_delay, Due("ack"))

    def _deliver(self, events: Sequence[Event]) -> None:
        self._watermarks[self.device] = events[-1].seq
        buffer = self.buffer
        for event in events:
            if buffer.append(event) is not None and buffer.evicted == 1:
                _log.info(
                    "twin_buffer_evicting",
                    device=self.device,
                    capacity=buffer.capacity,
                    hint="EventsSince answers for older events say complete=false",
                )
        for target in self._targets():
            try:
                for event in events:
                    target.tell(event)
            except MailboxFull:
                self._count_rejected("subscriber_full", target.path)
        self.delivered(events)

    def delivered(self, events: Sequence[Event]) -> None:
        """A hook for subclasses: ``events`` were just delivered, in order, once each
        (after the subscribers were told). Runs in the twin's thread: keep it quick."""

    def _targets(self) -> list[ActorRefLike]:
        if not self._addresses and not self._refs:
            return []
        targets: list[ActorRefLike] = []
        system = self.system
        for address in self._addresses:
            node, path = split_address(address)
            if node is None or node == system.name:
                ref = system.lookup(path)
                if ref is None:
                    self.counters["subscriber_missing"] += 1
                    continue
                targets.append(ref)
            else:
                remote = self._remote.get(address)
                if remote is None:
                    remote = self._remote[address] = system.ref(address)
                targets.append(remote)
        targets.extend(self._refs.values())
        return targets

    def _on_gap(self) -> None:
        missing = self.sequencer.missing
        # An ack that does not move tells the device where the stream stopped; a device
        # may resend from there at once instead of waiting for a reconnect.
        self._send_ack()
        if self._gap_timer is None and missing is not None:
            self._gap_timer = self._after(self.gap_timeout, Due("gap", missing))

    def _skip_gap(self, why: str) -> None:
        if self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None
        gap, released = self.sequencer.skip_gap()
        if gap is None:
            return
        _log.warning(
            "events_lost",
            device=self.device,
            first=gap[0],
            last=gap[1],
            lost=gap[1] - gap[0] + 1,
            why=why,
        )
        self._deliver(released)
        self._send_ack()
        if self.sequencer.missing is not None:
            self._on_gap()

    def _anchor(self, first: int, why: str) -> None:
        """Start the stream at ``first`` (or after what an earlier incarnation of this twin
        delivered): deliver what became deliverable, ack it."""
        resume = self._resume
        if resume is not None and resume >= first:
            first, why = resume + 1, f"{why}, after what this twin delivered before"
        if self._settle_timer is not None:
            self._settle_timer.cancel()
            self._settle_timer = None
        released = self.sequencer.anchor(first)
        if resume is not None and first > resume + 1:
            # Between what the last incarnation delivered and where the stream now
            # starts: events that died with it and that the device no longer holds.
            counters = self.sequencer.counters
            counters.lost += first - resume - 1
            counters.gaps += 1
            _log.warning(
                "events_lost",
                device=self.device,
                first=resume + 1,
                last=first - 1,
                lost=first - resume - 1,
                why="lost with the twin's last incarnation; the device no longer holds them",
            )
        _log.info("twin_anchored", device=self.device, first=first, why=why)
        if released:
            self._deliver(released)
        if self.sequencer.missing is not None:
            self._on_gap()
        else:
            self._send_ack()

    def _send_ack(self) -> None:
        # A running ack timer is left to fire (it acks only if something is unacked
        # then): one timer per ack_delay, not one per ack, keeps the clock thread quiet.
        self._unacked = 0
        seq = self.sequencer.delivered
        if seq is None:
            return
        if self._send(EventAck(device=self.device, seq=seq)):
            self.counters["acks_sent"] += 1

    def _events_since(self, request: EventsSince) -> EventsBatch:
        try:  # built in Python, a request's fields are unchecked until decoded as on a link
            request = msgspec.msgpack.decode(msgspec.msgpack.encode(request), type=EventsSince)
        except (msgspec.DecodeError, TypeError) as error:
            self._count_rejected("bad_request", f"EventsSince: {error}")
            return EventsBatch(
                device=self.device, events=(), complete=False, more=False, delivered_seq=0
            )
        if request.device != self.device:
            self._count_rejected("wrong_device", f"EventsSince for {request.device}")
            batch = EventsBatch(
                device=request.device, events=(), complete=False, more=False, delivered_seq=0
            )
        else:
            batch = self._batch(request)
        if request.reply_to is not None:
            # Told: the events go again to reply_to, oldest first, as live ones do, so a
            # restarted learner takes them in on its usual path (and drops what it has).
            try:
                target = self.system.ref(request.reply_to)
                for event in batch.events:
                    target.tell(event)
            except (LookupError, ValueError, MailboxFull) as error:
                self._count_rejected("reply_failed", f"{request.reply_to}: {error}")
            else:
                self.counters["events_replayed"] += len(batch.events)
        return batch

    def _batch(self, request: EventsSince) -> EventsBatch:
        buffer = self.buffer
        after = request.after_seq
        if request.since_ts is None:
            events = buffer.after_seq(after, request.limit + 1)
        else:
            events = [e for e in buffer.since_time(request.since_ts, 10**9) if e.seq > after]
            events = events[: request.limit + 1]
        more = len(events) > request.limit
        events = events[: request.limit]
        seq = self.sequencer
        delivered = seq.delivered or 0
        # Complete unless something after ``after`` was evicted, lost in a gap, or came
        # before this twin started (a fresh twin does not know what it never saw).
        start = seq.started_at if seq.started_at is not None else delivered + 1
        complete = buffer.evicted_through <= after and seq.counters.lost == 0 and start <= after + 1
        if request.since_ts is not None and buffer.evicted and after < buffer.evicted_through:
            complete = False
        return EventsBatch(
            device=self.device,
            events=tuple(events),
            complete=complete or delivered <= after,
            more=more,
            delivered_seq=delivered,
        )

    def _versions_from(self, event: Event) -> None:
        """What a fresh event says the device runs. A head only moves forward here: an
        event made before the device applied a head can arrive after its ``HeadAck``
        (the ack and the statuses are what may move it back)."""
        head = self.reported_head
        if head is None or event.head_version > head:
            self.reported_head = event.head_version
        config = self.config
        reported = config.reported
        if reported is None or reported.version != event.config_version:
            first = not config.known
            config.report_version(event.config_version)
            if first:
                self._push_config()

    # -- link --------------------------------------------------------------------------

    def _on_up(self, up: DeviceUp) -> None:
        self.connected = True
        self.counters["connects"] += 1
        self._send_ack()
        self.config.link_changed()
        self._push_config()
        if self._head is not None and self.reported_head != self._head.version:
            self._send(self._head)
        for entry in self._pending.values():
            if entry.kind == "command":
                self._send(entry.message)

    def _on_down(self, down: DeviceDown) -> None:
        self.connected = False
        self.config.link_changed()
        self.counters["disconnects"] += 1
        _log.info("device_down", device=self.device, reason=down.reason)

    def _send(self, message: Message) -> bool:
        port = self._port
        return port is not None and port.send(self.device, message)

    def _after(self, delay: float, due: Due) -> Timer:
        ref = self.ref

        def fire() -> None:
            send_signal(ref, due)

        return self.system.clock.call_later(delay, fire)

    # -- requests ----------------------------------------------------------------------

    def _on_device_message(self, device: str, message: Message) -> None:
        cls = message.__class__
        if cls is CommandResult:
            self._on_command_result(message)  # type: ignore[arg-type]
        elif cls is ConfigReported:
            self._on_config_reported(message)  # type: ignore[arg-type]
        elif cls is HeadAck:
            self._on_head_ack(message)  # type: ignore[arg-type]
        elif cls is FrameReady:
            self._on_frame_ready(message)  # type: ignore[arg-type]
        elif cls is DeviceStatus:
            self._on_status(message)  # type: ignore[arg-type]
        elif cls is ErrorReply:
            self._on_error_reply(message)  # type: ignore[arg-type]
        else:
            self._count_rejected("unexpected_kind", type(message).__name__)
        self.on_device_message(message)

    def on_device_message(self, message: Message) -> None:
        """A hook for subclasses: every non-event message, after the twin handled it."""

    def _on_status(self, status: DeviceStatus) -> None:
        """The device's own report: versions, losses, what it still holds."""
        self.reported_head = status.head_version
        self.config.report_version(status.config_version)
        self._fresh_from = status.next_seq
        counters = self.counters
        for name, value in (
            ("device_outbox_dropped", status.outbox_dropped),
            ("device_frames_evicted", status.frames_evicted),
        ):
            if value > counters[name]:
                _log.warning(name, device=self.device, total=value)
            counters[name] = value
        counters["device_boot"] = status.boot
        counters["device_outbox_depth"] = status.outbox_depth
        if not self.sequencer.anchored:
            if self._resume is not None and status.next_seq - 1 < self._resume:
                self._resume = None  # the device renumbered while this twin was down
            self._anchor(status.oldest_seq, "the device's status")
        seq = self.sequencer
        if seq.delivered is not None and status.next_seq - 1 < seq.delivered:
            # The device numbers from below what was delivered: it lost its journal.
            _log.warning(
                "device_renumbered",
                device=self.device,
                delivered=seq.delivered,
                next_seq=status.next_seq,
            )
            counters["device_renumbered"] += 1
            self._watermarks[self.device] = status.oldest_seq - 1  # old numbers mean nothing
            self._resume = None
            self.sequencer = Sequencer(seq.reorder_limit, status.oldest_seq - 1)
            self.sequencer.counters = seq.counters
            self.buffer.clear()
        elif seq.delivered is not None and status.oldest_seq > seq.delivered + 1:
            lost, released = seq.skip_to(status.oldest_seq)
            if lost:
                _log.warning(
                    "events_lost",
                    device=self.device,
                    first=status.oldest_seq - lost,
                    last=status.oldest_seq - 1,
                    lost=lost,
                    why="the device dropped them (its outbox overflowed)",
                )
            if self._gap_timer is not None and seq.missing is None:
                self._gap_timer.cancel()
                self._gap_timer = None
            if released:
                self._deliver(released)
            self._send_ack()
        self._push_config()

    def _on_due(self, due: Due) -> None:
        if due.what == "ack":
            self._ack_timer = None
            if self._unacked:
                self._send_ack()
        elif due.what == "gap":
            self._gap_timer = None
            if self.sequencer.missing == due.key:
                self._skip_gap(f"not filled within {self.gap_timeout} s")
            elif self.sequencer.missing is not None:
                self._on_gap()
        elif due.what == "settle":
            self._settle_timer = None
            lowest = self.sequencer.lowest_held
            if not self.sequencer.anchored and lowest is not None:
                self._anchor(lowest, f"no device status within {self.gap_timeout} s")
        elif due.what == "deadline":
            self._on_deadline(due.key)

    # -- subscribers -------------------------------------------------------------------

    def _subscribe(self, subscriber: ActorRefLike | str) -> None:
        if isinstance(subscriber, str):
            try:
                split_address(subscriber)
            except ValueError as error:
                self._count_rejected("bad_subscriber", str(error))
                return
            if subscriber not in self._addresses:
                self._addresses.append(subscriber)
            return
        if id(subscriber) not in self._refs:
            self._refs[id(subscriber)] = subscriber
            self.watch(subscriber)

    def _unsubscribe(self, subscriber: ActorRefLike | str) -> None:
        if isinstance(subscriber, str):
            if subscriber in self._addresses:
                self._addresses.remove(subscriber)
            return
        if self._refs.pop(id(subscriber), None) is not None:
            self.unwatch(subscriber)

    # -- bad input and state -----------------------------------------------------------

    def _reject_from_device(self, reason: str, text: str) -> None:
        self._count_rejected(reason, text)
        self._send(ErrorReply(code=reason, message=text))

    def _count_rejected(self, reason: str, detail: str) -> None:
        self.counters[reason] += 1
        count = self.counters[reason]
        if count <= 10 or count % 1000 == 0:
            _log.warning(
                "twin_rejected", device=self.device, reason=reason, detail=detail, count=count
            )

    def statistics_counters(self) -> dict[str, int]:
        """Every counter of this twin (its own, the sequencer's and the buffer's)."""
        seq = self.sequencer.counters
        counters = dict(self.counters)
        counters.update(
            received=seq.received,
            delivered=seq.delivered,
            duplicates=seq.duplicates,
            lost=seq.lost,
            gaps=seq.gaps,
            held=self.sequencer.held,
            buffered=len(self.buffer),
            buffer_evicted=self.buffer.evicted,
            pending=len(self._pending),
        )
        return counters

    def state(self) -> TwinState:
        """A snapshot of desired vs reported state and the counters."""
        return TwinState(
            device=self.device,
            kind=self.kind,
            connected=self.connected,
            desired_config=self.config.desired,
            reported_config=self.config.reported,
            desired_head=self.desired_head,
            reported_head=self.reported_head,
            delivered_seq=self.sequencer.delivered,
            counters=self.statistics_counters(),
            extra=self.extra_state(),
        )

    def extra_state(self) -> dict[str, Any]:
        """What a subclass adds to its state (a trap's position)."""
        return {}


def _is_events_since(message: Any) -> bool:
    """Whether ``message`` is an ``events_since`` request of another module's own Struct
    (the learner's), told apart by its wire tag: the sibling packages share no code."""
    config = getattr(message.__class__, "__struct_config__", None)
    return (
        config is not None
        and config.tag == "events_since"
        and all(hasattr(message, f) for f in ("device", "after_seq", "reply_to"))
    )


STATUS_SERVICE = "status:twins"
"""Where the twins offer ``node status`` a section of their own: a callable answering
:func:`twin_states` (the node's status reads ``status:*`` services, when it does)."""


WATERMARKS_SERVICE = "twins:delivered"
"""Where twins keep the last sequence number each delivered, by device: it outlives a
twin's crash (as an ETS table with an heir outlives its owner in OTP), so a restarted
twin does not deliver again what its previous incarnation delivered."""


def _watermarks(system: Any) -> dict[str, int]:
    marks: dict[str, int] = system.services.setdefault(WATERMARKS_SERVICE, {})
    return marks


def _directory(system: Any) -> dict[str, SensorTwin]:
    directory: dict[str, SensorTwin] | None = system.services.get(TWINS_SERVICE)
    if directory is None:
        directory = system.services.setdefault(TWINS_SERVICE, {})
        system.services.setdefault(STATUS_SERVICE, functools.partial(twin_states, system))
    return directory


def twin_states(system: Any) -> dict[str, dict[str, Any]]:
    """Every running twin's state as builtins, by device (for ``node status``).

    Read from another thread without stopping the twins: each figure is current, the
    set of them is not one atomic snapshot.
    """
    directory: Mapping[str, SensorTwin] = system.services.get(TWINS_SERVICE, {})
    return {device: twin.state().to_json() for device, twin in sorted(dict(directory).items())}
