"""DevicePort: the node's boundary with its devices.

Devices (cameras, traps) connect to the node's ROUTER as link role ``device``; their
messages are not for remote actors, so :class:`~edgeloop.supervisor.Remoting` hands them
here. The port routes each to the actor registered for that device (its twin), sends the
twins' messages back out, and lets taps see both directions: the recorder writes what
crossed the boundary, and the player feeds it back in through :meth:`DevicePort.inject`
(with :meth:`DevicePort.set_sink` standing in for the link), so a replay goes through
exactly the path a live message takes::

    port = device_port(self.system)          # inside an actor of the node
    port.register("cam-1", self.ref)         # DeviceMessage / DeviceUp / DeviceDown arrive
    port.send("cam-1", EventAck(device="cam-1", seq=17))

Inbound delivery never blocks the I/O thread: a twin whose mailbox is full loses the
message (counted as ``mailbox_full``), which is safe because devices resend whatever
their twin has not acknowledged. On an endpoint that runs turn hooks, what one turn of
its I/O loop read for one twin goes to it at the end of the turn in one mailbox put
(:meth:`DevicePort.flush`): the twin wakes once per turn, not once per message.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import structlog

from edgeloop.actors import ActorRef, ActorSystem
from edgeloop.errors import MailboxFull, NodeError, PathTakenError
from edgeloop.messages import ErrorReply, Message

if TYPE_CHECKING:
    from edgeloop.supervisor._remote import EndpointLike

__all__ = [
    "DevicePort",
    "DeviceMessage",
    "DeviceUp",
    "DeviceDown",
    "TapRecord",
    "Tap",
    "Sink",
    "DevicePortStatistics",
    "device_port",
    "SERVICE",
]

SERVICE = "devices"
"""The key of the node's port in ``ActorSystem.services``."""

_log = structlog.get_logger("edgeloop.devices")


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceMessage:
    """A message from ``device``, received at ``received_at`` on the node's clock."""

    device: str
    message: Message
    received_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceUp:
    """The device's link finished its handshake (``reconnected`` if it was up before)."""

    device: str
    reconnected: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceDown:
    """The device's link was lost or closed (``reason`` as the endpoint gave it)."""

    device: str
    reason: str


class TapRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One message that crossed the boundary: ``in`` from a device, ``out`` to one.

    A msgspec struct, not a dataclass: built in C on the node's I/O path (a third of a
    slots dataclass's cost), shared read-only by every tap, and encoded as it is (a
    four-item array) by a recorder that pipes records to a writer process. Not tracked
    by the garbage collector: it refers to a message, never back to itself.
    """

    direction: Literal["in", "out"]
    device: str
    message: Message
    ts: float


Tap = Callable[[TapRecord], None]
"""Sees every boundary crossing, synchronously on the I/O path: it must never block."""

Sink = Callable[[str, Message], bool]
"""Stands in for the link when the node has none (replay): True if it took the message."""


@dataclasses.dataclass(frozen=True, slots=True)
class DevicePortStatistics:
    """Counters of the port: ``received``, ``sent``, and rejections/losses by reason."""

    registered: int
    connected: int
    counters: Mapping[str, int]


class DevicePort:
    """Routes device messages to the actors registered for them, and theirs back out."""

    def __init__(self, system: ActorSystem) -> None:
        self.system = system
        self._clock = system.clock
        self._lock = threading.Lock()
        self._routes: dict[str, ActorRef] = {}
        self._connected: set[str] = set()
        self._taps: list[Tap] = []
        self._endpoint: EndpointLike | None = None
        self._sink: Sink | None = None
        self._counters: Counter[str] = Counter()
        # What this turn of the endpoint's I/O loop read, by twin (I/O thread only).
        self._batch: dict[ActorRef, tuple[str, list[DeviceMessage]]] = {}
        self._on_io_thread: Callable[[], bool] | None = None  # batching while attached
        # Where flush runs: kept after a detach, so that the turn in progress still
        # hands over what it gathered.
        self._flush_thread: Callable[[], bool] | None = None

    # -- wiring ------------------------------------------------------------------------

    def attach(self, endpoint: EndpointLike | None) -> None:
        """Send through ``endpoint`` from now on (``None``: no link, the sink decides).

        An endpoint with turn hooks (the ZeroMQ one) gets :meth:`flush` as one, and
        messages it delivers are batched per twin and turn; call this before it starts.
        """
        self._endpoint = endpoint
        after_turn = getattr(endpoint, "after_turn", None)
        on_io_thread = getattr(endpoint, "on_io_thread", None)
        if callable(after_turn) and callable(on_io_thread):
            after_turn(self.flush)
            self._on_io_thread = self._flush_thread = on_io_thread
        else:
            self._on_io_thread = None

    @property
    def endpoint(self) -> EndpointLike | None:
        """The node's link endpoint (bulk lanes to devices open on it), if it has links."""
        return self._endpoint

    def set_sink(self, sink: Sink | None) -> None:
        """Where :meth:`send` goes when the node has no endpoint (replay, tests)."""
        self._sink = sink

    def add_tap(self, tap: Tap) -> Callable[[], None]:
        """Let ``tap`` see every message in and out; returns a function that removes it."""
        with self._lock:
            self._taps = [*self._taps, tap]

        def remove() -> None:
            with self._lock:
                self._taps = [t for t in self._taps if t is not tap]

        return remove

    # -- routes ------------------------------------------------------------------------

    def register(self, device: str, ref: ActorRef) -> None:
        """Deliver ``device``'s messages to ``ref`` (PathTakenError if a live one has it)."""
        with self._lock:
            current = self._routes.get(device)
            if current is not None and current is not ref and current.is_alive():
                msg = (
                    f"device {device!r} is already served by {current.path}; "
                    "unregister it first or give the device another name"
                )
                raise PathTakenError(msg)
            self._routes[device] = ref
            up = device in self._connected
        if up:
            self._tell(device, ref, DeviceUp(device))

    def unregister(self, device: str, ref: ActorRef) -> None:
        """Stop delivering ``device``'s messages to ``ref`` (no-op if another holds it)."""
        with self._lock:
            if self._routes.get(device) is ref:
                del self._routes[device]

    def devices(self) -> list[str]:
        """The devices with a registered actor, sorted."""
        with self._lock:
            return sorted(self._routes)

    def connected(self, device: str) -> bool:
        """Whether ``device`` has a ready link to this node now."""
        with self._lock:
            return device in self._connected

    def connected_devices(self) -> list[str]:
        with self._lock:
            return sorted(self._connected)

    def route(self, device: str) -> ActorRef | None:
        """The actor registered for ``device``, if any."""
        with self._lock:
            return self._routes.get(device)

    # -- traffic -----------------------------------------------------------------------

    def send(self, device: str, message: Message) -> bool:
        """Send ``message`` to ``device``; False if it has no ready link (keep it, retry)."""
        taps = self._taps
        if taps:  # a node that records nothing builds no records
            self._notify(taps, TapRecord("out", device, message, self._clock.now()))
        endpoint, sink = self._endpoint, self._sink
        if endpoint is not None:
            ok = device in self._connected and endpoint.send(device, message)
        elif sink is not None:
            ok = sink(device, message)
        else:
            ok = False
        self._count("sent" if ok else "unsent")
        return ok

    def inject(self, device: str, message: Message) -> None:
        """Take ``message`` as if ``device`` had just sent it over its link (replay)."""
        self.on_message(device, message)

    def on_message(self, device: str, message: Message) -> None:
        """The endpoint's (or Remoting's) callback for a device message; never blocks."""
        now = self._clock.now()
        with self._lock:
            ref = self._routes.get(device)
        if ref is None:
            self._reject_unknown(device, message)
            return
        taps = self._taps
        if taps:
            self._notify(taps, TapRecord("in", device, message, now))
        self._count("received")
        delivery = DeviceMessage(device, message, now)
        on_io_thread = self._on_io_thread
        if on_io_thread is not None and on_io_thread():
            batch = self._batch.get(ref)
            if batch is None:
                self._batch[ref] = (device, [delivery])
            else:
                batch[1].append(delivery)
            return
        if self._batch:
            self.flush()  # detached mid-turn: what was gathered goes first
        self._tell(device, ref, delivery)

    def flush(self) -> None:
        """Hand every twin what this turn of the I/O loop read for it, in order, with one
        mailbox put (the endpoint's turn hook; a no-op when nothing is gathered, and off
        the I/O thread, where nothing is gathered)."""
        on_io_thread = self._flush_thread
        if not self._batch or on_io_thread is None or not on_io_thread():
            return
        batch, self._batch = self._batch, {}
        for ref, (device, deliveries) in batch.items():
            if len(deliveries) == 1:
                self._tell(device, ref, deliveries[0])
                continue
            if not ref.is_alive():
                self._count("actor_dead")
            left = ref.tell_many(deliveries)
            if left:
                self._dropped(device, ref, len(left))

    def on_peer(self, peer: str, up: bool, *, reconnected: bool = False, reason: str = "") -> None:
        """A device link came up or went down (node peers are told apart by the caller)."""
        if self._batch:
            self.flush()  # what the device sent before it went down goes first
        with self._lock:
            if up:
                self._connected.add(peer)
            else:
                self._connected.discard(peer)
            ref = self._routes.get(peer)
        if ref is not None:
            event = DeviceUp(peer, reconnected) if up else DeviceDown(peer, reason)
            self._tell(peer, ref, event)

    def on_undelivered(self, device: str, message: object, reason: str) -> None:
        """The endpoint accepted ``message`` for ``device`` but dropped it."""
        count = self._count("undeliverable")
        if count <= 10 or count % 1000 == 0:
            _log.info(
                "device_message_undelivered",
                device=device,
                kind=type(message).__name__,
                reason=reason,
                undeliverable=count,
            )

    def statistics(self) -> DevicePortStatistics:
        with self._lock:
            return DevicePortStatistics(
                registered=len(self._routes),
                connected=len(self._connected),
                counters=MappingProxyType(dict(self._counters)),
            )

    # -- internals ---------------------------------------------------------------------

    def _tell(self, device: str, ref: ActorRef, event: Any) -> None:
        if not ref.is_alive():  # stopped, not yet replaced: the tell makes a dead letter
            self._count("actor_dead")
        try:
            ref.tell(event, block=False)
        except MailboxFull:
            self._dropped(device, ref, 1)

    def _dropped(self, device: str, ref: ActorRef, n: int) -> None:
        with self._lock:
            before = self._counters["mailbox_full"]
            count = self._counters["mailbox_full"] = before + n
        if before < 10 or count // 1000 > before // 1000:
            _log.warning(
                "device_message_dropped",
                device=device,
                actor=ref.path,
                reason="mailbox_full",
                dropped=count,
            )

    def _reject_unknown(self, device: str, message: Message) -> None:
        count = self._count("unknown_device")
        if count <= 10 or count % 1000 == 0:
            _log.warning(
                "device_unknown",
                device=device,
                kind=type(message).__name__,
                unknown_device=count,
            )
        endpoint = self._endpoint
        if endpoint is not None and not isinstance(message, ErrorReply):
            endpoint.send(
                device,
                ErrorReply(
                    code="unknown_device",
                    message=(
                        f"this node serves no device called {device!r}; add it to the "
                        "node's app file (or check the device's name)"
                    ),
                ),
            )

    def _notify(self, taps: list[Tap], record: TapRecord) -> None:
        for tap in taps:
            try:
                tap(record)
            except Exception as error:  # noqa: BLE001 (a broken tap must not break the boundary)
                count = self._count("tap_failed")
                if count <= 10 or count % 1000 == 0:
                    _log.error("device_tap_failed", error=repr(error), failed=count)

    def _count(self, reason: str) -> int:
        with self._lock:
            self._counters[reason] += 1
            return self._counters[reason]


def device_port(system: ActorSystem) -> DevicePort:
    """The device port of the node that ``system`` belongs to."""
    port = system.services.get(SERVICE)
    if not isinstance(port, DevicePort):
        msg = (
            f"actor system {system.name!r} belongs to no edgeloop Node, so it has no device "
            "port; run the actor inside a Node"
        )
        raise NodeError(msg)
    return port
