"""Dead letters: undelivered messages are counted, logged and published."""

from __future__ import annotations

import threading

import pytest
from structlog.testing import capture_logs

from edgeloop.actors import ActorSystem, DeadLetter, DeadLetters
from edgeloop.errors import ActorDeadError
from tests.actors.helpers import WAIT, Probe


def test_tell_to_a_stopped_actor_is_a_dead_letter(system: ActorSystem) -> None:
    """A tell to a stopped actor is counted and kept as a dead letter naming the actor."""
    ref = system.spawn(Probe, "/p")
    ref.stop()
    assert ref.wait_stopped(WAIT)
    ref.tell("late")
    ref.tell("later")
    assert system.dead_letters.count == 2
    assert system.dead_letters.recent() == [
        DeadLetter("/p", "late", "stopped before it arrived"),
        DeadLetter("/p", "later", "stopped before it arrived"),
    ]


def test_dead_letters_are_logged(system: ActorSystem) -> None:
    """Each dead letter logs a dead_letter warning with recipient, type, reason and count."""
    ref = system.spawn(Probe, "/p")
    ref.stop()
    assert ref.wait_stopped(WAIT)
    with capture_logs() as logs:
        ref.tell(b"frame")
    assert logs == [
        {
            "event": "dead_letter",
            "log_level": "warning",
            "recipient": "/p",
            "message_type": "bytes",
            "reason": "stopped before it arrived",
            "dead_letters": 1,
        }
    ]


def test_subscribers_receive_dead_letters_until_they_unsubscribe(system: ActorSystem) -> None:
    """A subscriber is called with every dead letter until it unsubscribes."""
    seen: list[DeadLetter] = []
    unsubscribe = system.dead_letters.subscribe(seen.append)
    system.tell("/nobody", 1)
    system.tell("/nobody", 2)
    unsubscribe()
    system.tell("/nobody", 3)
    unsubscribe()  # twice is harmless
    assert [letter.message for letter in seen] == [1, 2]
    assert system.dead_letters.count == 3


def test_subscribers_are_called_in_the_sending_thread(system: ActorSystem) -> None:
    """A subscriber runs in the thread that failed to deliver."""
    threads: list[threading.Thread] = []
    system.dead_letters.subscribe(lambda _letter: threads.append(threading.current_thread()))
    system.tell("/nobody", "x")
    assert threads == [threading.current_thread()]


def test_waiting_messages_at_stop_become_dead_letters(
    system: ActorSystem, gate: threading.Event
) -> None:
    """Messages still waiting when an actor stops become dead letters, and their asks fail
    with ActorDeadError."""
    entered = threading.Event()
    ref = system.spawn(Probe, "/p", args={"gate": gate, "entered": entered})
    ref.tell("block")
    assert entered.wait(WAIT)
    ref.tell("waiting")
    future = ref.ask("asked", timeout=WAIT)
    ref.stop()
    gate.set()
    assert ref.wait_stopped(WAIT)
    with pytest.raises(ActorDeadError, match="/p stopped before it handled str"):
        future.get()
    assert system.dead_letters.recent() == [
        DeadLetter("/p", "waiting", "stopped before handling it"),
        DeadLetter("/p", "asked", "stopped before handling it"),
    ]


def test_kill_turns_waiting_messages_into_dead_letters_at_once(
    system: ActorSystem, gate: threading.Event
) -> None:
    """kill() makes waiting messages dead letters immediately, before the handler returns."""
    entered = threading.Event()
    ref = system.spawn(Probe, "/p", args={"gate": gate, "entered": entered})
    ref.tell("block")
    assert entered.wait(WAIT)
    ref.tell("waiting")
    future = ref.ask("asked", timeout=WAIT)
    ref.kill()
    assert future.done()
    assert isinstance(future.exception(), ActorDeadError)
    assert [d.message for d in system.dead_letters.recent()] == ["waiting", "asked"]
    gate.set()
    assert ref.wait_stopped(WAIT)


def test_messages_behind_a_crash_become_dead_letters(system: ActorSystem) -> None:
    """Messages queued behind the one that crashed the actor become dead letters."""
    gate = threading.Event()
    entered = threading.Event()
    ref = system.spawn(Probe, "/p", args={"gate": gate, "entered": entered})
    ref.tell("block")
    assert entered.wait(WAIT)
    ref.tell(("raise", RuntimeError("boom")))
    ref.tell("after")
    gate.set()
    assert ref.wait_stopped(WAIT)
    assert [d.message for d in system.dead_letters.recent()] == ["after"]


def test_logging_is_rate_limited_but_counting_is_not() -> None:
    """After log_limit dead letters only every log_every-th is logged; all are counted."""
    office = DeadLetters(log_limit=2, log_every=3)
    with capture_logs() as logs:
        for i in range(10):
            office.record("/x", i, "test")
    assert office.count == 10
    assert [entry["dead_letters"] for entry in logs] == [1, 2, 3, 6, 9]


def test_recent_keeps_only_the_latest() -> None:
    """recent() keeps the latest `keep` dead letters, oldest first."""
    office = DeadLetters(keep=3)
    for i in range(5):
        office.record("/x", i, "test")
    assert [letter.message for letter in office.recent()] == [2, 3, 4]
    assert office.count == 5


def test_failing_subscriber_does_not_break_delivery(system: ActorSystem) -> None:
    """A subscriber that raises is logged; other subscribers and the sender carry on."""
    seen: list[DeadLetter] = []

    def broken(_letter: DeadLetter) -> None:
        raise RuntimeError("subscriber bug")

    system.dead_letters.subscribe(broken)
    system.dead_letters.subscribe(seen.append)
    with capture_logs() as logs:
        system.tell("/nobody", "x")
    assert [letter.message for letter in seen] == ["x"]
    assert any(e["event"] == "dead_letter_subscriber_failed" for e in logs)


def test_failing_subscriber_does_not_break_an_actor_stop(system: ActorSystem) -> None:
    """A raising subscriber called while an actor stops does not keep it from stopping."""
    gate = threading.Event()
    entered = threading.Event()

    def broken(_letter: DeadLetter) -> None:
        raise RuntimeError("subscriber bug")

    system.dead_letters.subscribe(broken)
    ref = system.spawn(Probe, "/p", args={"gate": gate, "entered": entered})
    ref.tell("block")
    assert entered.wait(WAIT)
    ref.tell("waiting")
    ref.stop()
    gate.set()
    assert ref.wait_stopped(WAIT)
    assert system.lookup("/p") is None
    assert ref.exit_reason is not None
    assert ref.exit_reason.kind == "normal"
