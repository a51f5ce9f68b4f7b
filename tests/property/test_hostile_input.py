"""Hostile input against a live endpoint over real sockets, driven by hypothesis.

Raw ZeroMQ DEALERs send what no edgeloop peer would: random bytes, truncated MessagePack,
valid MessagePack of the wrong shape, unknown kinds, Hellos with bad protocol versions,
the wrong number of frames, payloads just over the size limit, and data before the
handshake. Each must be rejected and counted under its reason in the node's statistics,
answered where a reply is possible, and must not disturb a well-behaved device that
exchanges messages with the node all along.

One node and its device serve the whole module (starting them per example would be
slow); each example uses a fresh DEALER, closed with linger 0 after it.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import hypothesis.strategies as st
import msgpack
import pytest
import structlog
import zmq
from hypothesis import HealthCheck, assume, example, given, settings

from edgeloop import messages
from edgeloop.errors import DecodeError
from edgeloop.transport import LinkState, PeerUp
from tests.helpers import wait_for
from tests.integration.endpoint_helpers import (
    Peer,
    RawSockets,
    number,
    receive,
    receive_kind,
    tell,
)
from tests.property.test_messages_roundtrip import MESSAGE_STRATEGIES

pytestmark = pytest.mark.integration

MAX_SIZE = 64 * 1024
"""The node's max_message_size: small, so that oversized payloads are cheap to send."""

QUIET = 0.05
"""Seconds to listen for an answer that must not come (after the rejection was counted,
so an answer would already be on its way)."""


@dataclasses.dataclass(frozen=True)
class Hostile:
    """What a hostile DEALER sends, and what the node must make of it."""

    category: str
    frames: tuple[bytes, ...]
    reason: str  # the key its rejection is counted under
    answer: str | None  # "error" (an ErrorReply with code == reason), "close", or None

    def __repr__(self) -> str:  # keep hypothesis's falsifying examples readable
        sizes = [len(frame) for frame in self.frames]
        head = self.frames[0][:40] if self.frames else b""
        return f"Hostile({self.category}, {self.reason}, frames={sizes}, head={head!r})"


class Arena:
    """A node echoing every Tell to its sender, a device exchanging Tells with it, and a
    context for hostile DEALERs."""

    def __init__(self) -> None:
        self.node: Peer = Peer(
            "node-a",
            listen=("tcp://127.0.0.1:*",),
            on_message=self._echo,
            max_message_size=MAX_SIZE,
            liveness_timeout=5.0,
        )
        self.node.start()
        self.device = Peer("dev-good", "device", peers=(self.node.address,)).start()
        event = self.device.event()
        assert event == PeerUp("node-a", "node", reconnected=False), event
        self.raw = RawSockets()
        self.sequence = itertools.count()
        self.exchanged = 0

    def _echo(self, peer: str, message: messages.Message) -> None:
        self.node.endpoint.send(peer, message)

    def control_round_trip(self) -> None:
        """The well-behaved device sends a numbered Tell and gets exactly it back."""
        n = next(self.sequence)
        assert self.device.endpoint.send("node-a", tell(n))
        peer, echoed = self.device.message()
        assert (peer, number(echoed)) == ("node-a", n), "the good peer lost a message"
        self.exchanged += 1

    def rejected(self, reason: str) -> int:
        return self.node.endpoint.statistics().rejected.get(reason, 0)

    def close(self) -> None:
        self.raw.close()
        self.device.endpoint.close()
        self.node.endpoint.close()


@pytest.fixture(scope="module")
def arena() -> Iterator[Arena]:
    """One node and one well-behaved device for the whole module."""
    ring = Arena()
    yield ring
    ring.close()


def throw(arena: Arena, hostile: Hostile) -> None:
    """Send ``hostile`` from a fresh DEALER and check every promise the node makes."""
    before = arena.rejected(hostile.reason)
    dealer = arena.raw.dealer(arena.node.address)
    try:
        with structlog.testing.capture_logs() as logs:
            dealer.send_multipart(list(hostile.frames))
            wait_for(
                lambda: arena.rejected(hostile.reason) > before,
                what=f"{hostile!r} counted as {hostile.reason}",
            )
            if hostile.answer == "error":
                [payload] = receive(dealer)
                reply = messages.decode(payload)
                assert isinstance(reply, messages.ErrorReply), reply
                assert reply.code == hostile.reason, reply
            elif hostile.answer == "close":
                close = receive_kind(dealer, messages.Close)
                assert isinstance(close, messages.Close)
                assert close.reason.startswith(f"{hostile.reason}: "), close
            else:
                assert not dealer.poll(int(QUIET * 1000)), "no answer was expected"
            arena.control_round_trip()
        assert arena.rejected(hostile.reason) == before + 1
        assert not [entry for entry in logs if entry["log_level"] in {"critical", "error"}]
    finally:
        dealer.close(linger=0)


# -- strategies ------------------------------------------------------------------------------


def _outcome(payload: bytes) -> str | None:
    """The reason the node's decoder rejects ``payload`` with, or None if it decodes."""
    try:
        messages.decode(payload, max_size=MAX_SIZE)
    except DecodeError as error:
        return error.reason
    return None


def _undecodable(category: str, payload: bytes) -> Hostile:
    reason = _outcome(payload)
    assume(reason is not None)  # bytes that happen to be a valid message are not hostile
    assert reason is not None
    return Hostile(category, (payload,), reason, "error")


any_message = st.one_of(list(MESSAGE_STRATEGIES.values()))

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=16)
    | st.binary(max_size=16),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
field_names = st.sampled_from(
    sorted({name for cls in messages.KINDS.values() for name in cls.__struct_fields__})
)

random_bytes = st.binary(max_size=300).map(lambda data: _undecodable("random_bytes", data))


@st.composite
def truncated(draw: st.DrawFn) -> Hostile:
    """A valid message's encoding cut short."""
    wire = messages.encode(draw(any_message))
    cut = draw(st.integers(0, len(wire) - 1))
    return _undecodable("truncated", wire[:cut])


wrong_types = st.builds(
    lambda kind, fields: _undecodable(
        "wrong_type", msgpack.packb({**fields, "kind": kind}, use_bin_type=True)
    ),
    st.sampled_from(sorted(messages.KINDS)),
    st.dictionaries(field_names, msgpack_values, min_size=1, max_size=6),
)

unknown_kinds = st.builds(
    lambda kind, fields: _undecodable(
        "unknown_kind", msgpack.packb({**fields, "kind": kind}, use_bin_type=True)
    ),
    st.text(max_size=20).filter(lambda kind: kind not in messages.KINDS),
    st.dictionaries(field_names, msgpack_values, max_size=4),
)

oversized = st.builds(
    lambda extra, byte: Hostile(
        "oversized", (bytes([byte]) * (MAX_SIZE + extra),), "oversized", "error"
    ),
    st.integers(1, 64),
    st.integers(0, 255),
)

empty_frame = st.just(Hostile("empty_frame", (b"",), "malformed", "error"))

undecodable = st.one_of(
    random_bytes, truncated(), wrong_types, unknown_kinds, oversized, empty_frame
)


@st.composite
def wrong_frame_counts(draw: st.DrawFn) -> Hostile:
    """A payload (valid or not) with one to three frames too many."""
    first = draw(any_message.map(messages.encode) | st.binary(max_size=64))
    extra = draw(st.lists(st.binary(max_size=32), min_size=1, max_size=3))
    return Hostile("extra_frames", (first, *extra), "bad_frames", "error")


_ids = itertools.count()


@st.composite
def bad_versions(draw: st.DrawFn) -> Hostile:
    """A Hello offering protocol 0 (no version this node speaks is <= it), or a protocol
    that is not a valid version at all (negative, too large, not an int)."""
    peer = f"fuzz-{next(_ids)}"
    role = draw(st.sampled_from(["node", "device"]))
    protocol = draw(
        st.just(0)
        | st.integers(-(2**63), -1)
        | st.integers(2**63, 2**64 - 1)
        | st.text(max_size=4)
        | st.floats(allow_nan=False)
    )
    if protocol == 0 and type(protocol) is int:
        hello = messages.Hello(peer=peer, role=role, protocol=0)
        return Hostile("bad_version", (messages.encode(hello),), "bad_version", "close")
    wire: dict[str, Any] = {"kind": "hello", "peer": peer, "role": role, "protocol": protocol}
    return _undecodable("bad_version", msgpack.packb(wire, use_bin_type=True))


data_before_hello = st.one_of(
    [strategy for kind, strategy in MESSAGE_STRATEGIES.items() if kind not in {"hello", "close"}]
).map(
    lambda message: Hostile(
        "data_before_hello",
        (messages.encode(message),),
        "bad_state",
        # never an ErrorReply in answer to an ErrorReply: two sides would ping-pong
        None if isinstance(message, messages.ErrorReply) else "error",
    )
)

_HOSTILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the properties --------------------------------------------------------------------------


@_HOSTILE
@given(hostile=undecodable)
def test_undecodable_input_is_rejected_counted_and_answered(arena: Arena, hostile: Hostile) -> None:
    """Random bytes, truncated or wrongly typed MessagePack, unknown kinds, empty and
    oversized frames: counted by reason, answered with ErrorReply, nothing else hurt."""
    throw(arena, hostile)


@_HOSTILE
@given(hostile=wrong_frame_counts())
def test_extra_frames_are_rejected_counted_and_answered(arena: Arena, hostile: Hostile) -> None:
    """A message of more than one payload frame is bad_frames, answered, never decoded."""
    throw(arena, hostile)


@_HOSTILE
@given(hostile=bad_versions())
def test_bad_protocol_versions_in_hello_are_refused(arena: Arena, hostile: Hostile) -> None:
    """A Hello with a version nobody speaks is refused with Close(bad_version); one whose
    version is not a version at all is a wrong_type answered with ErrorReply."""
    throw(arena, hostile)


def _before_hello(message: messages.Message, answer: str | None = "error") -> Hostile:
    return Hostile("data_before_hello", (messages.encode(message),), "bad_state", answer)


@_HOSTILE
@given(hostile=data_before_hello)
@example(hostile=_before_hello(messages.ErrorReply(code="bad_state", message="x"), None))
@example(hostile=_before_hello(messages.Heartbeat(seq=0)))
@example(hostile=_before_hello(tell(0)))
def test_data_before_hello_is_bad_state(arena: Arena, hostile: Hostile) -> None:
    """Any message but Hello (and Close) before the handshake is bad_state, answered
    with ErrorReply unless it is an ErrorReply itself."""
    throw(arena, hostile)


def test_the_good_peer_lost_nothing(arena: Arena) -> None:
    """After all of the above the device's link is still the first one, with no
    violations, every message it sent delivered and echoed, and nothing undelivered."""
    arena.control_round_trip()
    [status] = arena.device.endpoint.statistics().peers
    assert status.state is LinkState.READY
    assert (status.link.reconnects, status.link.violations_total) == (0, 0)
    assert status.link.sent == status.link.received == arena.exchanged
    assert arena.device.events.empty(), "the good peer's link went down"
    assert arena.device.undelivered.empty()
    assert arena.node.undelivered.empty()
    at_node = [p for p in arena.node.endpoint.statistics().peers if p.peer == "dev-good"]
    assert [p.link.received for p in at_node] == [arena.exchanged]


# -- beyond hypothesis -----------------------------------------------------------------------


def test_far_oversized_message_drops_only_that_connection(arena: Arena) -> None:
    """A message beyond libzmq's own limit (4x the decoder's) makes libzmq drop that
    connection before the node sees a byte; the node and the good peer carry on."""
    dealer = arena.raw.dealer(arena.node.address)
    try:
        dealer.send(b"\x00" * (4 * MAX_SIZE + 8192))
        assert not dealer.poll(int(QUIET * 1000))
        arena.control_round_trip()
    finally:
        dealer.close(linger=0)


def test_hostile_node_cannot_hurt_a_device(arena: Arena) -> None:
    """A raw ROUTER playing a node sends a device junk, extra and empty frames, oversized
    data and data before Welcome: each is counted at the device, which then completes a
    real handshake with it and exchanges data."""
    router: zmq.Socket[Any] = arena.raw.context.socket(zmq.ROUTER)
    arena.raw.sockets.append(router)
    router.setsockopt(zmq.LINGER, 0)
    router.bind("tcp://127.0.0.1:*")
    address = router.getsockopt_string(zmq.LAST_ENDPOINT)
    device = Peer(
        "dev-2", "device", peers=(address,), max_message_size=MAX_SIZE, handshake_timeout=10.0
    ).start()
    try:
        identity, payload = receive(router)
        assert identity == b"dev-2"
        hello = messages.decode(payload)
        assert isinstance(hello, messages.Hello)

        def rejected() -> dict[str, int]:
            return dict(device.endpoint.statistics().rejected)

        junk = [
            ([b"\xc1\xc1"], "malformed"),
            ([b""], "malformed"),
            ([messages.encode(tell(1)), b"extra"], "bad_frames"),
            ([b"\x00" * (MAX_SIZE + 1)], "oversized"),
            ([msgpack.packb({"kind": "tell", "to": 5, "body": b""})], "wrong_type"),
            ([msgpack.packb({"kind": "bogus"})], "unknown_kind"),
            ([messages.encode(tell(2))], "bad_state"),
        ]
        expected: dict[str, int] = {}
        for frames, reason in junk:
            router.send_multipart([identity, *frames])
            expected[reason] = expected.get(reason, 0) + 1
            wait_for(lambda: rejected() == expected, what=f"{reason} counted at the device")

        welcome = messages.Welcome(
            peer="node-x", protocol=1, heartbeat_interval=0.5, liveness_timeout=5.0
        )
        router.send_multipart([identity, messages.encode(welcome)])
        device.up("node-x")
        device.endpoint.send("node-x", tell(3))
        while True:
            _, payload = receive(router)
            message = messages.decode(payload)
            if isinstance(message, messages.Tell):
                assert number(message) == 3
                break
        router.send_multipart([identity, messages.encode(tell(4))])
        assert device.message() == ("node-x", tell(4))
        assert rejected() == expected
    finally:
        device.endpoint.close()
    arena.control_round_trip()
