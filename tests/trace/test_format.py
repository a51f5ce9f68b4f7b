"""The trace file: what the standard mcap tools see, typed reading with filters and
columns, JSON lines, and clear errors for foreign, truncated and damaged files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import msgspec
import pytest
from mcap.reader import make_reader
from mcap.records import Message as McapMessage
from mcap.stream_reader import StreamReader
from mcap.writer import Writer

from edgeloop.errors import TraceCorruptError, TraceError, TraceFormatError
from edgeloop.messages import Command, Event, FrameRef, decode
from edgeloop.trace import TraceWriter, open_trace
from tests.trace.trapapp import event


def write(path: Path, count: int = 50, **options: object) -> Path:
    with TraceWriter(path, info={"node": "traps", "clock_start": "5.0"}, **options) as writer:  # type: ignore[arg-type]
        for i in range(1, count + 1):
            writer.write("in", "cam-1", event("cam-1", i, "cat", 0.5, ts=float(i)), 10.0 + i)
            writer.write("out", "cam-1", Command(id=i, device="cam-1", name="pan"), 10.0 + i + 0.25)
    return path


def test_the_standard_mcap_reader_sees_msgpack_channels_and_json_schemas(tmp_path: Path) -> None:
    path = write(tmp_path / "t.mcap", 3)
    with path.open("rb") as stream:
        reader = make_reader(stream)
        header = reader.get_header()
        assert header.profile == "edgeloop"
        summary = reader.get_summary()
        assert summary is not None
        topics = {c.topic: c for c in summary.channels.values()}
        assert set(topics) == {"/in/cam-1/event", "/out/cam-1/command"}
        assert {c.message_encoding for c in topics.values()} == {"msgpack"}
        schemas = {s.name: s for s in summary.schemas.values()}
        assert set(schemas) == {"edgeloop.messages.Event", "edgeloop.messages.Command"}
        assert {s.encoding for s in schemas.values()} == {"jsonschema"}
        event_schema = json.loads(schemas["edgeloop.messages.Event"].data)
        assert "score" in event_schema["$defs"]["Event"]["properties"]
        first = next(reader.iter_messages(topics=["/in/cam-1/event"]))
        _, _, message = first
        assert decode(message.data) == event("cam-1", 1, "cat", 0.5, ts=1.0)
        assert message.log_time == 11_000_000_000


def test_the_standard_reader_checks_crcs_indexes_and_statistics(tmp_path: Path) -> None:
    path = write(tmp_path / "t.mcap", 300, chunk_size=2048)
    with path.open("rb") as stream:
        records = list(StreamReader(stream, validate_crcs=True).records)  # data and chunk CRCs
    assert sum(isinstance(r, McapMessage) for r in records) == 600
    with path.open("rb") as stream:
        reader = make_reader(stream, validate_crcs=True)
        summary = reader.get_summary()
        assert summary is not None
        assert summary.statistics is not None
        assert summary.statistics.message_count == 600
        assert summary.statistics.chunk_count == len(summary.chunk_indexes) > 5
        assert sorted(summary.statistics.channel_message_counts.values()) == [300, 300]
        # reading through the chunk and message indexes, in log time order
        times = [m.log_time for _, _, m in reader.iter_messages(log_time_order=True)]
        assert times == sorted(times)
        assert len(times) == 600
        late = reader.iter_messages(starting_at=300 * 10**9, topics=["/out/cam-1/command"])
        assert [m.log_time for _, _, m in late] == [
            round((10 + i + 0.25) * 1e9) for i in range(290, 301)
        ]
        assert [m.name for m in summary.metadata_indexes] == ["edgeloop.trace"]


def test_records_are_typed_and_filter_by_topic_direction_kind_and_time(tmp_path: Path) -> None:
    trace = open_trace(write(tmp_path / "t.mcap"))
    records = list(trace)
    assert len(records) == 100
    assert isinstance(records[0].message, Event)
    assert (records[0].direction, records[0].device, records[0].ts) == ("in", "cam-1", 11.0)
    assert records[1].topic == "/out/cam-1/command"

    assert len(list(trace.records(direction="out"))) == 50
    assert len(list(trace.records(topics=r"/event$"))) == 50
    assert len(list(trace.records(kinds=["command"]))) == 50
    window = list(trace.records(start=20.0, end=30.0))
    assert [r.ts for r in window][:2] == [20.0, 20.25]
    assert all(20.0 <= r.ts <= 30.0 for r in window)
    assert len(window) == 21


def test_columns_tabulate_one_kind_for_plotting(tmp_path: Path) -> None:
    trace = open_trace(write(tmp_path / "t.mcap", 4))
    table = trace.columns("event")
    assert table["log_time"] == [11.0, 12.0, 13.0, 14.0]
    assert table["seq"] == [1, 2, 3, 4]
    assert table["score"] == [0.5] * 4
    assert table["topic"] == ["/in/cam-1/event"] * 4
    assert set(table) >= {"direction", "device", "label", "embedding"}
    assert trace.columns("head_update") == {"log_time": [], "direction": [], "topic": []}


def test_info_counts_channels_duration_schemas_and_metadata(tmp_path: Path) -> None:
    info = open_trace(write(tmp_path / "t.mcap", 10, compression="lz4")).info()
    assert info.messages == 20
    assert [(c.topic, c.count, c.schema) for c in info.channels] == [
        ("/in/cam-1/event", 10, "edgeloop.messages.Event"),
        ("/out/cam-1/command", 10, "edgeloop.messages.Command"),
    ]
    assert info.start == 5.0, "the recording started before its first message"
    assert info.end == 20.25
    assert info.duration == pytest.approx(15.25)
    assert info.compression == ("lz4",)
    assert info.metadata["edgeloop.trace"]["node"] == "traps"
    assert info.size == (tmp_path / "t.mcap").stat().st_size
    assert json.loads(json.dumps(info.to_json()))["messages"] == 20


def test_jsonl_export_writes_one_object_per_message(tmp_path: Path) -> None:
    trace = open_trace(write(tmp_path / "t.mcap", 2))
    out = io.StringIO()
    assert trace.export_jsonl(out, direction="in") == 2
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["topic"] == "/in/cam-1/event"
    assert lines[0]["message"]["seq"] == 1
    assert lines[0]["message"]["embedding"] == "AQEC" + "Aw=="  # base64 of bytes 1,1,2,3


def test_frames_are_kept_on_their_own_topic(tmp_path: Path) -> None:
    ref = FrameRef(device="cam-1", frame_id=7, shape=(2, 2), dtype="uint8", nbytes=4, checksum=0)
    with TraceWriter(tmp_path / "f.mcap") as writer:
        writer.write_frame("cam-1", ref, b"\x00\x01\x02\x03", 1.5)
    trace = open_trace(tmp_path / "f.mcap")
    [frame] = list(trace.frames())
    assert (frame.device, frame.ts, frame.frame.ref, frame.frame.data) == (
        "cam-1",
        1.5,
        ref,
        b"\x00\x01\x02\x03",
    )
    assert list(trace.records()) == []
    assert trace.info().channels[0].topic == "/frames/cam-1"


def test_a_standard_mcap_file_in_another_encoding_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "json.mcap"
    with path.open("wb") as stream:
        writer = Writer(stream)
        writer.start(profile="", library="someone else")
        schema = writer.register_schema("Pose", "jsonschema", b"{}")
        channel = writer.register_channel("/pose", "json", schema)
        writer.add_message(channel, log_time=1, data=b'{"x": 1}', publish_time=1)
        writer.finish()
    with pytest.raises(
        TraceFormatError,
        match=r"channel '/pose' is encoded as 'json'; edgeloop traces use 'msgpack'",
    ):
        open_trace(path)


def test_msgpack_channels_on_foreign_topics_or_with_bad_data_fail_clearly(tmp_path: Path) -> None:
    path = tmp_path / "foreign.mcap"
    with path.open("wb") as stream:
        writer = Writer(stream)
        writer.start()
        channel = writer.register_channel("/lidar", "msgpack", 0)
        writer.add_message(channel, log_time=1, data=b"\x80", publish_time=1)
        writer.finish()
    with pytest.raises(TraceFormatError, match=r"'/lidar' is not an edgeloop trace topic"):
        open_trace(path)

    path = tmp_path / "bad.mcap"
    with path.open("wb") as stream:
        writer = Writer(stream)
        writer.start()
        channel = writer.register_channel("/in/cam-1/event", "msgpack", 0)
        writer.add_message(
            channel, log_time=1, data=msgspec.msgpack.encode({"kind": "event"}), publish_time=1
        )
        writer.finish()
    trace = open_trace(path)
    with pytest.raises(
        TraceFormatError, match=r"/in/cam-1/event .*byte \d+\) does not decode .*\$\.device"
    ):
        list(trace)
    salvaged = open_trace(path, salvage=True)
    assert list(salvaged) == []
    assert salvaged.skipped == 1


def test_not_mcap_and_missing_paths_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "x.mcap").write_bytes(b"hello, not a trace")
    with pytest.raises(TraceFormatError, match="not an MCAP file"):
        open_trace(tmp_path / "x.mcap")
    with pytest.raises(TraceError, match="no trace at"):
        open_trace(tmp_path / "missing.mcap")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TraceError, match="holds no trace files"):
        open_trace(tmp_path / "empty")


def test_a_truncated_trace_names_the_offset_and_its_readable_part_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "t.mcap", 400, chunk_size=1024)
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) // 3])

    with pytest.raises(
        TraceCorruptError, match=r"cut.mcap: the file ends early.*truncated.* at byte \d+"
    ) as caught:
        open_trace(cut)
    offset = caught.value.offset
    assert 0 < offset <= len(data) // 3

    trace = open_trace(cut, salvage=True)
    assert [d.offset for d in trace.damage] == [offset]
    records = list(trace)
    assert 0 < len(records) < 800
    assert [r.message.seq for r in records if isinstance(r.message, Event)] == list(
        range(1, len(records) // 2 + 1 + len(records) % 2)
    )
    assert trace.info().damage == (str(caught.value),)


def test_a_damaged_chunk_names_its_offset(tmp_path: Path) -> None:
    path = write(tmp_path / "t.mcap", 400, chunk_size=1024)
    data = bytearray(path.read_bytes())
    intact = open_trace(path)
    middle = len(data) // 4
    data[middle : middle + 8] = b"\xff" * 8
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(bytes(data))

    with pytest.raises(TraceCorruptError, match=r"bad.mcap: .* at byte \d+") as caught:
        open_trace(bad)
    assert caught.value.offset <= middle
    salvaged = list(open_trace(bad, salvage=True))
    assert 0 < len(salvaged) < len(list(intact))
    assert salvaged == list(intact)[: len(salvaged)]
