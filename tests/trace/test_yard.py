"""Traces of the yard app: a live run with the calm scenario's cameras and traps on real
ZeroMQ device links, recorded at the node's boundary, replayed deterministically, checked
against a changed model, and recorded under a load that overflows the recorder's queue."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

from edgeloop.actors import ActorSystem
from edgeloop.apps.yard import APP_FILE, GetLog, YardLearner
from edgeloop.apps.yard_demo import yard_app
from edgeloop.cli import app
from edgeloop.clock import VirtualClock
from edgeloop.messages import Command, Event
from edgeloop.sensors import GetState
from edgeloop.sensors._runner import YardRunner
from edgeloop.supervisor import Node, TapRecord, parse_app
from edgeloop.trace import Recorder, RecorderConfig, ReplayOptions, open_trace, replay
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

WAIT = 60.0
SPEED = 60.0
"""Simulated seconds per wall second: the calm yard's first skunk visit within seconds."""
CAMERAS = ("cam-gate", "cam-shed", "cam-garden", "cam-hedge")
TRAPS = ("trap-shed", "trap-garden")
FAST = ReplayOptions(rate=None)
cli = CliRunner()


@pytest.fixture(autouse=True)
def keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI would configure structlog for a terminal; keep the tests' setup."""
    monkeypatch.setattr("edgeloop.cli.configure_logging", lambda *args, **kwargs: None)


def _listen() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def _commands(node: Node) -> int:
    """Trap commands the relays have sent so far."""
    sent = 0
    for trap in TRAPS:
        relay = node.lookup(f"/traps/{trap}")
        sent += len(relay.ask(GetLog()).get(WAIT)["commands"]) if relay is not None else 0
    return sent


def tapped(node: Node) -> int:
    """Messages that crossed the node's boundary so far (what a tap saw)."""
    counters = node.devices.statistics().counters
    return sum(counters.get(key, 0) for key in ("received", "sent", "unsent"))


def run_yard(
    tmp: Path,
    attach: Callable[[Node], Recorder],
    until: Callable[[Node], bool],
) -> tuple[Node, Recorder, int]:
    """Run the calm yard (devices in this process, on real links) with ``attach``'s
    recorder on the node's boundary until ``until(node)``; returns the stopped node, the
    closed recorder and the boundary crossings before it closed."""
    listen = _listen()
    node = Node.from_app(parse_app(yard_app("calm", listen)))
    runner = YardRunner.from_scenario(
        "calm", connect=listen, mode="in-process", speed=SPEED, run_dir=tmp / "devices"
    )
    with node:
        recorder = attach(node)
        try:
            with runner:
                wait_for(lambda: until(node), timeout=WAIT, what="the yard played far enough")
        finally:
            before = tapped(node)
            recorder.close()
        for camera in CAMERAS:
            twin = node.lookup(f"/devices/{camera}")
            assert twin is not None
            assert twin.ask(GetState()).get(WAIT).counters.get("lost", 0) == 0
    return node, recorder, before


@pytest.fixture(scope="module")
def warm_learner() -> None:
    """Compile the yard learner's kernels once in this process (JAX caches them), so that
    the learners of the nodes below start within their 5 s however loaded the machine."""
    system = ActorSystem("warm-up")
    try:
        system.spawn(YardLearner, "/learner", args={"scenario": "calm"}, start_timeout=WAIT)
    finally:
        system.close()


@pytest.fixture(scope="module")
def yard_trace(tmp_path_factory: pytest.TempPathFactory, warm_learner: None) -> Path:
    """A recording of the calm yard up to the traps' third command (a close and what
    follows it), every message of the run kept."""
    out = tmp_path_factory.mktemp("yard")

    def attach(node: Node) -> Recorder:
        recorder = Recorder(RecorderConfig(out / "trace"), clock=node.system.clock, node="yard")
        return recorder.attach(node.devices)

    _, recorder, _ = run_yard(out, attach, lambda node: _commands(node) >= 3)
    assert recorder.statistics().dropped == 0
    return out / "trace"


def yard_node(app_data: dict[str, Any]) -> Callable[[VirtualClock], Node]:
    """The replay factory of an app document: its node, without links, on the clock."""
    config = parse_app(app_data)

    def factory(clock: VirtualClock) -> Node:
        return Node(
            config.node.name, config.flags, config.children, clock=clock, seed=config.node.seed
        )

    return factory


def outbound(result: Any) -> list[tuple[float, str, Any]]:
    return [(r.ts, r.device, r.message) for r in result.outbound]


def test_a_yard_run_replays_twice_with_identical_decisions(yard_trace: Path) -> None:
    trace = open_trace(yard_trace)
    inbound = list(trace.records(direction="in"))
    assert {r.device for r in inbound} == {*CAMERAS, *TRAPS}
    # about 108 events reach the traps' third command; how many exactly depends on timing
    assert sum(isinstance(r.message, Event) for r in inbound) > 50

    factory = yard_node(yard_app("calm", _listen()))
    first = replay(trace, factory, FAST)
    second = replay(trace, factory, FAST)

    assert first.injected == second.injected == len(inbound)
    assert outbound(first) == outbound(second)  # messages and virtual times alike
    decisions = [m for _, _, m in outbound(first) if isinstance(m, Command)]
    assert [c.name for c in decisions].count("close") >= 1
    assert first.port_counters.get("unknown_device", 0) == 0


def test_check_passes_against_a_replay_reference_and_catches_a_changed_model(
    yard_trace: Path, tmp_path: Path
) -> None:
    # A live yard run is concurrent (acks per mailbox drain, the interlock racing the
    # learner), so the reference a model is checked against is a recorded replay.
    reference = tmp_path / "reference"
    command = ["replay", str(yard_trace), "--app", str(APP_FILE), "--fast", "--quiet"]
    made = cli.invoke(app, [*command, "--record", str(reference)])
    assert made.exit_code == 0, made.output
    recorded = open_trace(reference)
    assert len(list(recorded.records(direction="in"))) == len(
        list(open_trace(yard_trace).records(direction="in"))
    )

    same = cli.invoke(
        app, ["replay", str(reference), "--app", str(APP_FILE), "--fast", "--check", "--quiet"]
    )
    assert same.exit_code == 0, same.output
    assert "check passed" in same.output

    # The changed model: the learner weighs the cameras' embeddings four times as much.
    learner = "snapshot_every = 2.0\n"  # in the learner's args table, only there
    text = APP_FILE.read_text()
    assert text.count(learner) == 1
    changed = tmp_path / "changed.toml"
    changed.write_text(text.replace(learner, learner + "embedding_scale = 4.0\n"))
    caught = cli.invoke(
        app, ["replay", str(reference), "--app", str(changed), "--fast", "--check", "--quiet"]
    )
    assert caught.exit_code == 1, caught.output
    assert "check failed: first divergence at t=" in caught.output
    assert "device 'trap-" in caught.output
    assert "expected command" in caught.output


def test_a_yard_run_that_overflows_the_recorders_queue_reports_the_drops(
    tmp_path: Path, warm_learner: None
) -> None:
    stalled, release = threading.Event(), threading.Event()

    def slow_disk(record: TapRecord) -> bool:  # the writer thread stalls, as on a slow disk
        stalled.set()
        release.wait(WAIT)
        return False

    recorder = Recorder(
        RecorderConfig(tmp_path / "trace", queue_size=64, snapshot_seconds=60.0),
        trigger_on=slow_disk,
    )

    def attach(node: Node) -> Recorder:
        return recorder.attach(node.devices)

    snapshots: list[Path | None] = []

    def overflowed(node: Node) -> bool:
        if not stalled.is_set() or tapped(node) < 200:
            return False
        release.set()
        snapshots.append(recorder.trigger("overflow", timeout=WAIT))
        return True

    with structlog.testing.capture_logs() as logs:
        node, recorder, before = run_yard(tmp_path, attach, overflowed)
    stats = recorder.statistics()
    assert stats.dropped > 0
    # every boundary crossing up to the recorder's close was recorded or counted dropped
    assert before <= stats.recorded + stats.dropped <= tapped(node)
    assert next(e for e in logs if e["event"] == "recorder_dropped")["dropped"] == stats.dropped
    [snapshot] = snapshots
    assert snapshot is not None
    written = open_trace(snapshot).metadata["edgeloop.recorder"]
    assert 0 < int(written["dropped"]) <= stats.dropped  # the file says what it misses
