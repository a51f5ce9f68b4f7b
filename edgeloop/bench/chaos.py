"""``edgeloop bench chaos``: faults into a busy yard, then what the delivery contract kept.

:func:`~edgeloop.bench._chaos_run.chaos_run` plays a yard scenario with real device
processes while it kills device processes (``kill -9``), crashes random actors and the
learner (:class:`~edgeloop.actors.InjectFault`), seeded. Rows; the "anchor" of each is
what the figure is counted against, and a goal of ``<= 0`` means "none":

``events_lost``
    sequence gaps the twins gave up on plus events the devices made that no twin
    delivered, against the events delivered (goal: none);
``events_duplicated_at_fusion``
    duplicates that reached fusion (the twins dedupe), against the events (goal: none);
``cats_trapped``
    cats in the traps when they closed (the trap devices' ground truth), against the
    closes (goal: none);
``restarts_within_budget``
    faults whose restart came within its budget (backoff plus a start allowance), against
    the faults (goal: all);
``restart_max_s``
    the slowest restart, against its own budget (goal: ``<= 1``; a fault never restarted
    counts as the whole wait for it, :data:`~edgeloop.bench._chaos_run.RESTART_WAIT`);
``learner_recoveries``
    learner restarts that came back from a snapshot, against the learner restarts the
    faults caused (a learner kill, or a crash of a stage before it; goal: all).

``--minutes M`` plays the ``busy`` scenario (eight cameras) over M minutes; quick plays
``calm`` (four cameras) at speed 30, about 45 s with a fault every 2 s.
"""

from __future__ import annotations

import os
import platform
from typing import Any

from edgeloop.bench._chaos_run import RESTART_WAIT, chaos_run
from edgeloop.bench._report import Result, SuiteResult
from edgeloop.errors import ConfigError, EdgeloopInternalError

__all__ = ["run_chaos", "DURATION"]

DURATION = 600.0
"""Simulated seconds of the yard scenarios (what ``--minutes`` stretches)."""


def run_chaos(quick: bool = False, *, minutes: float | None = None, seed: int = 1) -> SuiteResult:
    """Run the ``chaos`` suite: ``calm`` at speed 30 when ``quick``, else ``busy`` over
    ``minutes`` (default: half a minute of wall time)."""
    if minutes is not None and not minutes > 0:
        raise ConfigError("minutes", f"expected a number of minutes > 0, got {minutes}")
    if quick and minutes is None:
        scenario, speed = "calm", 30.0
    else:
        scenario, speed = "busy", DURATION / (60.0 * (minutes or 0.5))
    report = chaos_run(scenario=scenario, speed=speed, seed=seed, every=2.0)
    return SuiteResult("chaos", tuple(chaos_rows(report)), _environment(report, quick, speed))


def chaos_rows(report: dict[str, Any]) -> list[Result]:
    """The suite's rows from one :func:`chaos_run` report."""
    faults = report["faults"]
    events = report["events"]
    if report["events_duplicated"] is None:
        raise EdgeloopInternalError("fusion did not answer after the chaos run: see its log")

    def took(fault: dict[str, Any]) -> float:  # never restarted: at least the whole wait
        return float(fault["restart_s"] if fault["restart_s"] is not None else RESTART_WAIT)

    slowest = max(faults, key=lambda f: took(f) / f["budget_s"], default=None)
    caused = sum(
        1
        for f in faults
        if f["kind"] == "kill_learner" or f["target"] in ("/pipeline/functions", "/pipeline/fusion")
    )
    restored = report["learner_restored_version"] is not None
    return [
        Result("events_lost", "events", report["events_lost"], events, "events delivered", "<= 0"),
        Result(
            "events_duplicated_at_fusion",
            "events",
            report["events_duplicated"],
            events,
            "events delivered",
            "<= 0",
        ),
        Result(
            "cats_trapped", "cats", report["cats_trapped"], report["trap_closes"], "closes", "<= 0"
        ),
        Result(
            "restarts_within_budget",
            "restarts",
            report["restarts_within_budget"],
            len(faults),
            "faults injected",
            ">= 1",
        ),
        Result(
            "restart_max_s",
            "s",
            took(slowest) if slowest is not None else 0.0,
            slowest["budget_s"] if slowest is not None else 1.0,
            f"its budget ({slowest['target'] if slowest else 'none'})",
            "<= 1",
        ),
        Result(
            "learner_recoveries",
            "restarts",
            report["learner_restarts"] if restored else 0,
            caused,
            "learner restarts caused",
            ">= 1",
        ),
    ]


def _environment(report: dict[str, Any], quick: bool, speed: float) -> dict[str, Any]:
    keep = {k: v for k, v in report.items() if k != "faults"}
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "quick": quick,
        "speed": round(speed, 3),
        **keep,
        "faults": report["faults"],
    }
