"""``edgeloop demo yard``: the yard app on a node, the scenario's devices as processes.

Starts a node with :data:`~edgeloop.apps.yard.APP_FILE` (every ``scenario`` argument set
to the one asked for, listening on a free loopback port), runs each camera and trap of the
scenario as its own ``edgeloop device run`` process over ZeroMQ (the ``sim yard``
runner), shows a live view while the scenario plays, stops everything in order, and
scores the run against the ground truth the trap devices recorded.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from edgeloop.apps.yard import APP_FILE, GetLog
from edgeloop.errors import ConfigError, EdgeloopError
from edgeloop.learning import GetCycles, GetStatistics
from edgeloop.sensors import GetState
from edgeloop.sensors._runner import YardRunner
from edgeloop.sensors.world import load_scenario
from edgeloop.supervisor import Node, parse_app

__all__ = ["ask_or_none", "run_demo", "run_dir_for", "yard_app"]

_ASK = 30.0
_VIEW_ASK = 1.0
LEAD = 4.0
"""Wall seconds between starting the device processes and the scenario's second 0: every
process is up by then (a fresh one imports for about a second), so none misses the start."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def yard_app(
    scenario: str, listen: str, store: str | None = None, seed: int | None = None
) -> dict[str, Any]:
    """The app document of ``yard.toml`` for ``scenario``, listening on ``listen``, the
    learner snapshotting into ``store`` (a SQLite path; the knowledge cycle into
    ``knowledge.db`` beside it) if given and building its model of
    the world under ``seed`` (the devices' seed) if given."""
    loaded = load_scenario(scenario)
    with APP_FILE.open("rb") as handle:
        data = tomllib.load(handle)
    data["node"]["listen"] = [listen]

    def patch(children: list[dict[str, Any]]) -> None:
        for child in children:
            args = child.get("args", {})
            if "scenario" in args:
                args["scenario"] = scenario
            if child["id"] == "learner" and store is not None:
                args["store"] = store
            if child["id"] == "knowledge" and store is not None:
                args["store"] = str(Path(store).with_name("knowledge.db"))
            if child["id"] in ("learner", "knowledge") and seed is not None:
                args["seed"] = seed
            patch(child.get("children", []))

    patch(data["supervisor"]["children"])
    traps = [z.id for z in loaded.zones if z.trap]
    for child in data["supervisor"]["children"]:
        if child["id"] == "devices":  # the relays' interlocks see the cameras' events too
            child["args"]["subscribers"] = [
                "/pipeline/functions",
                *(f"/traps/{t}" for t in traps),
                "/knowledge",
            ]
        if child["id"] == "knowledge":
            child["args"]["announce_to"] = [f"/traps/{t}" for t in traps]
        if child["id"] == "traps":
            child["children"] = [
                {
                    "id": t,
                    "start": "edgeloop.apps.yard:TrapRelay",
                    "args": {"twin": f"/devices/{t}", "scenario": scenario, "zone": t},
                }
                for t in traps
            ]
    return data


def ask_or_none(node: Node, path: str, message: Any, timeout: float = _ASK) -> Any:
    """The answer of the actor at ``path``; ``None`` if there is none now or it is busy past
    ``timeout`` (a restarting or compiling learner must not stop the demo)."""
    ref = node.lookup(path)
    if ref is None:
        return None
    try:
        return ref.ask(message).get(timeout)
    except EdgeloopError:
        return None


def _twins(node: Node, names: list[str], timeout: float = _ASK) -> dict[str, Any]:
    out = {}
    for name in names:
        state = ask_or_none(node, f"/devices/{name}", GetState(), timeout)
        if state is not None:
            out[name] = state
    return out


def _view(node: Node, cameras: list[str], traps: list[str], rate: float, t: float) -> Group:
    twins = _twins(node, cameras + traps, _VIEW_ASK)
    cams = Table(title=f"cameras (t = {t:.0f} s simulated)")
    for column in ("camera", "connected", "delivered", "lost"):
        cams.add_column(column)
    for name in cameras:
        state = twins.get(name)
        if state is not None:
            cams.add_row(
                name,
                str(state.connected),
                str(state.delivered_seq or 0),
                str(state.counters.get("lost", 0)),
            )
    trap_table = Table(title="traps")
    for column in ("trap", "connected", "position", "commands"):
        trap_table.add_column(column)
    for name in traps:
        state = twins.get(name)
        log = ask_or_none(node, f"/traps/{name}", GetLog(), _VIEW_ASK) or {"commands": []}
        position = str(state.extra.get("position", "?")) if state is not None else "?"
        trap_table.add_row(
            name,
            str(state.connected if state is not None else False),
            position,
            ", ".join(c for _, c in log["commands"][-4:]),
        )
    stats = ask_or_none(node, "/pipeline/learner", GetStatistics(), _VIEW_ASK)
    tracks = stats.tracks_started if stats is not None else "? (busy)"
    events = stats.events if stats is not None else "? (busy)"
    line = Table.grid()
    line.add_row(f"events/s {rate:.1f} | learner events {events} | tracks started {tracks}")
    line.add_row(_cycle_line(ask_or_none(node, "/knowledge", GetCycles(), _VIEW_ASK)))
    return Group(cams, trap_table, line)


def _cycle_line(status: dict[str, Any] | None) -> str:
    """The knowledge cycle in one line: what it knows and its latest cycle's stages."""
    if status is None:
        return "knowledge cycle: ? (busy)"
    line = f"knowledge: {', '.join(status['labels'])} | head v{status['head_version']}"
    if status["cycles"]:
        last = status["cycles"][-1]
        stages = " ".join(f"{k} {v:.0f}" for k, v in last["stage_ms"].items())
        line += (
            f" | cycle {last['cycle']} {last['name'] or '?'} {last['state']}: {stages} ms,"
            f" acked {len(last['cameras_acked'])}"
        )
    return line


def _learned(status: dict[str, Any] | None) -> dict[str, Any] | None:
    """The first new species the cycle learnt (its record), or None."""
    for record in (status or {}).get("cycles", []):
        if record["reason"] != "named" and record["state"] in ("done", "partial"):
            keys = (
                "name",
                "state",
                "reason",
                "head_version",
                "head_bytes",
                "examples",
                "frames_pulled",
                "stage_ms",
                "wait_for_examples_ms",
                "cycle_latency_ms",
                "cameras_acked",
                "ack_ms",
                "cameras_refused",
                "cameras_away",
            )
            return {key: record[key] for key in keys}
    return None


def _latencies(arrivals: list[tuple[float, str, int]], commands: list[float]) -> list[float]:
    """Per trap command: ms since the newest event the node had received before it."""
    times = np.sort(np.array([a for a, _, _ in arrivals]))
    out = []
    for sent in commands:
        i = int(np.searchsorted(times, sent, side="right"))
        if i:
            out.append((sent - times[i - 1]) * 1000.0)
    return out


@contextlib.contextmanager
def run_dir_for(path: Path | None, prefix: str = "edgeloop-yard-") -> Iterator[Path]:
    """``path`` (created), or a temporary directory removed afterwards: where a yard run
    keeps its devices' journals and the learner's store."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def run_demo(
    *,
    seconds: float | None = None,
    scenario: str = "calm",
    speed: float = 20.0,
    seed: int | None = None,
    as_json: bool = False,
    run_dir: Path | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Play ``scenario`` (to its end, or for ``seconds`` of wall time) and return the
    summary (printed as one JSON object with ``as_json``, else as tables)."""
    if not speed > 0:
        raise ConfigError("speed", f"expected a number > 0, got {speed}")
    loaded = load_scenario(scenario)
    cameras = [c.id for c in loaded.cameras]
    traps = [z.id for z in loaded.zones if z.trap]
    console = console or Console(stderr=as_json)
    with run_dir_for(run_dir) as where:
        listen = f"tcp://127.0.0.1:{_free_port()}"
        node = Node.from_app(parse_app(yard_app(scenario, listen, str(where / "learner.db"), seed)))
        began = time.perf_counter()
        node.start()
        try:
            runner = YardRunner.from_scenario(
                scenario,
                connect=listen,
                mode="processes",
                seed=seed,
                speed=speed,
                run_dir=where,
            )
            runner.start(lead=LEAD)
            try:
                played = _play(node, runner, cameras, traps, seconds, speed, console, as_json)
            finally:
                runner.stop()
            summary = _summary(node, runner, cameras, traps, loaded.name)
        finally:
            node.stop()
    summary["wall_s"] = round(time.perf_counter() - began, 2)
    summary["simulated_s"] = round(min(played, loaded.duration), 1)
    if as_json:
        print(json.dumps(summary))
    else:
        _print_summary(summary, console)
    return summary


def _play(
    node: Node,
    runner: YardRunner,
    cameras: list[str],
    traps: list[str],
    seconds: float | None,
    speed: float,
    console: Console,
    as_json: bool,
) -> float:
    """Wait for the scenario's end (or ``seconds``), refreshing the live view; returns the
    simulated seconds played."""
    start = time.perf_counter()
    # the scenario's second 0 is the runner's start_at; its end plus a second for the acks
    ahead = runner.start_at - time.time()
    end = start + ahead + (runner.duration + 1.0 if runner.duration is not None else math.inf)
    if seconds is not None:
        end = min(end, start + seconds)
    last_events, last_at = 0, start
    with Live(console=console, refresh_per_second=4, transient=as_json) as live:
        while time.perf_counter() < end:
            runner.wait(min(0.5, max(0.0, end - time.perf_counter())))  # or a stop
            now = time.perf_counter()
            log = ask_or_none(node, "/pipeline/functions", GetLog(), _VIEW_ASK) or {"arrivals": []}
            events = len(log["arrivals"])
            rate = (events - last_events) / max(now - last_at, 1e-6)
            last_events, last_at = events, now
            live.update(_view(node, cameras, traps, rate, (time.time() - runner.start_at) * speed))
    return max(0.0, (time.time() - runner.start_at) * speed)


def _summary(
    node: Node, runner: YardRunner, cameras: list[str], traps: list[str], scenario: str
) -> dict[str, Any]:
    twins = _twins(node, cameras)
    stage = ask_or_none(node, "/pipeline/functions", GetLog())
    fusion = ask_or_none(node, "/pipeline/fusion", GetStatistics())
    learner = ask_or_none(node, "/pipeline/learner", GetStatistics())
    commands: list[float] = []
    relays = {}
    for trap in traps:
        log = ask_or_none(node, f"/traps/{trap}", GetLog()) or {"commands": [], "failed": []}
        relays[trap] = log
        commands += [t for t, _ in log["commands"]]
    decisions: list[dict[str, Any]] = []
    for catch in runner.catches():
        truth = [str(a) for a in catch["caught"]] if isinstance(catch["caught"], list) else []
        decisions.append(
            {
                "trap": catch["trap"],
                "action": "close",
                "t": catch["t"],
                "truth": truth,
                "correct": any(a.startswith("skunk:") for a in truth)
                and not any(a.startswith("cat:") for a in truth),
            }
        )
    caught = [a for d in decisions for a in d["truth"]]
    lat = _latencies(stage["arrivals"] if stage else [], commands)
    knowledge = ask_or_none(node, "/knowledge", GetCycles())
    return {
        "scenario": scenario,
        "events": sum(t.delivered_seq or 0 for t in twins.values()),
        "events_lost": sum(t.counters.get("lost", 0) for t in twins.values()),
        "events_duplicated": fusion.counts.duplicates if fusion is not None else None,
        "events_to_learner": learner.events if learner is not None else None,
        "learner_duplicates": learner.duplicates if learner is not None else None,
        "function_failures": stage["failures"] if stage else {},
        "function_dropped": stage["dropped"] if stage else {},
        "trap_commands": {t: [c for _, c in r["commands"]] for t, r in relays.items()},
        "closes_held_by_interlock": sum(r.get("held", 0) for r in relays.values()),
        "trap_decisions": decisions,
        "skunk_caught": any(a.startswith("skunk:") for a in caught),
        "cats_trapped": sum(1 for a in caught if a.startswith("cat:")),
        "event_to_actuation_ms": {
            "p50": round(float(np.percentile(lat, 50)), 2) if lat else None,
            "p99": round(float(np.percentile(lat, 99)), 2) if lat else None,
            "n": len(lat),
            "measured": "node: newest event received before the trap command -> command out",
        },
        "new_species_learned": _learned(knowledge),
        "knowledge_cycles": len((knowledge or {}).get("cycles", [])),
        "knowledge_counters": (knowledge or {}).get("counters", {}),
        "learner_p_new_max": (knowledge or {}).get("learner_p_new_max"),
        **_learning(learner, ask_or_none(node, "/repair", GetStatistics())),
    }


def _learning(learner: Any, repair: Any) -> dict[str, Any]:
    """What the learner learnt on its schedule and what the Gibbs repair did (``None``
    where that actor did not answer or is not in the app)."""
    return {
        "learning": None
        if learner is None
        else {
            "windows": learner.windows,
            "repairs_adopted": learner.repairs,
            "repairs_stale": learner.stale_repairs,
            "repairs_lost": learner.repairs_lost,
            "repairs_skipped": learner.repairs_skipped,
            "params_version": learner.params_version,
        },
        "repair": None
        if repair is None
        else {
            "runs": repair.repairs,
            "tracks_resampled": repair.tracks,
            "assignments_changed": repair.changed_total,
            "rejected": repair.rejected,
            "run_s": repair.run_s,
            "warm_s": repair.warm_s,
        },
    }


def _print_summary(summary: dict[str, Any], console: Console) -> None:
    table = Table(title=f"yard {summary['scenario']!r}: summary")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in (
        "events",
        "events_lost",
        "events_duplicated",
        "skunk_caught",
        "cats_trapped",
        "wall_s",
        "simulated_s",
    ):
        table.add_row(key, str(summary[key]))
    lat = summary["event_to_actuation_ms"]
    table.add_row("event to actuation p50 / p99 (ms)", f"{lat['p50']} / {lat['p99']}")
    learned = summary["new_species_learned"]
    if learned is not None:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in learned["stage_ms"].items())
        table.add_row(f"new species {learned['name']!r} (ms)", stages)
        table.add_row("cameras acked the new head", str(len(learned["cameras_acked"])))
    console.print(table)
    for decision in summary["trap_decisions"]:
        truth = ", ".join(decision["truth"]) or "empty"
        console.print(f"  {decision['trap']} closed at t = {decision['t']:.1f} s: {truth}")
