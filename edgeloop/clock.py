"""Time comes from the node: one injected clock, real or virtual.

Everything that reads time or waits for it (restart windows, backoff, heartbeats, replay)
takes a :class:`Clock`, so tests and replays run on a :class:`VirtualClock` that only moves
when told to, and the same code runs in production on a :class:`MonotonicClock`.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import structlog

__all__ = ["Clock", "Timer", "MonotonicClock", "VirtualClock", "exponential_backoff"]


def exponential_backoff(
    minimum: float, maximum: float, random_factor: float, attempt: int, u: float
) -> float:
    """Akka's backoff: ``min(maximum, minimum * 2**attempt) * (1 + u * random_factor)``.

    ``attempt`` counts from 0 and ``u`` is a draw in ``[0, 1)`` passed in, so callers stay
    pure. ``ldexp`` doubles exactly and, past the float range, overflows into ``maximum``
    (Akka caps at 30 doublings to spare its integer nanoseconds; a float needs no cap, and
    one would break the formula when ``maximum / minimum > 2**30``). Supervisor restarts
    and link reconnects both wait by this formula.
    """
    try:
        grown = math.ldexp(minimum, attempt)
    except OverflowError:
        grown = math.inf
    return min(maximum, grown) * (1.0 + u * random_factor)


_log = structlog.get_logger("edgeloop.clock")


@runtime_checkable
class Timer(Protocol):
    """A scheduled callback that can still be cancelled."""

    def cancel(self) -> None:
        """Stop the callback from running; does nothing if it already ran."""


@runtime_checkable
class Clock(Protocol):
    """Monotonic seconds plus a way to run a callback later."""

    def now(self) -> float:
        """Seconds on a monotonic scale; only differences mean anything."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` (in the clock's own thread) once ``delay`` seconds have passed.

        Callbacks must be quick and must not raise: hand work to an actor with ``tell``.
        """

    def close(self) -> None:
        """Cancel every pending callback and release the clock's thread, if any."""


class _Entry:
    """One pending callback; ``cancelled`` is only ever set, never cleared."""

    __slots__ = ("callback", "cancelled", "due")

    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


_COMPACT_MIN = 1024
"""The smallest heap a :class:`_Schedule` compacts (cancelled entries dropped)."""


class _Schedule:
    """A heap of entries ordered by due time, ties broken by insertion order.

    A cancelled entry leaves the heap when it reaches the top, or when the heap has
    doubled since it was last compacted: a node that asks thousands of times a second,
    each ask with a timer cancelled by its reply, keeps a heap the size of what is live.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Entry]] = []
        self._order = itertools.count()
        self._compact_at = _COMPACT_MIN

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, entry: _Entry) -> None:
        heap = self._heap
        if len(heap) >= self._compact_at:
            heap[:] = [item for item in heap if not item[2].cancelled]
            heapq.heapify(heap)
            self._compact_at = max(_COMPACT_MIN, 2 * len(heap))
        heapq.heappush(heap, (entry.due, next(self._order), entry))

    def next_due(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> _Entry | None:
        due = self.next_due()
        if due is None or due > now:
            return None
        return heapq.heappop(self._heap)[2]

    def clear(self) -> None:
        for _, _, entry in self._heap:
            entry.cancel()
        self._heap.clear()


class MonotonicClock:
    """Real time from :func:`time.monotonic`; callbacks run on one lazily started thread.

    A callback that raises is logged (``clock_callback_failed``) and the clock goes on, so
    one faulty callback cannot silence every later timer of the node.
    """

    def __init__(self) -> None:
        self._schedule = _Schedule()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        # When the thread sleeps, the due time it sleeps until (inf: none); -inf while it
        # is awake and will look at the schedule before it sleeps again.
        self._sleeps_until = -math.inf

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        entry = _Entry(time.monotonic() + max(0.0, delay), callback)
        with self._cond:
            if self._closed:
                entry.cancel()
                return entry
            self._schedule.push(entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="edgeloop-clock", daemon=True
                )
                self._thread.start()
            elif entry.due < self._sleeps_until:
                # Only a callback due before the thread's wake-up needs it woken: an ask's
                # timeout (due after the ones already set) costs no thread switch.
                self._cond.notify()
        return entry

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._schedule.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    entry = self._schedule.pop_due(time.monotonic())
                    if entry is not None:
                        break
                    due = self._schedule.next_due()
                    # Condition.wait refuses timeouts beyond TIMEOUT_MAX (OverflowError).
                    wait = (
                        None if due is None else min(due - time.monotonic(), threading.TIMEOUT_MAX)
                    )
                    self._sleeps_until = math.inf if due is None else due
                    self._cond.wait(wait)
                    self._sleeps_until = -math.inf
            if not entry.cancelled:
                try:
                    entry.callback()
                except Exception as error:  # noqa: BLE001 - the clock thread must go on
                    _log.error(
                        "clock_callback_failed",
                        callback=getattr(entry.callback, "__qualname__", repr(entry.callback)),
                        exc_info=error,
                    )


class VirtualClock:
    """A clock that moves only when told to: :meth:`advance` runs what fell due, in order.

    Callbacks run in the thread that calls :meth:`advance`, at their due time (``now()``
    reads the callback's due time while it runs), so a test or a replay decides exactly
    when time passes.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._schedule = _Schedule()
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        entry = _Entry(self._now + max(0.0, delay), callback)
        with self._lock:
            self._schedule.push(entry)
        return entry

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, running every callback that falls due.

        ``seconds`` must be finite and >= 0, else :class:`ValueError`.
        """
        if not (seconds >= 0 and math.isfinite(seconds)):  # also refuses NaN
            msg = f"a clock moves forward by a finite amount of seconds (advance({seconds}))"
            raise ValueError(msg)
        target = self._now + seconds
        while True:
            with self._lock:
                entry = self._schedule.pop_due(target)
            if entry is None:
                break
            self._now = max(self._now, entry.due)
            if not entry.cancelled:
                entry.callback()
        self._now = target

    def pending(self) -> int:
        """How many callbacks are scheduled and not cancelled."""
        with self._lock:
            return sum(1 for _, _, e in self._schedule._heap if not e.cancelled)

    def next_due(self) -> float | None:
        """When the next pending callback falls due, or ``None``."""
        with self._lock:
            return self._schedule.next_due()

    def close(self) -> None:
        with self._lock:
            self._schedule.clear()
