"""Replaying a trace into a node under a virtual clock: deterministic, checked against the
recording, with timers at their exact virtual times, and robust to damaged traces."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from edgeloop.actors import Actor
from edgeloop.clock import VirtualClock
from edgeloop.errors import ReplayError
from edgeloop.messages import Command, EventAck
from edgeloop.supervisor import ChildSpec, Node
from edgeloop.trace import RecorderConfig, ReplayOptions, TraceWriter, open_trace, replay
from edgeloop.trace._format import from_ns, to_ns
from tests.trace.trapapp import LIVE_HOLD, children, event, make_node, scenario

FAST = ReplayOptions(rate=None)


def decisions(result: Any) -> list[tuple[str, Any]]:
    return [(r.device, r.message) for r in result.outbound]


def test_a_live_recording_replays_identically_twice_and_matches_the_recording(
    live_trace: Path,
) -> None:
    trace = open_trace(live_trace)
    first = replay(trace, lambda clock: make_node(clock, hold=LIVE_HOLD), FAST, check=True)
    second = replay(trace, lambda clock: make_node(clock, hold=LIVE_HOLD), FAST, check=True)

    assert first.injected == second.injected == 40
    assert decisions(first) == decisions(second)
    assert [r.ts for r in first.outbound] == [r.ts for r in second.outbound]
    commands = [r.message for r in first.outbound if isinstance(r.message, Command)]
    assert commands, "the scenario closes at least one trap"
    assert first.divergence is None, first.divergence.describe()
    assert len(first.outbound) == len(first.expected)


def test_check_catches_a_changed_model_and_names_the_first_divergence(live_trace: Path) -> None:
    trace = open_trace(live_trace)
    result = replay(
        trace, lambda clock: make_node(clock, threshold=0.95, hold=LIVE_HOLD), FAST, check=True
    )

    divergence = result.divergence
    assert divergence is not None
    recorded = [r for r in result.expected if r.device == divergence.device]
    assert divergence.expected == recorded[divergence.index]
    assert isinstance(divergence.expected.message, Command)
    assert divergence.expected.message.name == "close"
    assert isinstance(divergence.got.message, EventAck), "the stricter model did not close"
    text = divergence.describe()
    assert f"t={divergence.ts:.6f}" in text
    assert divergence.device in text
    assert "expected command" in text
    assert "got event_ack" in text


def write_trace(path: Path, records: list[tuple[float, Any]]) -> Path:
    with TraceWriter(path, info={"clock_start": "0.0"}) as writer:
        for ts, message in records:
            writer.write("in", message.device, message, ts)
    return path


def test_timers_fire_at_their_virtual_time_between_messages(tmp_path: Path) -> None:
    trace = open_trace(
        write_trace(
            tmp_path / "t.mcap",
            [
                (1.0, event("cam-1", 1, "skunk", 0.9)),  # closes; reopen due at 3.0
                (2.5, event("cam-1", 2, "cat", 0.9)),  # seen while closed
                (3.5, event("cam-1", 3, "skunk", 0.9)),  # open again at 3.0: closes again
            ],
        )
    )
    result = replay(trace, lambda clock: make_node(clock), FAST)

    commands = [
        (r.ts, r.message.name, r.message.args)
        for r in result.outbound
        if isinstance(r.message, Command)
    ]
    assert commands == [
        (1.0, "close", {"zone": "gate", "seq": 1}),
        (3.0, "open", {"cats": 1}),
        (3.5, "close", {"zone": "gate", "seq": 3}),
    ]
    assert result.virtual_seconds == pytest.approx(3.5)


def test_replays_of_a_longer_trace_with_timers_are_identical(tmp_path: Path) -> None:
    trace = open_trace(write_trace(tmp_path / "t.mcap", scenario(120)))
    runs = [replay(trace, lambda clock: make_node(clock, hold=1.0), FAST) for _ in range(2)]
    assert [(r.ts, r.device, r.message) for r in runs[0].outbound] == [
        (r.ts, r.device, r.message) for r in runs[1].outbound
    ]
    opens = [
        r for r in runs[0].outbound if isinstance(r.message, Command) and r.message.name == "open"
    ]
    assert len(opens) >= 3


def test_topics_and_start_offset_select_what_is_replayed(tmp_path: Path) -> None:
    trace = open_trace(write_trace(tmp_path / "t.mcap", scenario(30)))
    only_cam2 = replay(
        trace, lambda clock: make_node(clock), ReplayOptions(rate=None, topics="/cam-2/")
    )
    assert only_cam2.injected == sum(1 for _, e in scenario(30) if e.device == "cam-2")
    assert {r.device for r in only_cam2.outbound} == {"cam-2"}

    start = trace.start
    assert start is not None
    later = replay(
        trace, lambda clock: make_node(clock), ReplayOptions(rate=None, start_offset=10.0)
    )
    assert later.injected == sum(1 for ts, _ in scenario(30) if ts >= start + 10.0)


def test_a_paced_replay_follows_the_rate_on_the_wall_clock(tmp_path: Path) -> None:
    trace = open_trace(
        write_trace(
            tmp_path / "t.mcap",
            [(0.0, event("cam-1", 1, "cat", 0.1)), (2.0, event("cam-1", 2, "cat", 0.1))],
        )
    )
    result = replay(trace, lambda clock: make_node(clock), ReplayOptions(rate=20.0))
    assert result.injected == 2
    assert result.wall_seconds >= 0.1  # 2 trace seconds at 20x


def test_loop_starts_over_until_stopped(tmp_path: Path) -> None:
    trace = open_trace(write_trace(tmp_path / "t.mcap", scenario(5)))
    stop = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == 12:
            stop.set()

    result = replay(
        trace,
        lambda clock: make_node(clock),
        ReplayOptions(rate=None, loop=True),
        progress=progress,
        stop=stop,
    )
    assert result.loops == 3
    assert result.injected == 12
    with pytest.raises(ValueError, match="--loop or --check"):
        replay(trace, lambda clock: make_node(clock), ReplayOptions(loop=True), check=True)


def test_the_readable_part_of_a_truncated_trace_replays(tmp_path: Path) -> None:
    path = tmp_path / "t.mcap"
    with TraceWriter(path, chunk_size=512) as writer:
        for ts, message in scenario(200):
            writer.write("in", message.device, message, ts)
    data = path.read_bytes()
    (tmp_path / "cut.mcap").write_bytes(data[: len(data) // 2])
    trace = open_trace(tmp_path / "cut.mcap", salvage=True)
    assert trace.damage
    result = replay(trace, lambda clock: make_node(clock), FAST)
    assert 0 < result.injected < 200


class Spinner(Actor):
    """Tells itself forever: a node that never settles."""

    def on_start(self) -> None:
        self.ref.tell("go")

    def on_receive(self, message: Any) -> Any:
        self.ref.tell(message)


def test_a_node_that_never_settles_fails_the_replay_clearly(tmp_path: Path) -> None:
    trace = open_trace(write_trace(tmp_path / "t.mcap", [(1.0, event("cam-1", 1, "cat", 0.1))]))

    def factory(clock: VirtualClock) -> Node:
        return Node("spin", children=[*children(), ChildSpec("spinner", Spinner)], clock=clock)

    with pytest.raises(ReplayError, match=r"did not settle within 0.3 s \(busy: /spinner\)"):
        replay(trace, factory, ReplayOptions(rate=None, settle_timeout=0.3))


def test_bad_options_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        ReplayOptions(rate=0)
    with pytest.raises(ValueError, match="not a regular expression"):
        ReplayOptions(topics="(")
    with pytest.raises(ValueError, match="start_offset"):
        ReplayOptions(start_offset=-1)
    with pytest.raises(ValueError, match="settle_timeout must be > 0"):
        ReplayOptions(settle_timeout=0)


def test_messages_for_devices_the_app_does_not_serve_are_counted(tmp_path: Path) -> None:
    trace = open_trace(
        write_trace(
            tmp_path / "t.mcap",
            [(1.0, event("cam-9", 1, "skunk", 0.9)), (2.0, event("cam-1", 1, "cat", 0.2))],
        )
    )
    result = replay(trace, lambda clock: make_node(clock), FAST)
    assert result.port_counters["unknown_device"] == 1
    assert result.port_counters["received"] == 1
    assert [r.device for r in result.outbound] == ["cam-1"]


def test_a_recorded_replay_is_a_reference_that_check_holds_later_replays_to(
    live_trace: Path, tmp_path: Path
) -> None:
    options = ReplayOptions(rate=None, record=RecorderConfig(tmp_path / "reference"))
    made = replay(open_trace(live_trace), lambda clock: make_node(clock, hold=LIVE_HOLD), options)

    reference = open_trace(tmp_path / "reference")
    live_in = [(r.ts, r.device, r.message) for r in open_trace(live_trace).records(direction="in")]
    assert [(r.ts, r.device, r.message) for r in reference.records(direction="in")] == live_in
    assert [(r.ts, r.device, r.message) for r in reference.records(direction="out")] == sorted(
        decisions_at(made), key=lambda r: r[0]
    )
    same = replay(reference, lambda clock: make_node(clock, hold=LIVE_HOLD), FAST, check=True)
    assert same.divergence is None
    stricter = replay(
        reference, lambda clock: make_node(clock, threshold=0.95, hold=LIVE_HOLD), FAST, check=True
    )
    assert stricter.divergence is not None


def decisions_at(result: Any) -> list[tuple[float, str, Any]]:
    return [(r.ts, r.device, r.message) for r in result.outbound]


def test_a_timer_recorded_last_still_fires_though_its_time_was_rounded_down(
    tmp_path: Path,
) -> None:
    """Traces keep whole nanoseconds, so a timer's output recorded last may carry a time a
    hair before the timer was due. The replay runs on to the last record's time and the
    trace's resolution beyond it, so that timer fires again and the check holds."""
    hold = 0.02
    for step in range(1, 10_000):  # an event time whose reopen timer rounds down
        at = from_ns(86_000_000_000_000 + 7919 * step)
        due = at + hold
        if due > from_ns(to_ns(due)):
            break
    else:
        pytest.fail("no event time found whose timer rounds down")
    skunk = event("cam-1", 1, "skunk", 0.9)
    records = [
        ("in", skunk, at),
        ("out", EventAck(device="cam-1", seq=1), at),
        (
            "out",
            Command(id=1, device="cam-1", name="close", args={"zone": skunk.zone, "seq": 1}),
            at,
        ),
        ("out", Command(id=2, device="cam-1", name="open", args={"cats": 0}), due),
    ]
    with TraceWriter(tmp_path / "t.mcap", info={"clock_start": "0.0"}) as writer:
        for direction, message, ts in records:
            writer.write(direction, "cam-1", message, ts)
    trace = open_trace(tmp_path / "t.mcap")
    assert [r.ts for r in trace.records(direction="out")][-1] < due  # rounded down

    result = replay(trace, lambda clock: make_node(clock, hold=hold), FAST, check=True)

    assert result.divergence is None, result.divergence.describe()
    assert [r.message for r in result.outbound] == [m for d, m, _ in records if d == "out"]
