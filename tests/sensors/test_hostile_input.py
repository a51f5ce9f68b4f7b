"""Hostile input at the two boundaries this area owns, driven by hypothesis: a scenario
table with any value anywhere, and head bytes with any damage. Each is either accepted or
refused with the area's typed error; nothing else escapes, and an accepted head scores."""

from __future__ import annotations

import copy
import zlib
from typing import Any

import hypothesis.strategies as st
import msgspec
import numpy as np
from hypothesis import given, settings

from edgeloop import messages as m
from edgeloop.errors import HeadError, ScenarioError
from edgeloop.sensors import HeadResult, check_head, load_head
from edgeloop.sensors.world import World, parse_scenario

from .world.test_scenario import MINIMAL

_HEAD = World("calm").initial_head()
_HEAD_BYTES = m.encode_head(_HEAD)

junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.binary(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a nested table where a value could be swapped."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


_PLACES = _paths(MINIMAL)

wire_junk = st.recursive(  # what MessagePack can carry: 64-bit integers at most
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.binary(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200)
@given(place=st.sampled_from(_PLACES), value=junk, extra=st.booleans())
def test_any_value_anywhere_in_a_scenario_is_accepted_or_named(place, value, extra):
    table = copy.deepcopy(MINIMAL)
    node: Any = table
    for part in place[:-1]:
        node = node[part]
    if extra and isinstance(node, dict):
        node[f"x{place[-1]}"] = value  # an extra key next to a known one
    else:
        node[place[-1]] = value
    try:
        scenario = parse_scenario(table)
    except ScenarioError:
        return  # refused, with the key named (test_scenario.py checks the wording)
    world = World(scenario)  # what parses, runs
    for obs in world.observe(0, render=False):
        assert obs.camera in {c.id for c in scenario.cameras}


@settings(max_examples=300)
@given(
    cuts=st.lists(st.tuples(st.integers(0, len(_HEAD_BYTES) - 1), st.integers(0, 255)), max_size=6),
    truncate=st.integers(0, len(_HEAD_BYTES)),
)
def test_damaged_head_bytes_are_refused_with_a_head_error_or_still_score(cuts, truncate):
    data = bytearray(_HEAD_BYTES)
    for at, byte in cuts:
        data[at] = byte
    data = bytes(data[: max(truncate, 1)] if truncate < len(data) else data)
    try:
        head = load_head(data)
    except HeadError:
        return  # refused: the device keeps its old head
    result = head.score(np.zeros(head.spec.dim, dtype=np.int8))
    assert isinstance(result, HeadResult)
    assert 0.0 <= result.score <= 1.0


@settings(max_examples=200)
@given(field=st.sampled_from(sorted(m.HeadSpec.__struct_fields__)), value=wire_junk)
def test_any_value_in_any_field_of_a_head_is_refused_or_runs(field, value):
    table = msgspec.msgpack.decode(_HEAD_BYTES)
    table[field] = value
    data = msgspec.msgpack.encode(table)
    update = m.HeadUpdate(
        device="cam-1", version=_HEAD.version, head=data, checksum=zlib.crc32(data)
    )
    try:
        head = load_head(update)
    except HeadError:
        return
    assert check_head(head.spec).spec == head.spec
    head.score(np.ones(head.spec.dim, dtype=np.int8))
