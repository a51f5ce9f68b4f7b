"""Bounded mailboxes with an explicit overflow policy.

A mailbox holds two queues under one lock: *system* messages (stop, kill) that jump the
line, and ordinary messages bounded by ``capacity``. Signals from the runtime (``Down``)
are ordinary messages that skip the bound, so a full mailbox can never lose one.

The reader sleeps on a bare lock that a writer releases once, and only when the reader
said it sleeps: a ``threading.Condition`` allocates a lock and runs a dozen lines of
Python per wait and per notify, on the path of every message to an idle actor.
:meth:`Mailbox.put_batch` queues several messages with one lock and one wake-up (a
network I/O thread hands over all it read for one actor in one turn).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from enum import StrEnum
from typing import Any

from edgeloop.errors import ConfigError, MailboxFull

__all__ = ["Overflow", "MailboxConfig", "Mailbox", "Envelope"]


class Overflow(StrEnum):
    """What a full mailbox does with one more message."""

    BLOCK = "block"  # the sender waits up to block_timeout, then gets MailboxFull
    DROP_NEWEST = "drop_newest"  # the new message goes to dead letters; the sender goes on
    FAIL = "fail"  # the sender gets MailboxFull at once


@dataclasses.dataclass(frozen=True, slots=True)
class MailboxConfig:
    """How many messages an actor may have waiting, and what happens beyond that."""

    capacity: int = 10_000
    overflow: Overflow = Overflow.BLOCK
    block_timeout: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, int):
            raise ConfigError("mailbox.capacity", f"expected an integer, got {self.capacity!r}")
        if self.capacity < 1:
            raise ConfigError("mailbox.capacity", f"expected an integer >= 1, got {self.capacity}")
        try:
            object.__setattr__(self, "overflow", Overflow(self.overflow))
        except ValueError:
            choices = ", ".join(repr(o.value) for o in Overflow)
            raise ConfigError(
                "mailbox.overflow", f"expected one of {choices}, got {self.overflow!r}"
            ) from None
        if isinstance(self.block_timeout, bool) or not isinstance(self.block_timeout, int | float):
            raise ConfigError(
                "mailbox.block_timeout", f"expected seconds, got {self.block_timeout!r}"
            )
        if not self.block_timeout >= 0:  # also refuses NaN
            raise ConfigError(
                "mailbox.block_timeout", f"expected seconds >= 0, got {self.block_timeout}"
            )


class Envelope:
    """A message plus the future to answer, if it was an ask. Not public API."""

    # Slots make envelope creation measurably cheaper on the hot path.
    __slots__ = ("message", "reply_to")

    def __init__(self, message: Any, reply_to: Any = None) -> None:
        self.message = message
        self.reply_to = reply_to


class Mailbox:
    """The bounded, closeable queue behind one actor. Many writers, one reader."""

    __slots__ = (
        "_blocked",
        "_closed",
        "_lock",
        "_not_full",
        "_queue",
        "_reader_waiting",
        "_system",
        "_wakeup",
        "capacity",
        "config",
    )

    def __init__(self, config: MailboxConfig) -> None:
        self.config = config
        self.capacity = config.capacity
        self._queue: deque[Envelope] = deque()
        self._system: deque[Envelope] = deque()
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        # Held except between a writer's release (the reader said it sleeps) and the
        # reader's acquire that wakes it: a binary semaphore with no Python behind it.
        self._wakeup = threading.Lock()
        self._wakeup.acquire()
        self._reader_waiting = False
        self._blocked = 0
        self._closed = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def idle(self) -> bool:
        """Whether the reader waits in :meth:`get` with nothing queued: its actor is doing
        nothing now (a replay waits for every actor to be idle before moving its clock)."""
        with self._lock:
            return self._reader_waiting and not self._queue and not self._system

    def put(self, envelope: Envelope, describe: str = "", *, block: bool = True) -> bool:
        """Queue an ordinary message under the overflow policy.

        Returns ``False`` if the mailbox is closed (the actor is gone) or the policy is
        ``drop_newest`` and it is full; raises :class:`MailboxFull` under ``fail`` and
        after ``block_timeout`` under ``block`` (at once when ``block=False``: a sender
        that must never wait, such as a network I/O thread).
        """
        with self._lock:
            if self._closed:
                return False
            if len(self._queue) >= self.capacity:
                overflow = self.config.overflow
                if overflow is Overflow.DROP_NEWEST:
                    return False
                if overflow is Overflow.FAIL or not block:
                    raise MailboxFull(self._full_message(describe))
                room = self._wait_for_room()
                if room == "closed":
                    return False
                if room == "timeout":
                    raise MailboxFull(
                        self._full_message(describe)
                        + f" and stayed full for {self.config.block_timeout} s"
                    )
            self._queue.append(envelope)
            if self._reader_waiting:
                self._reader_waiting = False
                self._wakeup.release()
            return True

    def put_batch(self, envelopes: list[Envelope]) -> int | None:
        """Queue ordinary messages in order, as many as there is room for, without
        waiting, and wake the reader once. Returns how many were queued (the rest did
        not fit; the caller applies the overflow policy to them), ``None`` if closed."""
        with self._lock:
            if self._closed:
                return None
            room = self.capacity - len(self._queue)
            if room <= 0:
                return 0
            taken = envelopes if len(envelopes) <= room else envelopes[:room]
            self._queue.extend(taken)
            if self._reader_waiting:
                self._reader_waiting = False
                self._wakeup.release()
            return len(taken)

    def put_signal(self, envelope: Envelope) -> bool:
        """Queue a runtime signal (``Down``) in order, ignoring the bound."""
        with self._lock:
            if self._closed:
                return False
            self._queue.append(envelope)
            if self._reader_waiting:
                self._reader_waiting = False
                self._wakeup.release()
            return True

    def put_system(self, envelope: Envelope) -> bool:
        """Queue a system message (stop, kill) ahead of every ordinary message."""
        with self._lock:
            if self._closed:
                return False
            self._system.append(envelope)
            if self._reader_waiting:
                self._reader_waiting = False
                self._wakeup.release()
            return True

    def get(self) -> Envelope | None:
        """Take the next envelope, system messages first; waits while both are empty.

        Returns ``None`` once the mailbox is closed and empty: the actor must end.
        """
        lock = self._lock
        with lock:
            while not self._system and not self._queue:
                if self._closed:
                    return None
                self._reader_waiting = True  # a writer clears it when it wakes us
                lock.release()
                try:
                    self._wakeup.acquire()
                finally:
                    lock.acquire()
            if self._system:
                return self._system.popleft()
            envelope = self._queue.popleft()
            if self._blocked:
                self._not_full.notify()
            return envelope

    def close(self) -> list[Envelope]:
        """Refuse every later message and return the ordinary ones still waiting."""
        with self._lock:
            self._closed = True
            leftovers = list(self._queue)
            self._queue.clear()
            self._system.clear()
            self._not_full.notify_all()
            if self._reader_waiting:
                self._reader_waiting = False
                self._wakeup.release()
            return leftovers

    def _wait_for_room(self) -> str:
        """Wait (lock held) until there is room: ``"room"``, ``"timeout"`` or ``"closed"``."""
        deadline = time.monotonic() + self.config.block_timeout
        self._blocked += 1
        try:
            while len(self._queue) >= self.capacity:
                if self._closed:
                    return "closed"
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "timeout"
                # Condition.wait refuses timeouts beyond TIMEOUT_MAX (OverflowError).
                self._not_full.wait(min(remaining, threading.TIMEOUT_MAX))
            return "closed" if self._closed else "room"
        finally:
            self._blocked -= 1

    def _full_message(self, describe: str) -> str:
        who = f"the mailbox of {describe}" if describe else "the mailbox"
        return (
            f"{who} is full ({self.capacity} messages, overflow={self.config.overflow.value}); "
            "slow the sender down, raise mailbox.capacity, or choose overflow='drop_newest'"
        )
