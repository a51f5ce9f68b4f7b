"""One chaos run on the yard: faults into a busy scenario, then what the contract kept.

A node with the yard app (``yard_app``) and the scenario's cameras and traps as real
``edgeloop device run`` processes (:class:`~edgeloop.sensors._runner.YardRunner`, which
restarts a device process that dies). While the scenario plays, every ``every`` wall
seconds (seeded) one fault:

``kill_device``
    ``kill -9`` of a random camera or trap process; the runner starts it again after its
    backoff (0.1 s doubling per restart of that device, at most 5 s), it recovers its
    journal and resends what the node had not acknowledged;
``crash_actor``
    an :class:`~edgeloop.actors.InjectFault` into a random actor (a camera or trap twin,
    a trap relay, the event stage, fusion, the knowledge cycle, the Gibbs repair): it
    crashes where it stands, losing its mailbox, and its supervisor restarts it (and,
    under ``rest_for_one``, the stages after it);
``kill_learner``
    the same into the learner: it restarts from its last snapshot and asks every camera
    twin for the events after it.

The first three faults are one of each kind (shuffled), so every kind happens. A fault's
restart time is from the death of the old incarnation (at once for ``kill -9``; for an
injected fault, when the actor reached it in its mailbox: ``crashed_after_s``) to a new
incarnation (a new process, a new actor at the path); its budget is the backoff delay
its supervisor may take (the runner's, or the app's ``backoff`` max times ``1 +
random_factor``; 0 without backoff) plus :data:`START_ALLOWANCE` for the start itself.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

from edgeloop.actors import ActorRef, InjectFault
from edgeloop.apps.yard import GetLog
from edgeloop.apps.yard_demo import LEAD, ask_or_none, run_dir_for, yard_app
from edgeloop.bench.e2e import bound_address
from edgeloop.learning import GetStatistics
from edgeloop.sensors import GetState
from edgeloop.sensors._runner import YardRunner
from edgeloop.sensors.world import load_scenario
from edgeloop.supervisor import Node, parse_app

__all__ = ["chaos_run", "KINDS", "START_ALLOWANCE"]

KINDS = ("kill_device", "crash_actor", "kill_learner")
START_ALLOWANCE = 2.0
"""Seconds a restarted device process or actor may take to start, on top of its backoff."""
RESTART_WAIT = 20.0
"""Seconds to wait for a restart before the fault is reported as not restarted."""


def _budgets(app: dict[str, Any]) -> dict[str, float]:
    """The longest backoff delay of each supervisor path of ``app`` (0 without backoff)."""
    out: dict[str, float] = {}
    for child in app["supervisor"]["children"]:
        backoff = child.get("backoff")
        delay = 0.0
        if backoff is not None:
            delay = float(backoff.get("max", 0.0)) * (1.0 + float(backoff.get("random_factor", 0)))
        out["/" + child["id"]] = delay
    return out


def _restarted(
    node: Node, path: str, old: ActorRef | None, deadline: float
) -> tuple[float | None, float | None]:
    """``(crashed, restarted)``: seconds until the old incarnation at ``path`` died (the
    fault waits its turn in the mailbox), then seconds from its death until a new
    incarnation held ``path``; ``None`` for what did not happen by ``deadline``."""
    began = time.perf_counter()
    pause = threading.Event()
    while old is not None and old.is_alive():
        if time.perf_counter() > deadline:
            return None, None
        pause.wait(0.002)
    died = time.perf_counter()
    while time.perf_counter() < deadline:
        ref = node.lookup(path)
        if ref is not None and ref is not old and ref.is_alive():
            return died - began, time.perf_counter() - died
        pause.wait(0.002)
    return died - began, None


def _device_restarted(runner: YardRunner, name: str, old: Any, deadline: float) -> float | None:
    began = time.perf_counter()
    pause = threading.Event()
    while time.perf_counter() < deadline:
        if runner.processes.get(name) is not old:
            return time.perf_counter() - began
        pause.wait(0.005)
    return None


def _made(run_dir: Path, name: str) -> int | None:
    """Events the device made over its whole life: its last clean stop's log line."""
    path = run_dir / f"{name}.log"
    if not path.exists():
        return None
    made = None
    for line in path.read_text(errors="replace").splitlines():
        if '"device_stopped"' in line:
            with contextlib.suppress(ValueError):
                made = int(json.loads(line).get("events", made))
    return made


def chaos_run(
    *,
    scenario: str = "calm",
    speed: float = 30.0,
    seed: int = 1,
    every: float = 2.0,
    run_dir: Path | None = None,
) -> dict[str, Any]:
    """Play ``scenario`` at ``speed`` with a fault every ``every`` wall seconds (seeded by
    ``seed``); the report (see ``docs/benchmarks.md``)."""
    loaded = load_scenario(scenario)
    cameras = [c.id for c in loaded.cameras]
    traps = [z.id for z in loaded.zones if z.trap]
    rng = random.Random(seed)
    faults: list[dict[str, Any]] = []
    began = time.perf_counter()
    with run_dir_for(run_dir, prefix="edgeloop-chaos-") as where:
        app = yard_app(scenario, "tcp://127.0.0.1:*", str(where / "learner.db"), seed)
        budgets = _budgets(app)
        node = Node.from_app(parse_app(app))
        node.start()
        try:
            runner = YardRunner.from_scenario(
                scenario,
                connect=bound_address(node),
                mode="processes",
                seed=seed,
                speed=speed,
                run_dir=where,
            )
            runner.start(lead=LEAD)
            try:
                end = runner.start_at + (runner.duration or 0.0)
                faults = _inject(node, runner, rng, every, end, cameras, traps, budgets)
                runner.wait()
            finally:
                runner.stop()
            report = _report(node, runner, where, cameras, traps)
        finally:
            node.stop()
    report["faults"] = faults
    report["restarts"] = len(faults)
    report["restarts_within_budget"] = sum(1 for f in faults if f["within"])
    report["wall_s"] = round(time.perf_counter() - began, 2)
    report["scenario"] = scenario
    report["seed"] = seed
    return report


def _inject(
    node: Node,
    runner: YardRunner,
    rng: random.Random,
    every: float,
    end: float,
    cameras: list[str],
    traps: list[str],
    budgets: dict[str, float],
) -> list[dict[str, Any]]:
    """Inject a fault every ``every`` s from a second after the start until 2 s before
    ``end`` (wall time); each fault's record."""
    actors = [f"/devices/{n}" for n in cameras + traps] + [f"/traps/{t}" for t in traps]
    actors += ["/pipeline/functions", "/pipeline/fusion"]
    if node.lookup("/knowledge") is not None:  # the yard's knowledge cycle, where it runs
        actors.append("/knowledge")
    if node.lookup("/repair") is not None:  # the learner's Gibbs repair, where it runs
        actors.append("/repair")
    first = list(KINDS)
    rng.shuffle(first)
    pause = threading.Event()
    faults: list[dict[str, Any]] = []
    at = runner.start_at + 1.0
    while at < end - 2.0:
        pause.wait(max(0.0, at - time.time()))
        kind = first.pop(0) if first else rng.choice(KINDS)
        t = round(time.time() - runner.start_at, 3)
        crashed: float | None = 0.0
        if kind == "kill_device":
            name = rng.choice(cameras + traps)
            old = runner.processes[name]
            delay = min(5.0, 0.1 * 2 ** runner.restarts.get(name, 0))
            old.kill()  # SIGKILL: no goodbye, no flush; the journal is what survives
            took = _device_restarted(runner, name, old, time.perf_counter() + RESTART_WAIT)
            target, budget = name, delay + 0.1 + START_ALLOWANCE  # + the runner's poll
        else:
            target = "/pipeline/learner" if kind == "kill_learner" else rng.choice(actors)
            old_ref = node.lookup(target)
            node.tell(target, InjectFault(f"chaos at t = {t} s"))
            crashed, took = _restarted(node, target, old_ref, time.perf_counter() + RESTART_WAIT)
            parent = "/" + target.split("/")[1]
            budget = budgets.get(parent, 0.0) + START_ALLOWANCE
        faults.append(
            {
                "t": t,
                "kind": kind,
                "target": target,
                "crashed_after_s": None if crashed is None else round(crashed, 4),
                "restart_s": None if took is None else round(took, 4),
                "budget_s": round(budget, 3),
                "within": took is not None and took <= budget,
            }
        )
        at += every
    return faults


def _report(
    node: Node, runner: YardRunner, where: Path, cameras: list[str], traps: list[str]
) -> dict[str, Any]:
    twins = {n: ask_or_none(node, f"/devices/{n}", GetState()) for n in cameras}
    delivered = {n: (s.delivered_seq or 0) if s is not None else 0 for n, s in twins.items()}
    gaps = sum(s.counters.get("lost", 0) for s in twins.values() if s is not None)
    made = {n: _made(where, n) for n in cameras}
    undelivered = sum(max(0, (made[n] or 0) - delivered[n]) for n in cameras)
    fusion = ask_or_none(node, "/pipeline/fusion", GetStatistics())
    learner = ask_or_none(node, "/pipeline/learner", GetStatistics())
    stage = ask_or_none(node, "/pipeline/functions", GetLog()) or {}
    pipeline = {c.id: c.restarts for c in node.supervisor("/pipeline").which_children()}
    catches = runner.catches()
    caught = [str(a) for c in catches if isinstance(c["caught"], list) for a in c["caught"]]
    return {
        "events": sum(delivered.values()),
        "events_made": made,
        "events_lost": gaps + undelivered,
        "events_lost_in_gaps": gaps,
        "events_undelivered": undelivered,
        "events_duplicated": fusion.counts.duplicates if fusion is not None else None,
        "events_to_learner": learner.events if learner is not None else None,
        "learner_duplicates": learner.duplicates if learner is not None else None,
        "function_dropped": stage.get("dropped", {}),
        "learner_restarts": pipeline.get("learner", 0),
        "learner_restored_version": learner.restored_version if learner is not None else None,
        "learner_replay_requests": learner.replay_requests if learner is not None else None,
        "device_restarts": dict(runner.restarts),
        "actor_restarts": pipeline,
        "trap_closes": len(catches),
        "skunk_caught": any(a.startswith("skunk:") for a in caught),
        "cats_trapped": sum(1 for a in caught if a.startswith("cat:")),
    }
