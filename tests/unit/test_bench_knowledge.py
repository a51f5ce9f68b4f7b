"""The knowledge suite runs (quick: three draws per held-out class) and reports every figure.

Quality targets of issue 7 are asserted on the figures (they are deterministic under the
suite's seed); speed is never asserted, only reported.
"""

from __future__ import annotations

import json

import pytest

from edgeloop import bench
from edgeloop.bench import SuiteResult
from edgeloop.bench.knowledge import QUICK, TARGETS, run_knowledge

EXPECTED = {
    "digits_auroc_cloud": ("AUROC", "LDA Mahalanobis"),
    "digits_auroc_device": ("AUROC", "LDA Mahalanobis"),
    "digits_new_class_acc_5shot": ("fraction", "nearest centroid"),
    "digits_new_class_acc_1shot": ("fraction", "nearest centroid"),
    "digits_known_acc_drop": ("fraction", "tolerance 0.01"),
    "digits_device_new_class_acc_5shot": ("fraction", "nearest centroid"),
    "digits_track_auroc_3frames": ("AUROC", "one frame"),
    "digits_false_alarm_rate": ("fraction", "calibrated 0.01"),
    "learn_and_compile_ms": ("ms", "scikit-learn LDA refit"),
    "yard_frames_to_notice": ("frames", "device gate (5% FPR)"),
    "yard_false_alarm_rate": ("fraction", "calibrated 0.01"),
    "yard_new_class_acc_5shot": ("fraction", "device head"),
    "yard_known_acc_drop": ("fraction", "tolerance 0.01"),
    "cycle_latency_p50_ms": ("ms", "issue budget 1000 ms"),
    "cycle_wait_for_examples_ms": ("ms", "5 frames at the cameras' rate"),
}


@pytest.fixture(scope="module")
def knowledge() -> SuiteResult:
    return run_knowledge(True)


def test_knowledge_suite_is_registered():
    assert bench.SUITES["knowledge"] is run_knowledge


def test_every_figure_is_reported(knowledge: SuiteResult):
    assert [r.name for r in knowledge.results] == list(EXPECTED)
    for result in knowledge.results:
        assert (result.unit, result.anchor_name) == EXPECTED[result.name]
        assert result.edgeloop >= 0
        assert result.anchor > 0
        if result.unit not in ("ms", "frames"):
            assert max(result.edgeloop, result.anchor) <= 1.0


def test_issue_targets_are_met(knowledge: SuiteResult):
    targets = knowledge.environment["targets"] if knowledge.environment else {}
    assert set(targets) == set(TARGETS)
    assert all(t["met"] for t in targets.values()), targets
    assert knowledge.environment is not None
    assert knowledge.environment["head_bytes_max"] < 1024


def test_document_is_json(knowledge: SuiteResult):
    document = json.loads(json.dumps(knowledge.to_json(), allow_nan=False))
    assert (document["suite"], document["environment"]["repeats"]) == ("knowledge", QUICK.repeats)
