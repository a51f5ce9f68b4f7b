"""The device suite runs (tiny sizes) and reports every figure in the suite's shape.
Speed is never asserted here: only the shape, and that verdicts follow from the figures."""

from __future__ import annotations

import json

from edgeloop import bench
from edgeloop.bench import check_goal
from edgeloop.bench.device import Sizes, run_device

EXPECTED = {
    "journalled_event": ("µs", "in-memory outbox", "<= 2"),
    "frame_keep": ("µs", "numpy copy and crc32", "<= 1.5"),
    "journal_recovery": ("µs", "msgspec list decode", "<= 3"),
}


def test_the_device_suite_reports_every_figure() -> None:
    assert bench.SUITES["device"] is run_device
    result = run_device(sizes=Sizes(events=50, frames=10, recovered=50, rounds=1))
    assert [r.name for r in result.results] == list(EXPECTED)
    for row in result.results:
        assert (row.unit, row.anchor_name, row.goal) == EXPECTED[row.name]
        assert row.edgeloop > 0
        assert row.anchor > 0
        assert row.met == check_goal(row.goal, row.ratio)
    document = json.loads(json.dumps(result.to_json()))
    assert document["suite"] == "device"
    assert document["environment"]["events"] == 50
