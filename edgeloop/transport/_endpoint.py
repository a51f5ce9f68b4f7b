"""The ZeroMQ adapter: sockets, one I/O thread, and a sans-IO :class:`Link` per peer.

A node binds a ROUTER on each ``listen`` endpoint and connects a DEALER to each configured
peer; a device only connects. Every socket is owned by the endpoint's I/O thread, which
polls them, decodes bytes into typed messages, feeds them to the peer's :class:`Link`
and applies the effects it returns. Other threads talk to it through :meth:`send`, a
queue plus a wake-up pipe, so no socket is ever touched by two threads.

Hostile input never leaves this module as an exception: malformed bytes, wrong frame
counts, unknown kinds, wrong types, bad versions, oversized messages and protocol
violations are each rejected, counted by reason, answered with an ``ErrorReply`` where
the sender can be reached (never in answer to an ``ErrorReply``, so that two sides can
not keep answering each other), and logged at a bounded rate.

Bulk lanes ride on the links: the endpoint routes the bulk messages (offer, accept,
ready, credit, close) to its lanes instead of ``on_message``, and the frames travel on the
lane's provider (shared memory, zero-copy ZeroMQ, RDMA)::

    receiver = node.open_bulk_receiver("cam-1", bulk.BulkConfig())  # the ring owner
    sender = device.open_bulk_sender("edge-a", bulk.BulkConfig())  # takes the offer

Both block until the handshake is done (``timeout``, 5 s by default); see
``edgeloop/transport/_lanes.py`` and ``docs/bulk-lane.md``.

The hot paths (a data message on a ready link) skip the effect lists: the thread asks
:meth:`Link.send_ready` / :meth:`Link.receive_data`, which consult the same state table,
and puts the message on the wire or hands it to ``on_message`` itself; anything else
goes through :meth:`Link.send` / :meth:`Link.receive` and their effects. Housekeeping
(heartbeats, timeouts, reconnects) runs when the earliest deadline is due, not on every
turn of the loop.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, Self, cast

import structlog
import zmq

from edgeloop import messages
from edgeloop.errors import LinkError, ProtocolError
from edgeloop.transport._config import LinkConfig
from edgeloop.transport._control import ControlFactory
from edgeloop.transport._effects import (
    Closed,
    Deliver,
    Dropped,
    Effect,
    LinkStatistics,
    Lost,
    Ready,
    Reconnect,
    Refused,
    Transmit,
    Violation,
)
from edgeloop.transport._lanes import BULK_LINK_KINDS, LaneTable
from edgeloop.transport._protocol import Link
from edgeloop.transport._state import LinkSide, LinkState

if TYPE_CHECKING:
    from edgeloop.transport.bulk import BulkConfig, Receiver, Sender

__all__ = [
    "Endpoint",
    "EndpointConfig",
    "EndpointStatistics",
    "PeerAddress",
    "PeerDown",
    "PeerStatus",
    "PeerUp",
    "SocketSecurity",
    "WIRE_CONTROL",
]

_log = structlog.get_logger("edgeloop.transport")

WIRE_CONTROL = ControlFactory(
    hello=messages.Hello,
    welcome=messages.Welcome,
    heartbeat=messages.Heartbeat,
    close=messages.Close,
)
"""The link's control messages as the wire schema's Structs."""

_POLL_CAP = 0.1
"""Longest poll, in seconds: bounds how late housekeeping (stale handshakes) runs."""

_BATCH = 256
"""Most messages read from one socket per poll round, so one busy peer cannot starve the rest."""

_QUEUED = 20e-6
"""A poll that returned within this many seconds found input already queued (a burst):
the turn reads on while the socket has more (see ``Endpoint._loop``)."""

_BACKLOG_LIMIT = 100_000
"""Most frames held back for one slow peer before further ones are dropped (and reported)."""

_HWM = 10_000
"""ZeroMQ's own per-pipe queue, in messages, before it pushes back."""

DUPLICATE = "duplicate"
"""The Close reason for the second of two links between the same pair of peers."""

_PENDING_LIMIT = 1024
"""Most peers that may be mid-handshake on the listeners at once (a flood guard)."""

_NOBLOCK = zmq.NOBLOCK
_EVENTS = zmq.EVENTS
_POLLIN = zmq.POLLIN
_NOBLOCK_MORE = zmq.NOBLOCK | zmq.SNDMORE
_encode: Callable[[object], bytes] = messages.encode  # type: ignore[assignment]
# Versions are not checked when decoding: the link negotiates them in the handshake, so a
# newer peer can still agree on an older version both sides speak. The decoder copies
# what it keeps, so it may read a frame's buffer in place.
_decode = messages.decode
_ERROR_REPLY = messages.ErrorReply


@dataclasses.dataclass(frozen=True, slots=True)
class PeerUp:
    """A link finished its handshake; ``reconnected`` if it had been ready before."""

    peer: str
    role: str
    reconnected: bool


@dataclasses.dataclass(frozen=True, slots=True)
class PeerDown:
    """A ready link was lost (``liveness_timeout``, ``transport_lost``, ``peer_restarted``,
    ``handshake_timeout``) or closed (``closed``)."""

    peer: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class PeerAddress:
    """A node to connect to; ``server_key`` is its Z85 public key when CurveZMQ is on."""

    address: str
    server_key: str | None = None


class SocketSecurity(Protocol):
    """Applies CurveZMQ (or nothing) to the endpoint's sockets before they bind or connect."""

    def start(self, context: zmq.Context[Any]) -> None:
        """Start whatever authenticates incoming peers (ZAP) on ``context``."""

    def server(self, socket: zmq.Socket[Any], endpoint: str) -> None:
        """Configure a ROUTER that will bind ``endpoint``."""

    def client(self, socket: zmq.Socket[Any], peer: PeerAddress) -> None:
        """Configure a DEALER that will connect to ``peer``."""

    def stop(self) -> None:
        """Stop the authenticator."""


@dataclasses.dataclass(frozen=True, slots=True)
class EndpointConfig:
    """Where to listen, whom to connect to, and the link's identity and timing."""

    link: LinkConfig
    listen: tuple[str, ...] = ()
    peers: tuple[PeerAddress, ...] = ()
    max_message_size: int = messages.DEFAULT_MAX_SIZE
    security: SocketSecurity | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PeerStatus:
    """One link as seen from this endpoint."""

    peer: str | None
    address: str
    side: LinkSide
    state: LinkState
    link: LinkStatistics


@dataclasses.dataclass(frozen=True, slots=True)
class EndpointStatistics:
    """Rejected input by reason, and every link's state and counters."""

    bound: tuple[str, ...]
    rejected: Mapping[str, int]
    peers: tuple[PeerStatus, ...]

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


class _Conn:
    """One peer connection: its socket, its routing identity (ROUTER side) and its link."""

    __slots__ = (
        "address",
        "attempt",
        "backlog",
        "born",
        "identity",
        "link",
        "peer",
        "peer_address",
        "ready",
        "reopen_at",
        "socket",
        "was_ready",
    )

    def __init__(
        self,
        socket: zmq.Socket[Any],
        link: Link,
        address: str,
        *,
        identity: bytes | None = None,
        peer_address: PeerAddress | None = None,
        born: float = 0.0,
    ) -> None:
        self.socket = socket
        self.link = link
        self.address = address
        self.identity = identity
        self.peer_address = peer_address
        self.born = born
        self.peer: str | None = None  # the peer's id, from the last Ready
        self.ready = False  # between a Ready and the next Lost or Closed
        self.was_ready = False  # a connector: some link on this connection was ready once
        self.reopen_at: float | None = None  # a connector: when to start a fresh link
        self.attempt = 0  # a connector: fresh links started since the last Ready
        # Frames ZeroMQ would not take yet (its pipe to the peer is at the high-water
        # mark): they leave first, in order, as soon as the pipe drains.
        self.backlog: collections.deque[bytes] = collections.deque()


class _RateLimitedLog:
    """At most ``per_second`` log lines a second for one kind of trouble; the rest are
    counted and reported with the next line that gets through."""

    def __init__(self, per_second: float = 5.0) -> None:
        self._per_second = per_second
        self._allowance = per_second
        self._last = time.monotonic()
        self._suppressed = 0

    def warning(self, event: str, **fields: Any) -> None:
        now = time.monotonic()
        self._allowance = min(
            self._per_second, self._allowance + (now - self._last) * self._per_second
        )
        self._last = now
        if self._allowance < 1.0:
            self._suppressed += 1
            return
        self._allowance -= 1.0
        if self._suppressed:
            fields["suppressed"] = self._suppressed
            self._suppressed = 0
        _log.warning(event, **fields)


class Endpoint:
    """A node's or device's ZeroMQ presence: listeners, connectors, and their links.

    ``on_message(peer, message)`` gets every data message from a ready peer and
    ``on_peer(event)`` every :class:`PeerUp`/:class:`PeerDown`; ``on_undelivered(peer,
    message, reason)`` gets what :meth:`send` accepted but the link dropped. All three run
    on the I/O thread: return quickly, never block (hand work to an actor with ``tell``).
    Bulk-lane messages go to :meth:`open_bulk_receiver` / :meth:`open_bulk_sender`'s
    lanes, never to ``on_message``.
    """

    def __init__(
        self,
        config: EndpointConfig,
        *,
        on_message: Callable[[str, messages.Message], None],
        on_peer: Callable[[PeerUp | PeerDown], None] | None = None,
        on_undelivered: Callable[[str, object, str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._on_message = on_message
        self._on_peer = on_peer
        self._on_undelivered = on_undelivered
        self._rng = rng if rng is not None else random.Random()
        self._context: zmq.Context[Any] | None = None
        self._listeners: list[tuple[zmq.Socket[Any], str]] = []
        self._accepted: dict[tuple[int, bytes], _Conn] = {}
        self._connectors: list[_Conn] = []
        self._by_peer: dict[str, _Conn] = {}
        self._socket_conn: dict[zmq.Socket[Any], _Conn] = {}
        self._listener_index: dict[zmq.Socket[Any], int] = {}
        self._backlogged: set[_Conn] = set()
        self._due = 0.0  # the earliest time housekeeping may have something to do
        self._streaming = False  # the last turn found a message queued behind another
        self._io_thread_id: int | None = None
        self._rejected: collections.Counter[str] = collections.Counter()
        self._outbox: collections.deque[tuple[str, messages.Message]] = collections.deque()
        self._wake_r = self._wake_w = -1
        self._wake_pending = False
        self._wake_lock = threading.Lock()
        self._turn_hooks: tuple[Callable[[], None], ...] = ()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._bound: tuple[str, ...] = ()
        self._trouble = _RateLimitedLog()
        self._poller = zmq.Poller()
        self._lanes = LaneTable(self.send, self._count_rejected, self._rng)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Bind, connect and start the I/O thread; raises LinkError if a bind fails."""
        if self._thread is not None:
            msg = "this endpoint is already started"
            raise LinkError(msg)
        if self._closed:
            msg = "this endpoint was closed; build a new Endpoint to start again"
            raise LinkError(msg)
        self._context = zmq.Context()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(
            target=self._run, name=f"edgeloop-link:{self.config.link.id}", daemon=True
        )
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            self._release()
            error = self._start_error
            raise LinkError(f"could not start links of {self.config.link.id!r}: {error}") from error
        return self

    def close(self, timeout: float = 2.0) -> None:
        """Say goodbye to every ready peer, stop the I/O thread and release the sockets."""
        thread = self._thread
        if thread is None:
            return
        self._closed = True
        self._stopping.set()
        if threading.get_ident() == self._io_thread_id:
            return  # called from a callback: the loop ends when the callback returns
        self._wake()
        thread.join(timeout)
        self._thread = None

    @property
    def alive(self) -> bool:
        """Whether the I/O thread runs (started, not closed, and not stopped by a bug)."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stopping.is_set()

    @property
    def bound(self) -> tuple[str, ...]:
        """The endpoints actually bound (``tcp://127.0.0.1:*`` resolved to its port)."""
        return self._bound

    # -- any thread ------------------------------------------------------------------

    def send(self, peer: str, message: messages.Message) -> bool:
        """Queue ``message`` for ``peer``; ``False`` if there is no link to that peer.

        Thread-safe. ``True`` means the link took it (sent, or queued while the peer is
        away); a later drop is reported through ``on_undelivered``.
        """
        if peer not in self._by_peer or self._thread is None or self._stopping.is_set():
            return False
        self._outbox.append((peer, message))
        # The I/O thread flushes the outbox before it polls again, so it need not wake
        # itself; and a wake still pending covers this message too (see _drain_wake).
        if not self._wake_pending and threading.get_ident() != self._io_thread_id:
            self._wake()
        return True

    def after_turn(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` on the I/O thread at the end of every turn of its loop (after it
        read what the sockets held, before it waits again), so that ``on_message`` may
        gather what one turn brought and hand it on at once (one wake-up per receiver
        per turn). Register hooks before :meth:`start`."""
        self._turn_hooks = (*self._turn_hooks, hook)

    def on_io_thread(self) -> bool:
        """Whether the caller runs on this endpoint's I/O thread (in a callback)."""
        return threading.get_ident() == self._io_thread_id

    def open_bulk_receiver(
        self, peer: str, config: BulkConfig, *, timeout: float = 5.0
    ) -> Receiver:
        """Open a bulk lane from ``peer`` into a ring of this side's, over the link.

        Sends ``BulkOffer`` and waits up to ``timeout`` seconds for the peer's
        :meth:`open_bulk_sender` to accept; the frames then travel on the chosen
        provider and the credits on this link. LinkError if the peer refuses or does
        not answer in time, PeerLostError if there is no link to it. Blocks: call it
        from the consumer's thread, never from a link callback.
        """
        self._not_on_io_thread("open_bulk_receiver")
        return self._lanes.open_receiver(peer, config, timeout)

    def open_bulk_sender(self, peer: str, config: BulkConfig, *, timeout: float = 5.0) -> Sender:
        """Answer ``peer``'s next bulk-lane offer (waiting up to ``timeout`` seconds for
        one) and attach to its ring: the lane's sender, its credits from this link.

        ``config`` says which providers this side may use. LinkError when no offer
        comes in time or no provider fits; blocks like :meth:`open_bulk_receiver`.
        """
        self._not_on_io_thread("open_bulk_sender")
        return self._lanes.open_sender(peer, config, timeout)

    def _not_on_io_thread(self, what: str) -> None:
        if threading.get_ident() == self._io_thread_id:
            raise LinkError(
                f"{what} was called from a link callback: it waits for messages this "
                "I/O thread must deliver; call it from another thread (an actor, the "
                "device agent's loop)"
            )

    def connected_peers(self) -> list[str]:
        """Peers whose link is ready now."""
        return [p for p, c in list(self._by_peer.items()) if c.link.state is LinkState.READY]

    def statistics(self) -> EndpointStatistics:
        conns = [*self._connectors, *list(self._accepted.values())]
        return EndpointStatistics(
            bound=self._bound,
            rejected=MappingProxyType(dict(self._rejected)),
            peers=tuple(
                PeerStatus(c.link.peer, c.address, c.link.side, c.link.state, c.link.statistics())
                for c in conns
            ),
        )

    def _wake(self) -> None:
        # The write happens under the lock (it never blocks: the pipe is non-blocking), so
        # _release cannot close the descriptor, nor the number be reused, in between.
        with self._wake_lock:
            if self._wake_pending or self._wake_w < 0:
                return
            self._wake_pending = True
            try:
                os.write(self._wake_w, b"!")
            except OSError:
                pass  # the pipe is full: a wake is pending anyway

    # -- the I/O thread --------------------------------------------------------------

    def _run(self) -> None:
        self._io_thread_id = threading.get_ident()
        try:
            self._open()
        except Exception as error:  # noqa: BLE001 - start() raises it, whatever it is
            self._start_error = error
            self._close_sockets()
            self._started.set()
            return
        self._started.set()
        crashed = False
        try:
            self._loop()
        except Exception as error:  # noqa: BLE001 - a bug here must not hang the node silently
            crashed = True
            _log.critical("link_io_failed", endpoint=self.config.link.id, exc_info=error)
        finally:
            self._stopping.set()  # send() refuses from now on
            self._end_turn()  # what the last turn gathered still goes on
            if not crashed:
                self._flush_outbox()  # what was accepted before the stop still leaves
            self._goodbye()
            self._close_sockets()
            self._abandon(crashed)
            self._release()

    def _abandon(self, crashed: bool) -> None:
        """Nothing will be sent any more: report what is left, and, after a crash, every
        ready peer as down (a clean close reports them through their links' Close)."""
        while self._outbox:
            peer, message = self._outbox.popleft()
            self._undelivered(peer, message, "closed")
        if crashed:
            for peer in list(self._by_peer):
                self._notify(PeerDown(peer, "transport_lost"))
        self._by_peer.clear()
        self._lanes.close()

    def _open(self) -> None:
        assert self._context is not None
        security = self.config.security
        if security is not None:
            security.start(self._context)
        self._poller.register(self._wake_r, zmq.POLLIN)
        bound: list[str] = []
        for address in self.config.listen:
            socket = self._new_socket(zmq.ROUTER)
            try:
                socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
                socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
                if security is not None:
                    security.server(socket, address)
                socket.bind(address)
                actual = socket.getsockopt_string(zmq.LAST_ENDPOINT)
            except BaseException:
                socket.close(linger=0)  # not listed yet: the context could never end
                raise
            self._listener_index[socket] = len(self._listeners)
            self._listeners.append((socket, actual))
            self._poller.register(socket, zmq.POLLIN)
            bound.append(actual)
        self._bound = tuple(bound)
        now = time.monotonic()
        for peer in self.config.peers:
            link = Link.connector(self.config.link, rng=self._rng, control=WIRE_CONTROL)
            conn = _Conn(self._connect(peer), link, peer.address, peer_address=peer)
            self._connectors.append(conn)
            self._socket_conn[conn.socket] = conn
            self._apply(conn, link.connect(now), now)

    def _new_socket(self, kind: int) -> zmq.Socket[Any]:
        assert self._context is not None
        socket: zmq.Socket[Any] = self._context.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SNDHWM, _HWM)
        socket.setsockopt(zmq.RCVHWM, _HWM)
        # libzmq drops a peer that sends more than this; smaller oversized messages are
        # refused (counted and answered) by the decoder's own, exact limit.
        socket.setsockopt(zmq.MAXMSGSIZE, 4 * self.config.max_message_size + 4096)
        return socket

    def _connect(self, peer: PeerAddress) -> zmq.Socket[Any]:
        socket = self._new_socket(zmq.DEALER)
        try:
            # A stable routing id lets the node's ROUTER hand the peer over to a new
            # connection after a reconnect, so its acceptor link and queue carry on.
            socket.setsockopt(zmq.ROUTING_ID, self.config.link.id.encode())
            if self.config.security is not None:
                self.config.security.client(socket, peer)
            socket.connect(peer.address)
        except BaseException:
            socket.close(linger=0)  # not listed yet: the context could never end
            raise
        self._poller.register(socket, zmq.POLLIN)
        return socket

    def _loop(self) -> None:
        # Everything a turn does after handing a message to ``on_message`` delays the
        # thread that message wakes (it needs the GIL, which this thread gives up only
        # in ``zmq_poll``): the turn's bookkeeping is a few attribute tests when there is
        # nothing to do, and ``zmq_poll`` is called without the ``Poller.poll`` wrapper.
        poll = zmq.zmq_poll
        items = self._poller.sockets  # the Poller's own list: register() updates it
        wake = self._wake_r
        listener_index = self._listener_index
        socket_conn = self._socket_conn
        stopping = self._stopping
        monotonic = time.monotonic
        while not stopping.is_set():
            before = monotonic()
            if self._outbox:  # a callback on this thread sent something: no waiting
                wait_ms = 0
            else:
                due = self._due
                if self._backlogged:  # while a slow peer holds frames back, poll often
                    due = min(due, before + 0.001)
                wait_ms = max(0, math.ceil((due - before) * 1000))
            ready = poll(items, wait_ms)
            now = monotonic()
            # Input that was already waiting may have more queued behind it, and so may
            # input that follows a turn which found a queue (a stream, even one whose
            # poll lost the GIL for a while): read on while the socket has some. Input
            # that woke us is most likely alone (a reply, one message of a
            # conversation): read it, and let the next poll look for more, without the
            # GIL, instead of asking the socket now.
            batch = self._streaming or now - before < _QUEUED
            self._streaming = False
            for socket, _ in ready:
                if socket == wake:
                    # Send what woke us before the pipe read's syscall; _drain_wake
                    # then makes sure nothing that arrives meanwhile waits for a poll.
                    self._flush_outbox()
                    self._drain_wake()
                    continue
                index = listener_index.get(socket)
                if index is not None:
                    self._read_listener(index, socket, now, batch)
                    continue
                conn = socket_conn.get(socket)
                if conn is not None:
                    self._read_connector(conn, socket, now, batch)
            if self._turn_hooks:
                self._end_turn()
            if self._outbox:
                self._flush_outbox()
            if self._backlogged:
                self._flush_backlogs()
            if now >= self._due:
                self._tick(monotonic())

    def _end_turn(self) -> None:
        for hook in self._turn_hooks:
            try:
                hook()
            except Exception as error:  # noqa: BLE001 - a hook bug must not kill the links
                self._rejected["handler_failed"] += 1
                _log.error("turn_hook_failed", endpoint=self.config.link.id, exc_info=error)

    def _all_conns(self) -> list[_Conn]:
        return [*self._connectors, *self._accepted.values()]

    def _drain_wake(self) -> None:
        # Read first, then clear the flag, then (in the loop) flush the outbox again.
        # Clearing it first would lose a wake: a sender could set it and write its byte
        # between the clear and the read, the read would swallow the byte, and the flag
        # would stay set with the pipe empty, so no sender would ever write again and
        # every message would wait for the poll timeout. In this order a sender that
        # still sees the flag set appended before the clear, so the flush after it
        # takes the message; one that sees it clear writes a byte for the next poll.
        # The clear needs no lock (one store under the GIL); the lock in _wake only
        # keeps _release from closing the pipe under a sender's write.
        try:
            os.read(self._wake_r, 4096)  # at most a byte or two: writers skip while pending
        except BlockingIOError:
            pass
        self._wake_pending = False

    def _flush_outbox(self) -> None:
        outbox = self._outbox
        by_peer = self._by_peer
        now = time.monotonic()  # one clock reading per batch: the link needs no finer
        while outbox:
            peer, message = outbox.popleft()
            conn = by_peer.get(peer)
            if conn is None:
                self._undelivered(peer, message, "no_link")
                continue
            if conn.link.send_ready(message, now):
                self._transmit(conn, message)
                continue
            try:
                effects = conn.link.send(message, now)
            except ProtocolError:  # closed meanwhile
                self._undelivered(peer, message, "link_closed")
                continue
            self._apply(conn, effects, now)

    def _tick(self, now: float) -> None:
        """Run every deadline that is due, then note when the next one is."""
        handshake_timeout = self.config.link.handshake_timeout
        self._due = math.inf  # an effect applied below may call _soon() to look again
        due = now + _POLL_CAP
        for conn in self._all_conns():
            link = conn.link
            deadline = link.next_deadline()
            if deadline is not None and deadline <= now:
                self._apply(conn, link.tick(now), now)
                link = conn.link
                deadline = link.next_deadline()
            if deadline is not None and deadline < due:
                due = deadline
            if conn.reopen_at is not None:
                if conn.reopen_at <= now:
                    self._reopen(conn, now)
                else:
                    due = min(due, conn.reopen_at)
        # Peers that connected to a listener but never finished a handshake are dropped.
        stale = []
        for key, conn in self._accepted.items():
            if conn.link.state is LinkState.IDLE:
                expires = conn.born + handshake_timeout
                if expires < now:
                    stale.append(key)
                else:
                    due = min(due, expires)
        for key in stale:
            self._backlogged.discard(self._accepted.pop(key))
        self._due = min(self._due, due)

    def _soon(self) -> None:
        """Something changed a deadline (a new link, a state change): look again now."""
        self._due = 0.0

    # -- reading ---------------------------------------------------------------------

    def _read_listener(self, index: int, socket: zmq.Socket[Any], now: float, batch: bool) -> None:
        recv = socket.recv
        accepted = self._accepted
        max_size = self.config.max_message_size
        for count in range(_BATCH if batch else 1):
            # One message is the common case: asking ZeroMQ whether a second one is
            # there is cheaper than a receive that fails (a raised Again).
            if count == 1:
                if not cast("int", socket.get(_EVENTS)) & _POLLIN:
                    return
                self._streaming = True  # a second message was queued behind the first
            try:
                head = recv(_NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity = head.bytes
            frames, body = _rest(recv, head)
            if frames != 2:
                error = ProtocolError(
                    f"expected one payload frame after the routing id, got {frames - 1}",
                    reason="bad_frames",
                )
                self._reject(error, socket, identity, peer=_describe(identity))
                continue
            assert body is not None
            try:
                message = _decode(body.buffer, max_size=max_size)
            except ProtocolError as error:
                self._reject(error, socket, identity, peer=_describe(identity))
                continue
            conn = accepted.get((index, identity))
            if conn is not None and conn.link.receive_data(message, now):
                self._dispatch(conn, message)
                continue
            self._from_listener(index, socket, identity, message, now)

    def _from_listener(
        self,
        index: int,
        socket: zmq.Socket[Any],
        identity: bytes,
        message: messages.Message,
        now: float,
    ) -> None:
        key = (index, identity)
        conn = self._accepted.get(key)
        if conn is None:
            pending = sum(1 for c in self._accepted.values() if c.link.state is LinkState.IDLE)
            if pending >= _PENDING_LIMIT:
                self._rejected["too_many_handshakes"] += 1
                return
            link = Link.acceptor(self.config.link, control=WIRE_CONTROL)
            conn = _Conn(socket, link, self._listeners[index][1], identity=identity, born=now)
            self._accepted[key] = conn
            self._soon()  # its handshake deadline
        self._apply(conn, conn.link.receive(message, now), now)

    def _read_connector(
        self, conn: _Conn, socket: zmq.Socket[Any], now: float, batch: bool
    ) -> None:
        recv = socket.recv
        max_size = self.config.max_message_size
        for count in range(_BATCH if batch else 1):
            if count:
                if conn.socket is not socket:
                    return  # the link reconnected on a new socket while handling the last one
                if count == 1:
                    if not cast("int", socket.get(_EVENTS)) & _POLLIN:
                        return  # as in _read_listener
                    self._streaming = True
            try:
                head = recv(_NOBLOCK, copy=False)
            except zmq.Again:
                return
            if head.more:
                frames, _ = _rest(recv, head)
                error = ProtocolError(f"expected one frame, got {frames}", reason="bad_frames")
                self._reject(error, None, None, peer=conn.address)
                continue
            try:
                message = _decode(head.buffer, max_size=max_size)
            except ProtocolError as error:
                self._reject(error, None, None, peer=conn.address)
                self._transmit(conn, messages.ErrorReply.from_error(error))
                continue
            if conn.link.receive_data(message, now):
                if type(message) is _ERROR_REPLY and message.code == "bad_state":
                    self._forgotten(conn, message, now)
                    continue
                self._dispatch(conn, message)
                continue
            self._apply(conn, conn.link.receive(message, now), now)

    def _dispatch(self, conn: _Conn, message: messages.Message) -> None:
        """Hand a data message from a ready link to the node, then send what it answered."""
        peer = conn.peer
        assert peer is not None  # data is taken only after a Ready
        if type(message) in BULK_LINK_KINDS:
            self._lanes.route(peer, message)
            return
        try:
            self._on_message(peer, message)
        except Exception as error:  # noqa: BLE001 - a handler bug must not kill links
            self._handler_failed(peer, error)
        if self._outbox:  # the handler answered: send it before reading on
            self._flush_outbox()

    def _forgotten(self, conn: _Conn, reply: messages.ErrorReply, now: float) -> None:
        """The node answered ``bad_state`` on a link this side thinks ready: it has no
        session for us (it restarted before our liveness timeout noticed, its answers
        keeping the link alive). Count the link lost, so it reconnects with a Hello."""
        _log.warning(
            "peer_forgot_link",
            endpoint=self.config.link.id,
            peer=conn.peer,
            detail=reply.message[:200],
        )
        self._apply(conn, conn.link.transport_lost(now), now)

    def _reject(
        self,
        error: ProtocolError,
        socket: zmq.Socket[Any] | None,
        identity: bytes | None,
        *,
        peer: str | None,
    ) -> None:
        """Count and log rejected input; answer on a listener when the sender is known."""
        self._rejected[error.reason] += 1
        self._trouble.warning(
            "input_rejected",
            endpoint=self.config.link.id,
            peer=peer,
            reason=error.reason,
            error=str(error)[:200],
        )
        if socket is not None and identity is not None:
            self._route(socket, identity, messages.ErrorReply.from_error(error))

    def _count_rejected(self, reason: str) -> None:
        self._rejected[reason] += 1

    def _handler_failed(self, peer: str, error: Exception) -> None:
        self._rejected["handler_failed"] += 1
        _log.error("message_handler_failed", peer=peer, exc_info=error)

    # -- applying a link's effects ---------------------------------------------------

    def _apply(self, conn: _Conn, effects: Sequence[Effect], now: float) -> None:
        for effect in effects:
            if isinstance(effect, Transmit):
                self._transmit(conn, effect.message)
                continue
            if isinstance(effect, Deliver):
                self._deliver(conn, effect.message)
                continue
            self._soon()  # anything else may have moved a deadline
            if isinstance(effect, Ready):
                self._ready(conn, effect)
            elif isinstance(effect, Lost):
                self._down(conn, effect.reason, forget=False)
            elif isinstance(effect, Reconnect):
                self._reconnect(conn)
            elif isinstance(effect, Closed):
                self._closed_link(conn, effect, now)
            elif isinstance(effect, Violation):
                self._violation(conn, effect)
            elif isinstance(effect, Dropped):
                for message in effect.messages:
                    self._undelivered(conn.link.peer or conn.address, message, effect.reason)
            elif isinstance(effect, Refused):
                self._undelivered(conn.link.peer or conn.address, effect.message, effect.reason)

    def _transmit(self, conn: _Conn, message: object) -> None:
        try:
            payload = _encode(message)
        except (TypeError, ValueError) as error:
            _log.error("unencodable_message", peer=conn.link.peer, error=str(error))
            self._undelivered(conn.link.peer or conn.address, message, "unencodable")
            return
        if conn.backlog:
            self._hold(conn, payload)
            return
        identity = conn.identity
        try:
            if identity is None:
                conn.socket.send(payload, _NOBLOCK)
            else:
                # A ROUTER refuses a message on its first frame (EAGAIN, EHOSTUNREACH) or
                # takes it whole, so the two sends are one message or none.
                conn.socket.send(identity, _NOBLOCK_MORE)
                conn.socket.send(payload, _NOBLOCK)
        except zmq.Again:
            self._hold(conn, payload)  # back-pressure, not a lost peer
        except zmq.ZMQError as error:
            self._lost_transport(conn, error)

    def _lost_transport(self, conn: _Conn, error: zmq.ZMQError) -> None:
        # EHOSTUNREACH: the ROUTER no longer knows the peer's connection.
        _log.info("transport_lost", peer=conn.link.peer, errno=error.errno)
        conn.backlog.clear()
        self._backlogged.discard(conn)
        now = time.monotonic()
        self._apply(conn, conn.link.transport_lost(now), now)

    def _route(self, socket: zmq.Socket[Any], identity: bytes, message: messages.Message) -> None:
        try:
            socket.send_multipart([identity, messages.encode(message)], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the sender is gone or slow: an answer to bad input is best effort

    def _hold(self, conn: _Conn, payload: bytes) -> None:
        if len(conn.backlog) >= _BACKLOG_LIMIT:
            self._rejected["backpressure_dropped"] += 1
            self._undelivered(conn.link.peer or conn.address, payload, "backpressure")
            return
        conn.backlog.append(payload)
        self._backlogged.add(conn)

    def _flush_backlogs(self) -> None:
        for conn in list(self._backlogged):
            backlog = conn.backlog
            identity = conn.identity
            socket = conn.socket
            while backlog:
                try:
                    if identity is None:
                        socket.send(backlog[0], _NOBLOCK)
                    else:
                        socket.send(identity, _NOBLOCK_MORE)
                        socket.send(backlog[0], _NOBLOCK)
                except zmq.Again:
                    break
                except zmq.ZMQError as error:
                    self._lost_transport(conn, error)
                    break
                backlog.popleft()
            if not backlog:
                self._backlogged.discard(conn)

    def _deliver(self, conn: _Conn, message: object) -> None:
        peer = conn.link.peer
        assert peer is not None
        if type(message) in BULK_LINK_KINDS:
            self._lanes.route(peer, message)  # type: ignore[arg-type]
            return
        try:
            self._on_message(peer, message)  # type: ignore[arg-type]
        except Exception as error:  # noqa: BLE001 - a handler bug must not kill the links
            self._handler_failed(peer, error)

    def _ready(self, conn: _Conn, ready: Ready) -> None:
        old = self._by_peer.get(ready.peer)
        if (
            old is not None
            and old is not conn
            and old.ready
            and (old.identity is None) != (conn.identity is None)
        ):
            # Both sides dialled each other: two links to one peer. Both ends keep the link
            # the lower id dialled. Only the lower id closes the other one, and only once
            # its own dial is ready: by then the higher id has that link ready too (its
            # Welcome came first), so neither side ever sees the peer go down.
            keep_connector = self.config.link.id < ready.peer
            kept, duplicate = (
                (conn, old) if (conn.identity is None) == keep_connector else (old, conn)
            )
            self._by_peer[ready.peer] = kept
            conn.peer = ready.peer
            duplicate.ready = False  # its close reports nothing: the peer stays up on kept
            if kept is conn:
                conn.ready = conn.was_ready = True
            if keep_connector:
                now = time.monotonic()
                self._apply(duplicate, duplicate.link.close(now, DUPLICATE), now)
            return
        if old is not None and old is not conn and old.identity is not None:
            # The same peer came back on another connection: the old one is finished.
            self._accepted = {k: c for k, c in self._accepted.items() if c is not old}
            self._backlogged.discard(old)
        self._by_peer[ready.peer] = conn
        # A connector whose peer closed and came back runs a fresh link, which does not
        # know it was ready before; the connection does.
        reconnected = ready.reconnected or conn.was_ready
        conn.peer = ready.peer
        conn.ready = conn.was_ready = True
        conn.attempt = 0
        _log.info(
            "peer_up",
            endpoint=self.config.link.id,
            peer=ready.peer,
            role=ready.role,
            reconnected=reconnected,
        )
        self._notify(PeerUp(ready.peer, ready.role, reconnected))

    def _closed_link(self, conn: _Conn, closed: Closed, now: float) -> None:
        """A link closed for good. A connector whose ready peer said goodbye (a node that
        stops, say, to restart) starts a fresh link after a backoff, so the peer's return
        is noticed; one that was refused, or that this side closed, stays closed."""
        reopen = (
            conn.identity is None
            and closed.by_peer
            and conn.ready
            and closed.reason != DUPLICATE
            and not self._stopping.is_set()
        )
        if not reopen:
            refused = closed.reason != DUPLICATE and not self._stopping.is_set()
            if conn.identity is None and not conn.ready and refused:
                _log.warning(  # a refused handshake: nothing else would ever say so
                    "link_refused",
                    endpoint=self.config.link.id,
                    address=conn.address,
                    reason=closed.reason[:200],
                )
            self._down(conn, "closed", forget=True)
            return
        self._down(conn, "closed", forget=False)
        conn.link = Link.connector(self.config.link, rng=self._rng, control=WIRE_CONTROL)
        conn.backlog.clear()
        self._backlogged.discard(conn)
        delay = self.config.link.backoff.delay(conn.attempt, self._rng.random())
        conn.attempt += 1
        conn.reopen_at = now + delay
        _log.info(
            "link_reopen_scheduled", endpoint=self.config.link.id, peer=conn.peer, delay=delay
        )

    def _reopen(self, conn: _Conn, now: float) -> None:
        """A fresh link's backoff is over: a new connection, and its Hello."""
        conn.reopen_at = None
        self._reconnect(conn)
        self._soon()
        self._apply(conn, conn.link.connect(now), now)

    def _down(self, conn: _Conn, reason: str, *, forget: bool) -> None:
        peer = conn.link.peer
        was_ready, conn.ready = conn.ready, False
        if forget:
            if conn.identity is not None:
                self._accepted = {k: c for k, c in self._accepted.items() if c is not conn}
            if peer is not None and self._by_peer.get(peer) is conn:
                del self._by_peer[peer]
            self._backlogged.discard(conn)
        if peer is None or not was_ready or self._by_peer.get(peer) not in (conn, None):
            return  # never up, or the peer is still up on another link
        log = _log.info if reason == "closed" else _log.warning
        log("peer_down", endpoint=self.config.link.id, peer=peer, reason=reason)
        self._notify(PeerDown(peer, reason))

    def _reconnect(self, conn: _Conn) -> None:
        assert conn.peer_address is not None
        self._poller.unregister(conn.socket)
        self._socket_conn.pop(conn.socket, None)
        conn.backlog.clear()  # frames for the old connection's session
        self._backlogged.discard(conn)
        conn.socket.close(linger=0)
        conn.socket = self._connect(conn.peer_address)
        self._socket_conn[conn.socket] = conn

    def _violation(self, conn: _Conn, violation: Violation) -> None:
        self._rejected[violation.reason] += 1
        self._trouble.warning(
            "protocol_violation",
            endpoint=self.config.link.id,
            peer=conn.link.peer or conn.address,
            reason=violation.reason,
            kind=violation.kind,
            detail=violation.detail[:200],
        )
        # Never answer an ErrorReply with one: two confused sides would answer each other
        # for ever.
        if violation.reason == "bad_state" and violation.kind != "ErrorReply":
            reply = messages.ErrorReply(code="bad_state", message=violation.detail[:1000])
            self._transmit(conn, reply)

    def _undelivered(self, peer: str, message: object, reason: str) -> None:
        if self._on_undelivered is not None:
            try:
                self._on_undelivered(peer, message, reason)
            except Exception as error:  # noqa: BLE001
                _log.error("undelivered_handler_failed", peer=peer, exc_info=error)

    def _notify(self, event: PeerUp | PeerDown) -> None:
        if isinstance(event, PeerDown):
            self._lanes.peer_down(event.peer)
        if self._on_peer is not None:
            try:
                self._on_peer(event)
            except Exception as error:  # noqa: BLE001
                _log.error("peer_handler_failed", peer=event.peer, exc_info=error)

    # -- shutting down ---------------------------------------------------------------

    def _goodbye(self) -> None:
        """Send Close to every ready peer, and to every node whose Welcome is still on
        its way (it counts us ready already); best effort: the sockets close right after."""
        now = time.monotonic()
        for conn in self._all_conns():
            if conn.link.state in (LinkState.READY, LinkState.CONNECTING):
                for effect in conn.link.close(now, "node stopping"):
                    if isinstance(effect, Transmit):
                        self._transmit(conn, effect.message)

    def _close_sockets(self) -> None:
        # A short linger lets the goodbye Close messages leave; nothing else is pending.
        for socket, _ in self._listeners:
            socket.close(linger=100)
        for conn in self._connectors:
            conn.socket.close(linger=100)
        self._listeners.clear()
        if self.config.security is not None:
            self.config.security.stop()
        if self._context is not None:
            self._context.term()
            self._context = None

    def _release(self) -> None:
        with self._wake_lock:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self._wake_r = self._wake_w = -1


def _rest(recv: Callable[..., Any], head: zmq.Frame) -> tuple[int, zmq.Frame | None]:
    """Read the rest of a multipart message whose first frame is ``head`` (ZeroMQ delivers
    a message whole, so its frames are all there): how many frames it had in all, and
    its second frame. Extra frames are counted and dropped, never kept."""
    frames = 1
    second: zmq.Frame | None = None
    more = head.more
    while more:
        frame = recv(_NOBLOCK, copy=False)
        frames += 1
        if frames == 2:
            second = frame
        more = frame.more
    return frames, second


def _describe(identity: bytes) -> str:
    """A routing id for a log line: its text when printable, else hex."""
    text = identity.decode("ascii", errors="replace")
    return text if text.isprintable() and "\ufffd" not in text else identity.hex()
