"""The sans-IO link: one peer's handshake, heartbeats, close, reconnect and send queue.

A :class:`Link` holds no socket, thread or clock. Its adapter feeds it what happened
and applies the effects it returns, in order:

* ``receive(message, now)``: a decoded message arrived from the peer;
* ``send(message, now)``: this node wants a data message delivered to the peer;
* ``tick(now)``: time passed (call it at ``next_deadline()``, or on a steady poll);
* ``connect(now)``, ``close(now, reason)``, ``transport_lost(now)``: lifecycle;
* ``send_ready(message, now)``, ``receive_data(message, now)``: the hot paths, for data
  on a link that takes it now: ``True`` means counted, and the adapter transmits or
  delivers the message itself (no effect list is built); ``False`` means nothing
  happened, and the adapter calls ``send`` or ``receive``.

Which calls and messages are legal in which state is decided by the table in
:mod:`edgeloop.transport._state` and nowhere else. Errors are split as in h11: a call
this side should not have made raises :class:`~edgeloop.errors.LinkStateError`; a
message the peer should not have sent is a counted :class:`Violation` effect, so a
hostile or buggy peer can never raise out of ``receive`` or ``tick``.

Timing (all in the ``now`` values given; the acceptor's ``Welcome`` fixes both sides'):

* in ``READY`` a heartbeat goes out once nothing was sent for ``heartbeat_interval``;
* any received message is a sign of life; ``liveness_timeout`` without one is ``LOST``;
* a connector waits ``handshake_timeout`` for ``Welcome``, then counts the peer lost;
* ``close`` waits ``close_timeout`` for the peer's ``Close``, then closes anyway;
* a lost connector reconnects after :meth:`ReconnectBackoff.delay`; the attempt count
  resets when a handshake succeeds.
"""

from __future__ import annotations

from collections import Counter, deque
from types import MappingProxyType
from typing import Protocol

from edgeloop.errors import EdgeloopInternalError, LinkStateError
from edgeloop.transport._config import LinkConfig, QueueOverflow
from edgeloop.transport._control import (
    CONTROL_KINDS,
    ControlFactory,
    Rejection,
    Terms,
    kind_of,
    read_close_reason,
    read_hello,
    read_welcome,
)
from edgeloop.transport._effects import (
    Closed,
    Deliver,
    Dropped,
    Effect,
    LinkStatistics,
    Lost,
    LostReason,
    Queued,
    Ready,
    Reconnect,
    Refused,
    Transmit,
    Violation,
)
from edgeloop.transport._state import TRANSITIONS, LinkSide, LinkState, Trigger

__all__ = ["Link", "RandomSource", "CLOSE_ACK"]

CLOSE_ACK = "ack"
"""The reason a link gives when it answers the peer's ``Close`` with its own."""

_TRIGGER_OF_KIND = {
    "Hello": Trigger.HELLO,
    "Welcome": Trigger.WELCOME,
    "Heartbeat": Trigger.HEARTBEAT,
    "Close": Trigger.PEER_CLOSE,
}

_READY = LinkState.READY
_DATA = Trigger.DATA
_SEND = Trigger.SEND


class RandomSource(Protocol):
    """Where the reconnect jitter comes from: ``random.Random`` or the node's seeded RNG."""

    def random(self) -> float:
        """A float in ``[0, 1)``."""


class Link:
    """The protocol state of one link to one peer, from this side's point of view.

    Build one with :meth:`connector` (the DEALER side) or :meth:`acceptor` (the ROUTER
    side). Not thread-safe: its adapter calls it from one thread.
    """

    def __init__(
        self,
        config: LinkConfig,
        side: LinkSide,
        *,
        rng: RandomSource | None = None,
        expected_peer: str | None = None,
        control: ControlFactory | None = None,
    ) -> None:
        side = LinkSide(side)
        if side is LinkSide.CONNECTOR and rng is None:
            msg = (
                "a connector link needs rng= for its reconnect jitter: pass the node's "
                "seeded random.Random so that runs can be replayed"
            )
            raise ValueError(msg)
        if side is LinkSide.ACCEPTOR and expected_peer is not None:
            msg = "expected_peer= is for connectors; an acceptor learns its peer from Hello"
            raise ValueError(msg)
        self._config = config
        self._side = side
        self._rng = rng
        self._expected_peer = expected_peer
        self._control = control if control is not None else ControlFactory()
        self._state = LinkState.IDLE
        # The table's rows for this side, and the current state's row: what is legal now
        # is always looked up in the table, only without walking down from the top.
        self._table = TRANSITIONS[side]
        self._row = self._table[self._state]
        self._terms: Terms | None = None
        self._queue: deque[object] = deque()
        self._violations: Counter[str] = Counter()
        self._sent = self._received = self._dropped = self._refused = 0
        self._heartbeats_sent = self._heartbeats_received = self._heartbeat_seq = 0
        self._reconnect_attempts = self._reconnects = 0
        self._last_seen: float | None = None
        self._last_sent: float | None = None
        self._deadline = 0.0  # handshake (CONNECTING) or close (CLOSING) deadline
        self._close_reason = ""
        self._attempt = 0  # reconnect attempts since the last successful handshake
        self._reconnect_at: float | None = None
        self._was_ready = False

    @classmethod
    def connector(
        cls,
        config: LinkConfig,
        *,
        rng: RandomSource,
        expected_peer: str | None = None,
        control: ControlFactory | None = None,
    ) -> Link:
        """The side that connects (DEALER): call :meth:`connect` to send ``Hello``.

        ``expected_peer``, when given, is the only node id this link accepts in
        ``Welcome``. ``rng`` draws the reconnect jitter.
        """
        return cls(
            config, LinkSide.CONNECTOR, rng=rng, expected_peer=expected_peer, control=control
        )

    @classmethod
    def acceptor(cls, config: LinkConfig, *, control: ControlFactory | None = None) -> Link:
        """The side that accepts (ROUTER): waits for the peer's ``Hello``."""
        return cls(config, LinkSide.ACCEPTOR, control=control)

    # -- what the adapter reads -----------------------------------------------------

    @property
    def config(self) -> LinkConfig:
        return self._config

    @property
    def side(self) -> LinkSide:
        return self._side

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def terms(self) -> Terms | None:
        """What the last successful handshake agreed on, or ``None`` before one."""
        return self._terms

    @property
    def peer(self) -> str | None:
        """The peer's id once a handshake succeeded, else ``None``."""
        return None if self._terms is None else self._terms.peer

    @property
    def can_send(self) -> bool:
        """Whether :meth:`send` is allowed now (it is, queued, until the link closes)."""
        return _SEND in self._row

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def next_deadline(self) -> float | None:
        """The earliest ``now`` at which :meth:`tick` will do something, or ``None``."""
        state = self._state
        if state is LinkState.READY:
            terms = self._ready_terms()
            return min(
                self._since(self._last_sent) + terms.heartbeat_interval,
                self._since(self._last_seen) + terms.liveness_timeout,
            )
        if state in (LinkState.CONNECTING, LinkState.CLOSING):
            return self._deadline
        if state is LinkState.LOST:
            return self._reconnect_at
        return None

    def statistics(self) -> LinkStatistics:
        return LinkStatistics(
            local_id=self._config.id,
            side=self._side,
            state=self._state,
            peer=self.peer,
            protocol=None if self._terms is None else self._terms.protocol,
            queued=len(self._queue),
            sent=self._sent,
            received=self._received,
            dropped=self._dropped,
            refused=self._refused,
            heartbeats_sent=self._heartbeats_sent,
            heartbeats_received=self._heartbeats_received,
            last_seen=self._last_seen,
            last_sent=self._last_sent,
            reconnect_attempts=self._reconnect_attempts,
            reconnects=self._reconnects,
            violations=MappingProxyType(dict(self._violations)),
        )

    # -- local calls: misuse raises LinkStateError ------------------------------------

    def connect(self, now: float) -> list[Effect]:
        """Connector: send ``Hello`` (the adapter has just connected its socket)."""
        if self._side is LinkSide.ACCEPTOR:
            msg = "an acceptor link does not connect: it waits for the peer's Hello"
            raise LinkStateError(msg)
        self._local(Trigger.CONNECT, "connect")
        return [self._start_handshake(now)]

    def send(self, message: object, now: float) -> list[Effect]:
        """Send a data message: transmitted when ready, else queued under the bound."""
        if self.send_ready(message, now):
            return [Transmit(message)]
        kind = kind_of(message)
        if kind in CONTROL_KINDS:
            msg = (
                f"{kind} is a control message the link sends itself: use connect() or "
                "close(), and send() only data"
            )
            raise LinkStateError(msg)
        self._local(Trigger.SEND, "send on")
        if self._state is LinkState.READY:
            self._sent += 1
            return [self._transmit(message, now)]
        return self._enqueue(message)

    def send_ready(self, message: object, now: float) -> bool:
        """The adapter's fast path for :meth:`send`: if the link is ``READY`` and
        ``message`` is data, count it as sent and return ``True``, and the adapter puts
        it on the wire itself (exactly what ``send`` would return as a ``Transmit``);
        otherwise change nothing and return ``False``, and the adapter calls ``send``."""
        if self._state is not _READY or type(message).__name__ in CONTROL_KINDS:
            return False
        target = self._row.get(_SEND)
        if target is not _READY:  # the table is the judge, even on the fast path
            return False
        self._sent += 1
        self._last_sent = now
        return True

    def close(self, now: float, reason: str = "normal") -> list[Effect]:
        """Say goodbye: from ``READY`` send ``Close`` and wait for the peer's (up to
        ``close_timeout``); from any other live state close at once. Idempotent."""
        before = self._state
        self._local(Trigger.CLOSE, "close")
        if before in (LinkState.CLOSING, LinkState.CLOSED):
            return []
        self._close_reason = reason
        if before is LinkState.READY:
            self._deadline = now + self._config.close_timeout
            return [self._transmit(self._control.close(reason=reason), now)]
        effects: list[Effect] = []
        if before is LinkState.CONNECTING:
            effects.append(self._transmit(self._control.close(reason=reason), now))
        return self._finish(effects, reason, by_peer=False)

    def transport_lost(self, now: float) -> list[Effect]:
        """The adapter saw the connection drop: lose the peer now rather than at the
        liveness timeout. Harmless in states where there is nothing to lose."""
        before = self._state
        self._local(Trigger.TRANSPORT_LOST, "report a lost transport on")
        if before in (LinkState.READY, LinkState.CONNECTING):
            return self._lose("transport_lost", now)
        if before is LinkState.CLOSING:
            return [Closed(self._close_reason, by_peer=False)]
        return []

    # -- the peer: misuse is a Violation, never an exception -------------------------

    def receive(self, message: object, now: float) -> list[Effect]:
        """Handle one decoded message from the peer; every message counts as liveness."""
        if self.receive_data(message, now):
            return [Deliver(message)]
        self._last_seen = now
        kind = kind_of(message)
        trigger = _TRIGGER_OF_KIND.get(kind, _DATA)
        if trigger not in self._row:
            detail = f"{kind} is not allowed while the {self._side} link is {self._state}"
            return [self._violation(Rejection("bad_state", detail), message)]
        if trigger is Trigger.HELLO:
            return self._on_hello(message, now)
        if trigger is Trigger.WELCOME:
            return self._on_welcome(message, now)
        if trigger is Trigger.PEER_CLOSE:
            return self._on_peer_close(message, now)
        self._move(trigger)
        if trigger is Trigger.HEARTBEAT:
            self._heartbeats_received += 1
            return []
        self._received += 1
        return [Deliver(message)]

    def receive_data(self, message: object, now: float) -> bool:
        """The adapter's fast path for :meth:`receive`: if ``message`` is data and the
        link's state takes data now (``READY``, or ``CLOSING`` for what was in flight),
        count it and return ``True``, and the adapter delivers it itself (exactly what
        ``receive`` would return as a ``Deliver``); otherwise change nothing and return
        ``False``, and the adapter calls ``receive``."""
        if type(message).__name__ in _TRIGGER_OF_KIND:
            return False
        target = self._row.get(_DATA)
        if target is None:
            return False
        if target is not self._state:
            self._enter(target)
        self._last_seen = now
        self._received += 1
        return True

    # -- time -----------------------------------------------------------------------

    def tick(self, now: float) -> list[Effect]:
        """Let time pass: send a heartbeat, time out a handshake, a peer or a close, or
        reconnect. Does at most one of these per call; never raises."""
        state = self._state
        if state is LinkState.READY:
            terms = self._ready_terms()
            if now - self._since(self._last_seen) >= terms.liveness_timeout:
                self._move(Trigger.LIVENESS_TIMEOUT)
                return self._lose("liveness_timeout", now)
            if now - self._since(self._last_sent) >= terms.heartbeat_interval:
                self._move(Trigger.HEARTBEAT_DUE)
                return [self._heartbeat(now)]
        elif state is LinkState.CONNECTING and now >= self._deadline:
            self._move(Trigger.HANDSHAKE_TIMEOUT)
            return self._lose("handshake_timeout", now)
        elif state is LinkState.CLOSING and now >= self._deadline:
            self._move(Trigger.CLOSE_TIMEOUT)
            return [Closed(self._close_reason, by_peer=False)]
        elif state is LinkState.LOST and self._reconnect_due(now):
            self._move(Trigger.RECONNECT_DUE)
            self._reconnect_at = None
            self._reconnect_attempts += 1
            return [Reconnect(self._attempt), self._start_handshake(now)]
        return []

    # -- the handshake --------------------------------------------------------------

    def _on_hello(self, message: object, now: float) -> list[Effect]:
        result = read_hello(message, self._config, self.peer)
        if isinstance(result, Rejection):
            return self._reject(Trigger.HELLO_REJECTED, result, message, now)
        restarted: list[Effect] = []
        if self._state is LinkState.READY:  # the peer lost us, or restarted, unnoticed
            restarted.append(Lost("peer_restarted", now, None))
        self._move(Trigger.HELLO)
        welcome = self._control.welcome(
            peer=self._config.id,
            protocol=result.protocol,
            capabilities=tuple(sorted(result.capabilities)),
            heartbeat_interval=result.heartbeat_interval,
            liveness_timeout=result.liveness_timeout,
        )
        return [*restarted, self._transmit(welcome, now), *self._become_ready(result, now)]

    def _on_welcome(self, message: object, now: float) -> list[Effect]:
        result = read_welcome(message, self._config, self._expected_peer)
        if isinstance(result, Rejection):
            return self._reject(Trigger.WELCOME_REJECTED, result, message, now)
        self._move(Trigger.WELCOME)
        return self._become_ready(result, now)

    def _start_handshake(self, now: float) -> Transmit:
        self._deadline = now + self._config.handshake_timeout
        hello = self._control.hello(
            peer=self._config.id,
            role=self._config.role,
            protocol=self._config.protocols[-1],
            capabilities=tuple(sorted(self._config.capabilities)),
        )
        return self._transmit(hello, now)

    def _become_ready(self, terms: Terms, now: float) -> list[Effect]:
        self._terms = terms
        reconnected = self._was_ready
        if reconnected:
            self._reconnects += 1
        self._was_ready = True
        self._attempt = 0
        self._reconnect_at = None
        self._last_seen = now
        effects: list[Effect] = [
            Ready(
                peer=terms.peer,
                role=terms.role,
                protocol=terms.protocol,
                capabilities=terms.capabilities,
                heartbeat_interval=terms.heartbeat_interval,
                liveness_timeout=terms.liveness_timeout,
                reconnected=reconnected,
            )
        ]
        while self._queue:  # rule 4: what waited goes first, in order
            self._sent += 1
            effects.append(self._transmit(self._queue.popleft(), now))
        return effects

    def _reject(
        self, trigger: Trigger, rejection: Rejection, message: object, now: float
    ) -> list[Effect]:
        self._move(trigger)
        goodbye = self._control.close(reason=f"{rejection.reason}: {rejection.detail}")
        effects: list[Effect] = [self._violation(rejection, message), self._transmit(goodbye, now)]
        return self._finish(effects, rejection.reason, by_peer=False)

    def _on_peer_close(self, message: object, now: float) -> list[Effect]:
        before = self._state
        self._move(Trigger.PEER_CLOSE)
        if before is LinkState.CLOSED:
            return []  # the peer's late answer to our Close
        if before is LinkState.CLOSING:
            return [Closed(self._close_reason, by_peer=False)]
        reason = read_close_reason(message)
        self._close_reason = reason
        effects: list[Effect] = []
        if before is LinkState.READY:
            effects.append(self._transmit(self._control.close(reason=CLOSE_ACK), now))
        return self._finish(effects, reason, by_peer=True)

    # -- helpers --------------------------------------------------------------------

    def _local(self, trigger: Trigger, verb: str) -> None:
        """Rule 3 for local triggers: move, or raise LinkStateError and change nothing."""
        if trigger not in self._row:
            whom = f" to {self.peer!r}" if self.peer is not None else ""
            msg = f"cannot {verb} the {self._side} link{whom}: it is {self._state}"
            if trigger is Trigger.SEND:
                msg += "; check link.can_send first, or open a new link"
            elif trigger is Trigger.CONNECT:
                msg += "; connect() is called once, a lost link reconnects by itself"
            raise LinkStateError(msg)
        self._move(trigger)

    def _move(self, trigger: Trigger) -> None:
        target = self._row.get(trigger)
        if target is None:  # the callers check legality first
            msg = f"illegal transition {self._side}/{self._state} on {trigger}"
            raise EdgeloopInternalError(msg)
        if target is not self._state:
            self._enter(target)

    def _enter(self, state: LinkState) -> None:
        """The one place the state changes: the state and its row of the table move together."""
        self._state = state
        self._row = self._table[state]

    def _transmit(self, message: object, now: float) -> Transmit:
        self._last_sent = now
        return Transmit(message)

    def _heartbeat(self, now: float) -> Transmit:
        seq = self._heartbeat_seq
        self._heartbeat_seq += 1
        self._heartbeats_sent += 1
        return self._transmit(self._control.heartbeat(seq=seq), now)

    def _enqueue(self, message: object) -> list[Effect]:
        queue = self._queue
        if len(queue) < self._config.queue_limit:
            queue.append(message)
            return [Queued(message, len(queue))]
        overflow = self._config.overflow
        if overflow is QueueOverflow.FAIL:
            self._refused += 1
            return [Refused(message)]
        self._dropped += 1
        if overflow is QueueOverflow.DROP_NEWEST or not queue:
            return [Dropped((message,), "overflow")]
        oldest = queue.popleft()
        queue.append(message)
        return [Dropped((oldest,), "overflow"), Queued(message, len(queue))]

    def _finish(self, effects: list[Effect], reason: str, *, by_peer: bool) -> list[Effect]:
        """The link has just become CLOSED: report what was still queued, then close."""
        if self._queue:
            undelivered = tuple(self._queue)
            self._queue.clear()
            self._dropped += len(undelivered)
            effects.append(Dropped(undelivered, "closed"))
        effects.append(Closed(reason, by_peer=by_peer))
        return effects

    def _lose(self, reason: LostReason, now: float) -> list[Effect]:
        """The link has just become LOST: a connector schedules its reconnect."""
        if self._side is LinkSide.CONNECTOR:
            assert self._rng is not None  # checked in __init__
            delay = self._config.backoff.delay(self._attempt, self._rng.random())
            self._attempt += 1
            self._reconnect_at = now + delay
        return [Lost(reason, self._last_seen, self._reconnect_at)]

    def _reconnect_due(self, now: float) -> bool:
        return self._reconnect_at is not None and now >= self._reconnect_at

    def _violation(self, rejection: Rejection, message: object) -> Violation:
        self._violations[rejection.reason] += 1
        return Violation(rejection.reason, rejection.detail, kind_of(message), message)

    def _ready_terms(self) -> Terms:
        if self._terms is None:
            msg = "a ready link without agreed terms"
            raise EdgeloopInternalError(msg)
        return self._terms

    @staticmethod
    def _since(value: float | None) -> float:
        if value is None:  # READY always has both times set
            msg = "a ready link without a last send or receive time"
            raise EdgeloopInternalError(msg)
        return value
