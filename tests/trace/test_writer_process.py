"""A recorder whose files are written by a process of their own (``writer="process"``):
the same files as the writer thread writes, splits and frames included, read by the
standard mcap reader; a process that fails is reported, never blocking the taps."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcap.reader import make_reader

from edgeloop.errors import TraceCorruptError, TraceError
from edgeloop.messages import Event, EventAck, FrameRef
from edgeloop.supervisor import TapRecord
from edgeloop.trace import Recorder, RecorderConfig, TraceRecord, open_trace
from tests.helpers import wait_for
from tests.integration.procs import ROOT

REF = FrameRef(device="cam-1", frame_id=1, shape=(64,), dtype="uint8", nbytes=64, checksum=0)


def records(count: int, make: type[TraceRecord | TapRecord] = TraceRecord) -> list[Any]:
    out = []
    for i in range(count):
        device = f"cam-{i % 3}"
        event = Event(
            device=device,
            seq=i + 1,
            ts=float(i),
            zone="gate",
            label="cat",
            score=0.5,
            embedding=bytes(32),
            head_version=1,
            config_version=1,
        )
        out.append(make("in", device, event, i * 1e-3))
        out.append(make("out", device, EventAck(device=device, seq=i + 1), i * 1e-3))
    return out


def record(
    out: Path, writer: str, make: type[TraceRecord | TapRecord] = TraceRecord, **config: object
) -> tuple[list[tuple[object, ...]], Recorder]:
    recorder = Recorder(
        RecorderConfig(out, writer=writer, frame_budget=1 << 20, **config),  # type: ignore[arg-type]
        node="edge",
        clock_start=0.0,
    )
    batch = records(3000, make)
    for item in batch[:3000]:
        recorder.tap(item)
    assert recorder.flush(30.0)
    recorder.record_frame("cam-1", REF, bytes(range(64)), 1.5)
    for item in batch[3000:]:
        recorder.tap(item)
    recorder.close()
    trace = open_trace(out)
    got = [(r.ts, r.direction, r.device, r.message) for r in trace]
    frames = [(f.ts, f.device, f.frame) for f in trace.frames()]
    return [*got, *frames], recorder


@pytest.mark.parametrize("split", [{"max_bytes": 40_000}, {"max_seconds": 0.5}])
def test_the_process_writes_what_the_thread_writes(tmp_path: Path, split: dict[str, float]) -> None:
    by_thread, threaded = record(tmp_path / "thread", "thread", **split)
    by_process, process = record(tmp_path / "process", "process", **split)

    assert by_process == by_thread
    assert len(by_process) == 6000 + 1
    stats = process.statistics()
    assert [p.name for p in stats.files] == [p.name for p in threaded.statistics().files]
    assert len(stats.files) > 2, "it split"
    assert (stats.recorded, stats.dropped, stats.frames) == (6000, 0, 1)
    assert stats.writer_cpu > 0  # what the node's process paid: encoding, piping
    assert stats.process_cpu > 0  # and the writer process, as of the last flush
    last = open_trace(stats.files[-1]).metadata
    assert last["edgeloop.recorder"]["recorded_total"] == "6000"
    assert last["edgeloop.trace"]["node"] == "edge"
    for path in stats.files:  # the standard reader, CRCs checked, indexed reads
        with path.open("rb") as stream:
            reader = make_reader(stream, validate_crcs=True)  # type: ignore[no-untyped-call]
            times = [m.log_time for _, _, m in reader.iter_messages(log_time_order=True)]
        assert times == sorted(times)
        assert times


def test_the_ports_records_reach_the_process_as_they_are(tmp_path: Path) -> None:
    """The node's ``TapRecord`` structs are piped in one encoder call, not as columns:
    the same trace as the thread writes, mixed batches included."""
    by_thread, _ = record(tmp_path / "thread", "thread", TapRecord)
    by_process, process = record(tmp_path / "process", "process", TapRecord)
    assert by_process == by_thread
    assert process.statistics().recorded == 6000

    out = tmp_path / "mixed"
    recorder = Recorder(RecorderConfig(out, writer="process"), clock_start=0.0)
    tapped = records(50, TapRecord)
    traced = [dataclasses.replace(r, ts=r.ts + 1.0) for r in records(50)]
    for pair in zip(tapped, traced, strict=True):
        for item in pair:
            recorder.tap(item)
    recorder.close()
    got = sorted((round(r.ts, 6), r.direction, r.device, r.message.seq) for r in open_trace(out))
    want = sorted(
        (round(r.ts, 6), r.direction, r.device, r.message.seq) for r in [*tapped, *traced]
    )
    assert got == want


def test_a_writer_process_that_fails_is_reported_at_close(tmp_path: Path) -> None:
    out = tmp_path / "gone"
    recorder = Recorder(RecorderConfig(out, writer="process", queue_size=8))
    out.rmdir()
    out.write_text("a file where the directory was")
    for item in records(200):
        recorder.tap(item)  # never blocks: once the process is gone, the queue drops
    with pytest.raises(TraceError, match="cannot write the trace file"):
        recorder.close()


def test_snapshot_mode_keeps_its_writer_in_the_node(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="snapshot mode keeps its window in the node"):
        RecorderConfig(tmp_path, writer="process", snapshot_seconds=5.0)
    with pytest.raises(ValueError, match="writer must be 'auto', 'thread' or 'process'"):
        RecorderConfig(tmp_path, writer="fork")  # type: ignore[arg-type]
    assert RecorderConfig(tmp_path).uses_writer_process  # the default: a writer process
    assert not RecorderConfig(tmp_path, snapshot_seconds=5.0).uses_writer_process
    assert not RecorderConfig(tmp_path, writer="thread").uses_writer_process


KILLED = """
import os, signal, sys
from pathlib import Path
from edgeloop.messages import EventAck
from edgeloop.trace import Recorder, RecorderConfig, TraceRecord
recorder = Recorder(RecorderConfig(Path(sys.argv[1]), writer=sys.argv[2]), clock_start=0.0)
for seq in range(1, 5001):
    recorder.tap(TraceRecord("out", "cam-1", EventAck(device="cam-1", seq=seq), seq * 1e-3))
assert recorder.flush(30.0)
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_while_recording(out: Path, writer: str) -> None:
    """A node's process that records 5000 messages, flushes, and is killed (SIGKILL)."""
    run = subprocess.run(
        [sys.executable, "-c", KILLED, str(out), writer],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()[-2000:]


def test_a_node_killed_mid_recording_leaves_a_finished_trace_with_a_writer_process(
    tmp_path: Path,
) -> None:
    killed_while_recording(tmp_path / "process", "process")

    def finished() -> int:
        try:
            return len(list(open_trace(tmp_path / "process")))
        except TraceError:  # the writer process is still finishing it
            return 0

    wait_for(lambda: finished() == 5000, what="the writer process finished the file")
    trace = open_trace(tmp_path / "process")
    assert trace.damage == ()
    assert trace.metadata["edgeloop.recorder"]["recorded_total"] == "5000"

    # A writer thread dies with the node: its open chunk is lost, the file unfinished.
    killed_while_recording(tmp_path / "thread", "thread")
    with pytest.raises(TraceCorruptError, match="byte"):
        open_trace(tmp_path / "thread")


def test_a_writer_process_that_fails_is_reported_and_a_flush_does_not_wait_it_out(
    tmp_path: Path,
) -> None:
    """As with the thread: the process fails on its first file (the directory is gone);
    a flush returns once that is known (it waited its whole timeout for a sync that
    could not come, returning False), taps keep dropping, close() says why."""
    out = tmp_path / "gone"
    recorder = Recorder(RecorderConfig(out, queue_size=8, writer="process"))
    out.rmdir()
    out.write_text("a file where the directory was")
    record = TraceRecord("out", "cam-1", EventAck(device="cam-1", seq=1), 1.0)
    recorder.tap(record)
    assert recorder.flush(30.0)
    for _ in range(100):
        recorder.tap(record)
    with pytest.raises(TraceError, match=r"cannot write the trace file .*trace_0000\.mcap"):
        recorder.close()
    assert recorder.statistics().dropped >= 100 - 8
    process = recorder._process
    assert process is not None
    assert process._process.returncode == 1  # reaped, not left running
    assert process._process.stderr is None or process._process.stderr.closed
