"""``edgeloop bench trace``: what recording costs the node, and how fast a replay runs.

- ``recording_overhead``: events per second through a node's event path (inject at the
  device port, a twin per device acks each event, the ack leaves through the port) with a
  recorder tapping the boundary (edgeloop) and without (anchor), in interleaved rounds;
  goal ratio >= 0.8. The clock stops when the last ack has left the node *and* the
  recorder's writer has caught up, so the figure is a sustainable rate, not a burst the
  queue absorbed (drops, if any, are reported in the environment).
- ``replay_fast``: events per second of ``replay --fast`` (the player settles the node
  after every event) of a yard-like trace, 4 cameras at 50 events/s each, against that
  trace's own rate (anchor: replaying in real time). The ratio is the speed-up over real
  time; goal >= 10.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from edgeloop.actors import Actor
from edgeloop.bench._measure import interleave, median, timed_section
from edgeloop.bench._report import Result, SuiteResult
from edgeloop.clock import Clock
from edgeloop.messages import Event, EventAck, Message
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


def _events(sizes: Sizes, count: int) -> list[Event]:
    devices = _devices(sizes)
    return [
        Event(
            device=devices[i % len(devices)],
            seq=i // len(devices) + 1,
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


class _Acks:
    """The port's sink: counts acks and wakes the waiter when the round's last one left."""

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


def _event_round(node: Node, acks: _Acks, events: list[Event], recorder: Recorder | None) -> float:
    port = node.devices
    remove = port.add_tap(recorder.tap) if recorder is not None else None
    acks.expect(len(events))
    with timed_section():
        start = time.perf_counter()
        for event in events:
            port.inject(event.device, event)
        if not acks.done.wait(60.0):
            msg = f"only {acks.count} of {len(events)} acks left the node within 60 s"
            raise RuntimeError(msg)
        if recorder is not None:
            recorder.flush(60.0)  # sustained: the writer has caught up too
        elapsed = time.perf_counter() - start
    if remove is not None:
        remove()
    return len(events) / elapsed


def run_trace(quick: bool = False, *, sizes: Sizes | None = None) -> SuiteResult:
    """Run the ``trace`` suite: :data:`QUICK` sizes for CI, :data:`FULL` otherwise."""
    sizes = sizes or (QUICK if quick else FULL)
    events = _events(sizes, sizes.events)
    dropped = 0
    writer_cpu = 0.0
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-trace-") as tmp:
        base = Path(tmp)
        acks = _Acks()
        with _node(sizes) as node:
            node.devices.set_sink(acks)
            recorders: list[Recorder] = []

            def recorded() -> float:
                recorder = Recorder(RecorderConfig(base / f"r{len(recorders)}"))
                recorders.append(recorder)
                try:
                    return _event_round(node, acks, events, recorder)
                finally:
                    nonlocal dropped, writer_cpu
                    stats = recorder.close()
                    dropped += stats.dropped
                    writer_cpu += stats.writer_cpu

            def plain() -> float:
                return _event_round(node, acks, events, None)

            with_rec, without = interleave(sizes.rounds, recorded, plain)
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
            median(with_rec),
            median(without),
            "no recording",
            ">= 0.8",
        ),
        Result("replay_fast", "events/s", replay_rate, TRACE_RATE, "real time", ">= 10"),
    ]
    env = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "quick": quick,
        "recorder_dropped": dropped,
        # what the writer thread costs per record (two records per event: in and its ack)
        "writer_us_per_record": round(writer_cpu / (2 * len(events) * (sizes.rounds + 1)) * 1e6, 3),
        **dataclasses.asdict(sizes),
    }
    return SuiteResult("trace", tuple(results), env)
