"""The runtime behind one actor incarnation: a pykka thread running edgeloop's loop.

pykka's ``ThreadingActor`` provides the thread-per-actor runtime. edgeloop replaces the
parts a supervised system cannot use as they are: the unbounded inbox (a bounded
:class:`Mailbox`), the failure policy (a crash reaches the parent instead of stopping
every actor) and the process-global registry (one registry per node).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pykka
import structlog

from edgeloop.actors._fault import InjectFault
from edgeloop.actors._future import Future
from edgeloop.actors._mailbox import Envelope, Mailbox, MailboxConfig
from edgeloop.actors._monitor import Watcher, deliver_down
from edgeloop.actors._ref import ActorRef, dead_error
from edgeloop.actors._signals import NOPROC, Down, ExitReason
from edgeloop.errors import InjectedFault, MailboxFull

if TYPE_CHECKING:
    from edgeloop.actors._actor import Actor
    from edgeloop.actors._system import ActorSystem

__all__ = ["Cell", "Counters"]

_log = structlog.get_logger("edgeloop.actors")

KILLED = ExitReason("killed", "abandoned without an orderly stop")


class Counters:
    """Counters shared by every incarnation of one supervised child."""

    __slots__ = ("dropped", "failed", "processed", "restarts")

    def __init__(self) -> None:
        self.processed = 0
        self.failed = 0
        self.restarts = 0
        self.dropped = 0


class _Stop:
    """System message: end the loop with ``reason``."""

    __slots__ = ("reason",)

    def __init__(self, reason: ExitReason) -> None:
        self.reason = reason


class Cell(pykka.ThreadingActor):
    """One incarnation: mailbox, thread, watchers, exit reason. Not public API."""

    # Daemon threads, so that a child abandoned mid-handler cannot keep the process alive
    # after its node has stopped.
    use_daemon_thread = True

    def __init__(
        self,
        actor: Actor,
        system: ActorSystem,
        path: str,
        *,
        mailbox: MailboxConfig,
        parent: ActorRef | None,
        counters: Counters,
    ) -> None:
        super().__init__()
        self.actor = actor
        self.system = system
        self.path = path
        self.parent = parent
        self.counters = counters
        self.mailbox = Mailbox(mailbox)
        self.ref = ActorRef(self)
        self.started = threading.Event()
        self.start_error: BaseException | None = None
        self.terminated = threading.Event()
        self.exit_reason: ExitReason | None = None
        self._watch_lock = threading.Lock()
        self._watchers: dict[Watcher, None] = {} if parent is None else {parent: None}
        self._dead = False
        self._killed = False
        actor._cell = self

    # -- the loop (runs in the actor's thread) ---------------------------------------

    def _actor_loop(self) -> None:
        threading.current_thread().name = f"edgeloop:{self.path}"
        try:
            reason = self._run(self.actor)
        except BaseException as error:  # noqa: BLE001 - a bug in the runtime: still tear down
            _log.critical("actor_runtime_failed", path=self.path, exc_info=error)
            if not self.started.is_set():
                self.start_error = error
                self.started.set()
            reason = ExitReason.crash(error, "runtime")
        self._teardown(reason)

    def _run(self, actor: Actor) -> ExitReason:
        try:
            actor.on_start()
        except BaseException as error:  # noqa: BLE001 - every failure reaches the parent
            self.start_error = error
            self.started.set()
            return ExitReason.crash(error, "on_start")
        self.started.set()
        reason = self._receive_loop(actor)
        if self._killed:
            return KILLED  # abandoned mid-handler: whatever it raised, on_stop does not run
        if reason.kind != "killed":
            reason = self._stop_hook(actor, reason)
        return KILLED if self._killed else reason

    def _receive_loop(self, actor: Actor) -> ExitReason:
        get = self.mailbox.get
        receive = actor.on_receive
        counters = self.counters
        while True:
            envelope = get()
            if envelope is None:
                return KILLED
            message = envelope.message
            if message.__class__ is _Stop:
                return message.reason
            reply_to = envelope.reply_to
            try:
                if message.__class__ is InjectFault:
                    raise InjectedFault(f"{self.path}: {message.reason}")
                result = receive(message)
            except BaseException as error:  # noqa: BLE001 - every failure reaches the parent
                counters.failed += 1
                if reply_to is not None:
                    reply_to.try_set_exception(error)
                return ExitReason.crash(error, "on_receive")
            counters.processed += 1
            if reply_to is not None:
                reply_to.try_set_result(result)  # it may have timed out meanwhile

    def _stop_hook(self, actor: Actor, reason: ExitReason) -> ExitReason:
        try:
            actor.on_stop()
        except BaseException as error:  # noqa: BLE001 - every failure reaches the parent
            self.counters.failed += 1
            if reason.kind != "crash":
                return ExitReason.crash(error, "on_stop")
            _log.error("on_stop_failed_after_crash", path=self.path, exc_info=error)
        return reason

    def _teardown(self, reason: ExitReason) -> None:
        self.exit_reason = reason
        self._release()
        with self._watch_lock:
            self._dead = True
            watchers = list(self._watchers)
            self._watchers.clear()
        if reason.kind == "crash" and self.parent is None:
            _log.error("actor_crashed", path=self.path, reason=str(reason), exc_info=reason.error)
        self.actor_stopped.set()
        self.terminated.set()
        down = Down(self.ref, reason)
        for watcher in watchers:
            deliver_down(watcher, down)

    def _release(self) -> None:
        """Free the path and turn every waiting message into a dead letter."""
        self.system._unregister(self.path, self.ref)
        for envelope in self.mailbox.close():
            if envelope.message.__class__ is not Down:
                self.undeliverable(
                    envelope.message, envelope.reply_to, "stopped before handling it"
                )

    # -- called from other threads ---------------------------------------------------

    def request_stop(self, reason: ExitReason) -> None:
        self.mailbox.put_system(Envelope(_Stop(reason)))

    @property
    def gone(self) -> bool:
        """Stopped, or killed (its thread may still be finishing a handler)."""
        return self._dead or self.terminated.is_set()

    def kill(self) -> None:
        """Abandon the actor: its path is freed and its mailbox closed now; a handler that
        is running still runs to its end (Python cannot stop a thread), then the thread
        exits without ``on_stop``."""
        self._killed = True
        self._release()
        # Watchers hear of it now, as OTP monitors fire at the kill, not when (or if) a
        # handler the thread is stuck in returns; the teardown then finds none left.
        with self._watch_lock:
            if self._dead:
                return
            self._dead = True
            self.exit_reason = KILLED
            watchers = list(self._watchers)
            self._watchers.clear()
        down = Down(self.ref, KILLED)
        for watcher in watchers:
            deliver_down(watcher, down)

    def add_watcher(self, watcher: Watcher) -> None:
        with self._watch_lock:
            if not self._dead:
                self._watchers[watcher] = None
                return
        reason = self.exit_reason or NOPROC
        deliver_down(watcher, Down(self.ref, reason))

    def remove_watcher(self, watcher: Watcher) -> None:
        with self._watch_lock:
            self._watchers.pop(watcher, None)

    def undeliverable(
        self, message: Any, reply_to: Future[Any] | None, reason: str | None = None
    ) -> None:
        error: Exception
        if reason is None and not self.mailbox.closed:
            self.counters.dropped += 1
            reason = "mailbox full (overflow=drop_newest)"
            error = MailboxFull(f"{self.path} dropped {type(message).__name__}: {reason}")
        else:
            reason = reason or "stopped before it arrived"
            error = dead_error(self.path, message)
        if reply_to is not None:
            reply_to.try_set_exception(error)
        self.system.dead_letters.record(self.path, message, reason)
