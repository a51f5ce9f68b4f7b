"""The bounded chaos run (what `edgeloop bench chaos --quick` plays): the calm yard at
speed 30 with real device processes, a seeded fault every 2 s (kill -9 of a device, a
crash injected into a random actor, the learner crashed), and the delivery contract
holds: nothing lost, nothing duplicated at fusion, no cat trapped, every fault restarted
within its budget, the learner back from its snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeloop.bench._chaos_run import KINDS, chaos_run
from edgeloop.bench.chaos import chaos_rows

pytestmark = pytest.mark.integration


@pytest.mark.timeout(240)
def test_faults_during_the_calm_yard_lose_nothing_and_trap_no_cat(tmp_path: Path) -> None:
    report = chaos_run(scenario="calm", speed=30.0, seed=1, every=2.0, run_dir=tmp_path)
    faults = report["faults"]
    assert {f["kind"] for f in faults} == set(KINDS)  # every kind happened
    assert len(faults) >= 8
    assert all(f["restart_s"] is not None for f in faults), faults
    assert report["restarts_within_budget"] == len(faults), faults
    assert report["events"] > 100  # devices late to start under load join the present
    assert report["events_lost"] == 0, report
    assert report["events_duplicated"] == 0, report
    assert report["cats_trapped"] == 0, report
    assert report["learner_restarts"] >= 1
    assert report["learner_restored_version"] is not None  # back from its snapshot
    killed = {f["target"] for f in faults if f["kind"] == "kill_device"}
    assert killed <= set(report["device_restarts"])  # each killed process was started again
    rows = {r.name: r for r in chaos_rows(report)}
    assert all(r.met for r in rows.values()), rows
