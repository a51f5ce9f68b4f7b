"""The Supervisor actor: starts, watches and restarts children by the policy's decisions.

It holds state (children in start order, the restart history, backoff counters) and
applies what :func:`edgeloop.supervisor._policy.decide` returns; it decides nothing itself.
Every hook runs in the supervisor's own thread, so the state needs no locks.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import structlog

from edgeloop.actors import (
    SHUTDOWN,
    Actor,
    ActorRef,
    Counters,
    Down,
    ExitReason,
    send_signal,
)
from edgeloop.clock import Timer
from edgeloop.errors import (
    ActorStartError,
    ChildExistsError,
    ChildNotFoundError,
    ChildRunningError,
    PathTakenError,
    SupervisorError,
)
from edgeloop.supervisor import _policy as policy
from edgeloop.supervisor._operations import (
    ChildCounts,
    ChildInfo,
    ChildState,
    CountChildren,
    DeleteChild,
    Refused,
    RestartChild,
    StartChild,
    TerminateChild,
    WhichChildren,
)
from edgeloop.supervisor.spec import ChildSpec, ChildType, SupervisorFlags

__all__ = ["Supervisor", "resolve_start"]

_log = structlog.get_logger("edgeloop.supervisor")


def resolve_start(start: Callable[..., Any] | str) -> Callable[..., Any]:
    """Turn a ``"package.module:Name"`` start into the object it names."""
    if not isinstance(start, str):
        return start
    module_name, _, attr = start.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        msg = (
            f"cannot import {module_name!r} for start={start!r}: {error}; run from the "
            "directory that holds it or pass --path"
        )
        raise ActorStartError(msg) from error
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            msg = f"module {module_name!r} has no {attr!r} (start={start!r})"
            raise ActorStartError(msg)
        target = getattr(target, part)
    if not callable(target):
        msg = f"start={start!r} names {type(target).__name__}, not an actor class or factory"
        raise ActorStartError(msg)
    return target  # type: ignore[no-any-return]


@dataclasses.dataclass(eq=False)
class _Child:
    spec: ChildSpec
    counters: Counters = dataclasses.field(default_factory=Counters)
    ref: ActorRef | None = None
    state: ChildState = "terminated"
    started_at: float = 0.0
    attempt: int = -1
    timer: Timer | None = None

    @property
    def id(self) -> str:
        return self.spec.id


_Failure: TypeAlias = tuple[_Child, ExitReason]
"""A child whose restart failed to start, and why: one more exit to decide about."""


@dataclasses.dataclass(frozen=True, slots=True)
class _RestartDue:
    """A backoff timer fired: start ``ids`` unless something else happened since."""

    ids: tuple[str, ...]
    token: object


class Supervisor(Actor):
    """Supervises children described by :class:`ChildSpec`, with OTP's semantics.

    Children start left to right in ``on_start`` (if one fails, the ones already started
    are stopped and the supervisor fails to start) and stop right to left in ``on_stop``.
    """

    def __init__(
        self, flags: SupervisorFlags | None = None, children: Sequence[ChildSpec] = ()
    ) -> None:
        self.flags = flags or SupervisorFlags()
        self._children: list[_Child] = []
        for spec in children:
            if any(c.id == spec.id for c in self._children):
                msg = f"two children have the id {spec.id!r}; ids must be unique per supervisor"
                raise ChildExistsError(msg)
            self._children.append(_Child(spec))
        self._history: tuple[float, ...] = ()
        # Which backoff timer each restarting child waits for; a stale timer is ignored.
        self._tokens: dict[str, object] = {}

    # -- lifecycle -------------------------------------------------------------------

    def on_start(self) -> None:
        for child in self._children:
            try:
                self._start(child)
            except ActorStartError as error:
                self._terminate_all()
                msg = f"{self.path} could not start child {child.id!r}: {error}"
                raise ActorStartError(msg) from error

    def on_stop(self) -> None:
        self._terminate_all()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Down):
            self._on_down(message)
            return None
        if isinstance(message, _RestartDue):
            self._on_restart_due(message)
            return None
        try:
            return self._operation(message)
        except SupervisorError as error:
            return Refused(error)

    # -- exits and restarts ------------------------------------------------------------

    def _on_down(self, down: Down) -> None:
        child = next((c for c in self._children if c.ref is down.ref), None)
        if child is None:
            return  # a child we stopped ourselves, or an earlier incarnation
        child.ref = None
        child.state = "terminated"
        self._log_exit(child, down.reason)
        self._handle_exit(child, down.reason)

    def _handle_exit(self, child: _Child, reason: ExitReason) -> None:
        # A restart that fails to start is one more exit to decide about. Loop rather than
        # recurse: with a high intensity a child that cannot start would exhaust the stack.
        failure: _Failure | None = (child, reason)
        while failure is not None:
            failure = self._decide(*failure)

    def _decide(self, child: _Child, reason: ExitReason) -> _Failure | None:
        """Apply the policy's decision about one exit; returns a restart that failed."""
        now = self.system.clock.now()
        delay = 0.0
        backoff = self.flags.backoff
        if backoff is not None:
            child.attempt = policy.backoff_attempt(child.attempt, child.started_at, now, backoff)
            delay = policy.backoff_delay(backoff, child.attempt, self.system.random.random())
        decision, self._history = policy.decide(
            self.flags.strategy,
            [policy.ChildView(c.id, c.spec.restart, c.state == "running") for c in self._children],
            child.id,
            reason.abnormal,
            self._history,
            now,
            self.flags.intensity,
            self.flags.period,
            delay,
        )
        if decision.action == "remove":
            self._children.remove(child)
        elif decision.action == "escalate":
            self._escalate(child, reason)
        elif decision.action == "restart":
            return self._apply_restart(decision)
        return None

    def _apply_restart(self, decision: policy.Decision) -> _Failure | None:
        for child_id in decision.stop:
            self._terminate(self._child(child_id))
        self._children = [c for c in self._children if c.id not in decision.remove]
        group = [self._child(i) for i in decision.start]
        if decision.delay <= 0:
            return self._restart_group(group)
        token = object()
        ids = tuple(c.id for c in group)
        ref = self.ref

        def due() -> None:
            # Past the mailbox bound: a full mailbox must neither stall the clock's thread
            # nor drop the restart (the child would stay "restarting" for ever).
            send_signal(ref, _RestartDue(ids, token))

        timer = self.system.clock.call_later(decision.delay, due)
        for child in group:
            child.state = "restarting"
            child.timer = timer
            self._tokens[child.id] = token
        _log.info(
            "child_restart_scheduled",
            supervisor=self.path,
            child=ids[0] if len(ids) == 1 else list(ids),
            delay=round(decision.delay, 4),
        )
        return None

    def _on_restart_due(self, due: _RestartDue) -> None:
        group = [
            c
            for c in self._children
            if c.state == "restarting" and self._tokens.get(c.id) is due.token
        ]
        for child in group:
            del self._tokens[child.id]
            child.timer = None
        failure = self._restart_group(group)
        if failure is not None:
            self._handle_exit(*failure)

    def _restart_group(self, group: list[_Child]) -> _Failure | None:
        """Start ``group`` left to right; returns the first child that failed to start.

        The members after it are left ``restarting``: the decision about the failure
        restarts them (they are in its group under every strategy) or escalates.
        """
        for index, child in enumerate(group):
            child.counters.restarts += 1
            try:
                self._start(child)
            except ActorStartError as error:
                child.state = "terminated"
                # A failed start is not a stable run: the backoff keeps growing.
                child.started_at = self.system.clock.now()
                for later in group[index + 1 :]:
                    later.state = "restarting"
                reason = ExitReason.crash(error, "start")
                self._log_exit(child, reason)
                return child, reason
            _log.info(
                "child_restarted",
                supervisor=self.path,
                child=child.id,
                restarts=child.counters.restarts,
            )
        return None

    def _escalate(self, child: _Child, reason: ExitReason) -> None:
        detail = (
            f"more than {self.flags.intensity} restart(s) in {self.flags.period} s; "
            f"last: child {child.id!r} {reason}"
        )
        _log.error(
            "supervisor_escalated",
            supervisor=self.path,
            child=child.id,
            reason=str(reason),
            intensity=self.flags.intensity,
            period=self.flags.period,
        )
        self.stop(ExitReason("escalated", detail, reason.error))

    # -- starting and stopping one child ---------------------------------------------

    def _child_path(self, child_id: str) -> str:
        return ("" if self.path == "/" else self.path) + "/" + child_id

    def _start(self, child: _Child) -> ActorRef:
        """Spawn one child; every way its start can fail raises ActorStartError."""
        spec = child.spec
        try:
            ref = self.system.spawn(
                resolve_start(spec.start),
                self._child_path(spec.id),
                args=spec.args,
                mailbox=spec.mailbox,
                parent=self.ref,
                counters=child.counters,
                # A supervisor's start includes its whole subtree: wait for it, as OTP does.
                start_timeout=spec.start_wait,
            )
        except PathTakenError as error:
            raise ActorStartError(str(error)) from error
        child.ref = ref
        child.state = "running"
        child.started_at = self.system.clock.now()
        _log.info("child_started", supervisor=self.path, child=spec.id, type=spec.type.value)
        return ref

    def _terminate(self, child: _Child) -> None:
        """Stop one child in order (or kill it), and wait as its shutdown allows."""
        if child.timer is not None:
            # A group restart shares one timer: cancel it only when no member waits on it.
            token = self._tokens.pop(child.id, None)
            if all(other is not token for other in self._tokens.values()):
                child.timer.cancel()
            child.timer = None
        ref, child.ref = child.ref, None
        child.state = "terminated"
        if ref is None:
            return
        timeout = child.spec.shutdown_timeout
        if timeout == 0:
            self._kill(ref)
            reason = ExitReason("killed", "brutal_kill")
        else:
            ref.stop(SHUTDOWN)
            if ref.wait_stopped(timeout):
                reason = ref.exit_reason or SHUTDOWN
            else:
                self._kill(ref)
                reason = ExitReason("killed", f"did not stop within its shutdown of {timeout} s")
                _log.error(
                    "child_abandoned",
                    supervisor=self.path,
                    child=child.id,
                    reason=str(reason),
                )
        self._log_exit(child, reason)

    def _kill(self, ref: ActorRef) -> None:
        """Kill a child and every actor below its path, newest first.

        OTP's links take a killed supervisor's children down with it; without this, a
        killed sub-supervisor's children would run on as orphans and hold the paths its
        next incarnation needs.
        """
        ref.kill()
        below = ref.path + "/"
        for other in reversed(self.system.actors()):
            if other.path.startswith(below):
                other.kill()

    def _terminate_all(self) -> None:
        for child in reversed(self._children):
            self._terminate(child)
        self._children = [c for c in self._children if c.spec.restart != "temporary"]

    def _log_exit(self, child: _Child, reason: ExitReason) -> None:
        log = _log.error if reason.abnormal else _log.info
        extra = {"traceback": trace} if (trace := reason.traceback_summary()) else {}
        log("child_exited", supervisor=self.path, child=child.id, reason=str(reason), **extra)

    # -- dynamic operations ------------------------------------------------------------

    def _child(self, child_id: str) -> _Child:
        for child in self._children:
            if child.id == child_id:
                return child
        msg = f"{self.path} has no child {child_id!r}"
        raise ChildNotFoundError(msg)

    def _operation(self, message: Any) -> Any:
        if isinstance(message, StartChild):
            if any(c.id == message.spec.id for c in self._children):
                msg = f"{self.path} already has a child {message.spec.id!r}"
                raise ChildExistsError(msg)
            child = _Child(message.spec)
            self._children.append(child)
            try:
                return self._start(child)
            except ActorStartError as error:
                self._children.remove(child)
                msg = f"could not start {message.spec.id!r}: {error}"
                raise SupervisorError(msg) from error
        if isinstance(message, TerminateChild):
            child = self._child(message.id)
            self._terminate(child)
            if child.spec.restart == "temporary":
                self._children.remove(child)
            return None
        if isinstance(message, RestartChild):
            child = self._child(message.id)
            if child.state != "terminated":
                msg = f"{message.id!r} is {child.state}; terminate_child it first"
                raise ChildRunningError(msg)
            try:
                return self._start(child)
            except ActorStartError as error:
                msg = f"could not restart {message.id!r}: {error}"
                raise SupervisorError(msg) from error
        if isinstance(message, DeleteChild):
            child = self._child(message.id)
            if child.state != "terminated":
                msg = f"{message.id!r} is {child.state}; terminate_child it first"
                raise ChildRunningError(msg)
            self._children.remove(child)
            return None
        if isinstance(message, WhichChildren):
            return [
                ChildInfo(c.id, c.ref, c.state, c.spec.type, c.counters.restarts)
                for c in self._children
            ]
        if isinstance(message, CountChildren):
            supervisors = sum(1 for c in self._children if c.spec.type is ChildType.SUPERVISOR)
            return ChildCounts(
                specs=len(self._children),
                active=sum(1 for c in self._children if c.state == "running"),
                supervisors=supervisors,
                workers=len(self._children) - supervisors,
            )
        return super().on_receive(message)
