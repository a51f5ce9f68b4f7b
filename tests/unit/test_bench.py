"""The bench package: the actors suite runs (quick), and its report is well formed.

Speed is never asserted here: only the shape of the results and that every ratio and
verdict follows from the figures.
"""

from __future__ import annotations

import gc
import json
import math

import pytest
from rich.console import Console

from edgeloop import bench
from edgeloop.bench import Result, SuiteResult, UnknownSuiteError, check_goal

RESULT_KEYS = ["name", "unit", "edgeloop", "anchor", "anchor_name", "ratio", "goal", "met"]
ACTORS_RESULTS = {
    "tell_throughput": ("msg/s", "pykka", ">= 0.8"),
    "ask_latency_p50": ("µs", "pykka", "<= 1.25"),
    "ask_latency_p99": ("µs", "pykka", "<= 1.25"),
    "pipeline8_hop": ("µs", "pykka", "<= 1.25"),
    "supervised_tell_throughput": ("msg/s", "edgeloop (unsupervised)", ">= 0.95"),
}


@pytest.fixture(scope="module")
def actors_quick() -> SuiteResult:
    return bench.run("actors", quick=True)


def test_actors_quick_runs_every_result(actors_quick: SuiteResult) -> None:
    assert actors_quick.suite == "actors"
    assert gc.get_freeze_count() == 0  # what the run froze for its collections is thawed
    assert [r.name for r in actors_quick.results] == list(ACTORS_RESULTS)
    for result in actors_quick.results:
        unit, anchor_name, goal = ACTORS_RESULTS[result.name]
        assert (result.unit, result.anchor_name, result.goal) == (unit, anchor_name, goal)
        assert result.edgeloop > 0
        assert result.anchor > 0
        assert math.isfinite(result.edgeloop)
        assert math.isfinite(result.anchor)


def test_actors_quick_json_schema(actors_quick: SuiteResult) -> None:
    document = json.loads(json.dumps(actors_quick.to_json(), allow_nan=False))
    assert set(document) <= {"suite", "results", "environment"}
    assert document["suite"] == "actors"
    assert isinstance(document["environment"], dict)
    assert document["environment"]["quick"] is True
    for entry in document["results"]:
        assert list(entry) == RESULT_KEYS
        assert isinstance(entry["name"], str)
        assert isinstance(entry["unit"], str)
        assert isinstance(entry["anchor_name"], str)
        assert isinstance(entry["goal"], str)
        assert isinstance(entry["met"], bool)
        for key in ("edgeloop", "anchor", "ratio"):
            assert isinstance(entry[key], float)


def test_actors_quick_ratio_and_met_follow_from_the_figures(actors_quick: SuiteResult) -> None:
    for entry in actors_quick.to_json()["results"]:
        assert entry["ratio"] == pytest.approx(entry["edgeloop"] / entry["anchor"], rel=1e-12)
        assert entry["met"] is check_goal(entry["goal"], entry["ratio"])
    assert actors_quick.all_met is all(r.met for r in actors_quick.results)


def test_main_json_is_the_suite_document(monkeypatch: pytest.MonkeyPatch) -> None:
    fixed = SuiteResult("fixed", (Result("x", "µs", 2.0, 4.0, "anchor", "<= 1.25"),))
    monkeypatch.setattr(bench, "SUITES", {"fixed": lambda quick: fixed})
    assert json.loads(bench.main_json("fixed", quick=True)) == {
        "suite": "fixed",
        "results": [
            {
                "name": "x",
                "unit": "µs",
                "edgeloop": 2.0,
                "anchor": 4.0,
                "anchor_name": "anchor",
                "ratio": 0.5,
                "goal": "<= 1.25",
                "met": True,
            }
        ],
    }


@pytest.mark.parametrize(
    ("goal", "ratio", "met"),
    [
        (">= 0.8", 0.8, True),
        (">= 0.8", 0.79, False),
        ("<= 1.25", 1.25, True),
        ("<= 1.25", 1.3, False),
        ("> 1", 1.0, False),
        ("<2", 1.5, True),
        (">= 0.8", math.nan, False),
        ("<= 1.25", math.inf, False),
    ],
)
def test_check_goal(goal: str, ratio: float, met: bool) -> None:
    assert check_goal(goal, ratio) is met


@pytest.mark.parametrize("goal", ["", "0.8", "== 1", ">= fast", ">= -1"])
def test_invalid_goal_is_refused(goal: str) -> None:
    with pytest.raises(ValueError, match="invalid goal"):
        Result("x", "µs", 1.0, 1.0, "anchor", goal)


def test_result_computes_ratio_and_met() -> None:
    faster = Result("tell", "msg/s", 900.0, 1000.0, "pykka", ">= 0.8")
    assert faster.ratio == pytest.approx(0.9)
    assert faster.met
    slower = Result("ask", "µs", 30.0, 20.0, "pykka", "<= 1.25")
    assert slower.ratio == pytest.approx(1.5)
    assert not slower.met


def test_zero_anchor_gives_null_ratio_and_unmet_goal() -> None:
    result = Result("x", "µs", 1.0, 0.0, "anchor", "<= 1.25")
    assert not result.met
    assert result.to_json()["ratio"] is None
    json.dumps(SuiteResult("s", (result,)).to_json(), allow_nan=False)


def test_unknown_suite_names_the_available_ones() -> None:
    with pytest.raises(UnknownSuiteError, match=r"'nope'.*available suites: actors"):
        bench.run("nope")
    with pytest.raises(KeyError):  # what the CLI catches
        bench.run("nope")


def test_print_table_shows_every_result(actors_quick: SuiteResult) -> None:
    console = Console(record=True, width=160, color_system=None)
    bench.print_table(actors_quick, console)
    text = console.export_text()
    for name in ACTORS_RESULTS:
        assert name in text
    assert "pykka" in text
