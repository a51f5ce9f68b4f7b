"""Monitors for any ref, local or remote: who may be told of a stop, and how.

A *watcher* is an :class:`ActorRef` (it receives ``Down`` in its mailbox, past the bound)
or a callback (called with the ``Down``, in whatever thread noticed the stop). Every kind
of ref implements the watch hooks of :class:`ActorRefLike`, so ``Actor.watch`` and
:func:`monitor` work the same on an actor in this node and on one in another node.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import structlog

from edgeloop.actors._mailbox import Envelope
from edgeloop.actors._ref import ActorRef

if TYPE_CHECKING:
    from edgeloop.actors._future import Future
    from edgeloop.actors._signals import Down

__all__ = ["ActorRefLike", "Watcher", "deliver_down", "monitor"]

_log = structlog.get_logger("edgeloop.actors")

Watcher: TypeAlias = "ActorRef | Callable[[Down], None]"
"""Who is told when a watched actor stops: an actor (by ``Down`` message) or a callback."""


class ActorRefLike(Protocol):
    """What :class:`ActorRef` and a remote ref have in common; accept it where either will do.

    ``path`` is the actor's path in its own node and ``is_remote`` says whether that node
    is another one. The underscored hooks are for :meth:`Actor.watch` and :func:`monitor`:
    once the actor stops (or can no longer be reached) every watcher added with
    ``_add_watcher`` gets one ``Down`` through :func:`deliver_down`.
    """

    @property
    def path(self) -> str: ...

    @property
    def is_remote(self) -> bool: ...

    def tell(self, message: Any) -> None: ...

    def ask(self, message: Any, *, timeout: float = ...) -> Future[Any]: ...

    def _add_watcher(self, watcher: Watcher) -> None: ...

    def _remove_watcher(self, watcher: Watcher) -> None: ...


def deliver_down(watcher: Watcher, down: Down) -> None:
    """Give ``down`` to ``watcher``: into an actor's mailbox past its bound, or to a callback.

    A callback that raises is logged (``monitor_callback_failed``) and not raised, so it
    cannot break the thread that noticed the stop.
    """
    if isinstance(watcher, ActorRef):
        watcher._mailbox.put_signal(Envelope(down))
        return
    try:
        watcher(down)
    except Exception as error:  # noqa: BLE001 - the notifying thread must go on
        _log.error(
            "monitor_callback_failed",
            path=down.ref.path,
            callback=getattr(watcher, "__qualname__", repr(watcher)),
            exc_info=error,
        )


def monitor(ref: ActorRefLike, callback: Callable[[Down], None]) -> Callable[[], None]:
    """Call ``callback(Down(ref, reason))`` once ``ref`` stops; returns the cancel function.

    The callback runs once, in the thread that notices the stop (the stopping actor's, or a
    link's I/O thread for a remote ref), or at once if ``ref`` has already stopped: keep it
    quick and hand work to an actor with ``tell``. Each call is a monitor of its own, as in
    Erlang; cancelling after the ``Down`` was delivered does nothing.
    """

    def watcher(down: Down) -> None:
        callback(down)

    functools.update_wrapper(watcher, callback)  # logs name the callback, not this wrapper
    ref._add_watcher(watcher)
    return lambda: ref._remove_watcher(watcher)
