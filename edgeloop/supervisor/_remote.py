"""Remote actors: refs to actors on other nodes, and a node's side of the messages they send.

A :class:`RemoteRef` names an actor *path* on another node (``edge-b:/yard/fusion``); its
``tell`` and ``ask`` travel as ``Tell`` and ``Ask`` messages over the node's links, and
``Actor.watch`` on it sends a ``Watch``. :class:`Remoting` is the node's half of all that:
it owns the table of pending asks (correlated by id) and of watches in both directions, and
it dispatches what arrives from peers against the node's :class:`ActorSystem`.

Failures are typed and never silent, as they are for local actors:

* the remote handler raised: the ask fails with :class:`~edgeloop.errors.RemoteError`
  (remote type, message and traceback);
* no actor at that path: the ask fails with :class:`~edgeloop.errors.PathNotFoundError`,
  a tell becomes a dead letter, and both are counted as dead letters on *both* nodes;
* no answer in time: the ask fails with :class:`~edgeloop.errors.AskTimeout` (a reply that
  comes later is dropped and counted);
* the link to the peer is lost or closed: its pending asks fail with
  :class:`~edgeloop.errors.PeerLostError` and every watch of its actors delivers
  ``Down(ref, ExitReason("noconnection", ...))``, as Erlang does.

Message bodies travel as MessagePack (:func:`edgeloop.messages.encode_body`): builtins and
msgspec Structs go out, and builtins come in (a tuple arrives as a list, a Struct as a map).

Everything arriving runs on the endpoint's I/O thread and must not block: local deliveries
use ``tell``/``ask`` with callbacks. This module imports no ZeroMQ; :func:`zmq_endpoint`
imports the transport when a node first opens its links.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from edgeloop.actors import (
    DEFAULT_ASK_TIMEOUT,
    ActorSystem,
    Down,
    ExitReason,
    Future,
    Watcher,
    check_path,
    deliver_down,
    monitor,
    split_address,
)
from edgeloop.clock import Clock, Timer
from edgeloop.errors import (
    AskTimeout,
    DecodeError,
    LinkError,
    MailboxFull,
    PathNotFoundError,
    PeerLostError,
    RemoteError,
)
from edgeloop.messages import (
    Ask,
    DeadLetterNotice,
    DownNotice,
    Failure,
    Message,
    Reply,
    Tell,
    Unwatch,
    Watch,
    decode_body,
    encode_body,
)

if TYPE_CHECKING:
    from edgeloop.transport import LinkConfig, PeerAddress, PeerDown, PeerUp
    from edgeloop.transport._security import SecurityConfig

__all__ = [
    "RemoteRef",
    "Remoting",
    "RemoteStatistics",
    "EndpointLike",
    "EndpointFactory",
    "LinkSettings",
    "zmq_endpoint",
    "split_address",
]

_log = structlog.get_logger("edgeloop.remote")

_MAX_WIRE_TIMEOUT = 86400.0  # the schema's bound on Ask.timeout
_MIN_WIRE_TIMEOUT = 0.001
_TEXT_LIMIT = 4096  # the schema's bound on free text (Text)

_LOST_REASONS = frozenset({"no_link", "link_closed", "closed"})
"""Reasons the endpoint gives for a message it dropped because the peer is gone."""


# -- the transport this layer needs ----------------------------------------------------


class EndpointLike(Protocol):
    """The part of :class:`edgeloop.transport.Endpoint` remote actors use."""

    def start(self) -> object: ...

    def close(self, timeout: float = ...) -> None: ...

    def send(self, peer: str, message: Message) -> bool: ...

    def connected_peers(self) -> list[str]: ...

    def statistics(self) -> object: ...


@dataclasses.dataclass(frozen=True, slots=True)
class LinkSettings:
    """What a node's endpoint is built from: its link identity and timing, where it listens,
    whom it connects to, and its CurveZMQ settings (``None``: mode ``auto``, no keys)."""

    link: LinkConfig
    listen: tuple[str, ...] = ()
    peers: tuple[PeerAddress, ...] = ()
    security: SecurityConfig | None = None


class EndpointFactory(Protocol):
    """Builds a node's endpoint (the ZeroMQ one by default; tests pass an in-memory one)."""

    def __call__(
        self,
        settings: LinkSettings,
        *,
        on_message: Callable[[str, Message], None],
        on_peer: Callable[[PeerUp | PeerDown], None],
        on_undelivered: Callable[[str, object, str], None],
        rng: random.Random,
    ) -> EndpointLike: ...


def zmq_endpoint(
    settings: LinkSettings,
    *,
    on_message: Callable[[str, Message], None],
    on_peer: Callable[[PeerUp | PeerDown], None],
    on_undelivered: Callable[[str, object, str], None],
    rng: random.Random,
) -> EndpointLike:
    """The default :class:`EndpointFactory`: a ZeroMQ endpoint with CurveZMQ as configured."""
    from edgeloop.transport import Endpoint, EndpointConfig
    from edgeloop.transport._security import CurveSecurity, SecurityConfig

    config = EndpointConfig(
        link=settings.link,
        listen=settings.listen,
        peers=settings.peers,
        security=CurveSecurity(settings.security or SecurityConfig()),
    )
    return Endpoint(
        config,
        on_message=on_message,
        on_peer=on_peer,
        on_undelivered=on_undelivered,
        rng=rng,
    )


# -- the ref ---------------------------------------------------------------------------


class RemoteRef:
    """A handle on the actor at ``path`` on node ``node``: ``tell``, ``ask``, watchable.

    Unlike an :class:`~edgeloop.actors.ActorRef` it names a path, not an incarnation: after
    the remote supervisor restarts the actor, the same ref reaches the new one. Two refs to
    the same address from the same node are equal. Get one from ``node.ref(address)``.
    """

    __slots__ = ("_remoting", "node", "path")

    def __init__(self, remoting: Remoting, node: str, path: str) -> None:
        self._remoting = remoting
        self.node = node
        self.path = path

    @property
    def address(self) -> str:
        """``node:path``, such as ``edge-b:/yard/fusion``."""
        return f"{self.node}:{self.path}"

    @property
    def name(self) -> str:
        """The last segment of the path."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def is_remote(self) -> bool:
        """Always ``True``: the actor lives on another node."""
        return True

    def tell(self, message: Any) -> None:
        """Send ``message`` without waiting; a dead letter here if there is no link to the
        node, and on both nodes if no actor holds the path there.

        Raises TypeError at once if ``message`` cannot travel as MessagePack.
        """
        self._remoting.tell(self, message)

    def ask(self, message: Any, *, timeout: float = DEFAULT_ASK_TIMEOUT) -> Future[Any]:
        """Send ``message`` and return a future for the reply, as a local ask does.

        The future fails with :class:`~edgeloop.errors.RemoteError` if the remote handler
        raised, :class:`~edgeloop.errors.PathNotFoundError` if no actor holds the path,
        :class:`~edgeloop.errors.PeerLostError` if the link is lost first, and
        :class:`~edgeloop.errors.AskTimeout` once ``timeout`` seconds have passed;
        ``get()`` never waits longer than that.
        """
        return self._remoting.ask(self, message, timeout)

    def _add_watcher(self, watcher: Watcher) -> None:
        self._remoting.watch(self, watcher)

    def _remove_watcher(self, watcher: Watcher) -> None:
        self._remoting.unwatch(self, watcher)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RemoteRef):
            return NotImplemented
        return (
            self._remoting is other._remoting
            and self.node == other.node
            and self.path == other.path
        )

    def __hash__(self) -> int:
        return hash((self.node, self.path))

    def __repr__(self) -> str:
        return f"<RemoteRef {self.address}>"


# -- the node's side -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteStatistics:
    """Remote actors at one moment: what waits, and what went wrong, by stable name.

    ``counters``: ``ask_timeouts``, ``late_replies`` (an answer after its ask had ended),
    ``peer_lost_asks``, ``watches_lost`` (``Down(noconnection)`` delivered),
    ``dead_letters_sent`` / ``dead_letters_received`` (notices between nodes),
    ``undecodable_bodies``, ``unencodable_replies``, ``undeliverable`` (sends a link
    refused or dropped), ``unexpected`` (an answer from a peer the id does not belong to),
    ``late_downs`` (a ``DownNotice`` for a watch already ended) and ``unhandled`` (messages
    that are not for remote actors).
    """

    pending_asks: int
    watching: int
    watched_by: int
    counters: Mapping[str, int]


@dataclasses.dataclass(slots=True)
class _PendingAsk:
    ref: RemoteRef
    message: Any
    future: Future[Any]
    timeout: float
    timer: Timer | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class _RemoteWatch:
    ref: RemoteRef
    watcher: Watcher


class Remoting:
    """One node's remote actors: refs out, peers' messages in, correlated and counted.

    Wire it to an endpoint with :meth:`attach`; give the endpoint :meth:`on_message`,
    :meth:`on_peer` and :meth:`on_undelivered` as its callbacks. ``on_other`` receives
    messages that are not for remote actors (device messages), if given.
    """

    def __init__(
        self,
        system: ActorSystem,
        *,
        clock: Clock | None = None,
        on_other: Callable[[str, Message], None] | None = None,
    ) -> None:
        self.system = system
        self.node = system.name
        self._clock = clock if clock is not None else system.clock
        self._on_other = on_other
        self._endpoint: EndpointLike | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, _PendingAsk] = {}
        self._watches: dict[int, _RemoteWatch] = {}
        self._watch_ids: dict[tuple[RemoteRef, Watcher], int] = {}
        # Peers' watches of this node's actors: (peer, id) -> cancel (None while starting).
        self._served: dict[tuple[str, int], Callable[[], None] | None] = {}
        self._counters: Counter[str] = Counter()
        self._closed = False

    def attach(self, endpoint: EndpointLike) -> None:
        """Send through ``endpoint`` from now on."""
        self._endpoint = endpoint

    def ref(self, node: str, path: str) -> RemoteRef:
        """A ref to the actor at ``path`` on ``node`` (which need not be connected yet)."""
        return RemoteRef(self, node, check_path(path))

    def statistics(self) -> RemoteStatistics:
        with self._lock:
            return RemoteStatistics(
                pending_asks=len(self._pending),
                watching=len(self._watches),
                watched_by=len(self._served),
                counters=MappingProxyType(dict(self._counters)),
            )

    # -- outgoing: any thread ----------------------------------------------------------

    def tell(self, ref: RemoteRef, message: Any) -> None:
        body = encode_body(message)
        if not self._send(ref.node, Tell(to=ref.path, body=body)):
            self._count("undeliverable")
            self.system.dead_letters.record(ref.address, message, self._no_link(ref.node))

    def ask(self, ref: RemoteRef, message: Any, timeout: float) -> Future[Any]:
        body = encode_body(message)
        future: Future[Any] = Future(time.monotonic() + timeout, ref.address)
        pending = _PendingAsk(ref, message, future, timeout)
        with self._lock:
            closed = self._closed
            if not closed:
                ask_id = next(self._ids)
                self._pending[ask_id] = pending
        if closed:
            future.set_exception(LinkError(f"{self._no_link(ref.node)}: the node has stopped"))
            return future
        pending.timer = self._clock.call_later(timeout, functools.partial(self._expire, ask_id))
        wire_timeout = min(max(timeout, _MIN_WIRE_TIMEOUT), _MAX_WIRE_TIMEOUT)
        sent = Ask(id=ask_id, to=ref.path, body=body, timeout=wire_timeout)
        if not self._send(ref.node, sent) and self._take(ask_id) is not None:
            self._count("undeliverable")
            self._fail_undelivered(pending, self._no_link(ref.node), lost=True)
        return future

    def watch(self, ref: RemoteRef, watcher: Watcher) -> None:
        with self._lock:
            if (ref, watcher) in self._watch_ids:
                return  # watching twice still gives one Down, as for a local actor
            closed = self._closed
            if not closed:
                watch_id = next(self._ids)
                self._watches[watch_id] = _RemoteWatch(ref, watcher)
                self._watch_ids[ref, watcher] = watch_id
        if closed:
            self._lost_watch(_RemoteWatch(ref, watcher), "the node has stopped")
            return
        if not self._send(ref.node, Watch(id=watch_id, path=ref.path)):
            watch = self._take_watch(watch_id)
            if watch is not None:
                self._lost_watch(watch, self._no_link(ref.node))

    def unwatch(self, ref: RemoteRef, watcher: Watcher) -> None:
        with self._lock:
            watch_id = self._watch_ids.pop((ref, watcher), None)
            if watch_id is not None:
                self._watches.pop(watch_id, None)
        if watch_id is not None:
            self._send(ref.node, Unwatch(id=watch_id))

    # -- incoming: the endpoint's I/O thread -------------------------------------------

    def on_message(self, peer: str, message: Message) -> None:
        """Handle one data message from ``peer``; never blocks, never raises."""
        match message:
            case Tell():
                self._on_tell(peer, message)
            case Ask():
                self._on_ask(peer, message)
            case Reply():
                self._on_reply(peer, message)
            case Failure():
                self._on_failure(peer, message)
            case Watch():
                self._on_watch(peer, message)
            case Unwatch():
                self._on_unwatch(peer, message)
            case DownNotice():
                self._on_down(peer, message)
            case DeadLetterNotice():
                self._on_dead_letter(peer, message)
            case _:
                if self._on_other is not None:
                    self._on_other(peer, message)
                    return
                count = self._count("unhandled")
                if count <= 10 or count % 1000 == 0:
                    _log.warning(
                        "remote_message_unhandled",
                        node=self.node,
                        peer=peer,
                        kind=type(message).__name__,
                        unhandled=count,
                    )

    def on_peer(self, event: PeerUp | PeerDown) -> None:
        """A link to a peer came up or went down: on down, fail and notify what hung on it."""
        from edgeloop.transport import PeerDown

        if isinstance(event, PeerDown):
            self.peer_lost(event.peer, event.reason)

    def on_undelivered(self, peer: str, message: object, reason: str) -> None:
        """The endpoint accepted ``message`` for ``peer`` but dropped it (``reason``)."""
        self._count("undeliverable")
        lost = reason in _LOST_REASONS
        why = f"the link to node {peer!r} dropped it ({reason})"
        match message:
            case Ask(id=ask_id):
                pending = self._take(ask_id)
                if pending is not None:
                    self._fail_undelivered(pending, why, lost=lost)
            case Tell(to=path, body=body):
                self.system.dead_letters.record(f"{peer}:{path}", _decoded(body), why)
            case Watch(id=watch_id):
                watch = self._take_watch(watch_id)
                if watch is not None:
                    self._lost_watch(watch, why)
            case _:
                _log.info(
                    "remote_message_undelivered",
                    node=self.node,
                    peer=peer,
                    kind=type(message).__name__,
                    reason=reason,
                )

    def peer_lost(self, peer: str, reason: str) -> None:
        """Fail every ask pending on ``peer`` and deliver ``Down(noconnection)`` for every
        watch of its actors; forget its watches of this node's actors."""
        with self._lock:
            asks = [(i, p) for i, p in self._pending.items() if p.ref.node == peer]
            for ask_id, _ in asks:
                del self._pending[ask_id]
            watches = [(i, w) for i, w in self._watches.items() if w.ref.node == peer]
            for watch_id, watch in watches:
                del self._watches[watch_id]
                self._watch_ids.pop((watch.ref, watch.watcher), None)
            served = [k for k in self._served if k[0] == peer]
            cancels = [self._served.pop(k) for k in served]
            self._counters["peer_lost_asks"] += len(asks)
            self._counters["watches_lost"] += len(watches)
        if asks or watches:
            _log.warning(
                "remote_peer_lost",
                node=self.node,
                peer=peer,
                reason=reason,
                failed_asks=len(asks),
                lost_watches=len(watches),
            )
        for _, pending in asks:
            self._cancel_timer(pending)
            pending.future.set_exception(
                PeerLostError(
                    f"lost the link to node {peer!r} ({reason}) before "
                    f"{pending.ref.address} answered"
                )
            )
        detail = f"lost the link to node {peer!r}: {reason}"
        for _, watch in watches:
            deliver_down(watch.watcher, Down(watch.ref, ExitReason("noconnection", detail)))
        for cancel in cancels:
            if cancel is not None:
                cancel()

    def close(self) -> None:
        """The node stopped: fail what still waits, drop every watch, refuse new asks."""
        with self._lock:
            self._closed = True
            asks = list(self._pending.values())
            watches = list(self._watches.values())
            cancels = list(self._served.values())
            self._pending.clear()
            self._watches.clear()
            self._watch_ids.clear()
            self._served.clear()
        for pending in asks:
            self._cancel_timer(pending)
            pending.future.set_exception(
                LinkError(f"node {self.node!r} stopped before {pending.ref.address} answered")
            )
        for watch in watches:
            self._lost_watch(watch, f"node {self.node!r} stopped")
        for cancel in cancels:
            if cancel is not None:
                cancel()

    # -- handlers ----------------------------------------------------------------------

    def _on_tell(self, peer: str, tell: Tell) -> None:
        try:
            body = decode_body(tell.body)
        except DecodeError as error:
            self._count("undecodable_bodies")
            self._refuse(peer, tell.to, tell.body, f"undecodable body: {error}", None)
            return
        ref = self.system.lookup(tell.to)
        if ref is None:
            self._refuse(peer, tell.to, body, "no actor at this path", None)
            return
        try:
            ref.tell(body, block=False)  # the link's I/O thread never waits on a mailbox
        except MailboxFull as error:
            self._refuse(peer, tell.to, body, str(error), None)

    def _on_ask(self, peer: str, ask: Ask) -> None:
        try:
            body = decode_body(ask.body)
        except DecodeError as error:
            self._count("undecodable_bodies")
            self._send(peer, Failure.from_exception(ask.id, error))
            return
        ref = self.system.lookup(ask.to)
        if ref is None:
            self._refuse(peer, ask.to, body, "no actor at this path", ask.id)
            return
        try:
            future = ref.ask(body, timeout=ask.timeout, block=False)
        except MailboxFull as error:
            self._send(peer, Failure.from_exception(ask.id, error))
            return
        future.add_done_callback(functools.partial(self._answer, peer, ask.id))

    def _answer(self, peer: str, ask_id: int, future: Future[Any]) -> None:
        """Send the outcome of a local ask back to the peer that asked (any thread)."""
        answer: Reply | Failure
        try:
            result = future.get(0)
        except BaseException as error:  # noqa: BLE001 - every failure travels back
            answer = Failure.from_exception(ask_id, error)
        else:
            try:
                answer = Reply(id=ask_id, body=encode_body(result))
            except TypeError as error:
                self._count("unencodable_replies")
                answer = Failure.from_exception(ask_id, error)
        self._send(peer, answer)

    def _on_reply(self, peer: str, reply: Reply) -> None:
        pending = self._take(reply.id, peer)
        if pending is None:
            return
        try:
            value = decode_body(reply.body)
        except DecodeError as error:
            self._count("undecodable_bodies")
            pending.future.set_exception(error)
            return
        pending.future.set_result(value)

    def _on_failure(self, peer: str, failure: Failure) -> None:
        pending = self._take(failure.id, peer)
        if pending is not None:
            pending.future.set_exception(
                RemoteError(failure.remote_type, failure.message, failure.traceback)
            )

    def _on_dead_letter(self, peer: str, notice: DeadLetterNotice) -> None:
        self._count("dead_letters_received")
        address = f"{peer}:{notice.path}"
        reason = f"{notice.reason} (on node {peer})"
        pending = self._take(notice.id, peer) if notice.id is not None else None
        if pending is None:
            self.system.dead_letters.record(address, notice, reason)
            return
        self.system.dead_letters.record(address, pending.message, reason)
        pending.future.set_exception(
            PathNotFoundError(
                f"{address} could not take {type(pending.message).__name__}: {notice.reason}; "
                "it went to dead letters on both nodes"
            )
        )

    def _on_watch(self, peer: str, watch: Watch) -> None:
        ref = self.system.lookup(watch.path)
        if ref is None:
            self._send(
                peer,
                DownNotice(
                    id=watch.id, path=watch.path, reason_kind="noproc", detail="no actor there"
                ),
            )
            return
        key = (peer, watch.id)
        with self._lock:
            if self._closed or key in self._served:
                return
            self._served[key] = None
        cancel = monitor(ref, functools.partial(self._served_down, peer, watch.id, watch.path))
        with self._lock:
            if key in self._served:  # not already down (a dead ref is reported at once)
                self._served[key] = cancel
                return
        cancel()

    def _served_down(self, peer: str, watch_id: int, path: str, down: Down) -> None:
        """A local actor a peer watches has stopped: tell the peer (the actor's thread)."""
        with self._lock:
            if self._served.pop((peer, watch_id), _GONE) is _GONE:
                return  # unwatched, or the peer is gone
        reason = down.reason
        detail = f"{reason.detail} (in {reason.where})" if reason.where else reason.detail
        notice = DownNotice(id=watch_id, path=path, reason_kind=reason.kind, detail=_clip(detail))
        self._send(peer, notice)

    def _on_unwatch(self, peer: str, unwatch: Unwatch) -> None:
        with self._lock:
            cancel = self._served.pop((peer, unwatch.id), None)
        if cancel is not None:
            cancel()

    def _on_down(self, peer: str, notice: DownNotice) -> None:
        with self._lock:
            watch = self._watches.get(notice.id)
            if watch is None or watch.ref.node != peer:
                self._counters["unexpected" if watch is not None else "late_downs"] += 1
                return
            del self._watches[notice.id]
            self._watch_ids.pop((watch.ref, watch.watcher), None)
        where = f"node {peer}" if notice.reason_kind == "crash" else ""
        reason = ExitReason(notice.reason_kind, notice.detail, where=where)
        deliver_down(watch.watcher, Down(watch.ref, reason))

    # -- helpers -----------------------------------------------------------------------

    def _send(self, peer: str, message: Message) -> bool:
        endpoint = self._endpoint
        return endpoint is not None and endpoint.send(peer, message)

    def _refuse(self, peer: str, path: str, message: Any, reason: str, ask_id: int | None) -> None:
        """A tell or ask from ``peer`` reached no actor: a dead letter here and there."""
        self.system.dead_letters.record(path, message, f"{reason} (sent by node {peer})")
        self._count("dead_letters_sent")
        self._send(peer, DeadLetterNotice(id=ask_id, path=path, reason=_clip(reason)))

    def _take(self, ask_id: int, peer: str | None = None) -> _PendingAsk | None:
        """Remove and return the pending ask ``ask_id`` (only if it was sent to ``peer``)."""
        with self._lock:
            pending = self._pending.get(ask_id)
            if pending is None:
                if peer is not None:  # an answer for an ask that timed out or failed
                    self._counters["late_replies"] += 1
                return None
            if peer is not None and pending.ref.node != peer:
                self._counters["unexpected"] += 1
                return None
            del self._pending[ask_id]
        self._cancel_timer(pending)
        return pending

    def _take_watch(self, watch_id: int) -> _RemoteWatch | None:
        with self._lock:
            watch = self._watches.pop(watch_id, None)
            if watch is not None:
                self._watch_ids.pop((watch.ref, watch.watcher), None)
            return watch

    def _expire(self, ask_id: int) -> None:
        """The clock's callback at an ask's deadline."""
        with self._lock:
            pending = self._pending.pop(ask_id, None)
            if pending is None:
                return
            self._counters["ask_timeouts"] += 1
        pending.future.set_exception(
            AskTimeout(f"no answer from {pending.ref.address} within {pending.timeout} s")
        )

    def _fail_undelivered(self, pending: _PendingAsk, why: str, *, lost: bool) -> None:
        self.system.dead_letters.record(pending.ref.address, pending.message, why)
        error = PeerLostError(why) if lost else LinkError(why)
        pending.future.set_exception(error)

    def _lost_watch(self, watch: _RemoteWatch, why: str) -> None:
        self._count("watches_lost")
        deliver_down(watch.watcher, Down(watch.ref, ExitReason("noconnection", why)))

    def _cancel_timer(self, pending: _PendingAsk) -> None:
        if pending.timer is not None:
            pending.timer.cancel()

    def _count(self, name: str) -> int:
        with self._lock:
            self._counters[name] += 1
            return self._counters[name]

    def _no_link(self, peer: str) -> str:
        return f"node {self.node!r} has no link to node {peer!r}"

    def __repr__(self) -> str:
        return f"<Remoting {self.node} pending={len(self._pending)} watches={len(self._watches)}>"


_GONE = object()


def _decoded(body: bytes) -> Any:
    try:
        return decode_body(body)
    except DecodeError:
        return body


def _clip(text: str, limit: int = _TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
