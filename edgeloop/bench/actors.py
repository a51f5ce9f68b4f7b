"""The ``actors`` suite: edgeloop's message path against raw pykka, in the same run.

Results (the ratio is always ``edgeloop / anchor``):

``tell_throughput``
    messages per second told into one actor, finished by a blocking ask behind them
    (goal: ratio >= 0.8);
``ask_latency_p50``, ``ask_latency_p99``
    microseconds per blocking ask round trip: edgeloop's ``ref.ask(m).get()`` against
    pykka's ``ref.ask(m)``; each round's percentile, median over rounds (goal <= 1.25);
``pipeline8_hop``
    microseconds per message per hop through 8 actors that each forward to the next,
    messages streamed in and the last one answered on a queue (goal <= 1.25);
``supervised_tell_throughput``
    ``tell_throughput`` into an actor that is a child of a :class:`Supervisor`, against
    the same edgeloop actor spawned without one: supervision costs nothing on the
    message path (goal >= 0.95).

Both sides use their defaults (edgeloop's bounded mailbox and ask timeout, pykka's
unbounded inbox and untimed ask); see :mod:`edgeloop.bench._measure` for the fairness
rules.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import queue
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

from edgeloop.actors import Actor, ActorRef, ActorSystem
from edgeloop.bench._measure import (
    FLUSH,
    MESSAGE,
    interleave,
    median,
    percentile,
    pipeline_round,
    tell_round,
    timed_section,
)
from edgeloop.bench._pykka_anchor import PykkaSide
from edgeloop.bench._report import Result, SuiteResult
from edgeloop.supervisor import ChildSpec, Supervisor

__all__ = ["Sizes", "FULL", "QUICK", "run_actors"]

HOPS = 8


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    """How much each result measures: rounds per side and messages per round."""

    rounds: int
    tell_messages: int
    asks: int
    pipeline_messages: int


FULL = Sizes(rounds=8, tell_messages=20_000, asks=2_000, pipeline_messages=2_000)
"""The sizes whose figures are reported (a few seconds on a 2-core machine)."""
QUICK = Sizes(rounds=4, tell_messages=2_000, asks=500, pipeline_messages=200)
"""CI-sized (about a second): proves the suite runs; its ratios are too noisy to judge by."""


class _Side(Protocol):
    name: str

    def tell_round(self, n: int) -> float: ...

    def ask_round(self, n: int) -> list[float]: ...

    def pipeline_round(self, n: int) -> float: ...

    def close(self) -> None: ...


# -- edgeloop's side: the same handlers as the pykka anchor --------------------------------


class _Sink(Actor):
    def __init__(self) -> None:
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        return self.count


class _Forward(Actor):
    def __init__(self, next_ref: ActorRef) -> None:
        self.next = next_ref

    def on_receive(self, message: Any) -> Any:
        self.next.tell(message)


class _Last(Actor):
    def __init__(self, done: queue.SimpleQueue[int]) -> None:
        self.done = done
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        if message is FLUSH:
            self.done.put(self.count)


def _sync(ref: ActorRef) -> Callable[[Any], object]:
    def sync(message: Any) -> object:
        return ref.ask(message).get()

    return sync


class _EdgeloopSide:
    """A sink actor (plain or a supervisor's child) and, optionally, a pipeline."""

    def __init__(
        self, system: ActorSystem, prefix: str, *, supervised: bool = False, hops: int = 0
    ) -> None:
        self.name = "edgeloop (supervised)" if supervised else "edgeloop"
        self.hops = hops
        self.supervisor: ActorRef | None = None
        if supervised:
            children = [ChildSpec("sink", _Sink)]
            self.supervisor = system.spawn(Supervisor, f"{prefix}/sup", args={"children": children})
            sink = system.lookup(f"{prefix}/sup/sink")
            assert sink is not None, "the supervisor started its child in on_start"
            self.sink = sink
        else:
            self.sink = system.spawn(_Sink, f"{prefix}/sink")
        self.done: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.first: ActorRef | None = None
        if hops:
            ref = system.spawn(_Last, f"{prefix}/pipe-{hops - 1}", args={"done": self.done})
            for index in range(hops - 2, -1, -1):
                ref = system.spawn(_Forward, f"{prefix}/pipe-{index}", args={"next_ref": ref})
            self.first = ref

    def tell_round(self, n: int) -> float:
        return tell_round(self.sink.tell, _sync(self.sink), n)

    def ask_round(self, n: int) -> list[float]:
        ask = self.sink.ask
        clock = time.perf_counter_ns
        message = MESSAGE
        samples = [0] * n
        with timed_section():
            for index in range(n):
                start = clock()
                ask(message).get()
                samples[index] = clock() - start
        return [sample / 1e3 for sample in samples]

    def pipeline_round(self, n: int) -> float:
        assert self.first is not None, "this side was built without a pipeline"
        return pipeline_round(self.first.tell, self.done, n, self.hops)

    def close(self) -> None:
        """Stop the supervisor (it stops its child); the system stops the other actors."""
        if self.supervisor is not None:
            self.supervisor.stop()
            self.supervisor.wait_stopped(5.0)


# -- the suite -------------------------------------------------------------------------


def _tell(
    name: str, a: _Side, b: _Side, sizes: Sizes, goal: str, anchor_name: str | None = None
) -> Result:
    got_a, got_b = interleave(
        sizes.rounds,
        lambda: a.tell_round(sizes.tell_messages),
        lambda: b.tell_round(sizes.tell_messages),
    )
    return Result(name, "msg/s", median(got_a), median(got_b), anchor_name or b.name, goal)


def _ask(edgeloop: _Side, anchor: _Side, sizes: Sizes) -> list[Result]:
    got_a, got_b = interleave(
        sizes.rounds,
        lambda: edgeloop.ask_round(sizes.asks),
        lambda: anchor.ask_round(sizes.asks),
    )
    results = []
    for q in (50, 99):
        a = median([percentile(samples, q) for samples in got_a])
        b = median([percentile(samples, q) for samples in got_b])
        results.append(Result(f"ask_latency_p{q}", "µs", a, b, anchor.name, "<= 1.25"))
    return results


def _pipeline(edgeloop: _Side, anchor: _Side, sizes: Sizes) -> Result:
    got_a, got_b = interleave(
        sizes.rounds,
        lambda: edgeloop.pipeline_round(sizes.pipeline_messages),
        lambda: anchor.pipeline_round(sizes.pipeline_messages),
    )
    return Result(f"pipeline{HOPS}_hop", "µs", median(got_a), median(got_b), anchor.name, "<= 1.25")


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def environment(sizes: Sizes, *, quick: bool) -> dict[str, Any]:
    """What produced the figures: interpreter, machine (and how busy it was when the run
    began: ``load_1m`` above ``cpus`` means other work competed), versions, run sizes."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "switch_interval_s": sys.getswitchinterval(),
        "edgeloop": _version("edgeloop"),
        "pykka": _version("pykka"),
        "quick": quick,
        **dataclasses.asdict(sizes),
    }


def run_actors(quick: bool = False, *, sizes: Sizes | None = None) -> SuiteResult:
    """Run the ``actors`` suite: :data:`QUICK` sizes for CI, :data:`FULL` otherwise."""
    sizes = sizes or (QUICK if quick else FULL)
    env = environment(sizes, quick=quick)
    system = ActorSystem("bench")
    sides: list[_Side] = []
    try:
        edgeloop = _EdgeloopSide(system, "/bench/plain", hops=HOPS)
        sides.append(edgeloop)
        supervised = _EdgeloopSide(system, "/bench/supervised", supervised=True)
        sides.append(supervised)
        anchor = PykkaSide(HOPS)
        sides.append(anchor)
        results = [
            _tell("tell_throughput", edgeloop, anchor, sizes, ">= 0.8"),
            *_ask(edgeloop, anchor, sizes),
            _pipeline(edgeloop, anchor, sizes),
            _tell(
                "supervised_tell_throughput",
                supervised,
                edgeloop,
                sizes,
                ">= 0.95",
                "edgeloop (unsupervised)",
            ),
        ]
    finally:
        for side in reversed(sides):
            side.close()
        system.close()
    return SuiteResult("actors", tuple(results), env)
