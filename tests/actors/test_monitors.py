"""Monitors: watch() delivers Down(ref, reason) once the watched actor stops."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pytest

from edgeloop.actors import NORMAL, SHUTDOWN, Actor, ActorRef, ActorSystem, Down, ExitReason
from edgeloop.errors import ActorStartError
from tests.actors.helpers import WAIT, Probe, get, join_actor_thread, sync


def watcher_of(system: ActorSystem, target: ActorRef, path: str = "/watcher") -> Probe:
    """Spawn a Probe that watches ``target`` from on_start; return the Probe instance."""
    ref = system.spawn(Probe, path, args={"watch": target})
    probe = ref._cell.actor
    assert isinstance(probe, Probe)
    return probe


def next_down(probe: Probe) -> Down:
    message = get(probe.out)
    assert isinstance(message, Down), f"expected Down, got {message!r}"
    return message


def test_down_after_normal_stop(system: ActorSystem) -> None:
    """A watcher receives Down(ref, normal) when the watched actor stops normally."""
    target = system.spawn(Probe, "/target")
    watcher = watcher_of(system, target)
    target.stop()
    down = next_down(watcher)
    assert down.ref is target
    assert down.reason == NORMAL


def test_down_carries_the_stop_reason(system: ActorSystem) -> None:
    """Down carries the reason given to stop(), such as shutdown."""
    target = system.spawn(Probe, "/target")
    watcher = watcher_of(system, target)
    target.stop(SHUTDOWN)
    assert next_down(watcher).reason == SHUTDOWN


def test_down_after_crash_says_crash_and_where(system: ActorSystem) -> None:
    """A crash in on_receive gives Down with kind crash, where on_receive and the error."""
    error = RuntimeError("boom")
    target = system.spawn(Probe, "/target")
    watcher = watcher_of(system, target)
    target.tell(("raise", error))
    down = next_down(watcher)
    assert down.ref is target
    assert down.reason.kind == "crash"
    assert down.reason.where == "on_receive"
    assert down.reason.error is error
    assert down.reason.abnormal


def test_down_after_kill(system: ActorSystem) -> None:
    """kill() gives watchers Down with kind killed."""
    target = system.spawn(Probe, "/target")
    watcher = watcher_of(system, target)
    target.kill()
    down = next_down(watcher)
    assert down.ref is target
    assert down.reason.kind == "killed"


def test_down_after_kill_comes_at_once_even_mid_handler(
    system: ActorSystem, gate: threading.Event
) -> None:
    """Down(killed) reaches watchers when the actor is killed, not when a handler it is
    stuck in returns (as OTP monitors fire at the kill); only one Down is ever sent."""
    entered = threading.Event()
    target = system.spawn(Probe, "/target", args={"gate": gate, "entered": entered})
    watcher = watcher_of(system, target)
    target.tell("block")
    assert entered.wait(WAIT)
    target.kill()
    down = next_down(watcher)
    assert down.reason.kind == "killed"
    assert target.exit_reason is not None
    assert target.exit_reason.kind == "killed"
    gate.set()
    assert target.wait_stopped(WAIT)
    join_actor_thread("/target")
    assert watcher.out.empty()


def test_watching_a_dead_actor_gives_down_at_once(system: ActorSystem) -> None:
    """Watching an actor that has already stopped delivers Down with its real exit reason."""
    target = system.spawn(Probe, "/target")
    target.tell(("raise", ValueError("bad")))
    assert target.wait_stopped(WAIT)
    join_actor_thread("/target")
    watcher = watcher_of(system, target)
    down = next_down(watcher)
    assert down.ref is target
    assert down.reason.kind == "crash"
    assert isinstance(down.reason.error, ValueError)


def test_watching_a_dead_actor_after_normal_stop(system: ActorSystem) -> None:
    """Watching an actor that stopped normally delivers Down(normal), not noproc."""
    target = system.spawn(Probe, "/target")
    target.stop()
    assert target.wait_stopped(WAIT)
    join_actor_thread("/target")
    watcher = watcher_of(system, target)
    assert next_down(watcher).reason == NORMAL


def test_unwatch_stops_down(system: ActorSystem) -> None:
    """After unwatch(), the watcher gets no Down when the actor stops."""
    target = system.spawn(Probe, "/target")
    watcher_ref = system.spawn(Probe, "/watcher")
    watcher = watcher_ref._cell.actor
    assert isinstance(watcher, Probe)
    watcher_ref.ask(("watch", target), timeout=WAIT).get()
    watcher_ref.ask(("unwatch", target), timeout=WAIT).get()
    target.stop()
    assert target.wait_stopped(WAIT)
    join_actor_thread("/target")
    sync(watcher_ref)
    assert watcher.out.empty()


def test_unwatch_of_an_unwatched_actor_is_harmless(system: ActorSystem) -> None:
    """unwatch() of an actor never watched does nothing."""
    target = system.spawn(Probe, "/target")
    watcher = system.spawn(Probe, "/watcher")
    assert watcher.ask(("unwatch", target), timeout=WAIT).get() is None
    assert watcher.is_alive()


def test_watching_twice_gives_one_down(system: ActorSystem) -> None:
    """Watching the same actor twice still delivers a single Down."""
    target = system.spawn(Probe, "/target")
    watcher = watcher_of(system, target)
    watcher_ref = watcher.ref
    watcher_ref.ask(("watch", target), timeout=WAIT).get()
    target.stop()
    next_down(watcher)
    join_actor_thread("/target")
    sync(watcher_ref)
    assert watcher.out.empty()


def test_every_watcher_gets_down(system: ActorSystem) -> None:
    """Each of several watchers receives its own Down."""
    target = system.spawn(Probe, "/target")
    watchers = [watcher_of(system, target, f"/w{i}") for i in range(3)]
    target.stop()
    for watcher in watchers:
        assert next_down(watcher).ref is target


def test_parent_gets_down_without_watching(system: ActorSystem) -> None:
    """The parent given to spawn receives Down when the child stops."""
    parent_ref = system.spawn(Probe, "/parent")
    parent = parent_ref._cell.actor
    assert isinstance(parent, Probe)
    child = system.spawn(Probe, "/parent/child", parent=parent_ref)
    seen: list[Any] = []

    class Peek(Actor):
        def on_start(self) -> None:
            seen.append(self.parent)

    system.spawn(Peek, "/parent/peek", parent=parent_ref)
    assert seen == [parent_ref]
    child.tell(("raise", KeyError("k")))
    down = next_down(parent)
    assert down.ref is child
    assert down.reason.kind == "crash"


def test_parent_gets_down_for_a_failed_start(system: ActorSystem) -> None:
    """A child whose on_start raises sends its parent Down(crash, where on_start)."""
    parent_ref = system.spawn(Probe, "/parent")
    parent = parent_ref._cell.actor
    assert isinstance(parent, Probe)

    class BadStart(Actor):
        def on_start(self) -> None:
            raise OSError("no device")

    with pytest.raises(ActorStartError):
        system.spawn(BadStart, "/parent/child", parent=parent_ref)
    down = next_down(parent)
    assert down.reason.kind == "crash"
    assert down.reason.where == "on_start"
    assert isinstance(down.reason.error, OSError)


def test_parent_gets_down_killed_for_a_start_timeout(system: ActorSystem) -> None:
    """A child abandoned for a slow on_start sends its parent Down(killed) once it ends."""
    parent_ref = system.spawn(Probe, "/parent")
    parent = parent_ref._cell.actor
    assert isinstance(parent, Probe)
    release = threading.Event()

    class SlowStart(Actor):
        def on_start(self) -> None:
            assert release.wait(WAIT)

    try:
        with pytest.raises(ActorStartError):
            system.spawn(SlowStart, "/parent/slow", parent=parent_ref, start_timeout=0.02)
        assert parent.out.empty()
    finally:
        release.set()
    assert next_down(parent).reason.kind == "killed"


def test_supervised_crash_is_not_logged_as_unsupervised(system: ActorSystem) -> None:
    """A crash of an actor with a parent is left to the parent: no actor_crashed log."""
    from structlog.testing import capture_logs

    parent_ref = system.spawn(Probe, "/parent")
    parent = parent_ref._cell.actor
    assert isinstance(parent, Probe)
    child = system.spawn(Probe, "/parent/child", parent=parent_ref)
    with capture_logs() as logs:
        child.tell(("raise", KeyError("k")))
        next_down(parent)
    assert not [e for e in logs if e["event"] == "actor_crashed"]


def test_messages_sent_before_death_arrive_before_down(system: ActorSystem) -> None:
    """What a dying actor sends in on_stop reaches the watcher before its Down."""
    out: queue.Queue[Any] = queue.Queue()
    watcher_ref = system.spawn(Probe, "/watcher", args={"out": out})

    class LastWords(Actor):
        def on_stop(self) -> None:
            watcher_ref.tell("last words")

    target = system.spawn(LastWords, "/target")
    watcher_ref.ask(("watch", target), timeout=WAIT).get()
    target.stop()
    assert get(out) == "last words"
    assert isinstance(get(out), Down)


def test_down_reason_for_an_escalation_style_stop(system: ActorSystem) -> None:
    """A custom abnormal reason passed to stop() reaches watchers unchanged."""
    target = system.spawn(Probe, "/target")
    watcher = watcher_of(system, target)
    reason = ExitReason("escalated", "too many restarts")
    target.stop(reason)
    down = next_down(watcher)
    assert down.reason == reason
    assert down.reason.abnormal


def test_down_to_a_stopped_watcher_is_discarded(system: ActorSystem) -> None:
    """Down for a watcher that has itself stopped is neither delivered nor a dead letter."""
    target = system.spawn(Probe, "/target")
    watcher = system.spawn(Probe, "/watcher", args={"watch": target})
    watcher.stop()
    assert watcher.wait_stopped(WAIT)
    target.stop()
    assert target.wait_stopped(WAIT)
    join_actor_thread("/target")
    assert system.dead_letters.count == 0
