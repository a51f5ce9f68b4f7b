"""What an edgeloop trace is on disk: MCAP, one channel per direction, device and kind.

Every message that crossed a node's device boundary is one MCAP message on the topic
``/in/<device>/<kind>`` (from the device) or ``/out/<device>/<kind>`` (to it), encoded as
MessagePack exactly as on the wire (``message_encoding = "msgpack"``), with the kind's JSON
Schema stored in the file (``schema encoding = "jsonschema"``), so the standard ``mcap``
tools and Foxglove can list and decode it. Log times are the node clock in nanoseconds.
docs/trace-format.md is the reference.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from typing import Literal

import msgspec
import numpy as np

from edgeloop.messages import KINDS, FrameRef, Message, kind_of

__all__ = [
    "PROFILE",
    "FORMAT_VERSION",
    "MESSAGE_ENCODING",
    "SCHEMA_ENCODING",
    "TRACE_METADATA",
    "RECORDER_METADATA",
    "FRAME_SCHEMA",
    "Direction",
    "TraceRecord",
    "FrameRecord",
    "Frame",
    "topic_for",
    "frame_topic",
    "parse_topic",
    "parse_frame_topic",
    "schema_name",
    "schema_bytes",
    "RESOLUTION",
    "to_ns",
    "to_ns_many",
    "from_ns",
]

PROFILE = "edgeloop"
"""The MCAP header's profile: the file follows the conventions of this module."""
FORMAT_VERSION = "1"
"""Bumped when a reader of an older version could misread a newer file."""
MESSAGE_ENCODING = "msgpack"
SCHEMA_ENCODING = "jsonschema"
TRACE_METADATA = "edgeloop.trace"
"""Metadata record written first: format and protocol versions, node, clock start."""
RECORDER_METADATA = "edgeloop.recorder"
"""Metadata record written last: what the recorder wrote and what it dropped."""
FRAME_SCHEMA = "edgeloop.trace.Frame"

Direction = Literal["in", "out"]

_TOPIC = re.compile(r"\A/(in|out)/([A-Za-z0-9_.@:-]+)/([a-z][a-z0-9_]*)\Z")
_FRAME_TOPIC = re.compile(r"\A/frames/([A-Za-z0-9_.@:-]+)\Z")


@dataclasses.dataclass(frozen=True, slots=True)
class TraceRecord:
    """One message that crossed the boundary: ``in`` from ``device``, ``out`` to it, at
    ``ts`` seconds on the node's clock. Same fields as the node's ``TapRecord``."""

    direction: Direction
    device: str
    message: Message
    ts: float

    @property
    def kind(self) -> str:
        return kind_of(self.message)

    @property
    def topic(self) -> str:
        return topic_for(self.direction, self.device, self.kind)


class Frame(msgspec.Struct, frozen=True, kw_only=True):
    """A full frame kept in the trace: its descriptor and its bytes."""

    ref: FrameRef
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class FrameRecord:
    """A full frame recorded at ``ts`` (within the recorder's frame budget)."""

    device: str
    frame: Frame
    ts: float


def topic_for(direction: Direction, device: str, kind: str) -> str:
    return f"/{direction}/{device}/{kind}"


def frame_topic(device: str) -> str:
    return f"/frames/{device}"


def parse_topic(topic: str) -> tuple[Direction, str, str] | None:
    """``(direction, device, kind)`` of a message topic, ``None`` if it is not one."""
    match = _TOPIC.match(topic)
    if match is None:
        return None
    direction: Direction = "in" if match.group(1) == "in" else "out"
    return direction, match.group(2), match.group(3)


def parse_frame_topic(topic: str) -> str | None:
    """The device of a frame topic, ``None`` if it is not one."""
    match = _FRAME_TOPIC.match(topic)
    return None if match is None else match.group(1)


def schema_name(kind: str) -> str:
    """``edgeloop.messages.Event`` for ``event``: the class a reader decodes into."""
    return f"edgeloop.messages.{KINDS[kind].__name__}"


@functools.cache
def schema_bytes(kind: str) -> bytes:
    """The JSON Schema of a message kind (or of :class:`Frame` for ``FRAME_SCHEMA``)."""
    cls = Frame if kind == FRAME_SCHEMA else KINDS[kind]
    return msgspec.json.encode(msgspec.json.schema(cls))


RESOLUTION = 1e-9
"""Seconds between two times a trace can hold: MCAP log times are whole nanoseconds."""


def to_ns(seconds: float) -> int:
    """MCAP log time: the node clock in whole nanoseconds (negative clocks clamp to 0)."""
    return max(0, round(seconds * 1e9))


def to_ns_many(seconds: Sequence[float]) -> list[int]:
    """:func:`to_ns` of many clock readings at once."""
    ns = np.rint(np.maximum(np.asarray(seconds, dtype=np.float64) * 1e9, 0.0))
    times: list[int] = ns.astype(np.int64).tolist()
    return times


def from_ns(ns: int) -> float:
    return ns / 1e9
