"""ActorRef: the only handle other code holds on an actor."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from edgeloop.actors._future import Future
from edgeloop.actors._mailbox import Envelope, Overflow
from edgeloop.actors._signals import NORMAL, ExitReason
from edgeloop.errors import ActorDeadError

if TYPE_CHECKING:
    from edgeloop.actors._cell import Cell
    from edgeloop.actors._monitor import Watcher

__all__ = ["ActorRef", "ActorStatistics", "DEFAULT_ASK_TIMEOUT", "send_signal"]

DEFAULT_ASK_TIMEOUT = 5.0
"""Seconds an ``ask`` waits by default, as OTP's ``gen_server:call``."""


@dataclasses.dataclass(frozen=True, slots=True)
class ActorStatistics:
    """A snapshot of one actor's counters (``processed``/``failed``/``restarts`` span
    every incarnation of a supervised child)."""

    path: str
    queue_depth: int
    capacity: int
    processed: int
    failed: int
    restarts: int
    dropped: int
    alive: bool


class ActorRef:
    """A handle on one incarnation of an actor: ``tell``, ``ask``, ``stop``, ``statistics``.

    A supervisor's restart creates a new incarnation with a new ref at the same path (as a
    new pid in OTP); look the path up again in the node's registry to reach it.
    """

    __slots__ = ("_cell", "_mailbox", "path")

    def __init__(self, cell: Cell) -> None:
        self._cell = cell
        self._mailbox = cell.mailbox
        self.path = cell.path

    @property
    def name(self) -> str:
        """The last segment of the path."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def is_remote(self) -> bool:
        """Always ``False``: this actor lives in this node (see ``RemoteRef``)."""
        return False

    def tell(self, message: Any, *, block: bool = True) -> None:
        """Send ``message`` without waiting. Undeliverable messages become dead letters.

        Raises :class:`~edgeloop.errors.MailboxFull` when the mailbox is full and its
        overflow policy is ``fail`` (at once) or ``block`` (after its timeout, or at once
        with ``block=False``, for senders that must never wait).
        """
        if not self._mailbox.put(Envelope(message), self.path, block=block):
            self._cell.undeliverable(message, None)

    def tell_many(self, messages: list[Any]) -> list[Any]:
        """Send ``messages`` in order without waiting, waking the actor once; returns
        the ones left to the caller.

        For a sender that must never wait and often has several messages at once (a
        network I/O thread). If the actor is gone they all become dead letters, as do
        those a full mailbox has no room for under ``drop_newest``; under ``block`` and
        ``fail`` those are returned (``tell(block=False)`` would have raised
        :class:`~edgeloop.errors.MailboxFull` for each): count them, drop them.
        """
        queued = self._mailbox.put_batch([Envelope(message) for message in messages])
        if queued is None:
            for message in messages:
                self._cell.undeliverable(message, None)
            return []
        left = messages[queued:]
        if left and self._mailbox.config.overflow is Overflow.DROP_NEWEST:
            for message in left:
                self._cell.undeliverable(message, None)
            return []
        return left

    def ask(
        self, message: Any, *, timeout: float = DEFAULT_ASK_TIMEOUT, block: bool = True
    ) -> Future[Any]:
        """Send ``message`` and return a future for the reply (``block`` as for ``tell``).

        The future fails with the exception the handler raised (the actor crashes too),
        with :class:`~edgeloop.errors.ActorDeadError` if the actor stops first, and its
        ``get()`` raises :class:`~edgeloop.errors.AskTimeout` once ``timeout`` seconds
        have passed (a future with callbacks fails with it at that deadline). Inside an
        actor, prefer ``add_done_callback`` to ``get()``.
        """
        future: Future[Any] = Future(
            time.monotonic() + timeout, self.path, clock=self._cell.system.clock
        )
        if not self._mailbox.put(Envelope(message, future), self.path, block=block):
            self._cell.undeliverable(message, future)
        return future

    def stop(self, reason: ExitReason | None = None) -> None:
        """Ask the actor to stop after the message it is handling.

        The reason defaults to ``normal``; supervisors stop children with ``shutdown``.
        Messages still waiting become dead letters. Use :meth:`wait_stopped` to wait.
        """
        self._cell.request_stop(reason or NORMAL)

    def kill(self) -> None:
        """Abandon the actor without an orderly stop (OTP's ``brutal_kill``).

        Its path is freed and its waiting messages become dead letters at once, and it
        never runs ``on_stop``. Python cannot interrupt a thread: a handler that is
        running goes on to its end (its sends still happen), then the thread exits.
        """
        self._cell.kill()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Wait until the actor has stopped; ``False`` if ``timeout`` passed first."""
        return self._cell.terminated.wait(timeout)

    def is_idle(self) -> bool:
        """Whether the actor is waiting for a message with none queued (not handling one)."""
        return self._mailbox.idle

    def is_alive(self) -> bool:
        """Whether this incarnation is still running (it may stop right after). False
        from the moment it is killed, as its watchers hear then, even while a handler it
        was in still runs to its end in the abandoned thread."""
        return not self._cell.gone

    @property
    def exit_reason(self) -> ExitReason | None:
        """Why the actor stopped, or ``None`` while it runs."""
        return self._cell.exit_reason

    def _add_watcher(self, watcher: Watcher) -> None:
        self._cell.add_watcher(watcher)

    def _remove_watcher(self, watcher: Watcher) -> None:
        self._cell.remove_watcher(watcher)

    def statistics(self) -> ActorStatistics:
        counters = self._cell.counters
        return ActorStatistics(
            path=self.path,
            queue_depth=len(self._mailbox),
            capacity=self._mailbox.capacity,
            processed=counters.processed,
            failed=counters.failed,
            restarts=counters.restarts,
            dropped=counters.dropped,
            alive=self.is_alive(),
        )

    def __repr__(self) -> str:
        state = "alive" if self.is_alive() else "stopped"
        return f"<ActorRef {self.path} {state}>"


def dead_error(path: str, message: Any) -> ActorDeadError:
    return ActorDeadError(
        f"{path} stopped before it handled {type(message).__name__}; look the path up again "
        "if its supervisor restarted it"
    )


def send_signal(ref: ActorRef, message: Any) -> bool:
    """Queue ``message`` for ``ref`` in order but past its mailbox bound, as ``Down`` is.

    For the runtime's own messages that must neither wait (they come from a timer or an
    I/O thread) nor be dropped by an overflow policy, such as a supervisor's scheduled
    restart. Returns ``False`` if the actor has stopped. Not for application traffic:
    that is what the bound is for.
    """
    return ref._mailbox.put_signal(Envelope(message))
