"""The world suite runs (quick) and reports every figure in the suite's shape.

Speed is never asserted here: only the shape of the results, that the quality figures
are fractions, and that ratios and verdicts follow from the figures.
"""

from __future__ import annotations

import json

import pytest

from edgeloop import bench
from edgeloop.bench import SuiteResult, check_goal
from edgeloop.bench.world import QUICK

EXPECTED = {
    "head_score": ("µs", "numpy float64", "<= 2"),
    "camera_frame": ("µs", "numpy noise frame", "<= 3"),
    "head_accuracy": ("fraction", "scikit-learn LDA", ">= 0.98"),
    "head_novelty_auroc": ("AUROC", "LDA Mahalanobis", ">= 0.98"),
    "loo_accuracy": ("fraction", "scikit-learn LDA", ">= 0.98"),
    "loo_novelty_auroc": ("AUROC", "LDA Mahalanobis", ">= 0.98"),
}


@pytest.fixture(scope="module")
def world_quick() -> SuiteResult:
    return bench.run("world", quick=True)


def test_world_suite_is_registered():
    assert "world" in bench.SUITES


def test_quick_run_reports_every_figure(world_quick: SuiteResult):
    assert world_quick.suite == "world"
    assert [r.name for r in world_quick.results] == list(EXPECTED)
    for result in world_quick.results:
        assert (result.unit, result.anchor_name, result.goal) == EXPECTED[result.name]
        assert result.edgeloop > 0
        assert result.anchor > 0
        if result.unit != "µs":
            assert result.edgeloop <= 1.0
            assert result.anchor <= 1.0


def test_quick_run_document(world_quick: SuiteResult):
    document = json.loads(json.dumps(world_quick.to_json(), allow_nan=False))
    assert document["environment"]["quick"] is True
    assert document["environment"]["rounds"] == QUICK.rounds
    for entry in document["results"]:
        assert entry["ratio"] == pytest.approx(entry["edgeloop"] / entry["anchor"])
        assert entry["met"] == check_goal(entry["goal"], entry["ratio"])
