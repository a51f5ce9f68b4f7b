"""What other code sends a twin, and the client that turns it into futures.

Events flow out of a twin by themselves (to its subscribers). Everything else is a
request: a command, a desired configuration, a new head, a frame pull. These take a
round trip to the device, so the twin cannot answer them from ``on_receive``: each
request carries where its answer goes, a :class:`~edgeloop.actors.Future` (for code
outside actors, and for actors that add a done-callback) or an actor ref (told a
:class:`TwinAnswer`). :class:`TwinClient` builds the requests and their futures.

Actors that only decide and never wait (a learner closing a trap) may also tell the twin
the wire messages themselves: ``Command``, ``ConfigDesired`` and ``HeadUpdate``; the twin
sends them with its own ids and versions, and the outcome shows in its statistics.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, TypeAlias

from edgeloop.actors import ActorRef, ActorRefLike, Future
from edgeloop.messages import (
    CommandResult,
    ConfigReported,
    EventsBatch,
    EventsSince,
    FrameRef,
    HeadAck,
    Params,
)

__all__ = [
    "ReplyTo",
    "RunCommand",
    "Configure",
    "PushHead",
    "PullFrame",
    "Subscribe",
    "Unsubscribe",
    "GetState",
    "TwinAnswer",
    "TwinClient",
    "DEFAULT_TIMEOUT",
]

DEFAULT_TIMEOUT = 5.0
"""Seconds a request to a device may take unless told otherwise."""

ReplyTo: TypeAlias = "Future[Any] | ActorRefLike | None"
"""Where a request's answer goes: a future to complete, an actor to tell, or nowhere."""


@dataclasses.dataclass(frozen=True, slots=True)
class RunCommand:
    """Run command ``name`` with ``args`` on the device; answers its ``CommandResult``
    (fails with ``DeviceRefusedError`` when the device says no)."""

    name: str
    args: Params = dataclasses.field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    reply_to: ReplyTo = None


@dataclasses.dataclass(frozen=True, slots=True)
class Configure:
    """Make ``settings`` the device's desired configuration (a new version); answers the
    ``ConfigReported`` that shows it in effect, or fails with ``DeviceRefusedError``."""

    settings: Params
    timeout: float = DEFAULT_TIMEOUT
    reply_to: ReplyTo = None


@dataclasses.dataclass(frozen=True, slots=True)
class PushHead:
    """Make ``head`` (``HeadSpec`` bytes) the device's desired on-device head; answers
    the device's ``HeadAck`` once it runs it, or fails with ``DeviceRefusedError``."""

    head: bytes
    timeout: float = DEFAULT_TIMEOUT
    reply_to: ReplyTo = None
    version: int = 0
    """The version to give it (0: the next one); pushing the head the device was last
    sent again, with its version, resends it unchanged (a retry)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PullFrame:
    """Fetch the full frame ``ref`` names over the bulk lane; answers a bulk ``Frame``
    (checked against the ref; release it when done) or fails with ``FrameError``."""

    ref: FrameRef
    timeout: float = DEFAULT_TIMEOUT
    reply_to: ReplyTo = None


@dataclasses.dataclass(frozen=True, slots=True)
class Subscribe:
    """Deliver the device's events to ``subscriber`` (a ref, or an address such as
    ``/yard/fusion`` looked up at each delivery, so a restarted subscriber keeps them)."""

    subscriber: ActorRefLike | str


@dataclasses.dataclass(frozen=True, slots=True)
class Unsubscribe:
    subscriber: ActorRefLike | str


@dataclasses.dataclass(frozen=True, slots=True)
class GetState:
    """Ask it: the twin answers its :class:`~edgeloop.sensors.twins.TwinState` at once."""


@dataclasses.dataclass(frozen=True, slots=True)
class TwinAnswer:
    """What a twin tells a ``reply_to`` actor: the request, and its result or error."""

    device: str
    request: Any
    result: Any = None
    error: BaseException | None = None


class TwinClient:
    """Typed requests to one twin, each answered by a future.

    Inside an actor, never ``get()`` such a future: add a done-callback that tells the
    actor itself. The futures' deadlines allow a second beyond the twin's own timeout,
    which is what fails them first (with a typed ``DeviceError``).
    """

    __slots__ = ("device", "ref")

    def __init__(self, ref: ActorRef, device: str | None = None) -> None:
        self.ref = ref
        self.device = device if device is not None else ref.name
        """The twin's device (by default the last segment of its path, as ``Devices``
        names them)."""

    def command(
        self, name: str, args: Params | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> Future[CommandResult]:
        future = self._future(timeout, f"command {name!r}")
        self.ref.tell(RunCommand(name, dict(args or {}), timeout, future))
        return future

    def configure(
        self, settings: Params, *, timeout: float = DEFAULT_TIMEOUT
    ) -> Future[ConfigReported]:
        future = self._future(timeout, "configure")
        self.ref.tell(Configure(dict(settings), timeout, future))
        return future

    def push_head(
        self, head: bytes, *, timeout: float = DEFAULT_TIMEOUT, version: int = 0
    ) -> Future[HeadAck]:
        future = self._future(timeout, "head update")
        self.ref.tell(PushHead(head, timeout, future, version))
        return future

    def pull_frame(self, ref: FrameRef, *, timeout: float = DEFAULT_TIMEOUT) -> Future[Any]:
        future = self._future(timeout, f"frame {ref.frame_id}")
        self.ref.tell(PullFrame(ref, timeout, future))
        return future

    def events_since(
        self, after_seq: int = 0, *, since_ts: float | None = None, limit: int = 10_000
    ) -> Future[EventsBatch]:
        request = EventsSince(
            device=self.device, after_seq=after_seq, since_ts=since_ts, limit=limit
        )
        return self.ref.ask(request)

    def state(self) -> Future[Any]:
        return self.ref.ask(GetState())

    def subscribe(self, subscriber: ActorRefLike | str) -> None:
        self.ref.tell(Subscribe(subscriber))

    def unsubscribe(self, subscriber: ActorRefLike | str) -> None:
        self.ref.tell(Unsubscribe(subscriber))

    def _future(self, timeout: float, what: str) -> Future[Any]:
        describe = f"{what} of {self.ref.path}"
        return Future(time.monotonic() + timeout + 1.0, describe)
