"""The bulk suite runs (quick) and reports every figure in the suite's shape.

Speed is never asserted here: only the shape of the results and that ratios and verdicts
follow from the figures.
"""

from __future__ import annotations

import json

import pytest

from edgeloop import bench
from edgeloop.bench import SuiteResult, check_goal
from edgeloop.bench.bulk import QUICK

EXPECTED = {
    **{f"shm_throughput_{mib}MiB": ("numpy memcpy", ">= 0.5") for mib in (1, 4, 16)},
    **{f"zmq_throughput_{mib}MiB": ("pyzmq copy=False", ">= 0.9") for mib in (1, 4, 16)},
    "shm_checked_throughput_4MiB": ("numpy memcpy + 2x zlib.crc32", ">= 0.9"),
    **{
        f"link_credits_{provider}_4MiB": (f"{provider} lane, credits on its own channel", ">= 0.9")
        for provider in ("shm", "zmq")
    },
}


@pytest.fixture(scope="module")
def bulk_quick() -> SuiteResult:
    return bench.run("bulk", quick=True)


def test_bulk_suite_is_registered():
    """``edgeloop bench bulk`` finds the suite."""
    assert "bulk" in bench.SUITES


def test_quick_run_reports_every_figure(bulk_quick: SuiteResult):
    """Every figure is present, in GB/s, against its named anchor and goal."""
    assert bulk_quick.suite == "bulk"
    assert [r.name for r in bulk_quick.results] == list(EXPECTED)  # no ray here
    for result in bulk_quick.results:
        assert (result.anchor_name, result.goal) == EXPECTED[result.name]
        assert result.unit == "GB/s"
        assert result.edgeloop > 0
        assert result.anchor > 0


def test_quick_run_document(bulk_quick: SuiteResult):
    """The JSON document records the run and its ratios follow from the figures."""
    document = json.loads(json.dumps(bulk_quick.to_json(), allow_nan=False))
    environment = document["environment"]
    assert environment["quick"] is True
    assert environment["rounds"] == QUICK.rounds
    assert "vs_ray_16MiB skipped" in environment["ray"]
    for entry in document["results"]:
        assert entry["ratio"] == pytest.approx(entry["edgeloop"] / entry["anchor"], rel=1e-12)
        assert entry["met"] is check_goal(entry["goal"], entry["ratio"])
