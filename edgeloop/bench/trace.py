"""``edgeloop bench trace``: what recording costs the node, and how fast a replay runs.

- ``recording_overhead``: events per second through a node's event path (inject at the
  device port, the real :class:`~edgeloop.sensors.SensorTwin` per device deduplicates,
  orders, acknowledges and delivers each event to a subscriber) with a recorder tapping
  the boundary (edgeloop) and without (anchor), in interleaved rounds; goal ratio >= 0.8.
  The recorder is the default one, whose files a writer process writes (the node's
  process only encodes each batch and pipes it), caught up at the end of each round.
  ``recording_overhead_thread`` is the same with the files written by the writer thread
  in the node's process (``RecorderConfig(writer="thread")``, what snapshot mode uses).
  The clock stops when the subscriber has every event *and* the recorder's writer has
  caught up, so the figure is a sustainable rate, not a burst the queue absorbed (drops,
  if any, are reported in the environment). ``recording_overhead_ack_only`` is the same
  with the smallest possible twin (acks each event, delivers nothing, so two records per
  event and almost no work to hide them behind) and the writer thread: the worst case,
  held to a looser 0.5.
- ``replay_fast``: events per second of ``replay --fast`` (the player settles the node
  after every event) of a yard-like trace, 4 cameras at 50 events/s each, against that
  trace's own rate (anchor: replaying in real time). The ratio is the speed-up over real
  time; goal >= 10.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from edgeloop.actors import Actor
from edgeloop.bench._measure import interleave, median, timed_section
from edgeloop.bench._report import Result, SuiteResult
from edgeloop.clock import Clock
from edgeloop.messages import DeviceStatus, Event, EventAck, Message
from edgeloop.sensors import SensorTwin
from edgeloop.supervisor import ChildSpec, DeviceMessage, Node, device_port
from edgeloop.trace import (
    Recorder,
    RecorderConfig,
    ReplayOptions,
    TraceWriter,
    open_trace,
    replay,
)

__all__ = ["run_trace", "Sizes", "QUICK", "FULL", "AckTwin"]


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    events: int
    rounds: int
    devices: int
    replay_events: int


QUICK = Sizes(events=2_000, rounds=3, devices=4, replay_events=500)
FULL = Sizes(events=20_000, rounds=7, devices=4, replay_events=5_000)

TRACE_RATE = 200.0
"""Events per second of the replayed trace (4 cameras at 50 Hz): its real-time rate."""


class AckTwin(Actor):
    """The smallest twin: registers for its device and acks every event."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.device = device

    def on_start(self) -> None:
        device_port(self.system).register(self.device, self.ref)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, DeviceMessage) and isinstance(message.message, Event):
            event = message.message
            device_port(self.system).send(self.device, EventAck(device=self.device, seq=event.seq))
        return None


def _devices(sizes: Sizes) -> list[str]:
    return [f"cam-{i}" for i in range(sizes.devices)]


def _node(sizes: Sizes, clock: Clock | None = None) -> Node:
    children = [ChildSpec(d, AckTwin, args={"device": d}) for d in _devices(sizes)]
    return Node("bench-trace", children=children, clock=clock, seed=1)


class _Counter(Actor):
    """The twins' subscriber: counts delivered events and wakes the waiter at the target."""

    def __init__(self, done: _Done) -> None:
        super().__init__()
        self.done = done

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Event):
            self.done(message.device, message)
        return None


def _twin_node(sizes: Sizes, done: _Done) -> Node:
    children = [ChildSpec("events", _Counter, args={"done": done})] + [
        ChildSpec(d, SensorTwin, args={"device": d, "subscribers": ["/events"], "frames": False})
        for d in _devices(sizes)
    ]
    return Node("bench-trace-twins", children=children, seed=1)


def _hello(device: str) -> DeviceStatus:
    """A device's first report: its stream starts at seq 1 (a fresh twin waits for it)."""
    return DeviceStatus(
        device=device,
        ts=0.0,
        boot=1,
        next_seq=1,
        oldest_seq=1,
        outbox_depth=0,
        outbox_dropped=0,
        frames_held=0,
        frames_evicted=0,
        head_version=1,
        config_version=1,
    )


def _events(sizes: Sizes, count: int, first_seq: int = 1) -> list[Event]:
    devices = _devices(sizes)
    return [
        Event(
            device=devices[i % len(devices)],
            seq=first_seq + i // len(devices),
            ts=float(i),
            zone="gate",
            label="cat",
            score=0.5,
            embedding=bytes(32),
            head_version=1,
            config_version=1,
        )
        for i in range(count)
    ]


class _Done:
    """Counts what leaves (acks at the port's sink, or events at the subscriber) and wakes
    the waiter when the round's last one has."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, device: str, message: Message) -> bool:
        with self._lock:
            self.count += 1
            if self.count >= self.target:
                self.done.set()
        return True

    def expect(self, n: int) -> None:
        with self._lock:
            self.count = 0
            self.target = n
            self.done.clear()


def _event_round(node: Node, acks: _Done, events: list[Event], recorder: Recorder | None) -> float:
    port = node.devices
    remove = port.add_tap(recorder.tap) if recorder is not None else None
    acks.expect(len(events))
    with timed_section():
        start = time.perf_counter()
        for event in events:
            port.inject(event.device, event)
        if not acks.done.wait(60.0):
            msg = f"only {acks.count} of {len(events)} left the node within 60 s"
            raise RuntimeError(msg)
        if recorder is not None:
            recorder.flush(60.0)  # sustained: the writer has caught up too
        elapsed = time.perf_counter() - start
    if remove is not None:
        remove()
    return len(events) / elapsed


@dataclasses.dataclass(slots=True)
class _Overhead:
    """Interleaved rounds with and without a recorder, and what the recorders cost."""

    with_recording: list[float]
    without: list[float]
    dropped: int = 0
    recorded: int = 0
    writer_cpu: float = 0.0
    process_cpu: float = 0.0


def _overhead(
    node: Node,
    done: _Done,
    events: Callable[[], list[Event]],
    base: Path,
    rounds: int,
    writer: Literal["auto", "thread", "process"],
) -> _Overhead:
    stats = _Overhead([], [])

    def recorded() -> float:
        # built before the round: a writer process has started (imported) by then
        recorder = Recorder(RecorderConfig(base / f"r{time.monotonic_ns()}", writer=writer))
        try:
            return _event_round(node, done, events(), recorder)
        finally:
            closed = recorder.close()
            stats.dropped += closed.dropped
            stats.recorded += closed.recorded
            stats.writer_cpu += closed.writer_cpu
            stats.process_cpu += closed.process_cpu

    def plain() -> float:
        return _event_round(node, done, events(), None)

    stats.with_recording, stats.without = interleave(rounds, recorded, plain)
    return stats


def run_trace(quick: bool = False, *, sizes: Sizes | None = None) -> SuiteResult:
    """Run the ``trace`` suite: :data:`QUICK` sizes for CI, :data:`FULL` otherwise."""
    sizes = sizes or (QUICK if quick else FULL)
    events = _events(sizes, sizes.events)
    per_device = sizes.events // sizes.devices
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-trace-") as tmp:
        base = Path(tmp)
        # The node's real event path: a SensorTwin per device, delivering to a subscriber.
        delivered = _Done()
        with _twin_node(sizes, delivered) as node:
            node.devices.set_sink(lambda device, message: True)
            for device in _devices(sizes):  # as a device does when its link comes up
                node.devices.inject(device, _hello(device))
            next_seq = itertools.count(0)

            def fresh() -> list[Event]:  # twins drop repeats: every round numbers anew
                return _events(sizes, sizes.events, 1 + next(next_seq) * per_device)

            piped = _overhead(node, delivered, fresh, base, sizes.rounds, "auto")
            threaded = _overhead(node, delivered, fresh, base, sizes.rounds, "thread")
        # The worst case: a twin that does nothing but ack each event.
        acks = _Done()
        with _node(sizes) as node:
            node.devices.set_sink(acks)
            bare = _overhead(node, acks, lambda: events, base, sizes.rounds, "thread")
        path = base / "yard.mcap"
        with TraceWriter(path, info={"clock_start": "0.0"}) as writer:
            for index, event in enumerate(events[: sizes.replay_events]):
                writer.write("in", event.device, event, (index + 1) / TRACE_RATE)
        result = replay(
            open_trace(path), lambda clock: _node(sizes, clock), ReplayOptions(rate=None)
        )
        replay_rate = result.injected / result.wall_seconds
    results = [
        Result(
            "recording_overhead",
            "events/s",
            median(piped.with_recording),
            median(piped.without),
            "no recording",
            ">= 0.8",
        ),
        Result(
            "recording_overhead_thread",
            "events/s",
            median(threaded.with_recording),
            median(threaded.without),
            "no recording",
            ">= 0.8",
        ),
        Result(
            "recording_overhead_ack_only",
            "events/s",
            median(bare.with_recording),
            median(bare.without),
            "no recording",
            ">= 0.5",
        ),
        Result("replay_fast", "events/s", replay_rate, TRACE_RATE, "real time", ">= 10"),
    ]
    records = threaded.recorded + bare.recorded
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "quick": quick,
        "recorder_dropped": threaded.dropped + bare.dropped + piped.dropped,
        # what the writer thread costs the node's process per record: writing the files
        # itself, and with a writer process (encode each batch, pipe it)
        "writer_us_per_record": round((threaded.writer_cpu + bare.writer_cpu) / records * 1e6, 3)
        if records
        else None,
        "process_writer_us_per_record": round(piped.writer_cpu / piped.recorded * 1e6, 3)
        if piped.recorded
        else None,
        # and what the writer process itself spends (decoding, MCAP, compression): on a
        # machine without a spare core it competes with the node for the CPUs
        "writer_process_us_per_record": round(piped.process_cpu / piped.recorded * 1e6, 3)
        if piped.recorded
        else None,
        **dataclasses.asdict(sizes),
    }
    return SuiteResult("trace", tuple(results), env)
