"""Node: one process hosting a root supervisor, its actor system and its clock."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog

from edgeloop.actors import SHUTDOWN, ActorRef, ActorStatistics, ActorSystem, ExitReason
from edgeloop.clock import Clock
from edgeloop.errors import ActorStartError, NodeError, NodeFailedError
from edgeloop.supervisor._operations import SupervisorRef
from edgeloop.supervisor._supervisor import Supervisor
from edgeloop.supervisor.config import AppConfig, check_starts, load_app
from edgeloop.supervisor.spec import ChildSpec, SupervisorFlags

__all__ = ["Node", "ROOT_PATH"]

ROOT_PATH = "/"
"""The root supervisor's path; its children live at ``/<id>``."""

_log = structlog.get_logger("edgeloop.node")


class Node:
    """A supervisor node: ``start()`` builds the tree, ``stop()`` takes it down in order.

    If the root supervisor escalates, the node stops by itself: :meth:`wait` returns the
    reason and :meth:`raise_if_failed` raises :class:`~edgeloop.errors.NodeFailedError`.
    """

    def __init__(
        self,
        name: str = "edgeloop",
        flags: SupervisorFlags | None = None,
        children: Sequence[ChildSpec] = (),
        *,
        clock: Clock | None = None,
        seed: int | None = None,
    ) -> None:
        self.name = name
        self.flags = flags or SupervisorFlags()
        self.children = tuple(children)
        self._clock = clock
        self._seed = seed
        self._system: ActorSystem | None = None
        self._root: ActorRef | None = None
        self._stop_lock = threading.Lock()

    @classmethod
    def from_app(cls, app: AppConfig | str | Path, *, name: str | None = None) -> Node:
        """Build a node from an app file (or a parsed one); imports are checked now."""
        config = app if isinstance(app, AppConfig) else load_app(app)
        check_starts(config.children)
        return cls(name or config.node.name, config.flags, config.children, seed=config.node.seed)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Start the root supervisor and, left to right, the whole tree."""
        if self._system is not None:
            msg = f"node {self.name!r} is already started"
            raise NodeError(msg)
        self._system = ActorSystem(self.name, clock=self._clock, seed=self._seed)
        try:
            self._root = self._system.spawn(
                Supervisor,
                ROOT_PATH,
                args={"flags": self.flags, "children": self.children},
                start_timeout=None,
            )
        except ActorStartError as error:
            self._system.close()
            self._system = None
            msg = f"node {self.name!r} could not start its supervision tree: {error}"
            raise NodeError(msg) from error
        _log.info("node_started", node=self.name, children=[c.id for c in self.children])
        return self

    def stop(self, timeout: float | None = None) -> ExitReason:
        """Stop the tree right to left (each child within its shutdown) and close the node.

        Returns why the root stopped: ``shutdown`` after an orderly stop, ``escalated`` if
        it had already given up. Calling it again returns the same reason.
        """
        root = self._root
        if root is None:
            msg = f"node {self.name!r} is not started"
            raise NodeError(msg)
        with self._stop_lock:
            if root.is_alive():
                root.stop(SHUTDOWN)
            if not root.wait_stopped(timeout):
                root.kill()
            return self._finish()

    def wait(self, timeout: float | None = None) -> ExitReason | None:
        """Wait until the root supervisor stops (an escalation, or :meth:`stop` from
        another thread); returns its exit reason, or ``None`` if ``timeout`` passed.
        Call :meth:`stop` afterwards to close the node."""
        if self._root is None:
            msg = f"node {self.name!r} is not started"
            raise NodeError(msg)
        if not self._root.wait_stopped(timeout):
            return None
        return self._root.exit_reason

    def raise_if_failed(self) -> None:
        """Raise NodeFailedError if the root supervisor escalated."""
        reason = self._root.exit_reason if self._root is not None else None
        if reason is not None and reason.abnormal:
            raise NodeFailedError(str(reason))

    def _finish(self) -> ExitReason:
        assert self._root is not None
        reason = self._root.exit_reason or SHUTDOWN
        system = self._system
        if system is not None:
            self._system = None
            stuck = system.close()
            log = _log.error if reason.abnormal else _log.info
            log("node_stopped", node=self.name, reason=str(reason), abandoned=stuck or None)
        return reason

    def __enter__(self) -> Self:
        return self.start() if self._system is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._system is not None:
            self.stop()

    # -- access ----------------------------------------------------------------------

    @property
    def system(self) -> ActorSystem:
        if self._system is None:
            msg = f"node {self.name!r} is not running"
            raise NodeError(msg)
        return self._system

    @property
    def root(self) -> SupervisorRef:
        """The root supervisor's dynamic operations."""
        if self._root is None:
            msg = f"node {self.name!r} is not started"
            raise NodeError(msg)
        return SupervisorRef(self._root)

    def lookup(self, path: str) -> ActorRef | None:
        """The actor at ``path`` now (after a restart: the new incarnation)."""
        return self.system.lookup(path)

    def tell(self, path: str, message: Any) -> None:
        """Send to whatever actor holds ``path``; a dead letter if none does."""
        self.system.tell(path, message)

    def supervisor(self, path: str) -> SupervisorRef:
        """The dynamic operations of the supervisor at ``path``."""
        ref = self.lookup(path)
        if ref is None:
            msg = f"no supervisor at {path!r} in node {self.name!r}"
            raise NodeError(msg)
        return SupervisorRef(ref)

    def statistics(self) -> list[ActorStatistics]:
        """Every running actor's statistics, in spawn order."""
        return [ref.statistics() for ref in self.system.actors()]

    def __repr__(self) -> str:
        state = "running" if self._system is not None else "stopped"
        return f"<Node {self.name} {state}>"
