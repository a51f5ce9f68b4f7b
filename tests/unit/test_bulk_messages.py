"""The bulk lane's messages: round trips, bounds checked on decode, typed errors."""

from __future__ import annotations

import msgpack
import msgspec.inspect as mi
import pytest
from hypothesis import given

from edgeloop import messages as m
from edgeloop.errors import DecodeError
from tests.property.test_messages_roundtrip import _strategy

SAMPLES: list[m.BulkMessage] = [
    m.BulkOffer(
        lane=1,
        host_id="0123456789abcdef",
        providers=("shm", "verbs", "zmq"),
        slot_size=4 * 1024 * 1024,
        slot_count=8,
        memory="gpu",
    ),
    m.BulkOffer(lane=2, host_id="h", providers=("zmq",), slot_size=1, slot_count=1),
    m.BulkAccept(
        lane=1,
        host_id="fedcba9876543210",
        provider="verbs",
        params={"qpn": 17, "psn": 12345, "gid": "fe80:0000:0000:0000:0000:0000:0000:0001"},
    ),
    m.BulkAccept(lane=1, host_id="h", provider="shm"),
    m.BulkReady(lane=1, provider="shm", params={"segment": "edgeloop-bulk-00", "key": 2**64 - 1}),
    m.BulkCredit(lane=1, slots=(0, 1, 255)),
    m.BulkComplete(
        lane=1,
        seq=2**40,
        slot=3,
        nbytes=640 * 480 * 3,
        shape=(480, 640, 3),
        dtype="|u1",
        checksum=0xDEADBEEF,
        frame_id=42,
    ),
    m.BulkComplete(lane=0, seq=0, slot=0, nbytes=0, shape=(0,), dtype="<f4"),
    m.BulkClose(lane=1, reason="node shutting down"),
]


def test_samples_cover_every_bulk_kind():
    """The samples include every bulk message kind; all but the slot header are link kinds."""
    assert {m.kind_of(sample) for sample in SAMPLES} == set(m.BULK_KINDS)  # type: ignore[arg-type]
    # All but the slot header travel on the control link.
    assert set(m.BULK_KINDS) & set(m.KINDS) == set(m.BULK_KINDS) - {"bulk_complete"}


@pytest.mark.parametrize("message", SAMPLES, ids=lambda msg: type(msg).__name__)
def test_round_trip(message: m.BulkMessage):
    """decode_bulk(encode_bulk(msg)) == msg, as a plain msgpack map tagged by kind."""
    data = m.encode_bulk(message)
    assert m.decode_bulk(data) == message
    plain = msgpack.unpackb(data)
    assert plain["kind"] == m.kind_of(message)  # type: ignore[arg-type]
    assert m.encode(message) == data  # type: ignore[arg-type]  # the link codec writes the same bytes


@pytest.mark.parametrize("kind", list(m.BULK_KINDS))
def test_any_valid_bulk_message_round_trips(kind: str):
    """Any valid message of each bulk kind survives encode and decode unchanged."""

    @given(_strategy(mi.type_info(m.BULK_KINDS[kind])))
    def round_trip(message: m.BulkMessage) -> None:
        assert m.decode_bulk(m.encode_bulk(message)) == message

    round_trip()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"kind": "bulk_credit", "lane": 1, "slots": [256]}, "$.slots[0]"),
        ({"kind": "bulk_credit", "lane": 1, "slots": []}, "$.slots"),
        (
            {
                "kind": "bulk_offer",
                "lane": 1,
                "host_id": "h",
                "providers": ["shm"],
                "slot_size": 1,
                "slot_count": 257,
            },
            "$.slot_count",
        ),
        (
            {
                "kind": "bulk_offer",
                "lane": 1,
                "host_id": "h",
                "providers": ["SHM"],
                "slot_size": 1,
                "slot_count": 1,
            },
            "$.providers[0]",
        ),
        (
            {
                "kind": "bulk_offer",
                "lane": 1,
                "host_id": "h",
                "providers": ["shm"],
                "slot_size": 1,
                "slot_count": 1,
                "memory": "disk",
            },
            "$.memory",
        ),
        (
            {
                "kind": "bulk_complete",
                "lane": 1,
                "seq": 0,
                "slot": 0,
                "nbytes": -1,
                "shape": [],
                "dtype": "|u1",
            },
            "$.nbytes",
        ),
        (
            {
                "kind": "bulk_complete",
                "lane": 1,
                "seq": 0,
                "slot": 0,
                "nbytes": 1,
                "shape": [1],
                "dtype": "u1; rm -rf",
            },
            "$.dtype",
        ),
        (
            {
                "kind": "bulk_complete",
                "lane": 1,
                "seq": 0,
                "slot": 0,
                "nbytes": 1,
                "shape": [1],
                "dtype": "|u1",
                "checksum": 2**32,
            },
            "$.checksum",
        ),
    ],
    ids=[
        "slot>255",
        "no-slots",
        "slot-count",
        "provider-name",
        "memory",
        "nbytes",
        "dtype",
        "checksum",
    ],
)
def test_out_of_bounds_fields_name_the_field(raw: dict[str, object], field: str):
    """Decoding checks the bounds and names the offending field."""
    with pytest.raises(DecodeError) as caught:
        m.decode_bulk(msgpack.packb(raw))
    assert caught.value.reason == "wrong_type"
    assert caught.value.field == field


def test_link_kinds_are_not_bulk_messages():
    """decode_bulk refuses link messages as unknown kinds (the two unions stay apart)."""
    with pytest.raises(DecodeError) as caught:
        m.decode_bulk(m.encode(m.Heartbeat(seq=1)))
    assert caught.value.reason == "unknown_kind"


def test_oversized_and_malformed_input():
    """Input over the size limit, or not msgpack, raises a typed DecodeError."""
    with pytest.raises(DecodeError) as too_big:
        m.decode_bulk(b"\x00" * (m.BULK_MAX_SIZE + 1))
    assert too_big.value.reason == "oversized"
    with pytest.raises(DecodeError) as bad:
        m.decode_bulk(b"\xc1")
    assert bad.value.reason == "malformed"
