"""The ZeroMQ adapter: sockets, one I/O thread, and a sans-IO :class:`Link` per peer.

A node binds a ROUTER on each ``listen`` endpoint and connects a DEALER to each configured
peer; a device only connects. Every socket is owned by the endpoint's I/O thread, which
polls them, decodes bytes into typed messages, feeds them to the peer's :class:`Link`
and applies the effects it returns. Other threads talk to it through :meth:`send`, a
queue plus a wake-up pipe, so no socket is ever touched by two threads.

Hostile input never leaves this module as an exception: malformed bytes, wrong frame
counts, unknown kinds, wrong types, bad versions, oversized messages and protocol
violations are each rejected, counted by reason, answered with an ``ErrorReply`` where
the sender can be reached, and logged at a bounded rate.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol, Self

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
from edgeloop.transport._protocol import Link
from edgeloop.transport._state import LinkSide, LinkState

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
    "parse_peer",
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

_BACKLOG_LIMIT = 100_000
"""Most frames held back for one slow peer before further ones are dropped (and reported)."""

_HWM = 10_000
"""ZeroMQ's own per-pipe queue, in messages, before it pushes back."""

_PENDING_LIMIT = 1024
"""Most peers that may be mid-handshake on the listeners at once (a flood guard)."""


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

    __slots__ = ("address", "backlog", "born", "identity", "link", "peer_address", "socket")

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
        # Frames ZeroMQ would not take yet (its pipe to the peer is at the high-water
        # mark): they leave first, in order, as soon as the pipe drains.
        self.backlog: collections.deque[list[bytes]] = collections.deque()


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
        self._rejected: collections.Counter[str] = collections.Counter()
        self._outbox: collections.deque[tuple[str, messages.Message]] = collections.deque()
        self._wake_r = self._wake_w = -1
        self._wake_pending = False
        self._wake_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._bound: tuple[str, ...] = ()
        self._trouble = _RateLimitedLog()
        self._poller = zmq.Poller()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Bind, connect and start the I/O thread; raises LinkError if a bind fails."""
        if self._thread is not None:
            msg = "this endpoint is already started"
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
        self._stopping.set()
        self._wake()
        thread.join(timeout)
        self._thread = None

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
        if peer not in self._by_peer or self._thread is None:
            return False
        self._outbox.append((peer, message))
        self._wake()
        return True

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
        with self._wake_lock:
            if self._wake_pending or self._wake_w < 0:
                return
            self._wake_pending = True
        try:
            os.write(self._wake_w, b"!")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake is pending anyway) or already closed

    # -- the I/O thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._open()
        except (zmq.ZMQError, OSError, ValueError) as error:
            self._start_error = error
            self._close_sockets()
            self._started.set()
            return
        self._started.set()
        try:
            self._loop()
        except Exception as error:  # noqa: BLE001 - a bug here must not hang the node silently
            _log.critical("link_io_failed", endpoint=self.config.link.id, exc_info=error)
        finally:
            self._goodbye()
            self._close_sockets()
            self._release()

    def _open(self) -> None:
        assert self._context is not None
        security = self.config.security
        if security is not None:
            security.start(self._context)
        self._poller.register(self._wake_r, zmq.POLLIN)
        bound: list[str] = []
        for address in self.config.listen:
            socket = self._new_socket(zmq.ROUTER)
            socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
            socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
            if security is not None:
                security.server(socket, address)
            socket.bind(address)
            actual = socket.getsockopt_string(zmq.LAST_ENDPOINT)
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
        # A stable routing id lets the node's ROUTER hand the peer over to a new
        # connection after a reconnect, so its acceptor link and queue carry on.
        socket.setsockopt(zmq.ROUTING_ID, self.config.link.id.encode())
        if self.config.security is not None:
            self.config.security.client(socket, peer)
        socket.connect(peer.address)
        self._poller.register(socket, zmq.POLLIN)
        return socket

    def _loop(self) -> None:
        poll = self._poller.poll
        while not self._stopping.is_set():
            now = time.monotonic()
            deadline = self._next_deadline(now)
            wait_ms = max(0, int((deadline - now) * 1000) + 1)
            for socket, _ in poll(wait_ms):
                if socket == self._wake_r:
                    self._drain_wake()
                elif isinstance(socket, zmq.Socket):
                    self._read(socket)
            self._flush_outbox()
            self._flush_backlogs()
            self._tick(time.monotonic())

    def _next_deadline(self, now: float) -> float:
        # While a slow peer holds frames back, poll often to hand them on.
        backlog = any(c.backlog for c in self._all_conns())
        deadline = now + (0.001 if backlog else _POLL_CAP)
        for conn in self._all_conns():
            due = conn.link.next_deadline()
            if due is not None and due < deadline:
                deadline = due
        return deadline

    def _all_conns(self) -> list[_Conn]:
        return [*self._connectors, *self._accepted.values()]

    def _drain_wake(self) -> None:
        with self._wake_lock:
            self._wake_pending = False
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _flush_outbox(self) -> None:
        outbox = self._outbox
        while outbox:
            peer, message = outbox.popleft()
            conn = self._by_peer.get(peer)
            if conn is None:
                self._undelivered(peer, message, "no_link")
                continue
            now = time.monotonic()
            try:
                effects = conn.link.send(message, now)
            except ProtocolError:  # closed meanwhile
                self._undelivered(peer, message, "link_closed")
                continue
            self._apply(conn, effects, now)

    def _tick(self, now: float) -> None:
        for conn in self._all_conns():
            due = conn.link.next_deadline()
            if due is not None and due <= now:
                self._apply(conn, conn.link.tick(now), now)
        # Peers that connected to a listener but never finished a handshake are dropped.
        stale = [
            key
            for key, conn in self._accepted.items()
            if conn.link.state is LinkState.IDLE
            and now - conn.born > self.config.link.handshake_timeout
        ]
        for key in stale:
            del self._accepted[key]

    # -- reading ---------------------------------------------------------------------

    def _read(self, socket: zmq.Socket[Any]) -> None:
        listener = next((i for i, (s, _) in enumerate(self._listeners) if s is socket), None)
        for _ in range(_BATCH):
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            now = time.monotonic()
            if listener is not None:
                self._from_listener(listener, frames, now)
            else:
                conn = self._socket_conn.get(socket)
                if conn is not None:
                    self._from_connector(conn, frames, now)

    def _from_listener(self, index: int, frames: list[bytes], now: float) -> None:
        identity = frames[0]
        socket, address = self._listeners[index]
        if len(frames) != 2:
            self._reject(
                ProtocolError(
                    f"expected one payload frame after the routing id, got {len(frames) - 1}",
                    reason="bad_frames",
                ),
                lambda reply: self._route(socket, identity, reply),
                peer=_describe(identity),
            )
            return
        message = self._decode(
            frames[1], lambda reply: self._route(socket, identity, reply), identity
        )
        if message is None:
            return
        key = (index, identity)
        conn = self._accepted.get(key)
        if conn is None:
            pending = sum(1 for c in self._accepted.values() if c.link.state is LinkState.IDLE)
            if pending >= _PENDING_LIMIT:
                self._rejected["too_many_handshakes"] += 1
                return
            link = Link.acceptor(self.config.link, control=WIRE_CONTROL)
            conn = _Conn(socket, link, address, identity=identity, born=now)
            self._accepted[key] = conn
        self._apply(conn, conn.link.receive(message, now), now)

    def _from_connector(self, conn: _Conn, frames: list[bytes], now: float) -> None:
        if len(frames) != 1:
            self._reject(
                ProtocolError(f"expected one frame, got {len(frames)}", reason="bad_frames"),
                None,
                peer=conn.address,
            )
            return
        message = self._decode(frames[0], lambda reply: self._transmit(conn, reply), None)
        if message is not None:
            self._apply(conn, conn.link.receive(message, now), now)

    def _decode(
        self,
        payload: bytes,
        answer: Callable[[messages.Message], None] | None,
        identity: bytes | None,
    ) -> messages.Message | None:
        # Versions are not checked here: the link negotiates them in the handshake, so a
        # newer peer can still agree on an older version both sides speak.
        try:
            message = messages.decode(payload, max_size=self.config.max_message_size)
        except ProtocolError as error:
            peer = _describe(identity) if identity is not None else None
            self._reject(error, answer, peer=peer)
            return None
        return message

    def _reject(
        self,
        error: ProtocolError,
        answer: Callable[[messages.Message], None] | None,
        *,
        peer: str | None,
    ) -> None:
        self._rejected[error.reason] += 1
        self._trouble.warning(
            "input_rejected",
            endpoint=self.config.link.id,
            peer=peer,
            reason=error.reason,
            error=str(error)[:200],
        )
        if answer is not None:
            answer(messages.ErrorReply.from_error(error))

    # -- applying a link's effects ---------------------------------------------------

    def _apply(self, conn: _Conn, effects: Sequence[Effect], now: float) -> None:
        for effect in effects:
            if isinstance(effect, Transmit):
                self._transmit(conn, effect.message)
            elif isinstance(effect, Deliver):
                self._deliver(conn, effect.message)
            elif isinstance(effect, Ready):
                self._ready(conn, effect)
            elif isinstance(effect, Lost):
                self._down(conn, effect.reason, forget=False)
            elif isinstance(effect, Reconnect):
                self._reconnect(conn)
            elif isinstance(effect, Closed):
                self._down(conn, "closed", forget=True)
            elif isinstance(effect, Violation):
                self._violation(conn, effect)
            elif isinstance(effect, Dropped):
                for message in effect.messages:
                    self._undelivered(conn.link.peer or conn.address, message, effect.reason)
            elif isinstance(effect, Refused):
                self._undelivered(conn.link.peer or conn.address, effect.message, effect.reason)

    def _transmit(self, conn: _Conn, message: object) -> None:
        try:
            payload = messages.encode(message)  # type: ignore[arg-type]
        except (TypeError, ValueError) as error:
            _log.error("unencodable_message", peer=conn.link.peer, error=str(error))
            self._undelivered(conn.link.peer or conn.address, message, "unencodable")
            return
        if conn.identity is None:
            self._send_frames(conn, [payload])
        else:
            self._send_frames(conn, [conn.identity, payload])

    def _route(self, socket: zmq.Socket[Any], identity: bytes, message: messages.Message) -> None:
        try:
            socket.send_multipart([identity, messages.encode(message)], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the sender is gone or slow: an answer to bad input is best effort

    def _send_frames(self, conn: _Conn, frames: list[bytes]) -> None:
        if conn.backlog:
            self._hold(conn, frames)
            return
        try:
            conn.socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            self._hold(conn, frames)  # back-pressure, not a lost peer
        except zmq.ZMQError as error:
            # EHOSTUNREACH: the ROUTER no longer knows the peer's connection.
            _log.info("transport_lost", peer=conn.link.peer, errno=error.errno)
            self._apply(conn, conn.link.transport_lost(time.monotonic()), time.monotonic())

    def _hold(self, conn: _Conn, frames: list[bytes]) -> None:
        if len(conn.backlog) >= _BACKLOG_LIMIT:
            self._rejected["backpressure_dropped"] += 1
            self._undelivered(conn.link.peer or conn.address, frames[-1], "backpressure")
            return
        conn.backlog.append(frames)

    def _flush_backlogs(self) -> None:
        for conn in self._all_conns():
            backlog = conn.backlog
            while backlog:
                try:
                    conn.socket.send_multipart(backlog[0], zmq.NOBLOCK)
                except zmq.Again:
                    break
                except zmq.ZMQError as error:
                    backlog.clear()
                    _log.info("transport_lost", peer=conn.link.peer, errno=error.errno)
                    now = time.monotonic()
                    self._apply(conn, conn.link.transport_lost(now), now)
                    break
                backlog.popleft()

    def _deliver(self, conn: _Conn, message: object) -> None:
        peer = conn.link.peer
        assert peer is not None
        try:
            self._on_message(peer, message)  # type: ignore[arg-type]
        except Exception as error:  # noqa: BLE001 - a handler bug must not kill the links
            self._rejected["handler_failed"] += 1
            _log.error("message_handler_failed", peer=peer, exc_info=error)

    def _ready(self, conn: _Conn, ready: Ready) -> None:
        old = self._by_peer.get(ready.peer)
        if old is not None and old is not conn and old.identity is not None:
            # The same peer came back on another connection: the old one is finished.
            self._accepted = {k: c for k, c in self._accepted.items() if c is not old}
        self._by_peer[ready.peer] = conn
        _log.info(
            "peer_up",
            endpoint=self.config.link.id,
            peer=ready.peer,
            role=ready.role,
            reconnected=ready.reconnected,
        )
        self._notify(PeerUp(ready.peer, ready.role, ready.reconnected))

    def _down(self, conn: _Conn, reason: str, *, forget: bool) -> None:
        peer = conn.link.peer
        if forget:
            if conn.identity is not None:
                self._accepted = {k: c for k, c in self._accepted.items() if c is not conn}
            if peer is not None and self._by_peer.get(peer) is conn:
                del self._by_peer[peer]
        if peer is None:
            return
        log = _log.info if reason == "closed" else _log.warning
        log("peer_down", endpoint=self.config.link.id, peer=peer, reason=reason)
        self._notify(PeerDown(peer, reason))

    def _reconnect(self, conn: _Conn) -> None:
        assert conn.peer_address is not None
        self._poller.unregister(conn.socket)
        self._socket_conn.pop(conn.socket, None)
        conn.backlog.clear()  # frames for the old connection's session
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
        if violation.reason == "bad_state":
            reply = messages.ErrorReply(code="bad_state", message=violation.detail[:1000])
            self._transmit(conn, reply)

    def _undelivered(self, peer: str, message: object, reason: str) -> None:
        if self._on_undelivered is not None:
            try:
                self._on_undelivered(peer, message, reason)
            except Exception as error:  # noqa: BLE001
                _log.error("undelivered_handler_failed", peer=peer, exc_info=error)

    def _notify(self, event: PeerUp | PeerDown) -> None:
        if self._on_peer is not None:
            try:
                self._on_peer(event)
            except Exception as error:  # noqa: BLE001
                _log.error("peer_handler_failed", peer=event.peer, exc_info=error)

    # -- shutting down ---------------------------------------------------------------

    def _goodbye(self) -> None:
        """Send Close to every ready peer (best effort: the sockets close right after)."""
        now = time.monotonic()
        for conn in self._all_conns():
            if conn.link.state is LinkState.READY:
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


def _describe(identity: bytes) -> str:
    """A routing id for a log line: its text when printable, else hex."""
    text = identity.decode("ascii", errors="replace")
    return text if text.isprintable() and "\ufffd" not in text else identity.hex()


def parse_peer(value: str | Mapping[str, object]) -> PeerAddress:
    """A peer from an app file: an address string or ``{address, server_key}``."""
    if isinstance(value, str):
        return PeerAddress(value)
    address = value.get("address")
    key = value.get("server_key")
    if not isinstance(address, str):
        msg = f"a peer needs an address string, got {address!r}"
        raise ValueError(msg)
    if key is not None and not isinstance(key, str):
        msg = f"server_key must be a Z85 string, got {key!r}"
        raise ValueError(msg)
    return PeerAddress(address, key)
