"""Actors that app-file tests name by ``module:Name``."""

from __future__ import annotations

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
