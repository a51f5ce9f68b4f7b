"""Clocks: the virtual clock tests and replays drive, and the real monotonic one."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from edgeloop.clock import Clock, MonotonicClock, Timer, VirtualClock

WAIT = 5.0


def clock_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "edgeloop-clock" and t.is_alive()]


# -- VirtualClock ------------------------------------------------------------------------


def test_virtual_clock_starts_where_told_and_moves_only_on_advance() -> None:
    """now() stays at the start value until advance() moves it by exactly that much."""
    clock = VirtualClock(start=100.0)
    assert clock.now() == 100.0
    assert clock.now() == 100.0
    clock.advance(2.5)
    assert clock.now() == 102.5
    clock.advance(0)
    assert clock.now() == 102.5


def test_advance_runs_callbacks_in_due_order() -> None:
    """advance() runs every callback that fell due, earliest first, ties in schedule order."""
    clock = VirtualClock()
    ran: list[str] = []
    clock.call_later(3.0, lambda: ran.append("c"))
    clock.call_later(1.0, lambda: ran.append("a"))
    clock.call_later(2.0, lambda: ran.append("b1"))
    clock.call_later(2.0, lambda: ran.append("b2"))
    clock.call_later(9.0, lambda: ran.append("late"))
    clock.advance(5.0)
    assert ran == ["a", "b1", "b2", "c"]
    assert clock.pending() == 1
    assert clock.next_due() == 9.0


def test_callbacks_not_yet_due_wait_for_a_later_advance() -> None:
    """A callback runs only once the clock has reached its due time, across advances."""
    clock = VirtualClock()
    ran: list[float] = []
    clock.call_later(1.0, lambda: ran.append(clock.now()))
    clock.advance(0.4)
    clock.advance(0.5)
    assert ran == []
    clock.advance(0.1)
    assert ran == [1.0]
    clock.advance(10)
    assert ran == [1.0]


def test_now_reads_the_due_time_inside_a_callback() -> None:
    """Inside a callback, now() is that callback's due time; afterwards it is the target."""
    clock = VirtualClock(start=10.0)
    seen: list[float] = []
    for delay in (0.5, 2.0, 1.25):
        clock.call_later(delay, lambda: seen.append(clock.now()))
    clock.advance(3.0)
    assert seen == [10.5, 11.25, 12.0]
    assert clock.now() == 13.0


def test_cancel_stops_a_callback() -> None:
    """A cancelled callback never runs; cancelling again or after it ran is harmless."""
    clock = VirtualClock()
    ran: list[str] = []
    cancelled = clock.call_later(1.0, lambda: ran.append("cancelled"))
    kept = clock.call_later(1.0, lambda: ran.append("kept"))
    cancelled.cancel()
    cancelled.cancel()
    assert clock.pending() == 1
    clock.advance(1.0)
    kept.cancel()
    assert ran == ["kept"]
    assert clock.pending() == 0
    assert clock.next_due() is None


def test_callback_can_cancel_a_later_one() -> None:
    """A callback that cancels another still pending in the same advance prevents it."""
    clock = VirtualClock()
    ran: list[str] = []
    second = clock.call_later(2.0, lambda: ran.append("second"))
    clock.call_later(1.0, second.cancel)
    clock.advance(5.0)
    assert ran == []


def test_callback_scheduled_by_a_callback_runs_in_the_same_advance() -> None:
    """A callback that schedules another inside the window sees it run at its own due time."""
    clock = VirtualClock()
    seen: list[tuple[str, float]] = []

    def first() -> None:
        seen.append(("first", clock.now()))
        clock.call_later(1.0, lambda: seen.append(("second", clock.now())))
        clock.call_later(5.0, lambda: seen.append(("beyond", clock.now())))

    clock.call_later(1.0, first)
    clock.advance(3.0)
    assert seen == [("first", 1.0), ("second", 2.0)]
    assert clock.next_due() == 6.0


def test_negative_delay_means_now() -> None:
    """call_later with a negative delay falls due at once (on the next advance, even by 0)."""
    clock = VirtualClock(start=5.0)
    ran: list[float] = []
    clock.call_later(-3.0, lambda: ran.append(clock.now()))
    clock.advance(0)
    assert ran == [5.0]


@pytest.mark.parametrize("seconds", [-1.0, -1e-9, math.nan, math.inf, -math.inf])
def test_advance_refuses_to_go_backwards_or_nowhere(seconds: float) -> None:
    """advance() with a negative or non-finite amount raises ValueError and changes nothing."""
    clock = VirtualClock(start=1.0)
    ran: list[int] = []
    clock.call_later(1.0, lambda: ran.append(1))
    with pytest.raises(ValueError, match="advance"):
        clock.advance(seconds)
    assert clock.now() == 1.0
    assert ran == []


def test_virtual_close_cancels_everything() -> None:
    """close() cancels every pending callback."""
    clock = VirtualClock()
    ran: list[int] = []
    clock.call_later(1.0, lambda: ran.append(1))
    clock.close()
    clock.advance(2.0)
    assert ran == []
    assert clock.pending() == 0


@given(
    delays=st.lists(st.floats(0, 100, allow_nan=False), max_size=30),
    steps=st.lists(st.floats(0, 30, allow_nan=False), max_size=15),
)
def test_every_callback_runs_once_at_its_due_time(delays: list[float], steps: list[float]) -> None:
    """Whatever the steps, each callback runs once, at its due time, in due order, and only
    once an advance has reached it."""
    clock = VirtualClock()
    ran: list[tuple[int, float]] = []
    for index, delay in enumerate(delays):
        clock.call_later(delay, lambda index=index: ran.append((index, clock.now())))
    for step in steps:
        clock.advance(step)
    clock.advance(0)
    reached = clock.now()
    expected = sorted(
        ((i, d) for i, d in enumerate(delays) if d <= reached), key=lambda item: (item[1], item[0])
    )
    assert ran == expected
    assert clock.pending() == len(delays) - len(expected)


def test_clocks_follow_the_protocol() -> None:
    """Both clocks are Clocks, and call_later returns a Timer."""
    virtual = VirtualClock()
    real = MonotonicClock()
    try:
        assert isinstance(virtual, Clock)
        assert isinstance(real, Clock)
        assert isinstance(virtual.call_later(1, lambda: None), Timer)
    finally:
        real.close()


# -- MonotonicClock ------------------------------------------------------------------------


def test_monotonic_now_never_goes_backwards() -> None:
    """MonotonicClock.now() never decreases."""
    clock = MonotonicClock()
    readings = [clock.now() for _ in range(1000)]
    assert readings == sorted(readings)
    clock.close()


def test_monotonic_call_later_fires() -> None:
    """A callback scheduled on the real clock runs after its delay, in the clock's thread."""
    clock = MonotonicClock()
    fired = threading.Event()
    where: list[str] = []
    scheduled_at = clock.now()
    seen_at: list[float] = []

    def callback() -> None:
        where.append(threading.current_thread().name)
        seen_at.append(clock.now())
        fired.set()

    try:
        clock.call_later(0.02, callback)
        assert fired.wait(WAIT)
    finally:
        clock.close()
    assert where == ["edgeloop-clock"]
    assert seen_at[0] - scheduled_at >= 0.02


def test_monotonic_callbacks_run_in_due_order() -> None:
    """Callbacks on the real clock run in due order, not in the order they were scheduled."""
    clock = MonotonicClock()
    ran: list[str] = []
    done = threading.Event()
    try:
        clock.call_later(0.06, lambda: (ran.append("third"), done.set()))
        clock.call_later(0.02, lambda: ran.append("first"))
        clock.call_later(0.04, lambda: ran.append("second"))
        assert done.wait(WAIT)
    finally:
        clock.close()
    assert ran == ["first", "second", "third"]


def test_monotonic_cancel_stops_a_callback() -> None:
    """A cancelled callback on the real clock never runs, while a later one does."""
    clock = MonotonicClock()
    ran: list[str] = []
    done = threading.Event()
    try:
        timer = clock.call_later(0.01, lambda: ran.append("cancelled"))
        timer.cancel()
        clock.call_later(0.03, lambda: (ran.append("kept"), done.set()))
        assert done.wait(WAIT)
    finally:
        clock.close()
    assert ran == ["kept"]


def test_monotonic_close_stops_its_thread_and_pending_callbacks() -> None:
    """close() ends the clock's thread and drops what was pending; later calls do nothing."""
    clock = MonotonicClock()
    ran: list[str] = []
    clock.call_later(WAIT * 10, lambda: ran.append("never"))
    assert len(clock_threads()) == 1
    clock.close()
    assert clock_threads() == []
    timer = clock.call_later(0, lambda: ran.append("after close"))
    timer.cancel()
    assert clock_threads() == []
    clock.close()
    assert ran == []


def test_monotonic_clock_starts_no_thread_until_needed() -> None:
    """A clock that never scheduled anything has no thread, and closes cleanly."""
    clock = MonotonicClock()
    assert clock_threads() == []
    clock.close()


def test_monotonic_clock_can_be_closed_from_its_own_callback() -> None:
    """close() called inside a callback ends the clock without deadlocking."""
    clock = MonotonicClock()
    closed = threading.Event()

    def close_from_inside() -> None:
        clock.close()
        closed.set()

    clock.call_later(0, close_from_inside)
    assert closed.wait(WAIT)
    for thread in clock_threads():
        thread.join(WAIT)
    assert clock_threads() == []


@pytest.mark.parametrize("delay", [math.inf, 1e12])
def test_monotonic_far_future_callback_does_not_stall_the_clock(delay: float) -> None:
    """A callback due in the far future neither crashes the clock thread nor delays others."""
    clock = MonotonicClock()
    fired = threading.Event()
    try:
        clock.call_later(delay, lambda: None)
        clock.call_later(0.01, fired.set)
        assert fired.wait(WAIT)
    finally:
        clock.close()


class _CountingCondition(threading.Condition):
    """A condition that counts its notifications: how often the clock woke its thread."""

    def __init__(self) -> None:
        super().__init__()
        self.notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        super().notify(n)


def test_monotonic_timers_due_later_do_not_wake_the_clock_thread() -> None:
    """Timers due after the one the thread sleeps until (an ask's timeout, cancelled by
    its reply, one per ask) cost no wake-up; one due earlier wakes it and runs on time."""
    clock = MonotonicClock()
    condition = _CountingCondition()
    clock._cond = condition
    fired = threading.Event()
    try:
        clock.call_later(WAIT * 10, lambda: None)
        for _ in range(200):
            clock.call_later(WAIT * 20, lambda: None).cancel()
        assert condition.notified == 0
        clock.call_later(0.01, fired.set)
        assert fired.wait(WAIT)
    finally:
        clock.close()


def test_monotonic_cancelled_timers_do_not_pile_up() -> None:
    """Thousands of cancelled timers due far ahead are dropped as the heap grows, so it
    stays the size of what is live; the live ones still run."""
    clock = MonotonicClock()
    fired = threading.Event()
    try:
        clock.call_later(0.05, fired.set)
        for _ in range(20_000):
            clock.call_later(WAIT * 20, lambda: None).cancel()
            assert len(clock._schedule) <= 2 * 1024
        assert fired.wait(WAIT)
    finally:
        clock.close()


def test_monotonic_raising_callback_is_logged_and_the_clock_goes_on() -> None:
    """A callback that raises is logged as clock_callback_failed; later callbacks still run."""
    clock = MonotonicClock()
    fired = threading.Event()

    def broken() -> None:
        raise RuntimeError("callback bug")

    try:
        with capture_logs() as logs:
            clock.call_later(0, broken)
            clock.call_later(0.02, fired.set)
            assert fired.wait(WAIT)
    finally:
        clock.close()
    assert [e["event"] for e in logs] == ["clock_callback_failed"]
