"""`edgeloop demo yard --json` end to end: a node with the yard app, the calm scenario's
cameras and traps as real device processes over ZeroMQ, scored against the ground truth
the trap devices recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.apps.jax_env import jax_env
from tests.integration.procs import ROOT

pytestmark = pytest.mark.integration

DEMO = (sys.executable, "-m", "edgeloop", "demo", "yard")


def test_the_calm_yard_catches_the_skunk_and_no_cat_losing_nothing() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "edgeloop", "demo", "yard", "--json", "--speed", "30"],
        cwd=ROOT,
        env=jax_env(PYTHONUNBUFFERED="1"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "terminate called" not in run.stderr  # nothing abandoned inside JAX at exit
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["scenario"] == "calm"
    assert summary["simulated_s"] == 600.0  # the whole scenario played
    assert summary["events"] > 500  # four cameras, a frame a simulated second, animals in view
    assert summary["events_lost"] == 0
    assert summary["events_duplicated"] == 0
    dropped = sum(summary["function_dropped"].values())  # by drop_low_score, on purpose
    assert summary["events_to_learner"] + dropped == summary["events"]
    assert summary["learner_duplicates"] == 0
    assert summary["function_failures"] == {}
    assert summary["trap_decisions"], "the traps closed at least once"
    for decision in summary["trap_decisions"]:
        assert decision["trap"] in ("trap-shed", "trap-garden")
        assert isinstance(decision["truth"], list)  # what the trap device held then
    assert summary["skunk_caught"] is True
    assert summary["cats_trapped"] == 0
    latency = summary["event_to_actuation_ms"]
    assert latency["n"] > 0
    assert 0 < latency["p50"] <= latency["p99"]
    # the learner learns on its schedule beside a Gibbs repair (how many repairs a run
    # gets depends on the machine's load: asserted in test_yard_restarts.py)
    assert summary["learning"]["windows"] >= 1
    assert summary["repair"]["rejected"] == {}
    assert summary["learning"]["repairs_adopted"] <= summary["repair"]["runs"]


def test_the_opossum_yard_learns_the_stranger_and_pushes_it_to_every_camera() -> None:
    """`make demo`'s run: the opossum is learnt and every camera acks the new head; no
    cat and no opossum is ever trapped, and nothing is lost. (Whether the skunk reaches a
    trap in time depends on how the run's timing meets its late visits, so it is not
    asserted here; the calm test above asserts the catch.)"""
    run = subprocess.run(
        [*DEMO, "--json", "--scenario", "opossum", "--speed", "20"],
        cwd=ROOT,
        env=jax_env(PYTHONUNBUFFERED="1"),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "terminate called" not in run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["scenario"] == "opossum"
    assert summary["events_lost"] == 0
    assert summary["events_duplicated"] == 0
    assert summary["cats_trapped"] == 0
    for decision in summary["trap_decisions"]:
        if decision["action"] == "close":
            assert not any(t.startswith(("cat", "opossum")) for t in decision["truth"])
    learned = summary["new_species_learned"]
    assert learned["state"] == "done"
    assert learned["head_bytes"] < 1024
    assert len(learned["cameras_acked"]) == 8
    assert learned["cameras_refused"] == {}
    assert set(learned["stage_ms"]) == {"notice", "query", "learn", "recompile", "push"}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--scenario", "no-such-yard"], "no-such-yard"),
        (["--speed", "0"], "speed"),
    ],
)
def test_bad_options_are_refused_with_what_was_wrong(args: list[str], says: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "edgeloop", "demo", "yard", "--json", *args],
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert says in run.stderr
    assert run.stdout == ""
