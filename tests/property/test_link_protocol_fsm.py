"""Two sans-IO links over a lossy in-memory wire, driven by hypothesis.

A connector and an acceptor exchange what their ``Transmit`` effects carry through two
FIFO queues that may lose messages; a hostile peer injects arbitrary control and data
messages; time moves in quarter seconds so that deadlines are hit exactly. After every
step the invariants of the link protocol must hold, checked against tallies kept here
from the effects alone, not from the link's internals.
"""

from __future__ import annotations

import dataclasses
import random
from collections import deque
from typing import Any

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from edgeloop.errors import LinkStateError
from edgeloop.transport import (
    CONTROL_KINDS,
    TRANSITIONS,
    Close,
    Closed,
    Deliver,
    Dropped,
    Effect,
    Heartbeat,
    Hello,
    Link,
    LinkConfig,
    LinkState,
    Lost,
    Queued,
    QueueOverflow,
    Ready,
    Reconnect,
    ReconnectBackoff,
    Refused,
    Transmit,
    Violation,
    Welcome,
    kind_of,
)


@dataclasses.dataclass(frozen=True)
class Data:
    """A data message sent through ``send``; ``origin`` and ``n`` make it unique."""

    origin: str
    n: int


@dataclasses.dataclass(frozen=True)
class Junk:
    """A data message a hostile peer injects."""

    payload: int


class Shapeless:
    """Named like nothing the link knows; data of an odd type."""


def _named(name: str) -> Any:
    """An object whose class is called ``name`` but has none of the expected fields."""
    return type(name, (), {})()


peer_ids = st.sampled_from(["cam-01", "edge-a", "edge-b", "", "bad id", "x" * 70])
protocols = st.integers(-1, 4)
capabilities = st.lists(st.sampled_from(["frames", "heads", ""]), max_size=3).map(tuple)
seconds = st.sampled_from([0.0, -1.0, 0.5, 1.0, 3.0, float("inf"), float("nan")])
hostile = st.one_of(
    st.builds(
        Hello,
        peer=peer_ids,
        role=st.sampled_from(["node", "device", "robot"]),
        protocol=protocols,
        capabilities=capabilities,
    ),
    st.builds(
        Welcome,
        peer=peer_ids,
        protocol=protocols,
        capabilities=capabilities,
        heartbeat_interval=seconds,
        liveness_timeout=seconds,
    ),
    st.builds(Heartbeat, seq=st.integers(-5, 5)),
    st.builds(Junk, payload=st.integers(0, 9)),
    st.sampled_from(sorted(CONTROL_KINDS)).map(_named),
    st.just(Shapeless()),
    st.integers(),
)
steps = st.integers(0, 16).map(lambda k: k * 0.25)
rarely = st.integers(0, 4).map(lambda k: k == 4)
"""True one time in five: for the steps that end a link, so that most runs get far."""

BACKOFF = ReconnectBackoff(min=0.5, max=4.0, random_factor=0.5)


@dataclasses.dataclass
class Tally:
    """What one link's effects said, counted independently of the link."""

    sends: int = 0
    transmitted: list[Data] = dataclasses.field(default_factory=list)
    delivered: list[Data] = dataclasses.field(default_factory=list)
    dropped: int = 0
    refused: int = 0
    violations: int = 0
    last_heard: float | None = None
    hello_at: float | None = None
    reconnect_at: float | None = None
    losses_since_ready: int = 0
    closed: bool = False


class LinkPair(RuleBasedStateMachine):
    """A connector, an acceptor, a lossy wire between them, and a hostile third party."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.counter = 0

    @initialize(
        conn_versions=st.sets(st.integers(1, 3), min_size=1),
        acc_versions=st.sets(st.integers(1, 3), min_size=1),
        queue_limit=st.integers(0, 4),
        overflow=st.sampled_from(list(QueueOverflow)),
        seed=st.integers(0, 2**32),
        handshake=st.booleans(),
    )
    def setup(
        self,
        conn_versions: set[int],
        acc_versions: set[int],
        queue_limit: int,
        overflow: QueueOverflow,
        seed: int,
        handshake: bool,
    ) -> None:
        base = LinkConfig(id="edge-a", queue_limit=queue_limit, overflow=overflow, backoff=BACKOFF)
        self.conn = Link.connector(
            dataclasses.replace(
                base,
                id="cam-01",
                role="device",
                protocols=tuple(conn_versions),
                handshake_timeout=2.0,
            ),
            rng=random.Random(seed),
        )
        self.acc = Link.acceptor(
            dataclasses.replace(
                base,
                protocols=tuple(acc_versions),
                heartbeat_interval=1.0,
                liveness_timeout=3.0,
                close_timeout=1.0,
            )
        )
        self.wire: dict[int, deque[object]] = {id(self.conn): deque(), id(self.acc): deque()}
        self.tally: dict[int, Tally] = {id(self.conn): Tally(), id(self.acc): Tally()}
        if handshake:
            self.connect()
            self.pump()

    # -- plumbing -----------------------------------------------------------------

    def other(self, link: Link) -> Link:
        return self.acc if link is self.conn else self.conn

    def pick(self, connector: bool) -> Link:
        return self.conn if connector else self.acc

    def call(self, link: Link, name: str, *args: object) -> list[Effect]:
        """Call ``link.name(*args)`` and check everything its effects imply."""
        before = link.state
        effects: list[Effect] = getattr(link, name)(*args)
        after = link.state
        assert after is before or after in TRANSITIONS[link.side][before].values(), (
            f"{before} -> {after} is not in the table"
        )
        self.apply(link, effects)
        return effects

    def apply(self, link: Link, effects: list[Effect]) -> None:
        tally = self.tally[id(link)]
        terms = link.terms
        for effect in effects:
            match effect:
                case Transmit(message=message):
                    if kind_of(message) not in CONTROL_KINDS:
                        assert link.state is LinkState.READY, "data sent before READY"
                        assert isinstance(message, Data)
                        tally.transmitted.append(message)
                    if isinstance(message, Hello):
                        tally.hello_at = self.now
                    self.wire[id(self.other(link))].append(message)
                case Deliver(message=message):
                    assert link.state in (LinkState.READY, LinkState.CLOSING)
                    if isinstance(message, Data):
                        tally.delivered.append(message)
                case Queued(depth=depth):
                    assert depth == link.queue_depth <= link.config.queue_limit
                case Dropped(messages=messages):
                    tally.dropped += len(messages)
                case Refused():
                    assert link.config.overflow is QueueOverflow.FAIL
                    tally.refused += 1
                case Ready():
                    tally.losses_since_ready = 0
                case Lost(reason=reason, reconnect_at=reconnect_at):
                    self.check_lost(link, tally, reason, reconnect_at, terms)
                case Reconnect():
                    assert tally.reconnect_at is not None
                    assert self.now >= tally.reconnect_at, "reconnected before its backoff"
                    self.wire[id(self.conn)].clear()  # a fresh connection: in-flight is gone
                    self.wire[id(self.acc)].clear()
                case Closed():
                    assert link.state is LinkState.CLOSED
                    assert not tally.closed, "closed twice"
                    tally.closed = True
                case Violation():
                    tally.violations += 1

    def check_lost(
        self,
        link: Link,
        tally: Tally,
        reason: str,
        reconnect_at: float | None,
        terms: Any,
    ) -> None:
        if reason == "liveness_timeout":
            assert tally.last_heard is not None
            assert self.now - tally.last_heard >= terms.liveness_timeout, "lost too early"
        if reason == "handshake_timeout":
            assert tally.hello_at is not None
            assert self.now - tally.hello_at >= link.config.handshake_timeout
        if link is self.acc:
            assert reconnect_at is None
            return
        assert reconnect_at is not None
        base = min(BACKOFF.max, BACKOFF.min * 2**tally.losses_since_ready)
        delay = reconnect_at - self.now
        assert base <= delay <= base * (1 + BACKOFF.random_factor)
        tally.reconnect_at = reconnect_at
        tally.losses_since_ready += 1

    # -- rules --------------------------------------------------------------------

    @precondition(lambda self: self.conn.state is LinkState.IDLE)
    @rule()
    def connect(self) -> None:
        self.call(self.conn, "connect", self.now)

    @rule(connector=st.booleans())
    def send(self, connector: bool) -> None:
        link = self.pick(connector)
        self.counter += 1
        message = Data(link.config.id, self.counter)
        if not link.can_send:
            state = link.state
            try:
                link.send(message, self.now)
            except LinkStateError:
                assert link.state is state
                return
            raise AssertionError("send on a closed link did not raise")
        self.tally[id(link)].sends += 1
        self.call(link, "send", message, self.now)

    @precondition(lambda self: any(self.wire.values()))
    @rule(to_connector=st.booleans(), lose=rarely)
    def deliver(self, to_connector: bool, lose: bool) -> None:
        link = self.pick(to_connector)
        wire = self.wire[id(link)]
        if not wire:
            return
        message = wire.popleft()
        if lose:
            return
        self.tally[id(link)].last_heard = self.now
        self.call(link, "receive", message, self.now)

    @rule(to_connector=st.booleans(), message=hostile)
    def inject(self, to_connector: bool, message: object) -> None:
        link = self.pick(to_connector)
        self.tally[id(link)].last_heard = self.now
        self.call(link, "receive", message, self.now)

    @rule()
    def pump(self) -> None:
        """Deliver everything in flight, both ways, until the wire is quiet."""
        for _ in range(10):
            if not any(self.wire.values()):
                return
            for link in (self.acc, self.conn):
                wire = self.wire[id(link)]
                while wire:
                    self.tally[id(link)].last_heard = self.now
                    self.call(link, "receive", wire.popleft(), self.now)

    @precondition(lambda self: any(self.wire.values()))
    @rule(to_connector=st.booleans(), reason=st.sampled_from(["bye", ""]), go=rarely)
    def inject_close(self, to_connector: bool, reason: str, go: bool) -> None:
        if go:
            self.inject(to_connector, Close(reason=reason))

    @rule(dt=steps)
    def advance(self, dt: float) -> None:
        self.now += dt
        for link in (self.conn, self.acc):
            tally = self.tally[id(link)]
            overdue = (
                link.state is LinkState.READY
                and link.terms is not None
                and tally.last_heard is not None
                and self.now - tally.last_heard >= link.terms.liveness_timeout
            )
            self.call(link, "tick", self.now)
            if overdue:
                assert link.state is LinkState.LOST, "not lost after the liveness timeout"
            if link.state is LinkState.READY and link.terms is not None:
                last_sent = link.statistics().last_sent
                assert last_sent is not None
                assert self.now - last_sent < link.terms.heartbeat_interval, "heartbeat missed"

    @rule(connector=st.booleans())
    def tick_before_the_deadline_does_nothing(self, connector: bool) -> None:
        link = self.pick(connector)
        deadline = link.next_deadline()
        if deadline is None or deadline > self.now:
            assert self.call(link, "tick", self.now) == []

    @rule(connector=st.booleans(), reason=st.sampled_from(["normal", "shutdown"]), go=rarely)
    def close(self, connector: bool, reason: str, go: bool) -> None:
        if go:
            self.call(self.pick(connector), "close", self.now, reason)

    @precondition(lambda self: LinkState.READY in (self.conn.state, self.acc.state))
    @rule(connector=st.booleans(), go=rarely)
    def close_a_ready_link(self, connector: bool, go: bool) -> None:
        link = self.pick(connector)
        if link.state is not LinkState.READY:
            link = self.other(link)
        if go:
            self.call(link, "close", self.now, "done")

    @rule(connector=st.booleans(), go=rarely)
    def transport_lost(self, connector: bool, go: bool) -> None:
        if go:
            self.call(self.pick(connector), "transport_lost", self.now)

    # -- invariants ---------------------------------------------------------------

    @invariant()
    def queue_is_bounded_and_empty_when_it_can_flow(self) -> None:
        for link in (self.conn, self.acc):
            assert link.queue_depth <= link.config.queue_limit
            if link.state in (LinkState.READY, LinkState.CLOSING, LinkState.CLOSED):
                assert link.queue_depth == 0

    @invariant()
    def every_send_is_accounted_for(self) -> None:
        for link in (self.conn, self.acc):
            tally = self.tally[id(link)]
            stats = link.statistics()
            assert tally.sends == (
                len(tally.transmitted) + tally.dropped + tally.refused + link.queue_depth
            )
            assert (stats.sent, stats.dropped, stats.refused) == (
                len(tally.transmitted),
                tally.dropped,
                tally.refused,
            )
            assert stats.violations_total == tally.violations

    @invariant()
    def delivered_data_is_an_ordered_subsequence_of_what_the_peer_sent(self) -> None:
        for link in (self.conn, self.acc):
            sent = iter(self.tally[id(self.other(link))].transmitted)
            assert all(any(m == s for s in sent) for m in self.tally[id(link)].delivered)

    @invariant()
    def closed_means_reported_closed(self) -> None:
        for link in (self.conn, self.acc):
            assert (link.state is LinkState.CLOSED) == self.tally[id(link)].closed


TestLinkPair = LinkPair.TestCase
TestLinkPair.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
