"""The trace suite runs end to end at tiny sizes and reports its figures (speed is
measured by `edgeloop bench trace`, never asserted here)."""

from __future__ import annotations

from edgeloop import bench
from edgeloop.bench.trace import Sizes, run_trace


def test_the_trace_suite_reports_recording_overhead_and_replay_speed() -> None:
    result = run_trace(sizes=Sizes(events=200, rounds=1, devices=2, replay_events=40))
    assert result.suite == "trace"
    overhead = result.result("recording_overhead")
    assert (overhead.unit, overhead.goal, overhead.anchor_name) == (
        "events/s",
        ">= 0.8",
        "no recording",
    )
    assert overhead.edgeloop > 0
    assert overhead.anchor > 0
    thread = result.result("recording_overhead_thread")  # the writer in the node's process
    assert (thread.goal, thread.anchor_name) == (">= 0.8", "no recording")
    assert thread.edgeloop > 0
    assert thread.anchor > 0
    worst = result.result("recording_overhead_ack_only")
    assert worst.edgeloop > 0
    assert worst.anchor > 0
    replay = result.result("replay_fast")
    assert (replay.unit, replay.anchor, replay.goal) == ("events/s", 200.0, ">= 10")
    assert replay.edgeloop > 0
    assert result.environment is not None
    assert result.environment["recorder_dropped"] == 0
    assert result.environment["process_writer_us_per_record"] > 0
    assert result.environment["writer_process_us_per_record"] > 0
    assert "trace" in bench.SUITES
