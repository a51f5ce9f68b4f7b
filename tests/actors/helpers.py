"""Small actors and waiting helpers shared by the actor-core tests.

Nothing here sleeps: tests wait on events, queues, futures and ``wait_stopped`` with
timeouts, and blocking handlers wait on an event the test sets.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from edgeloop.actors import Actor, ActorRef, Down
from edgeloop.actors._mailbox import Mailbox

WAIT = 5.0
"""Seconds a test waits for something that should happen at once (generous for slow CI)."""


class Probe(Actor):
    """A scriptable actor.

    Messages it understands: ``("echo", v)`` answers ``v``; ``("raise", error)`` raises
    ``error``; ``"block"`` sets ``entered`` then waits for ``gate`` and answers
    ``"unblocked"``; ``"stop"`` stops itself; anything else is put on ``out`` and answered
    with itself. ``Down`` signals go to ``out`` too.
    """

    def __init__(
        self,
        *,
        out: queue.Queue[Any] | None = None,
        gate: threading.Event | None = None,
        entered: threading.Event | None = None,
        log: list[str] | None = None,
        watch: ActorRef | None = None,
    ) -> None:
        self.out: queue.Queue[Any] = out if out is not None else queue.Queue()
        self.gate = gate if gate is not None else threading.Event()
        self.entered = entered if entered is not None else threading.Event()
        self.log = log if log is not None else []
        self.to_watch = watch

    def on_start(self) -> None:
        self.log.append("on_start")
        if self.to_watch is not None:
            self.watch(self.to_watch)

    def on_receive(self, message: Any) -> Any:
        match message:
            case ("echo", value):
                return value
            case ("raise", BaseException() as error):
                raise error
            case "block":
                self.entered.set()
                assert self.gate.wait(WAIT * 2), "the test never opened the gate"
                return "unblocked"
            case "stop":
                self.stop()
                return "stopping"
            case ("watch", ActorRef() as ref):
                self.watch(ref)
                return None
            case ("unwatch", ActorRef() as ref):
                self.unwatch(ref)
                return None
            case Down():
                self.out.put(message)
                return None
        self.out.put(message)
        return message

    def on_stop(self) -> None:
        self.log.append("on_stop")


def get(q: queue.Queue[Any], timeout: float = WAIT) -> Any:
    """The next item on ``q``; fails the test instead of hanging."""
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"nothing arrived within {timeout} s") from None


def sync(ref: ActorRef) -> None:
    """Return once ``ref`` has handled everything sent to it before this call."""
    assert ref.ask(("echo", "sync"), timeout=WAIT).get() == "sync"


def join_actor_thread(path: str) -> None:
    """Wait until the thread of the actor at ``path`` (which has stopped) has exited, so
    that everything it does after ``terminated`` (sending ``Down``) has happened."""
    for thread in threading.enumerate():
        if thread.name == f"edgeloop:{path}":
            thread.join(WAIT)
            assert not thread.is_alive(), f"the thread of {path} did not exit"


def spy_on_blocking(mailbox: Mailbox) -> threading.Event:
    """Return an event set whenever a sender starts waiting for room in ``mailbox``."""
    waiting = threading.Event()

    class _Spy(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            waiting.set()
            return super().wait(timeout)

    mailbox._not_full = _Spy(mailbox._lock)
    return waiting
