"""Asks and their futures: replies, failures, timeouts and callbacks."""

from __future__ import annotations

import math
import queue
import threading
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from edgeloop.actors import Actor, ActorSystem, Future
from edgeloop.errors import ActorDeadError, AskTimeout
from tests.actors.helpers import WAIT, Probe


def test_ask_returns_the_reply(system: ActorSystem) -> None:
    """ask(...).get() returns what the handler returned."""
    ref = system.spawn(Probe, "/p")
    future = ref.ask(("echo", {"x": 1}), timeout=WAIT)
    assert future.get() == {"x": 1}
    assert future.done()
    assert future.exception() is None
    assert repr(future) == "<Future done for /p>"


def test_handler_error_reaches_the_asker_and_crashes_the_actor(system: ActorSystem) -> None:
    """The exception a handler raises fails the ask with that same exception and crashes
    the actor."""
    error = ZeroDivisionError("bad divisor")
    ref = system.spawn(Probe, "/p")
    future = ref.ask(("raise", error), timeout=WAIT)
    with pytest.raises(ZeroDivisionError) as info:
        future.get()
    assert info.value is error
    assert future.exception() is error
    assert repr(future) == "<Future failed for /p>"
    assert ref.wait_stopped(WAIT)
    assert ref.exit_reason is not None
    assert ref.exit_reason.kind == "crash"
    assert ref.exit_reason.error is error


def test_ask_queued_behind_a_crash_fails_with_actor_dead(system: ActorSystem) -> None:
    """An ask still waiting when the actor dies fails with ActorDeadError."""
    gate = threading.Event()
    entered = threading.Event()
    ref = system.spawn(Probe, "/p", args={"gate": gate, "entered": entered})
    ref.tell("block")
    assert entered.wait(WAIT)
    ref.tell(("raise", RuntimeError("boom")))
    future = ref.ask(("echo", 1), timeout=WAIT)
    gate.set()
    with pytest.raises(ActorDeadError, match="look the path up again"):
        future.get()


def test_ask_without_a_reply_times_out(system: ActorSystem, gate: threading.Event) -> None:
    """get() raises AskTimeout once the ask's timeout has passed, and does not wait longer."""
    entered = threading.Event()
    ref = system.spawn(Probe, "/p", args={"gate": gate, "entered": entered})
    ref.tell("block")
    assert entered.wait(WAIT)
    future = ref.ask(("echo", 1), timeout=0.05)
    started = time.monotonic()
    with pytest.raises(AskTimeout, match="no answer from /p within the ask's timeout") as info:
        future.get()
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - started < WAIT
    assert not future.done()
    with pytest.raises(AskTimeout):
        future.get(timeout=WAIT)  # a longer get() still stops at the ask's deadline
    assert time.monotonic() - started < WAIT


def test_get_timeout_shorter_than_the_ask_is_respected(
    system: ActorSystem, gate: threading.Event
) -> None:
    """get(timeout) shorter than the ask's timeout raises AskTimeout after get's timeout."""
    entered = threading.Event()
    ref = system.spawn(Probe, "/p", args={"gate": gate, "entered": entered})
    ref.tell("block")
    assert entered.wait(WAIT)
    future = ref.ask(("echo", 1), timeout=WAIT * 10)
    with pytest.raises(AskTimeout, match=r"within 0\.02 s"):
        future.get(timeout=0.02)
    with pytest.raises(AskTimeout):
        future.exception(timeout=0.0)
    gate.set()
    assert future.get(timeout=WAIT) == 1


def test_a_callback_after_the_deadline_sees_ask_timeout(
    system: ActorSystem, gate: threading.Event
) -> None:
    """Once an ask's deadline has passed, a callback added to it runs with AskTimeout, and
    the reply that comes later is dropped: the future stays failed."""
    entered = threading.Event()
    ref = system.spawn(Probe, "/p", args={"gate": gate, "entered": entered})
    ref.tell("block")
    assert entered.wait(WAIT)
    future = ref.ask(("echo", "late"), timeout=0.01)
    with pytest.raises(AskTimeout):
        future.get()
    outcome: queue.Queue[BaseException | None] = queue.Queue()
    future.add_done_callback(lambda f: outcome.put(f.exception()))
    assert isinstance(outcome.get(timeout=WAIT), AskTimeout)
    gate.set()
    assert ref.ask(("echo", "after")).get(WAIT) == "after"
    assert isinstance(future.exception(), AskTimeout)


def test_ask_to_a_dead_ref_fails_at_once(system: ActorSystem) -> None:
    """An ask to a stopped actor returns a future that has already failed with
    ActorDeadError, and the message is a dead letter."""
    ref = system.spawn(Probe, "/p")
    ref.stop()
    assert ref.wait_stopped(WAIT)
    future = ref.ask("hello", timeout=WAIT)
    assert future.done()
    assert isinstance(future.exception(timeout=0), ActorDeadError)
    assert system.dead_letters.recent()[-1].message == "hello"


def test_callback_runs_once_when_the_reply_arrives(
    system: ActorSystem, gate: threading.Event
) -> None:
    """A callback added before the reply runs exactly once, in the actor's thread."""
    entered = threading.Event()
    ref = system.spawn(Probe, "/p", args={"gate": gate, "entered": entered})
    ref.tell("block")
    assert entered.wait(WAIT)
    future = ref.ask(("echo", 7), timeout=WAIT)
    calls: list[tuple[Any, str]] = []
    called = threading.Event()

    def callback(f: Future[Any]) -> None:
        calls.append((f.get(), threading.current_thread().name))
        called.set()

    future.add_done_callback(callback)
    assert calls == []
    gate.set()
    assert called.wait(WAIT)
    assert future.get() == 7
    assert calls == [(7, "edgeloop:/p")]


def test_callback_on_a_done_future_runs_immediately(system: ActorSystem) -> None:
    """A callback added to a completed future runs at once, in the caller's thread."""
    ref = system.spawn(Probe, "/p")
    future = ref.ask(("echo", 3), timeout=WAIT)
    assert future.get() == 3
    calls: list[str] = []
    future.add_done_callback(lambda _f: calls.append(threading.current_thread().name))
    assert calls == [threading.current_thread().name]


def test_every_callback_runs_once_in_order() -> None:
    """Several callbacks each run once, in the order they were added."""
    future: Future[int] = Future()
    calls: list[int] = []
    for i in range(3):
        future.add_done_callback(lambda _f, i=i: calls.append(i))
    future.set_result(1)
    future.add_done_callback(lambda _f: calls.append(3))
    assert calls == [0, 1, 2, 3]


def test_completing_twice_is_an_error() -> None:
    """Setting a result or an exception on a completed future raises RuntimeError."""
    future: Future[int] = Future(describe="/x")
    future.set_exception(ValueError("first"))
    with pytest.raises(RuntimeError, match="/x was already answered"):
        future.set_result(1)
    with pytest.raises(RuntimeError):
        future.set_exception(ValueError("second"))
    assert isinstance(future.exception(), ValueError)


def test_future_without_deadline_waits_for_get_timeout() -> None:
    """A future with no deadline raises AskTimeout only after get's own timeout."""
    future: Future[int] = Future()
    with pytest.raises(AskTimeout, match=r"within 0\.01 s"):
        future.get(timeout=0.01)
    assert repr(future) == "<Future pending for the actor>"


def test_get_accepts_an_infinite_timeout() -> None:
    """get(timeout=inf) on a pending future waits for the result instead of overflowing."""
    future: Future[int] = Future(deadline=math.inf)
    timer = threading.Timer(0.02, future.set_result, args=(5,))
    timer.start()
    try:
        assert future.get(timeout=math.inf) == 5
    finally:
        timer.join(WAIT)


def test_ask_with_an_infinite_timeout(system: ActorSystem, gate: threading.Event) -> None:
    """ask(timeout=inf) waits for the reply however long it takes."""
    entered = threading.Event()
    ref = system.spawn(Probe, "/p", args={"gate": gate, "entered": entered})
    ref.tell("block")
    assert entered.wait(WAIT)
    future = ref.ask(("echo", 9), timeout=math.inf)
    opener = threading.Timer(0.02, gate.set)
    opener.start()
    try:
        assert future.get() == 9
    finally:
        opener.join(WAIT)


def test_raising_callback_does_not_break_the_actor(system: ActorSystem) -> None:
    """A done-callback that raises in the actor's thread is logged; the actor keeps running."""
    gate = threading.Event()
    entered = threading.Event()
    ref = system.spawn(Probe, "/p", args={"gate": gate, "entered": entered})
    ref.tell("block")
    assert entered.wait(WAIT)
    future = ref.ask(("echo", 1), timeout=WAIT)

    def broken(_f: Future[Any]) -> None:
        raise RuntimeError("callback bug")

    future.add_done_callback(broken)
    with capture_logs() as logs:
        gate.set()
        assert future.get() == 1
        assert ref.ask(("echo", 2), timeout=WAIT).get() == 2
    assert ref.is_alive()
    failed = [e for e in logs if e["event"] == "future_callback_failed"]
    assert len(failed) == 1


def test_raising_callback_on_a_done_future_is_logged_not_raised() -> None:
    """A callback added to a done future that raises is logged, not raised to the caller."""
    future: Future[int] = Future()
    future.set_result(1)
    later: list[int] = []

    def broken(_f: Future[int]) -> None:
        raise RuntimeError("callback bug")

    with capture_logs() as logs:
        future.add_done_callback(broken)
        future.add_done_callback(lambda f: later.append(f.get()))
    assert later == [1]
    assert [e["event"] for e in logs] == ["future_callback_failed"]


def test_concurrent_asks_each_get_their_own_answer(system: ActorSystem) -> None:
    """Asks from many threads at once each get the reply to their own message."""
    ref = system.spawn(Probe, "/p")
    results: dict[int, Any] = {}

    def ask_many(base: int) -> None:
        for i in range(base, base + 200):
            results[i] = ref.ask(("echo", i), timeout=WAIT).get()

    threads = [threading.Thread(target=ask_many, args=(n * 1000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 4)
    assert len(results) == 800
    assert all(key == value for key, value in results.items())


def test_actor_replies_through_a_callback_without_blocking(system: ActorSystem) -> None:
    """An actor can ask another and act on the answer in a callback, never blocking."""
    answers: list[Any] = []
    answered = threading.Event()
    worker = system.spawn(Probe, "/worker")

    class Client(Actor):
        def on_receive(self, message: Any) -> Any:
            if message == "go":
                worker.ask(("echo", 21), timeout=WAIT).add_done_callback(
                    lambda f: self.ref.tell(("answer", f.get()))
                )
            else:
                answers.append(message)
                answered.set()

    client = system.spawn(Client, "/client")
    client.tell("go")
    assert answered.wait(WAIT)
    assert answers == [("answer", 21)]


def test_a_callback_runs_with_ask_timeout_at_the_deadline(
    system: ActorSystem, gate: threading.Event
) -> None:
    """A callback on an unanswered ask runs with AskTimeout at the deadline, and the
    actor's late answer is dropped without harming the actor."""
    entered = threading.Event()
    ref = system.spawn(Probe, "/slow", args={"gate": gate, "entered": entered})
    outcome: queue.Queue[BaseException | None] = queue.Queue()
    future = ref.ask("block", timeout=0.1)
    future.add_done_callback(lambda f: outcome.put(f.exception()))
    assert isinstance(outcome.get(timeout=WAIT), AskTimeout)
    gate.set()  # now the handler returns and answers a future that is already done
    assert ref.ask(("echo", "still here")).get(WAIT) == "still here"
    assert ref.is_alive()


def test_try_set_does_not_complete_twice() -> None:
    """try_set_result/try_set_exception report whether they completed the future."""
    future: Future[int] = Future()
    assert future.try_set_result(1)
    assert not future.try_set_exception(RuntimeError("late"))
    assert not future.try_set_result(2)
    assert future.get() == 1
