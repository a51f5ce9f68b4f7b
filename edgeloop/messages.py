"""The wire schema: typed, versioned, immutable messages and their MessagePack codec.

Every message is a frozen msgspec ``Struct`` encoded as a MessagePack **map** with string
keys; the map's ``"kind"`` entry names the message (its tag), the other entries are its
fields by name. Byte strings are MessagePack ``bin``, numbers are plain ints and floats,
and no extension types are used, so a device written in C or Rust with any msgpack library
can speak the protocol. ``docs/link-protocol.md`` lists every message and the rules for
changing the schema without breaking older peers.

Three families travel on one link:

- link control: ``Hello``, ``Welcome``, ``Heartbeat``, ``Close``, ``ErrorReply``;
- remote actors: ``Tell``, ``Ask``, ``Reply``, ``Failure``, ``Watch``, ``Unwatch``,
  ``DownNotice``, ``DeadLetterNotice``;
- devices: ``Event``, ``EventAck``, ``Command``, ``CommandResult``, ``ConfigDesired``,
  ``ConfigReported``, ``HeadUpdate``, ``HeadAck``, ``FrameRequest``, ``FrameReady``,
  ``DeviceStatus`` (and ``FrameRef``, the descriptor of a full frame, which travels inside
  them).

Constraints (non-negative ids, bounded strings, scores in [0, 1]) are checked when bytes
are *decoded*, which is where untrusted input enters: msgspec does not check them when a
struct is built in Python. :func:`validate` runs the receiver's checks on the sending side.
"""

from __future__ import annotations

import functools
import re
import traceback as _traceback
import zlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeAlias, TypeVar, cast, overload

import msgspec
from msgspec import Meta

from edgeloop.errors import DecodeError, ProtocolError, VersionError

__all__ = [
    # versions and limits
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "DEFAULT_MAX_SIZE",
    # link control
    "Hello",
    "Welcome",
    "Heartbeat",
    "Close",
    "ErrorReply",
    # remote actors
    "Tell",
    "Ask",
    "Reply",
    "Failure",
    "Watch",
    "Unwatch",
    "DownNotice",
    "DeadLetterNotice",
    # devices
    "FrameRef",
    "Event",
    "EventAck",
    "Command",
    "CommandResult",
    "ConfigDesired",
    "ConfigReported",
    "HeadUpdate",
    "HeadAck",
    "FrameRequest",
    "FrameReady",
    "DeviceStatus",
    # unions and lookup
    "Message",
    "LinkMessage",
    "RemoteMessage",
    "DeviceMessage",
    "BulkLinkMessage",
    "Scalar",
    "Value",
    "KINDS",
    "kind_of",
    # codec
    "encode",
    "decode",
    "validate",
    "check_version",
    "encode_body",
    "decode_body",
]

PROTOCOL_VERSION = 1
"""The protocol version this side speaks; sent in ``Hello`` and ``Welcome``."""

SUPPORTED_VERSIONS: frozenset[int] = frozenset({PROTOCOL_VERSION})
"""Versions this side accepts from a peer (see :func:`check_version`)."""

DEFAULT_MAX_SIZE = 16 * 1024 * 1024
"""Largest encoded message :func:`decode` accepts unless told otherwise (16 MiB)."""

# -- field types: the constraints a receiver checks ------------------------------------

_U63 = 2**63 - 1  # ids fit a signed and an unsigned 64-bit integer in any language

Id = Annotated[int, Meta(ge=0, le=_U63)]
"""A request, watch or frame id; unique per sender and link while it is outstanding."""
Seq = Annotated[int, Meta(ge=0, le=_U63)]
Version = Annotated[int, Meta(ge=0, le=_U63)]
Name = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"\A[A-Za-z0-9_.@:-]+\Z")]
"""A node or device id: letters, digits and ``_ . @ : -``."""
Path = Annotated[
    str, Meta(min_length=1, max_length=1024, pattern=r"\A(?:(?:/[A-Za-z0-9_.@:-]+)+|/)\Z")
]
"""An actor path on the receiving node, as the actor system spells it (``/yard/fusion``)."""
Address = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=1024,
        pattern=r"\A(?:[A-Za-z0-9_.@-]+:)?(?:(?:/[A-Za-z0-9_.@:-]+)+|/)\Z",
    ),
]
"""An actor path, optionally prefixed with its node (``edge-a:/yard/twin/cam-1``)."""
Label = Annotated[str, Meta(min_length=1, max_length=64)]
Text = Annotated[str, Meta(max_length=4096)]
Code = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"\A[a-z][a-z0-9_]*\Z")]
Seconds = Annotated[float, Meta(gt=0.0, le=86400.0)]
Timestamp = Annotated[float, Meta(ge=0.0, le=1e11)]
"""Seconds since the Unix epoch (or since the start of a virtual clock); the upper bound
(year 5138) rejects milliseconds or nanoseconds sent by mistake, and infinity."""
Checksum = Annotated[int, Meta(ge=0, le=2**32 - 1)]
"""CRC-32 of the bytes, as ``zlib.crc32`` computes it (ISO-HDLC polynomial)."""

_ShortStr = Annotated[str, Meta(max_length=1024)]
_Key = Annotated[str, Meta(min_length=1, max_length=64)]

Scalar: TypeAlias = bool | int | float | _ShortStr | None
"""A plain value any msgpack library writes: nil, bool, int, float or str."""
Value: TypeAlias = (
    Scalar
    | Annotated[list[Scalar], Meta(max_length=256)]
    | Annotated[dict[_Key, Scalar], Meta(max_length=64)]
)
"""A command argument or setting: a scalar, a list of scalars, or a map of scalars."""
Params = Annotated[dict[_Key, Value], Meta(max_length=64)]
Extra = Annotated[dict[_Key, bool | int | float | _ShortStr], Meta(max_length=32)]

ExitKind: TypeAlias = Literal[
    "normal", "shutdown", "crash", "killed", "escalated", "noproc", "noconnection"
]
"""Why a watched actor stopped; the same words as ``edgeloop.actors.ExitReason.kind``."""


class _Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """Base of every message: frozen, keyword-only, tagged by ``kind`` on the wire.

    msgspec applies ``kw_only`` per class, and mypy wants ``frozen`` repeated, so every
    subclass states both.
    """


# -- link control ----------------------------------------------------------------------


class Hello(_Message, frozen=True, kw_only=True, tag="hello"):
    """The first message a connecting peer sends: who it is and what it speaks.

    ``peer``, ``role`` and ``protocol`` keep their names and types in every version, so a
    Hello from any version decodes and :func:`check_version` can refuse it politely.
    """

    peer: Name
    role: Literal["node", "device"]
    protocol: Version
    capabilities: Annotated[tuple[Label, ...], Meta(max_length=64)] = ()


class Welcome(_Message, frozen=True, kw_only=True, tag="welcome"):
    """The node's answer to a Hello it accepts: the link is ready, with these timings."""

    peer: Name
    protocol: Version
    capabilities: Annotated[tuple[Label, ...], Meta(max_length=64)] = ()
    heartbeat_interval: Seconds
    liveness_timeout: Seconds

    def __post_init__(self) -> None:
        if self.liveness_timeout <= self.heartbeat_interval:
            raise ValueError(
                f"liveness_timeout ({self.liveness_timeout}) must exceed "
                f"heartbeat_interval ({self.heartbeat_interval})"
            )


class Heartbeat(_Message, frozen=True, kw_only=True, tag="heartbeat"):
    """Sent every ``heartbeat_interval`` while a link is idle; ``seq`` counts up from 0."""

    seq: Seq


class Close(_Message, frozen=True, kw_only=True, tag="close"):
    """The sender is closing the link on purpose; ``reason`` is for logs."""

    reason: Text = ""


class ErrorReply(_Message, frozen=True, kw_only=True, tag="error"):
    """A typed answer to input the receiver rejected.

    ``code`` is the rejection's reason (``malformed``, ``wrong_type``, ``unknown_kind``,
    ``bad_version``, ``oversized``, ``bad_frames``, ``bad_state``, ...); ``field`` the JSON
    path of the bad value (``$.seq``) or ``""``; ``in_reply_to`` the id of the request
    that was rejected, when it could be read.
    """

    code: Code
    message: Text
    field: _ShortStr = ""
    in_reply_to: Id | None = None

    @classmethod
    def from_error(cls, error: ProtocolError, in_reply_to: int | None = None) -> ErrorReply:
        """The reply that tells a peer why its input was rejected."""
        field = error.field if isinstance(error, DecodeError) else ""
        return cls(
            code=error.reason,
            message=_clip(str(error), 4096),
            field=_clip(field, 1024),
            in_reply_to=in_reply_to,
        )


# -- remote actors ---------------------------------------------------------------------


class Tell(_Message, frozen=True, kw_only=True, tag="tell"):
    """Deliver ``body`` (see :func:`encode_body`) to the actor at ``to``; no reply."""

    to: Path
    body: bytes
    sender: Address | None = None


class Ask(_Message, frozen=True, kw_only=True, tag="ask"):
    """Deliver ``body`` to ``to`` and expect a Reply, Failure or DeadLetterNotice with
    the same ``id`` within ``timeout`` seconds."""

    id: Id
    to: Path
    body: bytes
    timeout: Seconds


class Reply(_Message, frozen=True, kw_only=True, tag="reply"):
    """The answer to the Ask with this ``id``."""

    id: Id
    body: bytes


class Failure(_Message, frozen=True, kw_only=True, tag="failure"):
    """The handler of the Ask with this ``id`` raised; becomes a ``RemoteError``."""

    id: Id
    remote_type: Annotated[str, Meta(min_length=1, max_length=256)]
    message: Text
    traceback: Annotated[str, Meta(max_length=16384)] = ""

    @classmethod
    def from_exception(cls, id: int, error: BaseException) -> Failure:
        """The Failure that reports ``error``, clipped to the limits a receiver checks."""
        kind = type(error)
        lines = _traceback.format_exception(error)
        return cls(
            id=id,
            remote_type=_clip(f"{kind.__module__}.{kind.__qualname__}", 256),
            message=_clip(str(error), 4096),
            traceback=_clip("".join(lines), 16384, keep="end"),
        )


class Watch(_Message, frozen=True, kw_only=True, tag="watch"):
    """Send a DownNotice with this ``id`` when the actor at ``path`` stops."""

    id: Id
    path: Path


class Unwatch(_Message, frozen=True, kw_only=True, tag="unwatch"):
    """Cancel the Watch with this ``id``."""

    id: Id


class DownNotice(_Message, frozen=True, kw_only=True, tag="down"):
    """The actor watched under ``id`` stopped (or was never there: ``noproc``)."""

    id: Id
    path: Path
    reason_kind: ExitKind
    detail: Text = ""


class DeadLetterNotice(_Message, frozen=True, kw_only=True, tag="dead_letter"):
    """A Tell or Ask could not be delivered; ``id`` is the Ask's, ``None`` for a Tell."""

    id: Id | None = None
    path: _ShortStr
    reason: Text


# -- devices ---------------------------------------------------------------------------


class FrameRef(msgspec.Struct, frozen=True, kw_only=True):
    """Where a full frame lives: the device keeps it; fetch it with a FrameRequest.

    Not a message of its own (it has no ``kind``): it travels inside Event and FrameReady.
    """

    device: Name
    frame_id: Id
    shape: Annotated[tuple[Annotated[int, Meta(ge=0, le=_U63)], ...], Meta(max_length=8)]
    dtype: Annotated[str, Meta(min_length=1, max_length=16, pattern=r"\A[<>|=]?[a-z][a-z0-9]*\Z")]
    nbytes: Annotated[int, Meta(ge=0, le=_U63)]
    checksum: Checksum


class Event(_Message, frozen=True, kw_only=True, tag="event"):
    """One observation by a device; at-least-once, deduplicated by ``(device, seq)``.

    ``seq`` starts at 1 and grows by one per event; ``embedding`` is int8 values, one byte
    each; ``head_version`` and ``config_version`` are what the device runs now.
    """

    device: Name
    seq: Annotated[int, Meta(ge=1, le=_U63)]
    ts: Timestamp
    zone: Label
    label: Label
    score: Annotated[float, Meta(ge=0.0, le=1.0)]
    embedding: Annotated[bytes, Meta(max_length=4096)]
    frame: FrameRef | None = None
    head_version: Version
    config_version: Version
    extra: Extra = {}


class EventAck(_Message, frozen=True, kw_only=True, tag="event_ack"):
    """Cumulative: every event of ``device`` with a sequence number ``<= seq`` arrived."""

    device: Name
    seq: Seq


class Command(_Message, frozen=True, kw_only=True, tag="command"):
    """Ask a device to do ``name`` (``pan``, ``close``, ...) with ``args``."""

    id: Id
    device: Name
    name: Label
    args: Params = {}


class CommandResult(_Message, frozen=True, kw_only=True, tag="command_result"):
    """How the Command with this ``id`` went."""

    id: Id
    ok: bool
    detail: Text = ""
    result: Value = None


class ConfigDesired(_Message, frozen=True, kw_only=True, tag="config_desired"):
    """The configuration the node wants ``device`` to run, as version ``version``."""

    device: Name
    version: Version
    settings: Params


class ConfigReported(_Message, frozen=True, kw_only=True, tag="config_reported"):
    """The configuration in effect; ``error`` says why a desired one was refused."""

    device: Name
    version: Version
    settings: Params
    error: Text | None = None


class HeadUpdate(_Message, frozen=True, kw_only=True, tag="head_update"):
    """A new on-device model head, version ``version``; ``checksum`` is its CRC-32."""

    device: Name
    version: Version
    head: Annotated[bytes, Meta(max_length=8 * 1024 * 1024)]
    checksum: Checksum


class HeadAck(_Message, frozen=True, kw_only=True, tag="head_ack"):
    """Whether the device now runs head ``version``; if not, ``error`` says why."""

    device: Name
    version: Version
    ok: bool
    error: Text | None = None


class FrameRequest(_Message, frozen=True, kw_only=True, tag="frame_request"):
    """Ask ``device`` to send frame ``frame_id`` over the bulk lane."""

    id: Id
    device: Name
    frame_id: Id


class FrameReady(_Message, frozen=True, kw_only=True, tag="frame_ready"):
    """The answer to the FrameRequest with this ``id``: exactly one of ``ref``, ``error``."""

    id: Id
    ref: FrameRef | None = None
    error: Text | None = None

    def __post_init__(self) -> None:
        if (self.ref is None) == (self.error is None):
            raise ValueError("a frame_ready carries exactly one of ref and error")


class DeviceStatus(_Message, frozen=True, kw_only=True, tag="device_status"):
    """A device's own report: what it holds and what it lost; sent when its link comes
    up, when a loss counter moves, when its state changes, and every few seconds.

    ``boot`` counts the device's starts. Events with a seq below ``oldest_seq`` that the
    node has not acknowledged are gone for good (the outbox overflowed and dropped them:
    skip the gap); ``next_seq`` is the seq the next event gets. ``outbox_dropped`` and
    ``frames_evicted`` are cumulative. ``state`` is the device's mode (``ok`` for a camera;
    ``open``, ``closed`` or ``fault`` for a trap), ``detail`` says why when it is a fault.
    """

    device: Name
    ts: Timestamp
    boot: Version
    next_seq: Annotated[int, Meta(ge=1, le=_U63)]
    oldest_seq: Annotated[int, Meta(ge=1, le=_U63)]
    outbox_depth: Annotated[int, Meta(ge=0, le=_U63)]
    outbox_dropped: Annotated[int, Meta(ge=0, le=_U63)]
    frames_held: Annotated[int, Meta(ge=0, le=_U63)]
    frames_evicted: Annotated[int, Meta(ge=0, le=_U63)]
    head_version: Version
    config_version: Version
    state: Label = "ok"
    detail: Text = ""
    extra: Extra = {}


# -- event history ---------------------------------------------------------------------
#
# What an actor that restarted (a learner after loading its snapshot) asks a device twin
# for: the events it may have missed. They travel as actor messages (told or asked, or as
# a Tell's body between nodes), not as link kinds, so they are not members of ``Message``.


class EventsSince(msgspec.Struct, frozen=True, kw_only=True, tag="events_since"):
    """Ask the twin of ``device`` for the events it still holds after ``after_seq`` (and,
    if given, stamped at or after ``since_ts``, device time), at most ``limit`` of them.

    Asked, the twin answers with an :class:`EventsBatch`. Told with ``reply_to`` (an actor
    address such as ``/yard/learner``), it tells those events there again, oldest first,
    as it told them live (the asker drops what it already has).
    """

    device: Name
    after_seq: Seq = 0
    since_ts: Timestamp | None = None
    limit: Annotated[int, Meta(ge=1, le=100_000)] = 10_000
    reply_to: Address | None = None


class EventsBatch(msgspec.Struct, frozen=True, kw_only=True, tag="events_batch"):
    """The twin's answer to :class:`EventsSince`, oldest first.

    ``complete`` is false when some asked-for events are no longer held (evicted from the
    twin's buffer, or lost in a gap the device never filled): the asker must treat them as
    missing. ``more`` is true when ``limit`` cut the batch short (ask again after the last
    seq). ``delivered_seq`` is the highest sequence number the twin has delivered.
    """

    device: Name
    events: tuple[Event, ...]
    complete: bool
    more: bool
    delivered_seq: Seq


__all__ += ["EventsSince", "EventsBatch"]


# -- bulk lane -------------------------------------------------------------------------
#
# The bulk lane's messages (docs/bulk-lane.md). The handshake (offer, accept, ready), the
# credits and the close travel on the control link (members of ``Message``; the endpoint
# routes them to the lane); a lane made without a link carries them on its provider's own
# channel, where :func:`decode_bulk` reads them. ``BulkComplete`` lives in a slot's header.

BulkProviderName = Annotated[str, Meta(min_length=1, max_length=16, pattern=r"\A[a-z][a-z0-9_]*\Z")]
"""A bulk provider's name: ``shm``, ``zmq``, ``verbs`` or ``fake``."""
MemoryKind: TypeAlias = Literal["host", "gpu"]
"""Where the receiver's slots live: ordinary host memory, or host memory page-locked for
copies to a GPU (``cudaHostRegister``)."""
BulkParams = Annotated[dict[_Key, bool | int | _ShortStr], Meta(max_length=32)]
"""Provider-specific connection details (a segment name, an endpoint, a queue pair)."""
_Slot = Annotated[int, Meta(ge=0, le=255)]
_DType = Annotated[str, Meta(min_length=1, max_length=16, pattern=r"\A[<>|=]?[a-z][a-z0-9]*\Z")]
_Shape = Annotated[tuple[Annotated[int, Meta(ge=0, le=_U63)], ...], Meta(max_length=8)]


class BulkOffer(_Message, frozen=True, kw_only=True, tag="bulk_offer"):
    """The receiver's opening: the providers it can receive with (preferred first), its
    ring of ``slot_count`` slots of ``slot_size`` bytes, their memory kind, and its host."""

    lane: Id
    host_id: Label
    providers: Annotated[tuple[BulkProviderName, ...], Meta(min_length=1, max_length=8)]
    slot_size: Annotated[int, Meta(ge=1, le=2**40)]
    slot_count: Annotated[int, Meta(ge=1, le=256)]
    memory: MemoryKind = "host"


class BulkAccept(_Message, frozen=True, kw_only=True, tag="bulk_accept"):
    """The sender's answer: the provider it chose from the offer, its host, and what the
    receiver needs to connect back to it (a verbs queue pair; empty for the others)."""

    lane: Id
    host_id: Label
    provider: BulkProviderName
    params: BulkParams = {}


class BulkReady(_Message, frozen=True, kw_only=True, tag="bulk_ready"):
    """The receiver registered its ring: what the sender needs to write into it."""

    lane: Id
    provider: BulkProviderName
    params: BulkParams = {}


class BulkCredit(_Message, frozen=True, kw_only=True, tag="bulk_credit"):
    """The sender may write one frame into each of ``slots``."""

    lane: Id
    slots: Annotated[tuple[_Slot, ...], Meta(min_length=1, max_length=256)]


class BulkComplete(_Message, frozen=True, kw_only=True, tag="bulk_complete"):
    """The descriptor of frame ``seq``, written into ``slot``; the receiver checks it
    before it hands the frame out. ``checksum`` is the payload's CRC-32 (``None``: the
    sender computed none); ``frame_id`` is the FrameRef's when the frame has one."""

    lane: Id
    seq: Seq
    slot: _Slot
    nbytes: Annotated[int, Meta(ge=0, le=2**40)]
    shape: _Shape
    dtype: _DType
    checksum: Checksum | None = None
    frame_id: Id | None = None


class BulkClose(_Message, frozen=True, kw_only=True, tag="bulk_close"):
    """The sender of this message is closing the lane on purpose; ``reason`` is for logs."""

    lane: Id
    reason: Text = ""


BulkMessage: TypeAlias = BulkOffer | BulkAccept | BulkReady | BulkCredit | BulkComplete | BulkClose
"""Every bulk-lane message, told apart by its ``kind``."""

BULK_KINDS: Mapping[str, type[_Message]] = MappingProxyType(
    {
        str(cls.__struct_config__.tag): cls
        for cls in (BulkOffer, BulkAccept, BulkReady, BulkCredit, BulkComplete, BulkClose)
    }
)
"""Every bulk-lane message class by its ``kind``."""

BULK_MAX_SIZE = 64 * 1024
"""Largest encoded bulk-lane message :func:`decode_bulk` accepts (frames travel apart)."""

_BULK_DECODER: msgspec.msgpack.Decoder[BulkMessage] = msgspec.msgpack.Decoder(BulkMessage)


def encode_bulk(message: BulkMessage) -> bytes:
    """The MessagePack bytes of a bulk-lane message (constraints checked by the receiver)."""
    return _ENCODER.encode(message)


def decode_bulk(
    data: bytes | bytearray | memoryview, *, max_size: int = BULK_MAX_SIZE
) -> BulkMessage:
    """The bulk-lane message in ``data``, or a DecodeError saying why not (as :func:`decode`)."""
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    if size > max_size:
        raise DecodeError(
            f"bulk-lane message of {size} bytes exceeds the limit of {max_size} bytes",
            reason="oversized",
        )
    try:
        return _BULK_DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise _decode_error(exc, tag_field="kind") from exc


__all__ += [  # the bulk block keeps its exports next to its definitions
    "BulkOffer",
    "BulkAccept",
    "BulkReady",
    "BulkCredit",
    "BulkComplete",
    "BulkClose",
    "BulkMessage",
    "BulkProviderName",
    "BulkParams",
    "MemoryKind",
    "BULK_KINDS",
    "BULK_MAX_SIZE",
    "encode_bulk",
    "decode_bulk",
]


# -- on-device head --------------------------------------------------------------------
#
# What ``HeadUpdate.head`` carries: a prototype classifier with a novelty gate, compiled in
# closed form by the learner (or built from the known classes at start). Not a member of
# ``Message``: it travels as bytes inside a HeadUpdate; :func:`decode_head` reads them.

HEAD_MAX_DIM = 64
"""Longest embedding a head may score (its ``dim``)."""
HEAD_MAX_LABELS = 64
"""Most classes one head may hold."""
HEAD_MAX_SIZE = 64 * 1024
"""Largest encoded head :func:`decode_head` accepts (shipped heads are under 1 KB)."""

_HeadFloat = Annotated[float, Meta(ge=-1e6, le=1e6)]  # the bounds also refuse NaN and inf
_HeadScale = Annotated[float, Meta(gt=0.0, le=1e6)]


class HeadSpec(msgspec.Struct, frozen=True, kw_only=True):
    """An on-device head: nearest whitened prototype (LDA-linear logits) plus a novelty gate.

    A device scores the int8 embedding ``x`` (``dim`` values, read as numbers) of a
    detection with it::

        z       = whitening_scale * W @ x        W: int8, lower triangular, dim x dim
        d_k     = |z - prototype_scale * p_k|^2  p_k: int8, one row per label
        logit_k = biases[k] - d_k / 2            label = argmax, score = softmax maximum
        novel   = min_k d_k > novelty_threshold

    ``W`` (``chol(pooled covariance)^-1``) is packed row by row, only its lower triangle
    (row ``i`` holds ``i + 1`` bytes), and ``prototypes`` is ``len(labels) x dim`` row by
    row, both as signed bytes. ``extractor`` names the frozen feature extractor the
    embeddings come from: a device refuses a head built for another one. Field checks run
    on decode (as for messages); the cross-field ones also when a head is built in Python.
    """

    version: Version
    extractor: Label
    dim: Annotated[int, Meta(ge=1, le=HEAD_MAX_DIM)]
    labels: Annotated[tuple[Label, ...], Meta(min_length=1, max_length=HEAD_MAX_LABELS)]
    whitening: Annotated[bytes, Meta(max_length=HEAD_MAX_DIM * (HEAD_MAX_DIM + 1) // 2)]
    whitening_scale: _HeadScale
    prototypes: Annotated[bytes, Meta(max_length=HEAD_MAX_DIM * HEAD_MAX_LABELS)]
    prototype_scale: _HeadScale
    biases: Annotated[tuple[_HeadFloat, ...], Meta(max_length=HEAD_MAX_LABELS)]
    novelty_threshold: Annotated[float, Meta(gt=0.0, le=1e12)]

    def __post_init__(self) -> None:
        k, d = len(self.labels), self.dim
        if len(set(self.labels)) != k:
            raise ValueError(f"labels must be distinct, got {list(self.labels)}")
        if len(self.whitening) != d * (d + 1) // 2:
            raise ValueError(
                f"whitening holds {len(self.whitening)} bytes; a packed lower triangle of "
                f"dim {d} holds {d * (d + 1) // 2}"
            )
        if len(self.prototypes) != k * d:
            raise ValueError(
                f"prototypes hold {len(self.prototypes)} bytes; {k} labels x dim {d} need {k * d}"
            )
        if len(self.biases) != k:
            raise ValueError(f"biases hold {len(self.biases)} values for {k} labels; give one each")


_HEAD_DECODER: msgspec.msgpack.Decoder[HeadSpec] = msgspec.msgpack.Decoder(HeadSpec)


def encode_head(head: HeadSpec) -> bytes:
    """The MessagePack bytes of ``head`` (a map with string keys), for ``HeadUpdate.head``."""
    return _ENCODER.encode(head)


def decode_head(data: _Buffer, *, max_size: int = HEAD_MAX_SIZE) -> HeadSpec:
    """The head in ``data``, or a DecodeError saying why not (``field`` names the part)."""
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    if size > max_size:
        raise DecodeError(
            f"head of {size} bytes exceeds the limit of {max_size} bytes", reason="oversized"
        )
    try:
        return _HEAD_DECODER.decode(data)
    except _DECODE_FAILURES as exc:
        error = _decode_error(exc, tag_field=None)
        first = str(exc).split(" ", 1)[0]
        if error.field == "$" and first in HeadSpec.__struct_fields__:  # a cross-field check
            error.field = f"$.{first}"
        raise error from exc


def head_update(device: str, head: HeadSpec) -> HeadUpdate:
    """The HeadUpdate that pushes ``head`` to ``device``: its bytes, version and CRC-32."""
    data = encode_head(head)
    return HeadUpdate(device=device, version=head.version, head=data, checksum=zlib.crc32(data))


__all__ += [  # the head block keeps its exports next to its definitions
    "HeadSpec",
    "head_update",
    "HEAD_MAX_DIM",
    "HEAD_MAX_LABELS",
    "HEAD_MAX_SIZE",
    "encode_head",
    "decode_head",
]


# -- unions and lookup -----------------------------------------------------------------

LinkMessage: TypeAlias = Hello | Welcome | Heartbeat | Close | ErrorReply
RemoteMessage: TypeAlias = (
    Tell | Ask | Reply | Failure | Watch | Unwatch | DownNotice | DeadLetterNotice
)
DeviceMessage: TypeAlias = (
    Event
    | EventAck
    | Command
    | CommandResult
    | ConfigDesired
    | ConfigReported
    | HeadUpdate
    | HeadAck
    | FrameRequest
    | FrameReady
    | DeviceStatus
)
BulkLinkMessage: TypeAlias = BulkOffer | BulkAccept | BulkReady | BulkCredit | BulkClose
"""The bulk-lane messages that travel on the control link (all but the slot header)."""
Message: TypeAlias = LinkMessage | RemoteMessage | DeviceMessage | BulkLinkMessage
"""Every message that travels on a link, told apart by its ``kind``."""

_TYPES: tuple[type[_Message], ...] = (
    Hello,
    Welcome,
    Heartbeat,
    Close,
    ErrorReply,
    Tell,
    Ask,
    Reply,
    Failure,
    Watch,
    Unwatch,
    DownNotice,
    DeadLetterNotice,
    Event,
    EventAck,
    Command,
    CommandResult,
    ConfigDesired,
    ConfigReported,
    HeadUpdate,
    HeadAck,
    FrameRequest,
    FrameReady,
    DeviceStatus,
    BulkOffer,
    BulkAccept,
    BulkReady,
    BulkCredit,
    BulkClose,
)

KINDS: Mapping[str, type[_Message]] = MappingProxyType(
    {str(cls.__struct_config__.tag): cls for cls in _TYPES}
)
"""Every message class by its ``kind`` (its tag on the wire)."""


def kind_of(message: Message) -> str:
    """The ``kind`` a message carries on the wire (``"event"`` for an Event)."""
    return str(type(message).__struct_config__.tag)


# -- the codec -------------------------------------------------------------------------

# Encoder and Decoder methods are thread-safe since msgspec 0.16 (jcrist/msgspec#402), so
# one instance of each serves every thread.
_ENCODER = msgspec.msgpack.Encoder()
_DECODER: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)
_BODY_DECODER = msgspec.msgpack.Decoder()

_T = TypeVar("_T")
_M = TypeVar("_M", bound=Message)
_Buffer: TypeAlias = bytes | bytearray | memoryview

# msgspec raises its DecodeError (ValidationError when the shape is wrong) for almost all
# bad input, but RecursionError for nesting deeper than the interpreter's limit and
# UnicodeDecodeError for a str that is not UTF-8; all three are the peer's fault.
_DECODE_FAILURES = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)

_AT_PATH = re.compile(r"`(\$[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`")


def encode(message: Message) -> bytes:
    """The MessagePack bytes of ``message`` (a map whose ``kind`` names the message).

    Constraints are not checked here (call :func:`validate` for that); the receiver
    checks them when it decodes.
    """
    if not isinstance(message, _Message):
        raise TypeError(
            f"encode() takes an edgeloop message (Hello, Event, ...), not "
            f"{type(message).__name__}; encode user data with encode_body()"
        )
    try:
        return _ENCODER.encode(message)
    except TypeError as exc:
        raise TypeError(f"cannot encode {type(message).__name__}: {exc}") from exc


def decode(data: _Buffer, *, max_size: int | None = DEFAULT_MAX_SIZE) -> Message:
    """The message in ``data``, or a :class:`~edgeloop.errors.DecodeError` saying why not.

    ``reason`` is ``oversized`` (longer than ``max_size`` bytes; ``None`` for no limit),
    ``malformed`` (not MessagePack, truncated, trailing bytes, nested too deep),
    ``unknown_kind`` (a ``kind`` this side does not know) or ``wrong_type`` (valid
    MessagePack of the wrong shape or out of bounds; ``field`` names the value, as in
    ``Expected `int`, got `str` - at `$.seq```). Protocol versions are not checked here:
    see :func:`check_version`.
    """
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    if max_size is not None and size > max_size:
        raise DecodeError(
            f"message of {size} bytes exceeds the limit of {max_size} bytes; "
            "send large payloads over the bulk lane",
            reason="oversized",
        )
    try:
        return _DECODER.decode(data)
    except _DECODE_FAILURES as exc:
        raise _decode_error(exc, tag_field="kind") from exc


def validate(message: _M) -> _M:
    """``message`` as a receiver would decode it, or the DecodeError it would raise."""
    return cast("_M", decode(encode(message), max_size=None))  # the tag decides the class


def check_version(hello: Hello | Welcome, supported: frozenset[int] = SUPPORTED_VERSIONS) -> int:
    """The protocol version of a Hello or Welcome, or VersionError when not ``supported``."""
    if hello.protocol not in supported:
        speaks = ", ".join(str(v) for v in sorted(supported))
        raise VersionError(
            f"peer {hello.peer!r} speaks protocol version {hello.protocol}, this side "
            f"speaks {speaks}; upgrade the older side"
        )
    return hello.protocol


def encode_body(obj: Any) -> bytes:
    """The MessagePack bytes of a user message (for ``Tell.body``, ``Ask.body``, ...).

    Bodies may be builtins MessagePack can hold (None, bool, int, float, str, bytes, lists,
    tuples, dicts with str keys) and msgspec Structs, dataclasses and the like; decode
    them with :func:`decode_body`, passing the type to get Structs back.
    """
    try:
        return _ENCODER.encode(obj)
    except (TypeError, OverflowError, ValueError) as exc:  # an int past 64 bits: Overflow
        raise TypeError(
            f"cannot encode a message body of type {type(obj).__name__} ({exc}); use "
            "MessagePack-able builtins or msgspec Structs"
        ) from exc


@overload
def decode_body(raw: _Buffer) -> Any: ...
@overload
def decode_body(raw: _Buffer, type: type[_T]) -> _T: ...
@overload
def decode_body(raw: _Buffer, type: Any) -> Any: ...
def decode_body(raw: _Buffer, type: Any = Any) -> Any:
    """The user message in ``raw``, as ``type`` (any type msgspec can decode).

    Raises :class:`~edgeloop.errors.DecodeError` (``malformed`` or ``wrong_type``); its
    ``field`` is a path inside the body.
    """
    decoder = _BODY_DECODER if type is Any else _body_decoder(type)
    try:
        return decoder.decode(raw)
    except _DECODE_FAILURES as exc:
        raise _decode_error(exc, tag_field=None) from exc


def _body_decoder(tp: Any) -> msgspec.msgpack.Decoder[Any]:
    try:
        hash(tp)
    except TypeError:  # an unhashable type cannot be cached: build one for this call
        return msgspec.msgpack.Decoder(tp)
    return _cached_body_decoder(tp)


@functools.lru_cache(maxsize=256)
def _cached_body_decoder(tp: Any) -> msgspec.msgpack.Decoder[Any]:
    return msgspec.msgpack.Decoder(tp)


def _decode_error(exc: Exception, *, tag_field: str | None) -> DecodeError:
    """Map a msgspec error onto edgeloop's DecodeError, keeping msgspec's wording."""
    text = str(exc)
    if isinstance(exc, RecursionError):
        return DecodeError(f"MessagePack data is nested too deeply: {text}")
    if isinstance(exc, UnicodeDecodeError):
        return DecodeError(f"MessagePack str is not valid UTF-8: {text}")
    if not isinstance(exc, msgspec.ValidationError):
        return DecodeError(f"not a valid MessagePack message: {text}")
    at = _AT_PATH.search(text)
    field = at.group(1) if at else "$"
    missing = _MISSING.match(text)
    if missing:
        field = f"{field}.{missing.group(1)}"
    if tag_field is not None and field == f"$.{tag_field}" and text.startswith("Invalid value"):
        return DecodeError(
            f"{text}: unknown message kind (known: {', '.join(KINDS)})",
            reason="unknown_kind",
            field=field,
        )
    return DecodeError(text, reason="wrong_type", field=field)


def _clip(text: str, limit: int, *, keep: Literal["start", "end"] = "start") -> str:
    if len(text) <= limit:
        return text
    marker = "..."
    if keep == "end":
        return marker + text[len(text) - limit + len(marker) :]
    return text[: limit - len(marker)] + marker
