"""Dead letters: messages that reached no actor are counted, logged and published."""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

__all__ = ["DeadLetter", "DeadLetters"]

_log = structlog.get_logger("edgeloop.actors")


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that was not delivered: to whom, what, and why."""

    recipient: str
    message: Any
    reason: str


class DeadLetters:
    """The dead-letter office of one actor system.

    Every dead letter is counted; the first ``log_limit`` are logged one by one and after
    that every ``log_every``-th, so a storm during a restart cannot flood the log.
    Subscribers are called in the thread that failed to deliver: keep them quick. One that
    raises is logged (``dead_letter_subscriber_failed``) and the others still run.
    """

    def __init__(self, *, keep: int = 100, log_limit: int = 20, log_every: int = 1000) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._recent: deque[DeadLetter] = deque(maxlen=keep)
        self._subscribers: list[Callable[[DeadLetter], None]] = []
        self._log_limit = log_limit
        self._log_every = log_every

    @property
    def count(self) -> int:
        """How many dead letters there have been."""
        return self._count

    def recent(self) -> list[DeadLetter]:
        """The latest dead letters, oldest first."""
        with self._lock:
            return list(self._recent)

    def subscribe(self, callback: Callable[[DeadLetter], None]) -> Callable[[], None]:
        """Call ``callback`` with every later dead letter; returns the unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def record(self, recipient: str, message: Any, reason: str) -> None:
        """Count, log and publish one undelivered message."""
        self.publish(DeadLetter(recipient, message, reason))

    def publish(self, letter: DeadLetter) -> None:
        with self._lock:
            self._count += 1
            count = self._count
            self._recent.append(letter)
            subscribers = tuple(self._subscribers)
        if count <= self._log_limit or count % self._log_every == 0:
            _log.warning(
                "dead_letter",
                recipient=letter.recipient,
                message_type=type(letter.message).__name__,
                reason=letter.reason,
                dead_letters=count,
            )
        for subscriber in subscribers:
            try:
                subscriber(letter)
            except Exception as error:  # noqa: BLE001 - the sender (maybe a stopping actor) goes on
                _log.error(
                    "dead_letter_subscriber_failed",
                    subscriber=getattr(subscriber, "__qualname__", repr(subscriber)),
                    exc_info=error,
                )
