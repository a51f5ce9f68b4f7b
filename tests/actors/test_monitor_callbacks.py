"""monitor() callbacks, the watch hooks any ref implements, and the noconnection reason."""

from __future__ import annotations

import queue
import threading
from typing import Any

import structlog

from edgeloop import messages
from edgeloop.actors import (
    NORMAL,
    Actor,
    ActorRef,
    ActorRefLike,
    ActorSystem,
    Down,
    ExitReason,
    Future,
    Watcher,
    deliver_down,
    monitor,
)
from tests.actors.helpers import WAIT, Probe, get, join_actor_thread


def test_monitor_calls_back_once_the_actor_stops(system: ActorSystem) -> None:
    """The callback gets Down(ref, reason) in the stopping actor's own thread."""
    seen: queue.Queue[tuple[Down, str]] = queue.Queue()
    target = system.spawn(Probe, "/target")
    monitor(target, lambda down: seen.put((down, threading.current_thread().name)))
    target.stop()
    down, thread = get(seen)
    assert down.ref is target
    assert down.reason == NORMAL
    assert thread == "edgeloop:/target"


def test_monitor_of_a_stopped_actor_calls_back_at_once(system: ActorSystem) -> None:
    """Monitoring an actor that has stopped calls back before monitor() returns."""
    target = system.spawn(Probe, "/target")
    target.stop(ExitReason("shutdown"))
    assert target.wait_stopped(WAIT)
    join_actor_thread("/target")
    seen: list[Down] = []
    monitor(target, seen.append)
    assert [d.reason.kind for d in seen] == ["shutdown"]


def test_cancelled_monitor_is_not_called(system: ActorSystem) -> None:
    """After cancel(), the callback is not called; other monitors of the same callback are."""
    seen: queue.Queue[Down] = queue.Queue()
    target = system.spawn(Probe, "/target")
    cancel = monitor(target, seen.put)
    monitor(target, seen.put)
    cancel()
    cancel()  # twice is harmless
    target.stop()
    get(seen)
    join_actor_thread("/target")
    assert seen.empty()


def test_failing_callback_is_logged_and_others_still_run(system: ActorSystem) -> None:
    """A callback that raises is logged as monitor_callback_failed; the watchers still run."""
    seen: queue.Queue[Down] = queue.Queue()
    target = system.spawn(Probe, "/target")
    watcher = system.spawn(Probe, "/watcher", args={"watch": target})

    def broken(down: Down) -> None:
        raise RuntimeError("broken callback")

    with structlog.testing.capture_logs() as logs:
        monitor(target, broken)
        monitor(target, seen.put)
        target.stop()
        assert get(seen).ref is target
        join_actor_thread("/target")
    failures = [e for e in logs if e["event"] == "monitor_callback_failed"]
    assert len(failures) == 1
    assert "broken" in failures[0]["callback"]
    probe = watcher._cell.actor
    assert isinstance(probe, Probe)
    assert isinstance(get(probe.out), Down)


class _StubRemote:
    """A ref of another kind: it keeps its watchers and downs them when told to."""

    def __init__(self) -> None:
        self.path = "/elsewhere"
        self.watchers: list[Watcher] = []

    @property
    def is_remote(self) -> bool:
        return True

    def tell(self, message: Any) -> None:
        pass

    def ask(self, message: Any, *, timeout: float = 5.0) -> Future[Any]:
        return Future()

    def _add_watcher(self, watcher: Watcher) -> None:
        self.watchers.append(watcher)

    def _remove_watcher(self, watcher: Watcher) -> None:
        self.watchers.remove(watcher)

    def lose(self) -> None:
        for watcher in self.watchers:
            deliver_down(watcher, Down(self, ExitReason("noconnection", "link lost")))


def test_actor_watch_works_on_any_ref_with_the_hooks(system: ActorSystem) -> None:
    """Actor.watch/unwatch go through the ref's hooks, so a non-local ref can deliver Down."""
    stub = _StubRemote()
    out: queue.Queue[Any] = queue.Queue()

    class Watching(Actor):
        def on_receive(self, message: Any) -> Any:
            if message == "watch":
                self.watch(stub)
            elif message == "unwatch":
                self.unwatch(stub)
            else:
                out.put(message)

    ref = system.spawn(Watching, "/watching")
    ref.ask("watch").get(WAIT)
    assert stub.watchers == [ref]
    stub.lose()
    down = get(out)
    assert down.ref is stub
    assert down.reason.kind == "noconnection"
    ref.ask("unwatch").get(WAIT)
    assert stub.watchers == []


def test_refs_share_the_protocol(system: ActorSystem) -> None:
    """ActorRef is an ActorRefLike and says it is not remote."""
    target: ActorRefLike = system.spawn(Probe, "/target")
    assert isinstance(target, ActorRef)
    assert target.is_remote is False


def test_noconnection_is_abnormal_and_on_the_wire() -> None:
    """noconnection is an abnormal exit kind, and DownNotice can carry it."""
    assert ExitReason("noconnection", "link lost").abnormal
    assert str(ExitReason("noconnection", "link lost")) == "noconnection: link lost"
    notice = messages.DownNotice(id=1, path="/x", reason_kind="noconnection")
    assert messages.validate(notice) == notice
