"""Timing helpers shared by every suite: interleaved rounds, the timed loops, percentiles.

Fairness rules the suites follow:

- edgeloop and its anchor run in the same process, one after the other, in rounds ordered
  A B, B A, A B, ... so that drift and noise on a shared machine hit both sides alike;
  each side's figure is the median over rounds;
- both sides send the same message object, do the same work in their handlers and wait
  for completion the same way (the last message is a blocking ask, or the last actor of a
  pipeline puts into a ``queue.SimpleQueue``);
- every side gets one unrecorded warm-up round; the garbage collector runs before each
  timed round and is paused during it.
"""

from __future__ import annotations

import gc
import math
import queue
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = [
    "MESSAGE",
    "BURST",
    "FLUSH",
    "interleave",
    "median",
    "percentile",
    "pipeline_round",
    "tell_round",
    "timed_section",
]

T = TypeVar("T")

MESSAGE = ("reading", 1, 21.5)
"""The message every benchmark sends: small, immutable, shared by both sides."""

BURST = 1_000
"""Messages told between two waits in a throughput round.

A burst fits well within CPython's thread switch interval (5 ms), so the figure is the
CPU cost of the message path, sender and receiver together, rather than whichever way
the GIL happened to hand over between two busy threads (which swings a long stream's
rate by 5x from one round to the next on a 2-core machine).
"""

FLUSH = ("flush", 0, 0.0)
"""The last message of a pipeline round: the last actor answers it on a queue."""


@contextmanager
def timed_section() -> Iterator[None]:
    """Collect garbage now and keep the collector paused for the timed code."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def interleave(rounds: int, a: Callable[[], T], b: Callable[[], T]) -> tuple[list[T], list[T]]:
    """Run ``a`` and ``b`` once each unrecorded, then ``rounds`` times each, alternating
    which goes first (A B, B A, ...); returns each side's recorded values in order."""
    if rounds < 1:
        msg = f"rounds must be >= 1, got {rounds}"
        raise ValueError(msg)
    a()
    b()
    got_a: list[T] = []
    got_b: list[T] = []
    for index in range(rounds):
        if index % 2 == 0:
            got_a.append(a())
            got_b.append(b())
        else:
            got_b.append(b())
            got_a.append(a())
    return got_a, got_b


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (which must not be empty)."""
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by the nearest-rank method."""
    if not values:
        msg = "percentile of no values"
        raise ValueError(msg)
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def tell_round(
    tell: Callable[[Any], object], sync: Callable[[Any], object], n: int, burst: int = BURST
) -> float:
    """Tell ``n`` messages in bursts of ``burst``, each burst followed by a blocking ask
    that waits until the actor has handled it; messages per second."""
    message = MESSAGE
    bursts, rest = divmod(n, burst)
    sizes = [burst] * bursts + ([rest] if rest else [])
    with timed_section():
        start = time.perf_counter()
        for size in sizes:
            for _ in range(size):
                tell(message)
            sync(message)
        elapsed = time.perf_counter() - start
    return n / elapsed


def pipeline_round(
    tell_first: Callable[[Any], object], done: queue.SimpleQueue[int], n: int, hops: int
) -> float:
    """Stream ``n`` messages into a pipeline of ``hops`` actors and wait until the last
    actor has handled the last one; microseconds per message per hop."""
    message = MESSAGE
    with timed_section():
        start = time.perf_counter()
        for _ in range(n - 1):
            tell_first(message)
        tell_first(FLUSH)
        done.get()
        elapsed = time.perf_counter() - start
    return elapsed / (n * hops) * 1e6
