"""Properties of the wire codec: every valid message round-trips, and no input crashes it.

Messages are generated from the schema itself (``msgspec.inspect``), within the bounds a
receiver checks, so a field or message added later is covered without editing this file.
"""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import msgpack
import msgspec.inspect as mi
import pytest
from hypothesis import given, reject

from edgeloop import messages as m
from edgeloop.errors import DecodeError

_COLLECTION_CAP = 4  # keep generated lists and maps small; bounds are tested in unit tests
_BYTES_CAP = 64


def _int_bounds(t: mi.IntType) -> tuple[int, int]:
    low = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else -(2**63))
    high = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else 2**64 - 1)
    return low, high


def _strategy(t: mi.Type) -> st.SearchStrategy[Any]:
    """Values of the msgspec type ``t`` that satisfy its constraints."""
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.IntType):
        low, high = _int_bounds(t)
        return st.integers(low, high)
    if isinstance(t, mi.FloatType):
        return st.floats(
            min_value=t.ge if t.ge is not None else t.gt,
            max_value=t.le if t.le is not None else t.lt,
            exclude_min=t.gt is not None,
            exclude_max=t.lt is not None,
            allow_nan=False,
            allow_infinity=False,
        )
    if isinstance(t, mi.StrType):
        shortest, longest = t.min_length or 0, t.max_length
        if t.pattern is not None:
            return st.from_regex(t.pattern).filter(
                lambda s: shortest <= len(s) and (longest is None or len(s) <= longest)
            )
        return st.text(min_size=shortest, max_size=min(longest or 32, 32))
    if isinstance(t, mi.BytesType):
        return st.binary(min_size=t.min_length or 0, max_size=min(t.max_length or 64, _BYTES_CAP))
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, mi.UnionType):
        return st.one_of([_strategy(member) for member in t.types])
    if isinstance(t, mi.ListType | mi.VarTupleType):
        items = st.lists(
            _strategy(t.item_type),
            min_size=t.min_length or 0,
            max_size=min(t.max_length or _COLLECTION_CAP, _COLLECTION_CAP),
        )
        return items.map(tuple) if isinstance(t, mi.VarTupleType) else items
    if isinstance(t, mi.DictType):
        return st.dictionaries(
            _strategy(t.key_type),
            _strategy(t.value_type),
            min_size=t.min_length or 0,
            max_size=min(t.max_length or _COLLECTION_CAP, _COLLECTION_CAP),
        )
    if isinstance(t, mi.StructType):
        return _struct(t)
    raise NotImplementedError(f"no strategy for {t!r}: extend _strategy for the new type")


def _struct(t: mi.StructType) -> st.SearchStrategy[Any]:
    required = {f.name: _strategy(f.type) for f in t.fields if f.required}
    optional = {f.name: _strategy(f.type) for f in t.fields if not f.required}

    def build(kwargs: dict[str, Any]) -> Any:
        try:
            return t.cls(**kwargs)
        except ValueError:  # a cross-field check (__post_init__) refused this combination
            reject()

    return st.fixed_dictionaries(required, optional=optional).map(build)


MESSAGE_STRATEGIES = {kind: _strategy(mi.type_info(cls)) for kind, cls in m.KINDS.items()}
any_message = st.one_of(list(MESSAGE_STRATEGIES.values()))


@pytest.mark.parametrize("kind", list(m.KINDS))
def test_every_message_type_round_trips(kind: str):
    """decode(encode(msg)) == msg for any valid message of each kind."""

    @given(MESSAGE_STRATEGIES[kind])
    def round_trip(message: m.Message) -> None:
        data = m.encode(message)
        decoded = m.decode(data, max_size=None)
        assert type(decoded) is type(message)
        assert decoded == message
        assert m.encode(decoded) == data

    round_trip()


@given(any_message)
def test_any_message_is_a_plain_msgpack_map(message: m.Message):
    """A generic msgpack reader sees a str-keyed map tagged with the message's kind."""
    wire = msgpack.unpackb(m.encode(message), raw=False, strict_map_key=True)
    assert wire["kind"] == m.kind_of(message)


def _decode_or_reason(data: bytes) -> str:
    try:
        m.decode(data, max_size=4096)
    except DecodeError as error:
        return error.reason
    return "ok"


_REASONS = {"ok", "malformed", "wrong_type", "unknown_kind", "oversized"}


@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes):
    """decode() of any bytes returns a message or raises DecodeError, nothing else."""
    assert _decode_or_reason(data) in _REASONS


@given(any_message, st.data())
def test_corrupted_messages_only_raise_decode_error(message: m.Message, data: st.DataObject):
    """Valid encodings with bytes flipped, cut or inserted never crash the decoder."""
    wire = bytearray(m.encode(message))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(wire)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and at < len(wire):
            wire[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del wire[at : at + data.draw(st.integers(1, 8))]
        else:
            wire[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    assert _decode_or_reason(bytes(wire)) in _REASONS


_msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=16)
    | st.binary(max_size=16),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.integers(-(2**63), 2**64 - 1), children, max_size=4
        )
    ),
    max_leaves=12,
)


@given(
    st.sampled_from([*m.KINDS, "nonsense", ""]),
    st.dictionaries(
        st.sampled_from(
            sorted({name for cls in m.KINDS.values() for name in cls.__struct_fields__})
        ),
        _msgpack_values,
        max_size=8,
    ),
)
def test_maps_with_known_kinds_and_random_fields_only_raise_decode_error(
    kind: str, fields: dict[str, Any]
):
    """Valid msgpack maps with real field names but random values never crash decode()."""
    data = msgpack.packb({"kind": kind, **fields}, use_bin_type=True, strict_types=False)
    assert _decode_or_reason(data) in _REASONS


@given(_msgpack_values)
def test_arbitrary_msgpack_only_raises_decode_error(value: Any):
    """Any msgpack document decodes to a message or raises DecodeError."""
    assert _decode_or_reason(msgpack.packb(value, use_bin_type=True)) in _REASONS


@given(_msgpack_values)
def test_builtin_bodies_round_trip(value: Any):
    """encode_body/decode_body keep any msgpack-able builtin (NaN aside)."""
    decoded = m.decode_body(m.encode_body(value))
    assert m.encode_body(decoded) == m.encode_body(value)


@given(st.binary(max_size=256))
def test_arbitrary_bodies_only_raise_decode_error(data: bytes):
    """decode_body() of any bytes returns a value or raises DecodeError, nothing else."""
    try:
        m.decode_body(data)
    except DecodeError as error:
        assert error.reason in {"malformed", "wrong_type"}  # noqa: PT017 - a property, not a raise check
