"""The Actor base class users subclass."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from edgeloop.actors._signals import ExitReason

if TYPE_CHECKING:
    from edgeloop.actors._cell import Cell
    from edgeloop.actors._monitor import ActorRefLike
    from edgeloop.actors._ref import ActorRef
    from edgeloop.actors._system import ActorSystem

__all__ = ["Actor"]

_log = structlog.get_logger("edgeloop.actors")


class Actor:
    """Subclass it, override the hooks, and let a supervisor or a system spawn it.

    Every hook runs in the actor's own thread, one message at a time, so an actor's state
    needs no locks. An exception escaping any hook crashes the actor: its supervisor
    decides what happens next. ``__init__`` runs in the spawning thread, before the actor
    has a ref; do setup that needs ``self.ref`` in :meth:`on_start`.

    Never block on another actor's ``ask(...).get()`` inside a hook: two actors asking
    each other deadlock. Use ``add_done_callback`` or reply with a message.
    """

    _cell: Cell | None = None

    def on_start(self) -> None:
        """Runs before the first message. Raising here means the start failed."""

    def on_receive(self, message: Any) -> Any:
        """Handle one message; the return value answers an ``ask``.

        The default logs the message as unhandled and answers ``None``.
        """
        _log.warning("unhandled_message", path=self.path, message_type=type(message).__name__)
        return None

    def on_stop(self) -> None:
        """Runs once after the last message, after a normal stop, a shutdown or a crash in
        ``on_receive`` (not after a failed ``on_start``, nor when the actor is killed)."""

    @property
    def ref(self) -> ActorRef:
        """This actor's own ref; available from ``on_start`` on."""
        return self._bound().ref

    @property
    def path(self) -> str:
        """This actor's path in its node, such as ``/yard/cameras/cam-01``."""
        return self._bound().path

    @property
    def system(self) -> ActorSystem:
        """The actor system (registry, dead letters, clock) this actor lives in."""
        return self._bound().system

    @property
    def parent(self) -> ActorRef | None:
        """The supervisor (or other parent) told when this actor stops, if any."""
        return self._bound().parent

    def watch(self, ref: ActorRefLike) -> None:
        """Receive ``Down(ref, reason)`` once ``ref`` stops (at once if it already has).

        ``ref`` may be remote: then ``Down`` also comes, with reason ``noconnection``, when
        the link to its node is lost.
        """
        ref._add_watcher(self._bound().ref)

    def unwatch(self, ref: ActorRefLike) -> None:
        """Stop watching ``ref``; a ``Down`` already queued may still arrive."""
        ref._remove_watcher(self._bound().ref)

    def stop(self, reason: ExitReason | None = None) -> None:
        """Stop this actor after the current message (reason ``normal`` by default)."""
        self._bound().request_stop(reason or ExitReason("normal"))

    def _bound(self) -> Cell:
        if self._cell is None:
            msg = (
                f"{type(self).__name__} is not running yet: its ref, path and system exist "
                "from on_start() on, not in __init__()"
            )
            raise RuntimeError(msg)
        return self._cell
