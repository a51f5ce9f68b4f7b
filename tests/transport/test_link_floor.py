"""The ask-latency floor script runs and reports every side (its figures are not judged)."""

from __future__ import annotations

from edgeloop.bench.link_floor import run_floor


def test_the_floor_measures_all_three_sides():
    """run_floor reports the anchor, the minimal I/O-thread device and edgeloop, with ratios
    that follow from the figures."""
    got = run_floor(asks=20, rounds=1)
    p50 = got["p50_us"]
    assert set(p50) == {"anchor", "minimal", "edgeloop"}
    assert all(value > 0 for value in p50.values())
    assert got["minimal_ratio"] == p50["minimal"] / p50["anchor"]
    assert got["edgeloop_ratio"] == p50["edgeloop"] / p50["anchor"]
