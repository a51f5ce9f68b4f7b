"""Dynamic operations on a running supervisor, as messages and as a typed client."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from edgeloop.actors import ActorRef
from edgeloop.errors import SupervisorError
from edgeloop.supervisor.spec import ChildSpec, ChildType

__all__ = [
    "ChildInfo",
    "ChildCounts",
    "SupervisorRef",
    "StartChild",
    "TerminateChild",
    "RestartChild",
    "DeleteChild",
    "WhichChildren",
    "CountChildren",
    "Refused",
]

ChildState = Literal["running", "restarting", "terminated"]


@dataclasses.dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of ``which_children``: OTP's ``{Id, Child, Type, Modules}`` plus state."""

    id: str
    ref: ActorRef | None
    state: ChildState
    type: ChildType
    restarts: int


@dataclasses.dataclass(frozen=True, slots=True)
class ChildCounts:
    """``count_children``: specs, running children, and specs by type."""

    specs: int
    active: int
    supervisors: int
    workers: int


@dataclasses.dataclass(frozen=True, slots=True)
class StartChild:
    spec: ChildSpec


@dataclasses.dataclass(frozen=True, slots=True)
class TerminateChild:
    id: str


@dataclasses.dataclass(frozen=True, slots=True)
class RestartChild:
    id: str


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteChild:
    id: str


@dataclasses.dataclass(frozen=True, slots=True)
class WhichChildren:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class CountChildren:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Refused:
    """The supervisor's answer when it refuses an operation; the client raises ``error``.

    A refusal is an answer, not a crash: the supervisor and its children go on.
    """

    error: SupervisorError


class SupervisorRef:
    """Blocking, typed access to a supervisor's dynamic operations (OTP's API names).

    Use it from outside actors (the CLI, tests, notebooks). Inside an actor, ``ask`` the
    operation messages and handle the future with a callback instead.
    """

    def __init__(self, ref: ActorRef, *, timeout: float = 10.0) -> None:
        self.ref = ref
        self.timeout = timeout

    def start_child(self, spec: ChildSpec) -> ActorRef:
        """Add ``spec`` as the last child and start it; returns its ref."""
        result: ActorRef = self._call(StartChild(spec))
        return result

    def terminate_child(self, child_id: str) -> None:
        """Stop a child in order; its spec stays (a temporary child's is removed)."""
        self._call(TerminateChild(child_id))

    def restart_child(self, child_id: str) -> ActorRef:
        """Start a terminated child again from its spec."""
        result: ActorRef = self._call(RestartChild(child_id))
        return result

    def delete_child(self, child_id: str) -> None:
        """Remove a terminated child's spec."""
        self._call(DeleteChild(child_id))

    def which_children(self) -> list[ChildInfo]:
        """Every child, in start order."""
        result: list[ChildInfo] = self._call(WhichChildren())
        return result

    def count_children(self) -> ChildCounts:
        result: ChildCounts = self._call(CountChildren())
        return result

    def _call(self, message: Any) -> Any:
        answer = self.ref.ask(message, timeout=self.timeout).get()
        if isinstance(answer, Refused):
            raise answer.error
        return answer
