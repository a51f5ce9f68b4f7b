"""`edgeloop bench e2e`: a small run end to end (a node, camera and trap device processes,
the raw pyzmq anchor), the node-side rule, the cameras' source and bad options."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgeloop.bench._chaos_run import RESTART_WAIT
from edgeloop.bench._e2e_app import TRAP, command_for, e2e_app, yard_functions
from edgeloop.bench._e2e_devices import GallerySource
from edgeloop.bench.chaos import chaos_rows, run_chaos
from edgeloop.bench.e2e import Sizes, run_e2e
from edgeloop.errors import ConfigError, EdgeloopInternalError
from edgeloop.messages import Event
from edgeloop.supervisor import parse_app
from tests.integration.procs import ROOT


def _event(label: str) -> Event:
    return Event(
        device="cam-03",
        seq=9,
        ts=1.25,
        zone="porch",
        label=label,
        score=0.9,
        embedding=b"\x01\x02",
        head_version=1,
        config_version=1,
    )


def test_the_rule_closes_on_a_skunk_opens_otherwise_and_names_the_event() -> None:
    close = command_for(_event("skunk"), 4)
    assert (close.id, close.device, close.name) == (4, TRAP, "close")
    assert close.args == {"device": "cam-03", "seq": 9, "ts": 1.25}
    assert command_for(_event("cat"), 5).name == "open"


def test_the_node_app_is_a_valid_app_with_the_yards_functions() -> None:
    app = parse_app(e2e_app(["cam-00", "cam-01"], "tcp://127.0.0.1:5999"))
    assert [c.id for c in app.children] == ["devices", "functions", "rule", "relay"]
    assert [f["call"].rsplit(":", 1)[1] for f in yard_functions()] == [
        "drop_low_score",
        "tag_night",
    ]


def test_the_gallery_source_paces_offset_rows_and_ends() -> None:
    rows = np.arange(40, dtype=np.int8).reshape(4, 10)
    source = GallerySource(rows, seed=0, rate=30.0, offset=0.01, limit=5)
    seen = [source.next() for _ in range(6)]
    assert seen[-1] is None
    times = [o.t for o in seen if o is not None]
    assert times == pytest.approx([0.01 + k / 30.0 for k in range(5)])
    assert {o.zone for o in seen if o is not None} == {"porch"}
    assert sorted(bytes(o.embedding) for o in seen[:4] if o is not None) == sorted(
        bytes(r) for r in rows
    )


@pytest.mark.integration
def test_a_small_run_times_every_event_on_both_sides() -> None:
    result = run_e2e(sizes=Sizes(seconds=1.0, rounds=1, cameras=(2,), cycles=1))
    names = [r.name for r in result.results]
    assert names == [
        "event_to_actuation_p99_2cams",
        "event_to_actuation_p50_2cams",
        "events_per_s_2cams",
        "node_cpu_2cams",
        "cycle_latency_p50_ms",
        "cycle_wait_for_examples_ms",
    ]
    assert 0 < result.result("cycle_latency_p50_ms").edgeloop < 10_000  # a cycle completed
    assert result.environment is not None
    assert result.environment["cycle_all_acked"] == 1
    latency = result.result("event_to_actuation_p99_2cams")
    assert 0 < latency.edgeloop < 1000
    assert 0 < latency.anchor < 1000
    rate = result.result("events_per_s_2cams")
    assert rate.edgeloop > 0  # counted as they arrive in the window: load can thin it
    assert rate.anchor > 0
    run = result.environment["runs"]["2cams"] if result.environment else {}
    assert run["made"] == run["received"]  # every event made got its command to the trap
    assert run["node"]["failures"] == {}
    assert run["node"]["held"] == 0
    json.dumps(result.to_json(), allow_nan=False)


def test_chaos_refuses_a_nonpositive_minutes() -> None:
    with pytest.raises(ConfigError, match="minutes"):
        run_chaos(minutes=0)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["e2e", "--minutes", "1"], "--minutes applies to the chaos suite only"),
        (["chaos", "--minutes", "-1"], "minutes"),
    ],
)
def test_bad_bench_options_are_refused(args: list[str], says: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "edgeloop", "bench", *args],
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert says in run.stderr


def _report(**changes: object) -> dict[str, object]:
    fault = {"t": 1.0, "kind": "kill_learner", "target": "/pipeline/learner"}
    report: dict[str, object] = {
        "events": 100,
        "events_lost": 0,
        "events_duplicated": 0,
        "cats_trapped": 0,
        "trap_closes": 2,
        "restarts_within_budget": 1,
        "learner_restarts": 1,
        "learner_restored_version": 3,
        "faults": [{**fault, "restart_s": 0.5, "budget_s": 3.0, "within": True}],
    }
    report.update(changes)
    return report


def test_chaos_rows_meet_their_goals_only_when_the_contract_held() -> None:
    assert all(r.met for r in chaos_rows(_report()))
    rows = {r.name: r for r in chaos_rows(_report(events_lost=1, cats_trapped=1))}
    assert not rows["events_lost"].met
    assert not rows["cats_trapped"].met
    unrestarted = [
        {
            "t": 1.0,
            "kind": "crash_actor",
            "target": "/pipeline/fusion",
            "restart_s": None,
            "budget_s": 3.2,
            "within": False,
        }
    ]
    rows = {r.name: r for r in chaos_rows(_report(faults=unrestarted, restarts_within_budget=0))}
    assert rows["restart_max_s"].edgeloop == RESTART_WAIT  # counted as the whole wait
    assert not rows["restart_max_s"].met
    assert not rows["restarts_within_budget"].met
    rows = {r.name: r for r in chaos_rows(_report(learner_restored_version=None))}
    assert not rows["learner_recoveries"].met  # restarted, but not from a snapshot
    json.dumps([r.to_json() for r in chaos_rows(_report(faults=[]))], allow_nan=False)


def test_chaos_rows_refuse_a_report_without_fusions_count() -> None:
    with pytest.raises(EdgeloopInternalError, match="fusion"):
        chaos_rows(_report(events_duplicated=None))
