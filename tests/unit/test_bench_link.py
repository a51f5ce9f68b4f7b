"""The ``link`` bench suite runs (quick) and reports well-formed results; its fuzz mode
throws every kind of hostile input and counts no crash.

Speed is never asserted here: only the shape of the results, and that every ratio and
verdict follows from the figures.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from edgeloop import bench
from edgeloop.bench import SuiteResult, link
from edgeloop.bench.link import FUZZ_KINDS, run_fuzz

RESULT_KEYS = ["name", "unit", "edgeloop", "anchor", "anchor_name", "ratio", "goal", "met"]
LINK_RESULTS = {
    "remote_tell_throughput_tcp": ("msg/s", "pyzmq+msgspec", ">= 0.5"),
    "remote_ask_latency_p50": ("µs", "pyzmq+msgspec", "<= 1.5"),
    "remote_ask_latency_p99": ("µs", "pyzmq+msgspec", "<= 1.5"),
    "remote_tell_throughput_ipc": ("msg/s", "pyzmq+msgspec", ">= 0.5"),
}


RAY_RESULTS = ["vs_ray_ask_latency_p50", "vs_ray_actor_ask_latency_p50"]
HAS_RAY = importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="module")
def link_quick() -> SuiteResult:
    return bench.run("link", quick=True)


@pytest.fixture(scope="module")
def fuzzed() -> dict[str, Any]:
    return run_fuzz(200)


def test_link_suite_is_registered() -> None:
    """``edgeloop bench link`` finds the suite."""
    assert "link" in bench.SUITES


def test_link_quick_runs_every_result(link_quick: SuiteResult) -> None:
    """Every result is there, in order, with its unit, anchor and goal, and positive
    finite figures; without ray the Ray comparisons are left out and the environment
    says why."""
    assert link_quick.suite == "link"
    assert link_quick.environment is not None
    if HAS_RAY:
        assert [r.name for r in link_quick.results] == [*LINK_RESULTS, *RAY_RESULTS]
    else:
        assert [r.name for r in link_quick.results] == list(LINK_RESULTS)
        assert str(link_quick.environment["ray"]).startswith("not installed")
        assert "pyzmq_vs_ray_ask_latency_p50" not in link_quick.environment
    for result in link_quick.results[: len(LINK_RESULTS)]:
        unit, anchor_name, goal = LINK_RESULTS[result.name]
        assert (result.unit, result.anchor_name, result.goal) == (unit, anchor_name, goal)
        assert result.edgeloop > 0
        assert result.anchor > 0
        assert math.isfinite(result.edgeloop)
        assert math.isfinite(result.anchor)
        assert result.ratio == pytest.approx(result.edgeloop / result.anchor)


def test_link_quick_json_schema(link_quick: SuiteResult) -> None:
    """The JSON document has the suite, its results and the environment, nothing else."""
    document = json.loads(json.dumps(link_quick.to_json(), allow_nan=False))
    assert set(document) == {"suite", "results", "environment"}
    assert document["suite"] == "link"
    environment = document["environment"]
    assert environment["quick"] is True
    for key in ("pyzmq", "libzmq", "msgspec", "python", "cpus", "rounds", "asks"):
        assert key in environment
    for entry in document["results"]:
        assert list(entry) == RESULT_KEYS
        assert isinstance(entry["met"], bool)
        for key in ("edgeloop", "anchor", "ratio"):
            assert isinstance(entry[key], float)


def test_fuzz_has_no_crash_and_accounts_for_every_message(fuzzed: dict[str, Any]) -> None:
    """fuzz(200) tries every kind, the node rejects each message exactly once under the
    expected reason, and no check found the node dead or its device unanswered."""
    assert fuzzed["crashes"] == 0
    assert fuzzed["checks"] >= 2
    assert fuzzed["tried"] == 200
    assert set(fuzzed["tried_by_kind"]) == set(FUZZ_KINDS)
    assert all(count > 0 for count in fuzzed["tried_by_kind"].values())
    assert fuzzed["rejected"] == fuzzed["expected"]
    assert fuzzed["rejected_total"] == 200
    assert fuzzed["unaccounted"] == 0
    for reason in ("malformed", "wrong_type", "unknown_kind", "bad_version", "oversized"):
        assert fuzzed["rejected"][reason] > 0, reason
    for reason in ("bad_frames", "bad_state"):
        assert fuzzed["rejected"][reason] > 0, reason
    assert fuzzed["answers"] > 0


def test_fuzz_report_is_json(fuzzed: dict[str, Any]) -> None:
    """The fuzz report is a JSON document with the documented keys."""
    document = json.loads(json.dumps(fuzzed, allow_nan=False))
    assert {
        "suite",
        "mode",
        "seed",
        "tried",
        "tried_by_kind",
        "rejected",
        "rejected_total",
        "expected",
        "unaccounted",
        "answers",
        "checks",
        "crashes",
        "elapsed_s",
        "environment",
    } == set(document)
    assert (document["suite"], document["mode"]) == ("link", "fuzz")


def test_fuzz_refuses_a_negative_count() -> None:
    """A negative message count is a ValueError, not an empty run."""
    with pytest.raises(ValueError, match="n must be >= 0"):
        run_fuzz(-1)


class _FakeActor:
    """What ``ray.remote(cls).remote()`` returns: methods with a ``.remote`` that runs
    them at once and returns the result as its own object ref."""

    def __init__(self, instance: Any) -> None:
        self._instance = instance

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._instance, name)
        return types.SimpleNamespace(remote=method)


def _fake_ray() -> types.SimpleNamespace:
    state = {"initialized": False, "killed": 0}
    return types.SimpleNamespace(
        state=state,
        is_initialized=lambda: state["initialized"],
        init=lambda **kwargs: state.update(initialized=True),
        shutdown=lambda: state.update(initialized=False),
        remote=lambda cls: types.SimpleNamespace(remote=lambda: _FakeActor(cls())),
        get=lambda ref: ref,
        kill=lambda actor: state.update(killed=state["killed"] + 1),
    )


def test_vs_ray_result_appears_when_ray_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a ``ray`` module importable the suite adds vs_ray_ask_latency_p50 and
    vs_ray_actor_ask_latency_p50 (an actor in a node process asked from this one; goal
    <= 0.2 each), records the bare pyzmq round trip against Ray in the environment, and
    shuts down the Ray it started (a stand-in module here, whether or not ray is
    installed)."""
    ray = _fake_ray()
    monkeypatch.setitem(sys.modules, "ray", ray)
    result = bench.run("link", quick=True)
    assert [r.name for r in result.results] == [*LINK_RESULTS, *RAY_RESULTS]
    for name in RAY_RESULTS:
        vs_ray = result.result(name)
        assert (vs_ray.unit, vs_ray.anchor_name, vs_ray.goal) == ("µs", "ray", "<= 0.2")
        assert vs_ray.edgeloop > 0
        assert vs_ray.anchor > 0
    assert ray.state == {"initialized": False, "killed": 1}
    assert result.environment is not None
    assert not str(result.environment["ray"]).startswith("not installed: vs_ray")
    # The floor under the Ray rows: the bare pyzmq round trip against the same Ray call.
    floor = result.environment["pyzmq_vs_ray_ask_latency_p50"]
    assert isinstance(floor, float)
    assert floor > 0


def test_the_environment_says_how_long_an_idle_vcpu_polls(tmp_path: Path) -> None:
    """The guest's halt polling sets the floor of every round trip on a KVM guest, so the
    environment records it: the number the haltpoll driver reports, None without one."""
    setting = tmp_path / "guest_halt_poll_ns"
    setting.write_text("200000\n", encoding="ascii")
    assert link._halt_poll_ns(str(setting)) == 200000
    assert link._halt_poll_ns(str(tmp_path / "absent")) is None
    setting.write_text("not a number", encoding="ascii")
    assert link._halt_poll_ns(str(setting)) is None
    recorded = link.environment(link.QUICK, quick=True, ray=False)["guest_halt_poll_ns"]
    assert recorded == link._halt_poll_ns()
