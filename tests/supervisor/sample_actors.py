"""Actors that app-file tests name by ``module:Name``."""

from __future__ import annotations

import queue
import threading
from typing import Any

from edgeloop import Actor


class Echo(Actor):
    """Answers every ask with its greeting and the message."""

    def __init__(self, greeting: str = "hello") -> None:
        self.greeting = greeting

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            msg = "asked to crash"
            raise RuntimeError(msg)
        return f"{self.greeting} {message}"


class NotAnActor:
    """A class that is not an edgeloop.Actor."""


class CrashSoon(Actor):
    """Crashes on its first message, which it sends itself from on_start."""

    def on_start(self) -> None:
        self.ref.tell("crash")

    def on_receive(self, message: Any) -> Any:
        msg = f"{self.path} crashes on purpose"
        raise RuntimeError(msg)


class FailStart(Actor):
    """Cannot start."""

    def on_start(self) -> None:
        msg = "no camera attached"
        raise OSError(msg)


class Recorder(Actor):
    """Puts every message it gets (``Down`` included) on ``out`` and answers it back.

    ``("watch", ref)`` and ``("unwatch", ref)`` make it watch or stop watching ``ref``.
    """

    def __init__(self, out: queue.Queue[Any]) -> None:
        self.out = out

    def on_receive(self, message: Any) -> Any:
        match message:
            case ("watch", ref):
                self.watch(ref)
                return "watching"
            case ("unwatch", ref):
                self.unwatch(ref)
                return "unwatched"
        self.out.put(message)
        return message


class Blocker(Actor):
    """Answers ``"unblocked"`` once ``gate`` is set (waiting at most 10 s), ``"pong"`` to
    ``"ping"``."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate

    def on_receive(self, message: Any) -> Any:
        if message == "ping":
            return "pong"
        self.gate.wait(10.0)
        return "unblocked"


class Opaque(Actor):
    """Answers every ask with an object MessagePack cannot carry."""

    def on_receive(self, message: Any) -> Any:
        return object()


class Relay(Actor):
    """Asks the actor at ``target`` (any address, local or remote) for each message it
    is told, without blocking, and puts ``(message, answer or error)`` on ``out``."""

    def __init__(self, target: str, out: Any) -> None:
        self.target = target
        self.out = out

    def on_receive(self, message: Any) -> Any:
        future = self.system.ref(self.target).ask(message)

        def report(done: Any) -> None:
            error = done.exception()
            self.out.put((message, error if error is not None else done.get()))

        future.add_done_callback(report)


class BigNumber(Actor):
    """Answers with an integer MessagePack cannot hold (past 64 bits)."""

    def on_receive(self, message: Any) -> Any:
        return 2**70


class SlowStop(Actor):
    """Takes ``seconds`` to stop (as a learner finishing a compile would), then prints."""

    def __init__(self, seconds: float = 0.5) -> None:
        self.seconds = seconds

    def on_stop(self) -> None:
        threading.Event().wait(self.seconds)
        print(f"{self.path} stopped", flush=True)
