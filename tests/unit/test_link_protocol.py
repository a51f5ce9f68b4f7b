"""The sans-IO link protocol: state table, handshake, heartbeats, loss, reconnect, queue.

No sockets, threads or clocks: every call gets an explicit ``now``, and two links talk
by handing each other the messages in their ``Transmit`` effects.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import msgspec
import pytest

import edgeloop.transport as transport
from edgeloop.errors import ConfigError, LinkStateError, ProtocolError
from edgeloop.transport import (
    CLOSE_ACK,
    TRANSITIONS,
    Close,
    Closed,
    ControlFactory,
    Deliver,
    Dropped,
    Effect,
    Heartbeat,
    Hello,
    Link,
    LinkConfig,
    LinkSide,
    LinkState,
    Lost,
    Queued,
    QueueOverflow,
    Ready,
    Reconnect,
    ReconnectBackoff,
    Refused,
    Transmit,
    Trigger,
    Violation,
    Welcome,
    negotiate_version,
)
from edgeloop.transport._state import LOCAL_TRIGGERS, REMOTE_TRIGGERS, TIMER_TRIGGERS, next_state

E = TypeVar("E")

# -- helpers ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Data:
    """An opaque data message (a Tell, an Event...), as far as the link knows."""

    n: int


class FixedRandom:
    """A random source that always draws ``u``."""

    def __init__(self, u: float = 0.0) -> None:
        self.u = u

    def random(self) -> float:
        return self.u


NODE = LinkConfig(id="edge-a", heartbeat_interval=1.0, liveness_timeout=3.0)
DEVICE = LinkConfig(
    id="cam-01",
    role="device",
    heartbeat_interval=5.0,  # the acceptor's timing wins; this must be ignored
    liveness_timeout=20.0,
    handshake_timeout=2.0,
    close_timeout=1.0,
    backoff=ReconnectBackoff(min=0.5, max=4.0, random_factor=0.5),
)


def connector(config: LinkConfig = DEVICE, u: float = 0.0, **kwargs: Any) -> Link:
    return Link.connector(config, rng=FixedRandom(u), **kwargs)


def acceptor(config: LinkConfig = NODE, **kwargs: Any) -> Link:
    return Link.acceptor(config, **kwargs)


def of(kind: type[E], effects: Iterable[Effect]) -> list[E]:
    return [e for e in effects if isinstance(e, kind)]


def sent(effects: Iterable[Effect]) -> list[object]:
    return [e.message for e in of(Transmit, effects)]


def one(kind: type[E], effects: Sequence[Effect]) -> E:
    found = of(kind, effects)
    assert len(found) == 1, effects
    return found[0]


def ready_pair(
    conn: Link | None = None, acc: Link | None = None, now: float = 0.0
) -> tuple[Link, Link]:
    """A connector and an acceptor that completed their handshake at ``now``."""
    conn = conn if conn is not None else connector()
    acc = acc if acc is not None else acceptor()
    (hello,) = sent(conn.connect(now))
    (welcome,) = sent(acc.receive(hello, now))
    conn.receive(welcome, now)
    assert conn.state is LinkState.READY
    assert acc.state is LinkState.READY
    return conn, acc


# -- the table -------------------------------------------------------------------------


def test_table_has_every_state_for_both_sides() -> None:
    """Both sides have a row for every state, so no lookup can miss a state."""
    for side in LinkSide:
        assert set(TRANSITIONS[side]) == set(LinkState)


def test_trigger_kinds_partition_the_triggers() -> None:
    """Every trigger is exactly one of local, remote or timer."""
    assert set(Trigger) == LOCAL_TRIGGERS | REMOTE_TRIGGERS | TIMER_TRIGGERS
    assert not LOCAL_TRIGGERS & REMOTE_TRIGGERS
    assert not (LOCAL_TRIGGERS | REMOTE_TRIGGERS) & TIMER_TRIGGERS


def test_closed_is_terminal() -> None:
    """No trigger leads out of CLOSED, on either side."""
    for side in LinkSide:
        assert set(TRANSITIONS[side][LinkState.CLOSED].values()) == {LinkState.CLOSED}


def test_data_flows_only_when_ready_or_closing() -> None:
    """Inbound data is legal only in READY and CLOSING (rule 4)."""
    for side in LinkSide:
        for state in LinkState:
            legal = next_state(side, state, Trigger.DATA) is not None
            assert legal == (state in (LinkState.READY, LinkState.CLOSING)), (side, state)


def test_sides_differ_only_in_idle_connecting_and_lost() -> None:
    """READY, CLOSING and CLOSED rows agree except for the acceptor's re-handshake."""
    conn, acc = TRANSITIONS[LinkSide.CONNECTOR], TRANSITIONS[LinkSide.ACCEPTOR]
    for state in (LinkState.CLOSING, LinkState.CLOSED):
        assert conn[state] == acc[state]
    extra = set(acc[LinkState.READY]) - set(conn[LinkState.READY])
    assert extra == {Trigger.HELLO, Trigger.HELLO_REJECTED}


def test_only_the_connector_connects_and_reconnects() -> None:
    """CONNECT, CONNECTING and RECONNECT_DUE belong to the connector alone."""
    acc = TRANSITIONS[LinkSide.ACCEPTOR]
    assert not acc[LinkState.CONNECTING]
    for row in acc.values():
        assert Trigger.CONNECT not in row
        assert Trigger.RECONNECT_DUE not in row
        assert LinkState.CONNECTING not in row.values()


def test_every_hello_or_welcome_row_can_also_reject() -> None:
    """Wherever a handshake message is legal its rejected form is too, and closes."""
    for side in LinkSide:
        for row in TRANSITIONS[side].values():
            for ok, bad in (
                (Trigger.HELLO, Trigger.HELLO_REJECTED),
                (Trigger.WELCOME, Trigger.WELCOME_REJECTED),
            ):
                assert (ok in row) == (bad in row)
                if bad in row:
                    assert row[bad] is LinkState.CLOSED


def test_the_documented_table_is_the_table() -> None:
    """docs/link-protocol-state-machine.md lists exactly the transitions in TRANSITIONS."""
    from pathlib import Path

    doc = Path(__file__).parents[2] / "docs" / "link-protocol-state-machine.md"
    text = doc.read_text()
    block = text.split("<!-- transitions:start -->")[1].split("<!-- transitions:end -->")[0]
    documented = {
        tuple(cell.strip() for cell in line.strip("|").split("|")[:4])
        for line in block.strip().splitlines()[2:]
    }
    expected = set()
    for state in LinkState:
        for trigger in Trigger:
            targets = [TRANSITIONS[side][state].get(trigger) for side in LinkSide]
            if any(targets):
                cells = [t.name if t is not None else "—" for t in targets]
                expected.add((state.name, trigger.name, *cells))
    assert documented == expected


def test_table_cannot_be_mutated() -> None:
    """The table is read-only data."""
    with pytest.raises(TypeError):
        TRANSITIONS[LinkSide.CONNECTOR][LinkState.IDLE][Trigger.DATA] = LinkState.READY  # type: ignore[index]


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"id": ""}, "link.id"),
        ({"id": "edge:a"}, "link.id"),
        ({"id": "a/b"}, "link.id"),
        ({"id": "x" * 65}, "link.id"),
        ({"role": "robot"}, "link.role"),
        ({"protocols": ()}, "link.protocols"),
        ({"protocols": (0,)}, "link.protocols"),
        ({"protocols": (True,)}, "link.protocols"),
        ({"capabilities": "frames"}, "link.capabilities"),
        ({"required_capabilities": frozenset({"frames"})}, "link.required_capabilities"),
        ({"accept_roles": frozenset({"robot"})}, "link.accept_roles"),
        ({"heartbeat_interval": 0}, "link.heartbeat_interval"),
        ({"heartbeat_interval": float("nan")}, "link.heartbeat_interval"),
        ({"liveness_timeout": float("inf")}, "link.liveness_timeout"),
        ({"liveness_timeout": 1.0}, "link.liveness_timeout"),
        ({"handshake_timeout": -1}, "link.handshake_timeout"),
        ({"close_timeout": -0.5}, "link.close_timeout"),
        ({"queue_limit": -1}, "link.queue_limit"),
        ({"queue_limit": True}, "link.queue_limit"),
        ({"overflow": "block"}, "link.overflow"),
        ({"backoff": 1.0}, "link.backoff"),
    ],
)
def test_bad_config_names_its_key(kwargs: dict[str, Any], key: str) -> None:
    """Each invalid setting is a ConfigError naming the key to fix."""
    arguments = {"id": "edge-a", **kwargs}
    with pytest.raises(ConfigError) as info:
        LinkConfig(**arguments)
    assert info.value.key == key


def test_config_normalises_its_values() -> None:
    """Versions are sorted and deduplicated, sets frozen, the overflow policy an enum."""
    config = LinkConfig(
        id="edge-a",
        protocols=(3, 1, 3),
        capabilities=["frames", "heads"],  # type: ignore[arg-type]
        overflow="drop_oldest",  # type: ignore[arg-type]
        close_timeout=0,
    )
    assert config.protocols == (1, 3)
    assert config.capabilities == frozenset({"frames", "heads"})
    assert config.overflow is QueueOverflow.DROP_OLDEST
    assert config.close_timeout == 0.0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"min": 0}, "link.backoff.min"),
        ({"max": -1}, "link.backoff.max"),
        ({"random_factor": -0.1}, "link.backoff.random_factor"),
        ({"min": 2.0, "max": 1.0}, "link.backoff.max"),
    ],
)
def test_bad_backoff_names_its_key(kwargs: dict[str, Any], key: str) -> None:
    """An invalid backoff is a ConfigError naming the key to fix."""
    with pytest.raises(ConfigError) as info:
        ReconnectBackoff(**kwargs)
    assert info.value.key == key


def test_backoff_doubles_up_to_max_and_jitter_stretches_it() -> None:
    """Delay n is min(max, min * 2**n) * (1 + u * random_factor), even for huge n."""
    backoff = ReconnectBackoff(min=0.5, max=4.0, random_factor=0.5)
    assert [backoff.delay(n, 0.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.delay(1, 0.5) == pytest.approx(1.25)
    assert backoff.delay(10_000, 0.0) == 4.0


def test_connector_needs_a_random_source() -> None:
    """A connector without rng= is refused, since its jitter must be replayable."""
    with pytest.raises(ValueError, match="rng="):
        Link(DEVICE, LinkSide.CONNECTOR)


def test_acceptor_takes_no_expected_peer() -> None:
    """An acceptor learns its peer from Hello, so expected_peer= is a mistake."""
    with pytest.raises(ValueError, match="expected_peer"):
        Link(NODE, LinkSide.ACCEPTOR, expected_peer="cam-01")


def test_a_new_link_is_idle_and_empty() -> None:
    """A fresh link has no peer, no terms and nothing to do on tick."""
    for link in (connector(), acceptor()):
        assert link.state is LinkState.IDLE
        assert link.peer is None
        assert link.terms is None
        assert link.next_deadline() is None
        assert link.tick(100.0) == []


# -- the handshake ---------------------------------------------------------------------


def test_connect_sends_hello_with_highest_version_and_capabilities() -> None:
    """connect() sends one Hello: own id and role, highest version, sorted capabilities."""
    config = dataclasses.replace(DEVICE, protocols=(1, 2), capabilities=frozenset({"z", "a"}))
    link = connector(config)
    effects = link.connect(10.0)
    assert effects == [
        Transmit(Hello(peer="cam-01", role="device", protocol=2, capabilities=("a", "z")))
    ]
    assert link.state is LinkState.CONNECTING
    assert link.next_deadline() == 12.0  # handshake_timeout


def test_acceptor_answers_hello_with_welcome_then_ready() -> None:
    """A valid Hello is answered with Welcome carrying the acceptor's timing."""
    link = acceptor()
    effects = link.receive(Hello(peer="cam-01", role="device", protocol=1), 5.0)
    assert effects[0] == Transmit(
        Welcome(
            peer="edge-a",
            protocol=1,
            capabilities=(),
            heartbeat_interval=1.0,
            liveness_timeout=3.0,
        )
    )
    ready = one(Ready, effects)
    assert (ready.peer, ready.role, ready.protocol, ready.reconnected) == (
        "cam-01",
        "device",
        1,
        False,
    )
    assert link.state is LinkState.READY
    assert link.peer == "cam-01"


def test_connector_adopts_the_acceptors_timing() -> None:
    """The Welcome's heartbeat interval and liveness timeout bind the connector."""
    conn, _ = ready_pair()
    assert conn.terms is not None
    assert (conn.terms.heartbeat_interval, conn.terms.liveness_timeout) == (1.0, 3.0)
    assert conn.terms.role == "node"
    assert conn.next_deadline() == 1.0  # a heartbeat, after 1 s of silence


def test_capabilities_are_intersected_on_both_sides() -> None:
    """Both sides agree on the capabilities they share, and no others."""
    conn = connector(dataclasses.replace(DEVICE, capabilities=frozenset({"frames", "heads", "x"})))
    acc = acceptor(dataclasses.replace(NODE, capabilities=frozenset({"frames", "heads", "y"})))
    conn, acc = ready_pair(conn, acc)
    assert conn.terms is not None
    assert acc.terms is not None
    assert conn.terms.capabilities == acc.terms.capabilities == frozenset({"frames", "heads"})


@pytest.mark.parametrize(
    ("offered", "supported", "agreed"),
    [(3, (1, 2), 2), (2, (1, 2, 3), 2), (1, (1,), 1), (1, (2, 3), None), (5, (1, 3, 7), 3)],
)
def test_version_negotiation_picks_highest_at_or_below_the_offer(
    offered: int, supported: tuple[int, ...], agreed: int | None
) -> None:
    """The acceptor answers with its highest version not above the connector's offer."""
    assert negotiate_version(offered, supported) == agreed


def test_handshake_agrees_on_the_highest_common_version() -> None:
    """A connector speaking 1..3 and an acceptor speaking 1..2 settle on 2."""
    conn = connector(dataclasses.replace(DEVICE, protocols=(1, 2, 3)))
    acc = acceptor(dataclasses.replace(NODE, protocols=(1, 2)))
    conn, acc = ready_pair(conn, acc)
    assert conn.statistics().protocol == acc.statistics().protocol == 2


def test_unsupported_version_is_refused_with_a_reason_and_both_sides_close() -> None:
    """A too-old connector gets Close naming the versions; neither side raises."""
    conn = connector(dataclasses.replace(DEVICE, protocols=(1,)))
    acc = acceptor(dataclasses.replace(NODE, protocols=(2, 3)))
    conn.send(Data(1), 0.0)
    (hello,) = sent(conn.connect(0.0))
    effects = acc.receive(hello, 0.0)
    violation = one(Violation, effects)
    assert violation.reason == "bad_version"
    assert "speaks 2, 3" in violation.detail
    (close,) = sent(effects)
    assert isinstance(close, Close)
    assert close.reason.startswith("bad_version: unsupported protocol version 1")
    assert one(Closed, effects) == Closed("bad_version", by_peer=False)
    assert acc.state is LinkState.CLOSED
    assert acc.statistics().violations == {"bad_version": 1}

    effects = conn.receive(close, 0.1)
    assert one(Dropped, effects) == Dropped((Data(1),), "closed")
    assert one(Closed, effects) == Closed(close.reason, by_peer=True)
    assert conn.state is LinkState.CLOSED
    assert conn.tick(1000.0) == []  # a refused connector does not retry


def test_welcome_with_a_version_the_connector_does_not_speak_is_refused() -> None:
    """A Welcome choosing a version not offered is a bad_version violation and a Close."""
    conn = connector(dataclasses.replace(DEVICE, protocols=(2,)))
    conn.connect(0.0)
    welcome = Welcome(
        peer="edge-a", protocol=1, capabilities=(), heartbeat_interval=1, liveness_timeout=3
    )
    effects = conn.receive(welcome, 0.0)
    assert one(Violation, effects).reason == "bad_version"
    assert isinstance(sent(effects)[0], Close)
    assert conn.state is LinkState.CLOSED


def good_hello(**changes: Any) -> Hello:
    return dataclasses.replace(Hello(peer="cam-01", role="device", protocol=1), **changes)


@pytest.mark.parametrize(
    ("hello", "config", "reason"),
    [
        (good_hello(role="robot"), NODE, "bad_role"),
        (
            good_hello(role="device"),
            dataclasses.replace(NODE, accept_roles=frozenset({"node"})),
            "bad_role",
        ),
        (good_hello(peer=""), NODE, "bad_peer"),
        (good_hello(peer="edge-b:/yard"), NODE, "bad_peer"),
        (good_hello(peer="edge-a"), NODE, "bad_peer"),  # our own id
        (
            good_hello(capabilities=("heads",)),
            dataclasses.replace(
                NODE,
                capabilities=frozenset({"frames", "heads"}),
                required_capabilities=frozenset({"frames"}),
            ),
            "missing_capability",
        ),
        (good_hello(protocol="1"), NODE, "malformed"),
        (good_hello(protocol=True), NODE, "malformed"),
        (good_hello(peer=7), NODE, "malformed"),
        (good_hello(capabilities="frames"), NODE, "malformed"),
        (good_hello(capabilities=(1, 2)), NODE, "malformed"),
        (good_hello(capabilities=None), NODE, "malformed"),
    ],
)
def test_bad_hello_is_a_counted_violation_and_a_close(
    hello: Hello, config: LinkConfig, reason: str
) -> None:
    """Each kind of bad Hello is refused with its reason code; nothing raises."""
    link = acceptor(config)
    effects = link.receive(hello, 0.0)
    assert one(Violation, effects).reason == reason
    (close,) = sent(effects)
    assert isinstance(close, Close)
    assert close.reason.startswith(f"{reason}: ")
    assert link.state is LinkState.CLOSED
    assert link.statistics().violations == {reason: 1}


def test_hello_missing_a_field_is_malformed() -> None:
    """A Hello-named object without the fields is malformed, and the detail says which."""

    class Hello:  # same class name, different shape
        peer = "cam-01"

    link = acceptor()
    violation = one(Violation, link.receive(Hello(), 0.0))
    assert violation.reason == "malformed"
    assert violation.detail == "Hello.role: missing"


@pytest.mark.parametrize(
    ("changes", "expected_peer", "reason"),
    [
        ({"peer": "edge-z"}, "edge-a", "bad_peer"),
        ({"peer": "no such id!"}, None, "bad_peer"),
        ({"heartbeat_interval": 3.0}, None, "bad_timing"),
        ({"heartbeat_interval": 0}, None, "bad_timing"),
        ({"liveness_timeout": float("inf")}, None, "bad_timing"),
        ({"liveness_timeout": "3"}, None, "malformed"),
        ({"capabilities": ()}, None, "missing_capability"),
    ],
)
def test_bad_welcome_is_a_counted_violation_and_a_close(
    changes: dict[str, Any], expected_peer: str | None, reason: str
) -> None:
    """Each kind of bad Welcome makes the connector refuse it and close."""
    config = dataclasses.replace(
        DEVICE, capabilities=frozenset({"frames"}), required_capabilities=frozenset({"frames"})
    )
    conn = connector(config, expected_peer=expected_peer)
    conn.connect(0.0)
    welcome = Welcome(
        peer="edge-a",
        protocol=1,
        capabilities=("frames",),
        heartbeat_interval=1.0,
        liveness_timeout=3.0,
    )
    effects = conn.receive(dataclasses.replace(welcome, **changes), 0.0)
    assert one(Violation, effects).reason == reason
    assert isinstance(sent(effects)[0], Close)
    assert conn.state is LinkState.CLOSED


def test_expected_peer_accepts_the_right_node() -> None:
    """A connector bound to a node id gets ready when that node answers."""
    conn, _ = ready_pair(connector(expected_peer="edge-a"))
    assert conn.peer == "edge-a"


def test_msgspec_structs_of_the_same_names_work_over_msgpack() -> None:
    """The link speaks to tagged msgspec Structs through a ControlFactory, over msgpack."""

    class Hello(msgspec.Struct, frozen=True, tag=True):
        peer: str
        role: str
        protocol: int
        capabilities: tuple[str, ...] = ()

    class Welcome(msgspec.Struct, frozen=True, tag=True):
        peer: str
        protocol: int
        capabilities: tuple[str, ...]
        heartbeat_interval: float
        liveness_timeout: float

    class Heartbeat(msgspec.Struct, frozen=True, tag=True):
        seq: int

    class Close(msgspec.Struct, frozen=True, tag=True):
        reason: str

    class Tell(msgspec.Struct, frozen=True, tag=True):
        path: str
        body: int

    decoder = msgspec.msgpack.Decoder(Hello | Welcome | Heartbeat | Close | Tell)
    factory = ControlFactory(hello=Hello, welcome=Welcome, heartbeat=Heartbeat, close=Close)

    def wire(effects: list[Effect]) -> list[Any]:
        return [decoder.decode(msgspec.msgpack.encode(m)) for m in sent(effects)]

    conn = connector(
        dataclasses.replace(DEVICE, capabilities=frozenset({"frames"})), control=factory
    )
    acc = acceptor(dataclasses.replace(NODE, capabilities=frozenset({"frames"})), control=factory)
    conn.send(Tell("/yard/fusion", 1), 0.0)
    (hello,) = wire(conn.connect(0.0))
    (welcome,) = wire(acc.receive(hello, 0.0))
    assert welcome == Welcome("edge-a", 1, ("frames",), 1.0, 3.0)
    (tell,) = wire(conn.receive(welcome, 0.0))
    assert acc.receive(tell, 0.1) == [Deliver(Tell("/yard/fusion", 1))]
    (beat,) = wire(conn.tick(1.0))
    assert beat == Heartbeat(0)
    assert acc.receive(beat, 1.0) == []
    (close,) = wire(conn.close(2.0, "bye"))
    (ack,) = wire(acc.receive(close, 2.0))
    assert ack == Close(CLOSE_ACK)
    assert conn.receive(ack, 2.0) == [Closed("bye", by_peer=False)]


# -- local misuse raises ---------------------------------------------------------------


def test_an_acceptor_cannot_connect() -> None:
    """connect() on an acceptor raises LinkStateError and changes nothing."""
    link = acceptor()
    with pytest.raises(LinkStateError, match="waits for the peer's Hello"):
        link.connect(0.0)
    assert link.state is LinkState.IDLE


def test_connect_twice_raises() -> None:
    """A second connect() is local misuse: the link reconnects by itself."""
    link = connector()
    link.connect(0.0)
    with pytest.raises(LinkStateError, match="connect\\(\\) is called once"):
        link.connect(0.1)
    assert link.state is LinkState.CONNECTING


def test_sending_a_control_message_raises() -> None:
    """Control messages belong to the link; send() takes only data."""
    conn, _ = ready_pair()
    with pytest.raises(LinkStateError, match="control message"):
        conn.send(Heartbeat(seq=1), 0.0)
    assert conn.statistics().sent == 0


@pytest.mark.parametrize("closed", [False, True])
def test_sending_on_a_closing_or_closed_link_raises(closed: bool) -> None:
    """send() after close() is LinkStateError (a ProtocolError), and can_send says so."""
    conn, acc = ready_pair()
    (close,) = sent(conn.close(0.0))
    if closed:
        conn.receive(sent(acc.receive(close, 0.0))[0], 0.0)
    assert not conn.can_send
    with pytest.raises(LinkStateError, match=r"check link\.can_send") as info:
        conn.send(Data(1), 0.0)
    assert isinstance(info.value, ProtocolError)
    assert info.value.reason == "bad_state"
    assert "'edge-a'" in str(info.value)


def test_can_send_in_every_live_state() -> None:
    """Sending is allowed (queued) in IDLE, CONNECTING and LOST, not only READY."""
    link = connector()
    assert link.can_send
    link.connect(0.0)
    assert link.can_send
    link.tick(2.0)
    assert link.state is LinkState.LOST
    assert link.can_send


def test_close_is_idempotent() -> None:
    """Closing a closing or closed link does nothing more."""
    conn, _ = ready_pair()
    conn.close(0.0)
    assert conn.close(0.1) == []
    conn.tick(5.0)
    assert conn.state is LinkState.CLOSED
    assert conn.close(6.0) == []


# -- remote misuse is counted, never raised --------------------------------------------


def test_data_before_hello_is_a_violation() -> None:
    """An acceptor that has not seen Hello refuses data and stays IDLE."""
    link = acceptor()
    effects = link.receive(Data(1), 0.0)
    violation = one(Violation, effects)
    assert (violation.reason, violation.kind, violation.message) == ("bad_state", "Data", Data(1))
    assert effects == [violation]
    assert link.state is LinkState.IDLE


def test_data_before_welcome_is_a_violation() -> None:
    """A connector that has not seen Welcome refuses data and keeps waiting."""
    link = connector()
    link.connect(0.0)
    assert one(Violation, link.receive(Data(1), 0.0)).reason == "bad_state"
    assert link.state is LinkState.CONNECTING


@pytest.mark.parametrize(
    "message",
    [
        Hello(peer="edge-b", role="node", protocol=1),
        Welcome(
            peer="edge-a", protocol=1, capabilities=(), heartbeat_interval=1, liveness_timeout=3
        ),
    ],
)
def test_handshake_messages_out_of_place_are_violations(message: object) -> None:
    """A Hello to a connector, or a second Welcome, is bad_state and changes nothing."""
    conn, _ = ready_pair()
    effects = conn.receive(message, 0.5)
    assert one(Violation, effects).reason == "bad_state"
    assert conn.state is LinkState.READY


def test_violations_are_counted_by_reason() -> None:
    """Statistics keep one counter per violation reason."""
    conn = connector()
    conn.receive(Data(1), 0.0)
    conn.receive(Heartbeat(seq=0), 0.0)
    conn.connect(0.0)
    conn.receive(
        Welcome(
            peer="edge-a", protocol=1, capabilities=(), heartbeat_interval=2, liveness_timeout=1
        ),
        0.0,
    )
    stats = conn.statistics()
    assert stats.violations == {"bad_state": 2, "bad_timing": 1}
    assert stats.violations_total == 3
    with pytest.raises(TypeError):
        stats.violations["x"] = 1  # type: ignore[index]


def test_anything_after_close_is_a_violation_but_a_late_close() -> None:
    """A closed link refuses data and heartbeats, but a late Close is silently fine."""
    conn, acc = ready_pair()
    (close,) = sent(conn.close(0.0))
    conn.tick(1.0)  # close_timeout: closed without the peer's answer
    assert conn.state is LinkState.CLOSED
    assert one(Violation, conn.receive(Data(1), 1.1)).reason == "bad_state"
    assert one(Violation, conn.receive(Heartbeat(seq=3), 1.1)).reason == "bad_state"
    (ack,) = sent(acc.receive(close, 1.2))
    assert conn.receive(ack, 1.3) == []


# -- data and the send queue -----------------------------------------------------------


def test_data_is_transmitted_at_once_when_ready() -> None:
    """send() in READY is one Transmit; the peer delivers it; both count it."""
    conn, acc = ready_pair()
    effects = conn.send(Data(1), 0.1)
    assert effects == [Transmit(Data(1))]
    assert acc.receive(Data(1), 0.2) == [Deliver(Data(1))]
    assert conn.statistics().sent == 1
    assert acc.statistics().received == 1


def test_queued_messages_flush_in_order_on_ready() -> None:
    """Messages sent before READY go out in order, right after Ready, before new ones."""
    conn = connector()
    conn.send(Data(1), 0.0)
    (hello,) = sent(conn.connect(0.0))
    conn.send(Data(2), 0.1)
    acc = acceptor()
    (welcome,) = sent(acc.receive(hello, 0.2))
    effects = conn.receive(welcome, 0.3)
    assert isinstance(effects[0], Ready)
    assert effects[1:] == [Transmit(Data(1)), Transmit(Data(2))]
    assert conn.queue_depth == 0
    assert conn.statistics().sent == 2


def test_acceptor_flushes_its_queue_after_welcome() -> None:
    """An acceptor's queued messages follow its Welcome, never precede it."""
    acc = acceptor()
    acc.send(Data(1), 0.0)
    effects = acc.receive(good_hello(), 0.5)
    messages = sent(effects)
    assert isinstance(messages[0], Welcome)
    assert messages[1:] == [Data(1)]


@pytest.mark.parametrize(
    ("overflow", "effects", "queue"),
    [
        (QueueOverflow.DROP_OLDEST, [Dropped((Data(1),), "overflow"), Queued(Data(3), 2)], [2, 3]),
        (QueueOverflow.DROP_NEWEST, [Dropped((Data(3),), "overflow")], [1, 2]),
        (QueueOverflow.FAIL, [Refused(Data(3))], [1, 2]),
    ],
)
def test_overflow_policies(
    overflow: QueueOverflow, effects: list[Effect], queue: list[int]
) -> None:
    """A full queue drops its oldest, drops the newest, or refuses, as configured."""
    config = dataclasses.replace(DEVICE, queue_limit=2, overflow=overflow)
    conn = connector(config)
    conn.send(Data(1), 0.0)
    conn.send(Data(2), 0.0)
    assert conn.send(Data(3), 0.0) == effects
    assert conn.queue_depth == 2
    stats = conn.statistics()
    assert (stats.dropped, stats.refused) == ((0, 1) if overflow is QueueOverflow.FAIL else (1, 0))
    conn.connect(0.0)
    (welcome,) = sent(acceptor().receive(good_hello(), 0.0))
    assert sent(conn.receive(welcome, 0.0)) == [Data(n) for n in queue]


@pytest.mark.parametrize("overflow", list(QueueOverflow))
def test_a_zero_limit_queues_nothing(overflow: QueueOverflow) -> None:
    """With queue_limit=0 nothing waits: every early send is dropped or refused."""
    conn = connector(dataclasses.replace(DEVICE, queue_limit=0, overflow=overflow))
    (effect,) = conn.send(Data(1), 0.0)
    assert isinstance(effect, Refused if overflow is QueueOverflow.FAIL else Dropped)
    assert conn.queue_depth == 0


def test_closing_reports_the_undelivered_queue() -> None:
    """close() before READY hands back what was queued as Dropped('closed')."""
    conn = connector()
    conn.send(Data(1), 0.0)
    conn.send(Data(2), 0.0)
    effects = conn.close(0.0, "shutdown")
    assert effects == [Dropped((Data(1), Data(2)), "closed"), Closed("shutdown", by_peer=False)]
    assert conn.statistics().dropped == 2


def test_queue_survives_loss_and_flushes_after_reconnect() -> None:
    """Messages sent while LOST go out after the reconnect's Welcome, in order."""
    conn, acc = ready_pair()
    conn.transport_lost(1.0)
    conn.send(Data(1), 1.1)
    conn.send(Data(2), 1.2)
    effects = conn.tick(2.0)  # backoff min 0.5 s, u = 0
    (hello,) = sent(effects)
    (welcome,) = sent(acc.receive(hello, 2.0))
    assert sent(conn.receive(welcome, 2.0)) == [Data(1), Data(2)]


# -- heartbeats and liveness -----------------------------------------------------------


def test_heartbeat_goes_out_after_an_interval_of_silence() -> None:
    """No heartbeat before heartbeat_interval without sends; then one, numbered."""
    conn, _ = ready_pair()
    assert conn.tick(0.999) == []
    assert conn.tick(1.0) == [Transmit(Heartbeat(seq=0))]
    assert conn.tick(1.5) == []
    assert conn.tick(2.0) == [Transmit(Heartbeat(seq=1))]
    assert conn.statistics().heartbeats_sent == 2


def test_sending_data_postpones_the_heartbeat() -> None:
    """Any transmitted message restarts the heartbeat interval."""
    conn, _ = ready_pair()
    conn.send(Data(1), 0.8)
    assert conn.tick(1.5) == []
    assert conn.next_deadline() == pytest.approx(1.8)
    assert conn.tick(1.8) == [Transmit(Heartbeat(seq=0))]


def test_a_late_tick_sends_one_heartbeat_not_a_burst() -> None:
    """A tick long after the interval sends a single heartbeat."""
    _conn, acc = ready_pair()
    acc.receive(Data(1), 2.5)
    assert acc.tick(2.9) == [Transmit(Heartbeat(seq=0))]


def test_received_heartbeat_is_liveness_without_effects() -> None:
    """A peer's heartbeat returns nothing but is counted and keeps the peer alive."""
    _conn, acc = ready_pair()
    assert acc.receive(Heartbeat(seq=0), 2.0) == []
    assert acc.statistics().heartbeats_received == 1
    assert acc.statistics().last_seen == 2.0
    assert acc.tick(4.9) == [Transmit(Heartbeat(seq=0))]
    assert acc.state is LinkState.READY


def test_peer_is_lost_exactly_at_the_liveness_timeout() -> None:
    """With no traffic the peer is lost at last_seen + liveness_timeout, not before."""
    _conn, acc = ready_pair()
    acc.receive(Data(1), 1.0)
    acc.tick(3.0)  # a heartbeat; sending is not hearing
    assert acc.tick(3.999) == []
    assert acc.next_deadline() == 4.0
    effects = acc.tick(4.0)
    assert effects == [Lost("liveness_timeout", last_seen=1.0, reconnect_at=None)]
    assert acc.state is LinkState.LOST
    assert acc.next_deadline() is None  # an acceptor waits for a Hello


def test_any_message_counts_as_liveness() -> None:
    """Even a message that is a violation shows the peer is alive."""
    conn, _ = ready_pair()
    assert one(Violation, conn.receive(Hello(peer="x", role="node", protocol=1), 2.5))
    assert not of(Lost, conn.tick(3.0) + conn.tick(5.49))  # heartbeats only
    assert conn.tick(5.5) == [Lost("liveness_timeout", last_seen=2.5, reconnect_at=6.0)]


def test_two_ready_links_keep_each_other_alive() -> None:
    """Ticking both sides every 0.25 s for a minute exchanges heartbeats and never loses."""
    conn, acc = ready_pair()
    for step in range(1, 241):
        now = step * 0.25
        for here, there in ((conn, acc), (acc, conn)):
            for message in sent(here.tick(now)):
                assert there.receive(message, now) == []
    assert conn.state is acc.state is LinkState.READY
    assert conn.statistics().heartbeats_sent == acc.statistics().heartbeats_received == 60


def test_no_heartbeats_before_ready() -> None:
    """A connecting link sends nothing on tick until its handshake times out."""
    conn = connector()
    conn.connect(0.0)
    assert conn.tick(1.999) == []


# -- loss, reconnect and backoff -------------------------------------------------------


def test_handshake_timeout_loses_the_peer_and_schedules_a_reconnect() -> None:
    """No Welcome within handshake_timeout: LOST, reconnect after min * (1 + u * factor)."""
    conn = connector(u=0.5)
    conn.connect(10.0)
    assert conn.tick(11.9) == []
    effects = conn.tick(12.0)
    assert effects == [Lost("handshake_timeout", last_seen=None, reconnect_at=12.625)]
    assert conn.state is LinkState.LOST
    assert conn.next_deadline() == 12.625


def test_reconnect_fires_at_its_due_time_with_a_fresh_hello() -> None:
    """At reconnect_at the connector asks for a new connection and sends Hello on it."""
    conn = connector()
    conn.connect(0.0)
    conn.tick(2.0)
    assert conn.tick(2.49) == []
    effects = conn.tick(2.5)
    assert effects[0] == Reconnect(attempt=1)
    assert isinstance(sent(effects)[0], Hello)
    assert conn.state is LinkState.CONNECTING
    assert conn.next_deadline() == 4.5
    assert conn.statistics().reconnect_attempts == 1


def test_backoff_grows_across_failed_attempts_up_to_max() -> None:
    """Each failed handshake doubles the wait, up to backoff.max."""
    conn = connector()
    conn.connect(0.0)
    now, delays = 0.0, []
    for _ in range(6):
        now += 2.0  # handshake_timeout
        (lost,) = conn.tick(now)
        assert isinstance(lost, Lost)
        assert lost.reconnect_at is not None
        delays.append(lost.reconnect_at - now)
        now = lost.reconnect_at
        conn.tick(now)
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_jitter_comes_from_the_injected_source() -> None:
    """Two connectors with equally seeded RNGs back off identically; other seeds differ."""

    def first_delay(seed: int) -> float:
        link = Link.connector(DEVICE, rng=random.Random(seed))
        link.connect(0.0)
        (lost,) = link.tick(2.0)
        assert isinstance(lost, Lost)
        assert lost.reconnect_at is not None
        return lost.reconnect_at - 2.0

    assert first_delay(7) == first_delay(7)
    assert 0.5 <= first_delay(7) < 0.75
    assert len({first_delay(seed) for seed in range(10)}) > 1


def test_backoff_resets_after_a_successful_handshake() -> None:
    """After READY, the next loss waits backoff.min again."""
    conn = connector()
    acc = acceptor()
    conn.connect(0.0)
    conn.tick(2.0)  # lost, attempt 0 -> 0.5 s
    conn.tick(2.5)  # reconnect
    conn.tick(4.5)  # lost again, attempt 1 -> 1.0 s
    (hello,) = sent(conn.tick(5.5))
    (welcome,) = sent(acc.receive(hello, 5.5))
    assert one(Ready, conn.receive(welcome, 5.5)).reconnected is False
    (lost,) = conn.transport_lost(6.0)
    assert lost == Lost("transport_lost", last_seen=5.5, reconnect_at=6.5)


def test_transport_lost_loses_a_ready_peer_at_once() -> None:
    """transport_lost() in READY is LOST now, not at the liveness timeout."""
    conn, _ = ready_pair()
    effects = conn.transport_lost(0.2)
    assert effects == [Lost("transport_lost", last_seen=0.0, reconnect_at=0.7)]
    assert conn.state is LinkState.LOST


@pytest.mark.parametrize("state", ["idle", "lost", "closed"])
def test_transport_lost_is_harmless_where_nothing_is_connected(state: str) -> None:
    """transport_lost() in IDLE, LOST or CLOSED does nothing."""
    conn = connector()
    if state != "idle":
        conn.connect(0.0)
        conn.tick(2.0)
    if state == "closed":
        conn.close(2.1)
    before = conn.state
    assert conn.transport_lost(3.0) == []
    assert conn.state is before


def test_reconnect_after_ready_is_counted_and_flagged() -> None:
    """A connector that reaches READY again says reconnected and counts it."""
    conn, acc = ready_pair()
    assert conn.tick(3.0) == [Lost("liveness_timeout", last_seen=0.0, reconnect_at=3.5)]
    (hello,) = sent(conn.tick(3.5))
    (welcome,) = sent(acc.receive(hello, 3.5))
    assert one(Ready, conn.receive(welcome, 3.5)).reconnected is True
    stats = conn.statistics()
    assert (stats.reconnects, stats.reconnect_attempts) == (1, 1)


def test_data_from_the_old_connection_after_loss_is_not_delivered() -> None:
    """A lost connector refuses stray data until its new handshake completes."""
    conn, _ = ready_pair()
    conn.transport_lost(1.0)
    assert one(Violation, conn.receive(Data(1), 1.1)).reason == "bad_state"
    assert conn.statistics().received == 0


def test_acceptor_takes_the_same_peer_back_after_loss() -> None:
    """A lost peer that says Hello again is READY again, reconnected."""
    _, acc = ready_pair()
    acc.tick(3.0)
    assert acc.state is LinkState.LOST
    effects = acc.receive(good_hello(), 10.0)
    assert one(Ready, effects).reconnected is True
    assert acc.statistics().reconnects == 1


def test_acceptor_refuses_another_peer_on_its_link() -> None:
    """A Hello from a different id on a link that served a peer is bad_peer."""
    _, acc = ready_pair()
    acc.tick(3.0)
    effects = acc.receive(good_hello(peer="cam-02"), 10.0)
    violation = one(Violation, effects)
    assert violation.reason == "bad_peer"
    assert "serves 'cam-01'" in violation.detail
    assert acc.state is LinkState.CLOSED


def test_a_fresh_hello_on_a_ready_link_means_the_peer_restarted() -> None:
    """The acceptor reports the old session lost, then welcomes the new one."""
    _, acc = ready_pair()
    effects = acc.receive(good_hello(), 1.0)
    assert effects[0] == Lost("peer_restarted", last_seen=1.0, reconnect_at=None)
    assert isinstance(effects[1], Transmit)
    assert isinstance(effects[1].message, Welcome)
    assert one(Ready, effects).reconnected is True
    assert acc.state is LinkState.READY


# -- close -----------------------------------------------------------------------------


def test_orderly_close_from_either_side() -> None:
    """close() sends Close; the peer answers with its own and both end CLOSED."""
    conn, acc = ready_pair()
    (close,) = sent(conn.close(1.0, "shutdown"))
    assert close == Close(reason="shutdown")
    assert conn.state is LinkState.CLOSING
    assert conn.next_deadline() == 2.0
    effects = acc.receive(close, 1.1)
    assert effects == [Transmit(Close(reason=CLOSE_ACK)), Closed("shutdown", by_peer=True)]
    assert conn.receive(Close(reason=CLOSE_ACK), 1.2) == [Closed("shutdown", by_peer=False)]
    assert conn.next_deadline() is None
    assert (conn.statistics().state, acc.statistics().state) == (LinkState.CLOSED,) * 2


def test_data_in_flight_during_close_is_still_delivered() -> None:
    """A CLOSING link delivers data the peer sent before it saw our Close."""
    conn, _ = ready_pair()
    conn.close(1.0)
    assert conn.receive(Data(9), 1.1) == [Deliver(Data(9))]


def test_close_times_out_without_an_answer() -> None:
    """With no Close back within close_timeout the link closes anyway."""
    conn, _ = ready_pair()
    conn.close(1.0, "bye")
    assert conn.tick(1.99) == []
    assert conn.tick(2.0) == [Closed("bye", by_peer=False)]


def test_transport_lost_while_closing_closes() -> None:
    """A dropped connection during close finishes the close."""
    conn, _ = ready_pair()
    conn.close(1.0, "bye")
    assert conn.transport_lost(1.1) == [Closed("bye", by_peer=False)]
    assert conn.state is LinkState.CLOSED


def test_close_while_connecting_tells_the_peer_and_closes_at_once() -> None:
    """close() during the handshake sends Close and needs no answer."""
    conn = connector()
    conn.connect(0.0)
    assert conn.close(0.1, "abort") == [Transmit(Close("abort")), Closed("abort", by_peer=False)]
    assert conn.state is LinkState.CLOSED


@pytest.mark.parametrize("side", list(LinkSide))
def test_close_before_any_connection_closes_quietly(side: LinkSide) -> None:
    """close() in IDLE transmits nothing."""
    link = connector() if side is LinkSide.CONNECTOR else acceptor()
    assert link.close(0.0) == [Closed("normal", by_peer=False)]


def test_close_while_lost_closes_and_cancels_the_reconnect() -> None:
    """A lost connector closed by its owner never reconnects."""
    conn = connector()
    conn.connect(0.0)
    conn.tick(2.0)
    conn.close(2.1)
    assert conn.tick(100.0) == []
    assert conn.next_deadline() is None


def test_close_received_during_handshake_is_a_refusal() -> None:
    """A Close instead of Welcome closes the connector, by the peer, for good."""
    conn = connector()
    conn.connect(0.0)
    effects = conn.receive(Close(reason="revoked"), 0.1)
    assert effects == [Closed("revoked", by_peer=True)]
    assert conn.tick(100.0) == []


def test_an_unreadable_close_reason_still_closes() -> None:
    """A Close with a malformed reason closes with reason 'unknown'."""
    conn, _ = ready_pair()
    effects = conn.receive(Close(reason=42), 0.5)  # type: ignore[arg-type]
    assert one(Closed, effects) == Closed("unknown", by_peer=True)


# -- statistics and exports ------------------------------------------------------------


def test_statistics_snapshot() -> None:
    """statistics() reports identity, state and every counter at that moment."""
    conn, acc = ready_pair()
    conn.send(Data(1), 0.5)
    acc.receive(Data(1), 0.5)
    acc.receive(Heartbeat(seq=0), 0.9)
    stats = acc.statistics()
    assert stats.local_id == "edge-a"
    assert stats.side is LinkSide.ACCEPTOR
    assert stats.state is LinkState.READY
    assert (stats.peer, stats.protocol) == ("cam-01", 1)
    assert (stats.sent, stats.received, stats.heartbeats_received) == (0, 1, 1)
    assert (stats.last_seen, stats.last_sent) == (0.9, 0.0)
    assert (stats.queued, stats.dropped, stats.refused) == (0, 0, 0)
    assert stats.violations_total == 0


def test_transport_all_is_complete_and_importable() -> None:
    """Every name in __all__ exists, and every public effect type is exported."""
    for name in transport.__all__:
        assert hasattr(transport, name), name
    assert len(set(transport.__all__)) == len(transport.__all__)
    effect_names = {t.__name__ for t in Effect.__args__}
    assert effect_names <= set(transport.__all__)


def test_transport_imports_no_sockets_threads_or_actors() -> None:
    """The protocol core stays sans-IO: no zmq, threading or edgeloop.actors imports.

    Only the socket adapters (the endpoint, the security guard) may do I/O.
    """
    import ast
    from pathlib import Path

    package = Path(transport.__file__).parent
    core = ("_protocol.py", "_state.py", "_effects.py", "_control.py", "_config.py")
    for path in (package / name for name in core):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                assert root not in {"zmq", "threading", "socket", "time", "asyncio"}, path
                assert not name.startswith("edgeloop.actors"), path
