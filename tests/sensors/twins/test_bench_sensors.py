"""The ``sensors`` bench suite runs (quick) and reports well-formed results.

Speed is never asserted here: only the shape of the results, and that the figures are
real measurements (positive, finite, their ratio following from them).
"""

from __future__ import annotations

import json
import math

import pytest

from edgeloop import bench

EXPECTED = {
    "events_per_s_1cam": ("events/s", ">= 0.5"),
    "events_per_s_8cam": ("events/s", ">= 0.5"),
    "events_per_s_32cam": ("events/s", ">= 0.5"),
    "event_latency_p50": ("us", "<= 2"),
    "event_latency_p99": ("us", "<= 2"),
}


@pytest.mark.integration
def test_sensors_quick_runs_every_result() -> None:
    assert "sensors" in bench.SUITES
    result = bench.run("sensors", quick=True)
    assert result.suite == "sensors"
    assert [r.name for r in result.results] == list(EXPECTED)
    for row in result.results:
        assert (row.unit, row.goal) == EXPECTED[row.name]
        assert row.anchor_name == "pyzmq+msgspec"
        assert row.edgeloop > 0
        assert row.anchor > 0
        assert math.isfinite(row.edgeloop)
        assert row.ratio == pytest.approx(row.edgeloop / row.anchor)
    document = json.loads(json.dumps(result.to_json()))
    assert document["environment"]["cameras"] == [1, 8, 32]
