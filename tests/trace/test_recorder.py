"""The recorder on a node's boundary: what it writes, splitting, compression, snapshots,
frames within a budget, and a queue that drops (and counts) instead of blocking."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from edgeloop.clock import VirtualClock
from edgeloop.errors import TraceError
from edgeloop.messages import Command, Event, EventAck, FrameRef, encode
from edgeloop.supervisor import Node, TapRecord
from edgeloop.trace import Recorder, RecorderConfig, TraceRecord, open_trace, settle
from edgeloop.trace._files import TraceFiles
from tests.trace.trapapp import event, make_node


@pytest.fixture
def node() -> Iterator[Node]:
    clock = VirtualClock(100.0)
    with make_node(clock) as started:
        started.devices.set_sink(lambda device, message: True)
        yield started


def drive(node: Node, events: list[Event], step: float = 1.0) -> None:
    """Inject ``events`` one virtual ``step`` apart, letting the node settle after each."""
    clock = node.system.clock
    assert isinstance(clock, VirtualClock)
    for item in events:
        clock.advance(step)
        node.devices.inject(item.device, item)
        settle(node.system)


def test_it_records_both_directions_with_the_node_clock(node: Node, tmp_path: Path) -> None:
    recorder = Recorder(RecorderConfig(tmp_path), clock=node.system.clock, node="traps")
    recorder.attach(node.devices)
    drive(node, [event("cam-1", 1, "skunk", 0.9), event("cam-2", 1, "cat", 0.2)])
    stats = recorder.close()

    assert (stats.recorded, stats.dropped) == (5, 0)
    assert stats.writer_cpu > 0
    assert stats.files == (tmp_path / "trace_0000.mcap",)
    trace = open_trace(tmp_path)
    got = [(r.direction, r.device, r.kind, r.ts) for r in trace]
    assert got == [
        ("in", "cam-1", "event", 101.0),
        ("out", "cam-1", "event_ack", 101.0),
        ("out", "cam-1", "command", 101.0),
        ("in", "cam-2", "event", 102.0),
        ("out", "cam-2", "event_ack", 102.0),
    ]
    meta = trace.metadata
    assert meta["edgeloop.trace"]["node"] == "traps"
    assert float(meta["edgeloop.trace"]["clock_start"]) == 100.0
    assert meta["edgeloop.recorder"]["dropped_total"] == "0"
    assert trace.info().compression == ("zstd",)


def test_it_splits_by_duration_and_by_size(node: Node, tmp_path: Path) -> None:
    by_time = Recorder(RecorderConfig(tmp_path / "t", max_seconds=10.0), clock=node.system.clock)
    by_size = Recorder(
        RecorderConfig(tmp_path / "s", max_bytes=12000, compression="none"), clock=node.system.clock
    )
    by_time.attach(node.devices)
    by_size.attach(node.devices)
    drive(node, [event("cam-2", i, "cat", 0.1) for i in range(1, 101)])
    time_stats, size_stats = by_time.close(), by_size.close()

    assert len(time_stats.files) == 10
    assert len(size_stats.files) >= 3
    for directory in (tmp_path / "t", tmp_path / "s"):
        trace = open_trace(directory)
        assert [r.message.seq for r in trace.records(direction="in")] == list(range(1, 101))
    # A file is closed once it holds max_bytes (counting its summary), checked once per
    # slice of records, so it overshoots by at most a slice of the largest record (its
    # message, its 22-byte header and 16 bytes of chunk index) and the summary's slack.
    largest = max(len(encode(r.message)) for r in open_trace(tmp_path / "s").records()) + 38
    slice_ = TraceFiles(by_size.config, dict, dict).slice
    bound = 12000 + slice_ * largest + 1024
    sizes = [p.stat().st_size for p in size_stats.files[:-1]]
    assert all(11000 < size <= bound for size in sizes), (sizes, bound)
    first = open_trace(time_stats.files[0])
    assert first.end - min(r.ts for r in first) < 10.0  # type: ignore[operator]


def test_snapshot_mode_writes_only_the_last_seconds_when_triggered(
    node: Node, tmp_path: Path
) -> None:
    recorder = Recorder(RecorderConfig(tmp_path, snapshot_seconds=5.0), clock=node.system.clock)
    recorder.attach(node.devices)
    drive(node, [event("cam-2", i, "cat", 0.1) for i in range(1, 21)])
    path = recorder.trigger("novel track")
    stats = recorder.close()

    assert path is not None
    assert stats.files == ()
    assert stats.snapshots == (path,)
    trace = open_trace(path)
    assert [r.message.seq for r in trace.records(direction="in")] == [15, 16, 17, 18, 19, 20]
    assert trace.metadata["edgeloop.trace"]["snapshot"] == "novel track"
    assert open_trace(tmp_path / path.name).start == 115.0
    with pytest.raises(TraceError, match="holds no trace files"):
        open_trace(tmp_path)  # snapshots are opened by their own path


def test_a_snapshot_can_trigger_itself_on_a_record(node: Node, tmp_path: Path) -> None:
    def closes(record: TapRecord) -> bool:
        return isinstance(record.message, Command) and record.message.name == "close"

    recorder = Recorder(RecorderConfig(tmp_path, snapshot_seconds=2.5), trigger_on=closes)
    recorder.attach(node.devices)
    drive(
        node,
        [event("cam-1", i, "cat", 0.1) for i in range(1, 6)] + [event("cam-1", 6, "skunk", 0.9)],
    )
    stats = recorder.close()
    [path] = stats.snapshots
    kinds = [(r.ts, r.kind) for r in open_trace(path)]
    assert kinds[-1] == (106.0, "command")
    assert kinds[0] == (104.0, "event")


def test_trigger_outside_snapshot_mode_says_how_to_enable_it(tmp_path: Path) -> None:
    with (
        Recorder(RecorderConfig(tmp_path)) as recorder,
        pytest.raises(TraceError, match="snapshot_seconds"),
    ):
        recorder.trigger()


def test_frames_are_kept_within_their_budget(tmp_path: Path) -> None:
    ref = FrameRef(device="cam-1", frame_id=1, shape=(100,), dtype="uint8", nbytes=100, checksum=0)
    with Recorder(RecorderConfig(tmp_path, frame_budget=250)) as recorder:
        kept = [recorder.record_frame("cam-1", ref, bytes(100), float(i)) for i in range(4)]
    assert kept == [True, True, False, False]
    stats = recorder.statistics()
    assert (stats.frames, stats.frames_skipped) == (2, 2)
    assert len(list(open_trace(tmp_path).frames())) == 2


def test_a_full_queue_drops_counts_and_reports_without_blocking_the_node(
    node: Node, tmp_path: Path
) -> None:
    stalled, release = threading.Event(), threading.Event()

    def slow_writer(record: TapRecord) -> bool:
        stalled.set()
        release.wait(10.0)  # the writer thread stalls here, as on a slow disk
        return False

    recorder = Recorder(
        RecorderConfig(tmp_path, queue_size=10, snapshot_seconds=60.0), trigger_on=slow_writer
    )
    recorder.attach(node.devices)
    with structlog.testing.capture_logs() as logs:
        drive(node, [event("cam-2", 1, "cat", 0.1)])
        assert stalled.wait(5.0)
        drive(node, [event("cam-2", i, "cat", 0.1) for i in range(2, 51)])  # 100 records in all
        during = recorder.statistics()
        release.set()
        stats = recorder.close()

    assert during.queued == 10
    assert during.dropped in (88, 89)  # 100, less ten queued and one or two in the writer's hands
    assert stats.recorded + stats.dropped == 100
    assert next(e for e in logs if e["event"] == "recorder_dropped")["dropped"] == stats.dropped
    counters = node.devices.statistics().counters
    assert (counters["received"], counters["sent"]) == (50, 50), "the node went on undisturbed"


def test_dropped_records_are_written_into_the_file(node: Node, tmp_path: Path) -> None:
    recorder = Recorder(RecorderConfig(tmp_path, queue_size=4))
    burst = [
        TraceRecord("out", "cam-1", EventAck(device="cam-1", seq=i), float(i)) for i in range(5000)
    ]
    for record in burst:
        recorder.tap(record)
    stats = recorder.close()
    assert stats.dropped > 0
    assert stats.recorded + stats.dropped == 5000
    trace = open_trace(tmp_path)
    assert trace.metadata["edgeloop.recorder"]["dropped_total"] == str(stats.dropped)
    assert len(list(trace)) == stats.recorded


def test_bad_configurations_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes must be > 0"):
        RecorderConfig(tmp_path, max_bytes=0)
    with pytest.raises(ValueError, match="queue_size"):
        RecorderConfig(tmp_path, queue_size=0)
    with pytest.raises(ValueError, match="compression must be one of zstd, lz4, none, not 'gzip'"):
        RecorderConfig(tmp_path, compression="gzip")  # type: ignore[arg-type]
    (tmp_path / "file").write_text("")
    with pytest.raises(TraceError, match="cannot create the trace directory"):
        Recorder(RecorderConfig(tmp_path / "file" / "sub"))


def test_a_writer_that_fails_is_reported_at_close_and_never_blocks_taps(tmp_path: Path) -> None:
    out = tmp_path / "gone"
    recorder = Recorder(RecorderConfig(out, queue_size=8))
    out.rmdir()
    out.write_text("a file where the directory was")
    record = TraceRecord("out", "cam-1", EventAck(device="cam-1", seq=1), 1.0)
    with structlog.testing.capture_logs() as logs:
        recorder.tap(record)
        assert recorder.flush(5.0)  # returns once the writer has failed on its first file
        for _ in range(100):
            recorder.tap(record)  # the writer is gone: the queue fills, then drops
        with pytest.raises(
            TraceError, match=r"the recorder failed while writing: cannot write the trace file"
        ):
            recorder.close()
    assert recorder.statistics().dropped >= 100 - 8
    assert any(e["event"] == "recorder_failed" for e in logs)
