"""The wire schema and its codec: round trips, typed errors, and plain-msgpack interop."""

from __future__ import annotations

import random
import typing
from pathlib import Path
from typing import Any

import msgpack
import msgspec
import pytest

from edgeloop import messages as m
from edgeloop.actors import ExitReason
from edgeloop.errors import DecodeError, ProtocolError, VersionError

FRAME = m.FrameRef(
    device="cam-1", frame_id=42, shape=(256, 256), dtype="uint8", nbytes=65536, checksum=7
)

SAMPLES: list[m.Message] = [
    m.Hello(peer="cam-1", role="device", protocol=1, capabilities=("bulk.shm", "heads")),
    m.Hello(peer="edge-a", role="node", protocol=1),
    m.Welcome(
        peer="edge-a",
        protocol=1,
        capabilities=("bulk.shm",),
        heartbeat_interval=1.0,
        liveness_timeout=5.0,
    ),
    m.Heartbeat(seq=0),
    m.Close(reason="node shutting down"),
    m.ErrorReply(code="wrong_type", message="Expected `int`", field="$.seq", in_reply_to=3),
    m.ErrorReply(code="malformed", message="truncated"),
    m.Tell(to="/yard/fusion", body=m.encode_body({"x": 1}), sender="edge-a:/yard/twin/cam-1"),
    m.Tell(to="/", body=b""),
    m.Ask(id=1, to="/yard/learner", body=m.encode_body([1, 2]), timeout=2.5),
    m.Reply(id=1, body=m.encode_body("ok")),
    m.Failure(id=1, remote_type="builtins.ValueError", message="bad", traceback="line 1"),
    m.Watch(id=9, path="/yard/fusion"),
    m.Unwatch(id=9),
    m.DownNotice(id=9, path="/yard/fusion", reason_kind="crash", detail="ValueError: bad"),
    m.DeadLetterNotice(id=1, path="/nowhere", reason="no actor at this path"),
    m.DeadLetterNotice(path="/nowhere", reason="no actor at this path"),
    m.Event(
        device="cam-1",
        seq=1,
        ts=1_700_000_000.25,
        zone="porch",
        label="cat",
        score=0.875,
        embedding=bytes([0, 1, 255, 128]),
        frame=FRAME,
        head_version=3,
        config_version=2,
        extra={"night": True, "lux": 3, "temp": 21.5, "note": "rain"},
    ),
    m.Event(
        device="cam-2",
        seq=2**63 - 1,
        ts=0.0,
        zone="z1",
        label="unknown",
        score=0.0,
        embedding=b"",
        head_version=0,
        config_version=0,
    ),
    m.EventAck(device="cam-1", seq=17),
    m.Command(id=5, device="trap-1", name="close", args={"force": True, "zones": ["a", "b"]}),
    m.Command(id=6, device="cam-1", name="snapshot"),
    m.CommandResult(id=5, ok=True, detail="closed", result={"position": 0.0}),
    m.CommandResult(id=6, ok=False, detail="device busy"),
    m.ConfigDesired(
        device="cam-1",
        version=4,
        settings={"exposure": 0.01, "mode": "thumbnails", "zones": ["porch"], "pan": None},
    ),
    m.ConfigReported(device="cam-1", version=4, settings={"exposure": 0.01}),
    m.ConfigReported(device="cam-1", version=3, settings={}, error="exposure out of range"),
    m.HeadUpdate(device="cam-1", version=7, head=b"\x00\x01head", checksum=2**32 - 1),
    m.HeadAck(device="cam-1", version=7, ok=True),
    m.HeadAck(device="cam-1", version=8, ok=False, error="checksum mismatch"),
    m.FrameRequest(id=11, device="cam-1", frame_id=42),
    m.FrameReady(id=11, ref=FRAME),
    m.FrameReady(id=12, error="frame 41 was evicted"),
    m.DeviceStatus(
        device="trap-1",
        ts=12.5,
        boot=2,
        next_seq=40,
        oldest_seq=31,
        outbox_depth=9,
        outbox_dropped=3,
        frames_held=120,
        frames_evicted=7,
        head_version=1,
        config_version=2,
        state="fault",
        detail="jammed",
    ),
    m.BulkOffer(lane=7, host_id="h", providers=("shm", "zmq"), slot_size=4096, slot_count=4),
    m.BulkAccept(lane=7, host_id="h", provider="shm"),
    m.BulkReady(lane=7, provider="shm", params={"segment": "edgeloop-bulk-00", "key": 1}),
    m.BulkCredit(lane=7, slots=(0, 1)),
    m.BulkClose(lane=7, reason="done"),
]


def _pack(obj: Any, **kwargs: Any) -> bytes:
    """What a device with a plain msgpack library writes."""
    return msgpack.packb(obj, use_bin_type=True, **kwargs)


def _no_ext(code: int, data: bytes) -> Any:
    raise AssertionError(f"extension type {code} on the wire")


# -- the schema ------------------------------------------------------------------------


def test_samples_cover_every_kind():
    """The samples below exercise every message kind at least once."""
    assert {m.kind_of(sample) for sample in SAMPLES} == set(m.KINDS)


def test_kinds_are_unique_short_snake_case_tags():
    """Each class has its own tag, a short snake_case word."""
    assert len(set(m.KINDS.values())) == len(m.KINDS) == 29
    for kind, cls in m.KINDS.items():
        assert kind.isidentifier()
        assert kind.islower()
        assert len(kind) <= 16
        assert cls.__struct_config__.tag_field == "kind"


def test_messages_are_frozen():
    """A message cannot be changed after it is built."""
    beat = m.Heartbeat(seq=1)
    with pytest.raises(AttributeError):
        beat.seq = 2  # type: ignore[misc]


def test_all_names_exist():
    """Every name in __all__ is defined."""
    for name in m.__all__:
        assert hasattr(m, name), name


def test_down_reason_kinds_match_the_actor_core():
    """DownNotice carries exactly the exit kinds the actor core knows."""
    core = typing.get_args(typing.get_type_hints(ExitReason)["kind"])
    assert set(typing.get_args(m.ExitKind)) == set(core)


def test_every_kind_is_documented():
    """docs/link-protocol.md names every message kind in its schema section."""
    doc = (Path(__file__).parents[2] / "docs" / "link-protocol.md").read_text()
    for kind in m.KINDS:
        assert f"`{kind}`" in doc, kind


# -- round trips and the wire format ---------------------------------------------------


@pytest.mark.parametrize("message", SAMPLES, ids=lambda msg: m.kind_of(msg))
def test_round_trip(message: m.Message):
    """Every message decodes to an equal message of the same class."""
    decoded = m.decode(m.encode(message))
    assert type(decoded) is type(message)
    assert decoded == message


@pytest.mark.parametrize("message", SAMPLES, ids=lambda msg: m.kind_of(msg))
def test_wire_is_a_plain_msgpack_map(message: m.Message):
    """Any msgpack library reads a message as a map with string keys and no extensions."""
    wire = msgpack.unpackb(m.encode(message), raw=False, strict_map_key=True, ext_hook=_no_ext)
    assert isinstance(wire, dict)
    assert wire["kind"] == m.kind_of(message)
    assert set(wire) == {"kind", *type(message).__struct_fields__}


def test_bytes_travel_as_msgpack_bin():
    """Byte fields are msgpack bin (0xc4..0xc6), strings are msgpack str."""
    wire = m.encode(m.HeadUpdate(device="cam-1", version=1, head=b"\x01\x02", checksum=0))
    assert b"\xc4\x02\x01\x02" in wire
    assert msgpack.unpackb(wire, raw=True)[b"head"] == b"\x01\x02"


def test_validate_returns_an_equal_message():
    """validate() round-trips a valid message unchanged."""
    for sample in SAMPLES:
        assert m.validate(sample) == sample


# -- interop: bytes from a device with a plain msgpack library --------------------------


def test_decodes_an_event_packed_by_plain_msgpack():
    """A C/Rust-style encoder's map, keys in any order, decodes to a typed Event."""
    data = _pack(
        {
            "seq": 12,
            "device": "cam-3",
            "ts": 1_700_000_000,  # an int where a float is expected
            "zone": "gate",
            "label": "skunk",
            "score": 0.5,
            "embedding": bytes(range(8)),
            "frame": {
                "device": "cam-3",
                "frame_id": 99,
                "shape": [480, 640, 3],
                "dtype": "uint8",
                "nbytes": 921600,
                "checksum": 123456,
            },
            "head_version": 1,
            "config_version": 5,
            "extra": {"ir": True},
            "kind": "event",  # the tag need not come first
        }
    )
    assert m.decode(data) == m.Event(
        device="cam-3",
        seq=12,
        ts=1_700_000_000.0,
        zone="gate",
        label="skunk",
        score=0.5,
        embedding=bytes(range(8)),
        frame=m.FrameRef(
            device="cam-3",
            frame_id=99,
            shape=(480, 640, 3),
            dtype="uint8",
            nbytes=921600,
            checksum=123456,
        ),
        head_version=1,
        config_version=5,
        extra={"ir": True},
    )


def test_decodes_single_precision_floats():
    """A device that writes float32 (msgpack 0xca) is understood."""
    data = _pack(
        {
            "kind": "welcome",
            "peer": "edge-a",
            "protocol": 1,
            "heartbeat_interval": 0.5,
            "liveness_timeout": 2.0,
        },
        use_single_float=True,
    )
    assert b"\xca" in data
    assert m.decode(data) == m.Welcome(
        peer="edge-a", protocol=1, heartbeat_interval=0.5, liveness_timeout=2.0
    )


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (
            {"kind": "hello", "peer": "cam-9", "role": "device", "protocol": 1},
            m.Hello(peer="cam-9", role="device", protocol=1),
        ),
        ({"kind": "event_ack", "device": "cam-9", "seq": 3}, m.EventAck(device="cam-9", seq=3)),
        (
            {"kind": "command_result", "id": 4, "ok": False, "detail": "jammed", "result": None},
            m.CommandResult(id=4, ok=False, detail="jammed"),
        ),
        (
            {"kind": "config_reported", "device": "cam-9", "version": 2, "settings": {"fps": 5}},
            m.ConfigReported(device="cam-9", version=2, settings={"fps": 5}),
        ),
        (
            {"kind": "head_ack", "device": "cam-9", "version": 2, "ok": True, "error": None},
            m.HeadAck(device="cam-9", version=2, ok=True),
        ),
        (
            {"kind": "frame_ready", "id": 1, "error": "evicted"},
            m.FrameReady(id=1, error="evicted"),
        ),
    ],
)
def test_decodes_device_messages_packed_by_plain_msgpack(wire: dict[str, Any], expected: Any):
    """Device-side messages written by hand with plain msgpack decode as expected."""
    assert m.decode(_pack(wire)) == expected


def test_unknown_fields_are_ignored():
    """A newer peer's extra fields do not break an older decoder (schema evolution)."""
    data = _pack({"kind": "heartbeat", "seq": 4, "added_in_v2": {"anything": [1, 2]}})
    assert m.decode(data) == m.Heartbeat(seq=4)


def test_a_future_hello_decodes_and_is_refused_by_version():
    """A Hello from protocol 2 with new fields decodes, and check_version refuses it."""
    hello = m.decode(
        _pack({"kind": "hello", "peer": "cam-1", "role": "device", "protocol": 2, "new": 1})
    )
    assert isinstance(hello, m.Hello)
    with pytest.raises(VersionError) as caught:
        m.check_version(hello)
    assert caught.value.reason == "bad_version"
    assert "'cam-1'" in str(caught.value)
    assert "2" in str(caught.value)


def test_check_version_accepts_supported_versions():
    """A Hello or Welcome of this protocol version passes and its version comes back."""
    assert m.check_version(m.Hello(peer="a", role="node", protocol=1)) == m.PROTOCOL_VERSION
    welcome = m.Welcome(peer="a", protocol=3, heartbeat_interval=1.0, liveness_timeout=3.0)
    with pytest.raises(VersionError):
        m.check_version(welcome)
    assert m.check_version(welcome, supported=frozenset({1, 3})) == 3


# -- typed errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "field", "text"),
    [
        ({"kind": "heartbeat", "seq": "x"}, "$.seq", "Expected `int`, got `str` - at `$.seq`"),
        ({"kind": "heartbeat", "seq": -1}, "$.seq", "Expected `int` >= 0 - at `$.seq`"),
        ({"kind": "heartbeat", "seq": True}, "$.seq", "got `bool`"),
        ({"kind": "heartbeat", "seq": 2**63}, "$.seq", "<= 9223372036854775807"),
        ({"kind": "heartbeat"}, "$.seq", "Object missing required field `seq`"),
        ({"kind": "event_ack", "device": "", "seq": 1}, "$.device", "length >= 1"),
        ({"kind": "event_ack", "device": "cam 1", "seq": 1}, "$.device", "matching regex"),
        ({"kind": "event_ack", "device": "cam1\n", "seq": 1}, "$.device", "matching regex"),
        ({"kind": "tell", "to": "yard", "body": b""}, "$.to", "matching regex"),
        ({"kind": "tell", "to": "/yard", "body": "text"}, "$.body", "got `str`"),
        ({"kind": "hello", "peer": "a", "role": "robot", "protocol": 1}, "$.role", "Invalid"),
        ({"kind": "down", "id": 1, "path": "/a", "reason_kind": "gone"}, "$.reason_kind", ""),
        ({"kind": "frame_ready", "id": 1}, "$", "exactly one of ref and error"),
        (
            {
                "kind": "welcome",
                "peer": "a",
                "protocol": 1,
                "heartbeat_interval": 5.0,
                "liveness_timeout": 1.0,
            },
            "$",
            "liveness_timeout (1.0) must exceed heartbeat_interval (5.0)",
        ),
        (
            {"kind": "command", "id": 1, "device": "d", "name": "n", "args": {"a": [[1]]}},
            "$.args[...][0]",
            "got `array`",
        ),
        ({"kind": "command", "id": 1, "device": "d", "name": "n", "args": {"": 1}}, "", ""),
        ({"kind": "heartbeat", 1: 2, "seq": 1}, "$", "Expected `str`, got `int` - at `key`"),
        ({"seq": 1}, "$.kind", "Object missing required field `kind`"),
        ({"kind": 7, "seq": 1}, "$.kind", "Expected `str`, got `int`"),
        ([1, 2, 3], "$", "Expected `object`, got `array`"),
        (5, "$", "Expected `object`, got `int`"),
    ],
)
def test_wrong_types_name_the_field(wire: Any, field: str, text: str):
    """Valid msgpack of the wrong shape is a wrong_type DecodeError naming the field."""
    with pytest.raises(DecodeError) as caught:
        m.decode(_pack(wire))
    error = caught.value
    assert error.reason == "wrong_type"
    if field:
        assert error.field == field
    else:
        assert error.field.startswith("$")
    assert text in str(error)
    assert isinstance(error, ProtocolError)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("field_name", "value", "field"),
    [
        ("score", 1.5, "$.score"),
        ("score", float("nan"), "$.score"),
        ("ts", float("inf"), "$.ts"),
        ("ts", 1.7e12, "$.ts"),  # milliseconds by mistake
        ("seq", 0, "$.seq"),
        ("embedding", bytes(4097), "$.embedding"),
        ("extra", {f"k{i}": i for i in range(33)}, "$.extra"),
    ],
)
def test_event_constraints(field_name: str, value: Any, field: str):
    """An Event's bounds are checked where bytes enter (and by validate())."""
    sample = next(s for s in SAMPLES if isinstance(s, m.Event))
    bad = msgspec.structs.replace(sample, **{field_name: value})
    with pytest.raises(DecodeError) as caught:
        m.validate(bad)
    assert (caught.value.reason, caught.value.field) == ("wrong_type", field)


def test_nested_field_paths():
    """A bad value inside a FrameRef is named by its full path."""
    frame = {
        "device": "cam-1",
        "frame_id": 1,
        "shape": [2, -2],
        "dtype": "uint8",
        "nbytes": 4,
        "checksum": 0,
    }
    with pytest.raises(DecodeError) as caught:
        m.decode(_pack({"kind": "frame_ready", "id": 1, "ref": frame}))
    assert caught.value.field == "$.ref.shape[1]"
    frame["shape"] = [2, 2]
    del frame["nbytes"]
    with pytest.raises(DecodeError) as caught:
        m.decode(_pack({"kind": "frame_ready", "id": 1, "ref": frame}))
    assert caught.value.field == "$.ref.nbytes"


def test_unknown_kind():
    """A tag this side does not know is reason unknown_kind at $.kind."""
    with pytest.raises(DecodeError) as caught:
        m.decode(_pack({"kind": "teleport", "to": "mars"}))
    error = caught.value
    assert (error.reason, error.field) == ("unknown_kind", "$.kind")
    assert "'teleport'" in str(error)
    assert "heartbeat" in str(error)


def test_every_truncation_is_malformed():
    """Every proper prefix of a message is a malformed DecodeError with no field."""
    data = m.encode(SAMPLES[17])
    for end in range(len(data)):
        with pytest.raises(DecodeError) as caught:
            m.decode(data[:end])
        assert (caught.value.reason, caught.value.field) == ("malformed", "")


DEEP = b"\x91" * 100_000 + b"\xc0"  # [[[...[nil]...]]]


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", "truncated"),
        (b"\xc1", "invalid opcode"),
        (m.encode(m.Heartbeat(seq=1)) + b"\x00", "trailing characters"),
        (b"\x82\xa4kind\xa9heartbeat\xa1x" + DEEP, "nested too deeply"),
        (b"\x82\xa4kind\xa5close\xa6reason\xa1\x80", "not valid UTF-8"),
    ],
    ids=[
        "empty",
        "reserved-opcode",
        "trailing-bytes",
        "nested-too-deep",
        "bad-utf8",
    ],
)
def test_malformed_input(data: bytes, text: str):
    """Bytes that are not one msgpack object are reason malformed."""
    with pytest.raises(DecodeError, match=text) as caught:
        m.decode(data)
    assert (caught.value.reason, caught.value.field) == ("malformed", "")


def test_random_bytes_only_raise_decode_errors():
    """Random bytes never raise anything but DecodeError (seeded, reproducible)."""
    rng = random.Random(20240601)
    for _ in range(2000):
        data = rng.randbytes(rng.randrange(64))
        reason = "ok"
        try:
            m.decode(data)
        except DecodeError as error:
            reason = error.reason
        assert reason in {"ok", "malformed", "wrong_type", "unknown_kind"}


def test_oversized():
    """Input longer than max_size is refused before it is parsed."""
    data = m.encode(SAMPLES[17])
    assert m.decode(data, max_size=len(data)) == SAMPLES[17]
    with pytest.raises(DecodeError) as caught:
        m.decode(data, max_size=len(data) - 1)
    assert caught.value.reason == "oversized"
    with pytest.raises(DecodeError, match="exceeds the limit"):
        m.decode(memoryview(data), max_size=10)
    big = m.encode(m.Tell(to="/a", body=bytes(m.DEFAULT_MAX_SIZE)))
    with pytest.raises(DecodeError) as caught:
        m.decode(big)
    assert caught.value.reason == "oversized"
    assert isinstance(m.decode(big, max_size=None), m.Tell)


def test_decodes_buffers():
    """bytearray and memoryview input (zmq frames) decode like bytes."""
    data = m.encode(SAMPLES[0])
    assert m.decode(bytearray(data)) == m.decode(memoryview(data)) == SAMPLES[0]


def test_decode_error_keeps_the_msgspec_cause():
    """The msgspec error that was mapped stays reachable for debugging."""
    with pytest.raises(DecodeError) as caught:
        m.decode(b"\xc1")
    assert isinstance(caught.value.__cause__, msgspec.DecodeError)


# -- building messages -----------------------------------------------------------------


def test_cross_field_checks_run_when_built():
    """Welcome and FrameReady refuse inconsistent fields already in Python."""
    with pytest.raises(ValueError, match="liveness_timeout"):
        m.Welcome(peer="a", protocol=1, heartbeat_interval=2.0, liveness_timeout=2.0)
    with pytest.raises(ValueError, match="exactly one"):
        m.FrameReady(id=1, ref=FRAME, error="both")


def test_encode_refuses_non_messages():
    """encode() takes messages only and says what to use instead."""
    with pytest.raises(TypeError, match="encode_body"):
        m.encode({"kind": "heartbeat", "seq": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="encode_body"):
        m.encode(FRAME)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot encode Command"):
        m.encode(m.Command(id=1, device="d", name="n", args={"x": object()}))  # type: ignore[dict-item]


def test_error_reply_from_error():
    """An ErrorReply carries a rejection's reason, message and field."""
    with pytest.raises(DecodeError) as caught:
        m.decode(_pack({"kind": "heartbeat", "seq": "x"}))
    reply = m.ErrorReply.from_error(caught.value, in_reply_to=4)
    assert (reply.code, reply.field, reply.in_reply_to) == ("wrong_type", "$.seq", 4)
    assert m.validate(reply) == reply
    version = m.ErrorReply.from_error(VersionError("x" * 10_000))
    assert version.code == "bad_version"
    assert len(version.message) == 4096
    assert m.validate(version) == version


def test_failure_from_exception():
    """A Failure names the exception's type and keeps the end of its traceback."""

    def deep(n: int) -> None:
        if n == 0:
            raise KeyError("missing")
        deep(n - 1)

    try:
        deep(200)
    except KeyError as error:
        failure = m.Failure.from_exception(7, error)
    assert failure.remote_type == "builtins.KeyError"
    assert failure.message == "'missing'"
    assert len(failure.traceback) <= 16384
    assert failure.traceback.endswith("KeyError: 'missing'\n")
    assert m.validate(failure) == failure


def test_failure_from_exception_clips_to_the_receivers_limits():
    """A huge message and traceback are clipped so the Failure still decodes."""
    failure = m.Failure.from_exception(1, ValueError("x" * 20_000 + "END"))
    assert len(failure.message) == 4096
    assert failure.message.endswith("...")
    assert len(failure.traceback) == 16384
    assert failure.traceback.startswith("...")
    assert failure.traceback.endswith("END\n")
    assert m.validate(failure) == failure


# -- bodies ----------------------------------------------------------------------------


class Point(msgspec.Struct, frozen=True):
    x: float
    y: float


class Move(msgspec.Struct, tag=True):
    to: Point


class Stop(msgspec.Struct, tag=True):
    pass


@pytest.mark.parametrize(
    "body",
    [None, True, 3, -(2**63), 2**64 - 1, 1.5, "text", b"\x00\xff", [1, "a"], {"k": {"n": [1]}}],
)
def test_builtin_bodies_round_trip(body: Any):
    """Builtins msgpack can hold come back equal."""
    assert m.decode_body(m.encode_body(body)) == body


def test_struct_bodies_round_trip_with_their_type():
    """Structs (and tagged unions of them) come back when the type is given."""
    move = Move(to=Point(1.0, 2.0))
    assert m.decode_body(m.encode_body(move), Move) == move
    assert m.decode_body(m.encode_body(move), Move | Stop) == move
    assert m.decode_body(m.encode_body(Stop()), Move | Stop) == Stop()
    assert m.decode_body(m.encode_body(move)) == {"type": "Move", "to": {"x": 1.0, "y": 2.0}}
    tell = m.Tell(to="/yard/fusion", body=m.encode_body(move))
    assert m.decode_body(m.decode(m.encode(tell)).body, Move) == move  # type: ignore[union-attr]


def test_body_errors_are_decode_errors():
    """A body of the wrong type or not msgpack is a DecodeError; encoding junk a TypeError."""
    with pytest.raises(DecodeError) as caught:
        m.decode_body(m.encode_body({"to": {"x": "far", "y": 0}, "type": "Move"}), Move)
    assert (caught.value.reason, caught.value.field) == ("wrong_type", "$.to.x")
    with pytest.raises(DecodeError) as caught:
        m.decode_body(b"\xc1")
    assert caught.value.reason == "malformed"
    with pytest.raises(DecodeError) as caught:
        m.decode_body(DEEP)
    assert caught.value.reason == "malformed"
    with pytest.raises(TypeError, match="msgspec Structs"):
        m.encode_body(object())
