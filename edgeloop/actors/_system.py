"""ActorSystem: one node's registry of paths, its dead letters and its clock."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from edgeloop.actors._actor import Actor
from edgeloop.actors._cell import Cell, Counters
from edgeloop.actors._dead_letters import DeadLetters
from edgeloop.actors._mailbox import MailboxConfig
from edgeloop.actors._monitor import ActorRefLike
from edgeloop.actors._ref import ActorRef
from edgeloop.actors._signals import SHUTDOWN
from edgeloop.clock import Clock, MonotonicClock
from edgeloop.errors import ActorStartError, LinkError, PathNotFoundError, PathTakenError

__all__ = ["ActorSystem", "DEFAULT_START_TIMEOUT"]

DEFAULT_START_TIMEOUT = 5.0
"""Seconds ``spawn`` waits for ``on_start`` to finish."""

# fullmatch, not ``^...$``: ``$`` also matches before a trailing newline.
_PATH = re.compile(r"(?:/[A-Za-z0-9_.@:-]+)+|/")


def check_path(path: str) -> str:
    """Return ``path`` if it is a valid actor path (``/a/b-1``), else raise ValueError."""
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        msg = (
            f"invalid actor path {path!r}: use '/'-separated segments of letters, digits "
            "and _.@:- such as '/yard/cameras/cam-01'"
        )
        raise ValueError(msg)
    return path


def split_address(address: str) -> tuple[str | None, str]:
    """Split ``"edge-b:/yard/fusion"`` into ``("edge-b", "/yard/fusion")``; a bare path
    such as ``"/yard/fusion"`` gives ``(None, path)``. Raises ValueError if malformed."""
    if address.startswith("/"):
        return None, check_path(address)
    node, colon, path = address.partition(":")
    if not colon or not node:
        msg = f"invalid actor address {address!r}: use NODE:/path such as 'edge-b:/yard/fusion'"
        raise ValueError(msg)
    if not all(c.isalnum() or c in "_.@-" for c in node) or not node[0].isalnum():
        msg = (
            f"invalid node name {node!r} in {address!r}: node names are letters, digits "
            "and _.@- starting with a letter or digit"
        )
        raise ValueError(msg)
    return node, check_path(path)


class ActorSystem:
    """The actors of one node: spawn them, look them up by path, collect dead letters.

    Registries are per system, never process-global, so two nodes (or two tests) in one
    process cannot see each other's actors.
    """

    def __init__(
        self, name: str = "local", *, clock: Clock | None = None, seed: int | None = None
    ) -> None:
        self.name = name
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        # Randomness comes from the node (backoff jitter, sampling) so runs can be replayed.
        self.random = random.Random(seed)
        self._owns_clock = clock is None
        self.dead_letters = DeadLetters()
        # Set by the node when it has links: turns ("edge-b", "/path") into a remote ref.
        self.remote_resolver: Callable[[str, str], ActorRefLike] | None = None
        # What the node offers its actors by name (e.g. "devices": its DevicePort), so
        # that layers above this one can hand actors their services without globals.
        self.services: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._registry: dict[str, ActorRef] = {}

    def spawn(
        self,
        factory: Callable[..., Any],
        path: str,
        *,
        args: Mapping[str, Any] | None = None,
        mailbox: MailboxConfig | None = None,
        parent: ActorRef | None = None,
        counters: Counters | None = None,
        start_timeout: float | None = DEFAULT_START_TIMEOUT,
    ) -> ActorRef:
        """Create ``factory(**args)``, register it at ``path`` and run it.

        Returns once ``on_start`` has finished, so actors spawned one after the other
        start in that order. Raises :class:`~edgeloop.errors.PathTakenError` if a live
        actor holds ``path`` and :class:`~edgeloop.errors.ActorStartError` if the
        constructor or ``on_start`` raised (``__cause__``) or ``on_start`` took longer than
        ``start_timeout``. ``parent`` receives ``Down`` when the actor stops.
        """
        check_path(path)
        try:
            actor = factory(**(args or {}))
        except Exception as error:
            msg = f"could not construct the actor for {path}: {type(error).__name__}: {error}"
            raise ActorStartError(msg) from error
        if not isinstance(actor, Actor):
            msg = f"{factory!r} made {type(actor).__name__}, not an edgeloop.Actor, for {path}"
            raise ActorStartError(msg)
        cell = Cell(
            actor,
            self,
            path,
            mailbox=mailbox or MailboxConfig(),
            parent=parent,
            counters=counters or Counters(),
        )
        with self._lock:
            holder = self._registry.get(path)
            if holder is not None and holder.is_alive():
                msg = f"{path} is already held by a running actor; stop it or use another path"
                raise PathTakenError(msg)
            self._registry[path] = cell.ref
        cell._start_actor_loop()
        if not cell.started.wait(start_timeout):
            cell.kill()
            msg = f"{path}: on_start did not finish within {start_timeout} s"
            raise ActorStartError(msg)
        if cell.start_error is not None:
            # The failed actor frees its path as it ends; wait, so a retry can take it.
            cell.terminated.wait(start_timeout)
            cause = cell.start_error
            msg = f"{path}: on_start raised {type(cause).__name__}: {cause}"
            raise ActorStartError(msg) from cause
        return cell.ref

    def ref(self, address: str) -> ActorRefLike:
        """A ref from an address, for actors as for anyone: ``"/yard/fusion"`` (or
        ``"<this node>:/yard/fusion"``) the local actor, ``"edge-b:/yard/fusion"`` a
        remote ref through the node's links.

        Raises :class:`~edgeloop.errors.PathNotFoundError` for a local path no actor holds,
        :class:`~edgeloop.errors.LinkError` for another node when this one has no links,
        and ValueError for a malformed address.
        """
        node, path = split_address(address)
        if node is None or node == self.name:
            local = self.lookup(path)
            if local is None:
                msg = f"no actor at {path} in node {self.name!r}"
                raise PathNotFoundError(msg)
            return local
        if self.remote_resolver is None:
            msg = (
                f"node {self.name!r} has no links, so it cannot reach {address!r}: give it "
                "listen endpoints or peers ([node] listen = [...], peers = [...])"
            )
            raise LinkError(msg)
        return self.remote_resolver(node, path)

    def lookup(self, path: str) -> ActorRef | None:
        """The running actor at ``path``, or ``None``."""
        return self._registry.get(path)

    def tell(self, path: str, message: Any) -> None:
        """Send to whatever actor holds ``path`` now; a dead letter if none does."""
        ref = self._registry.get(path)
        if ref is None:
            self.dead_letters.record(path, message, "no actor at this path")
        else:
            ref.tell(message)

    def actors(self) -> list[ActorRef]:
        """Every registered actor, in the order they were spawned."""
        with self._lock:
            return list(self._registry.values())

    def stop_all(self, timeout: float = 5.0) -> list[str]:
        """Stop every actor; returns the paths of those that did not stop within
        ``timeout`` seconds each (they are abandoned).

        Actors without a parent go first, the most recently spawned first, so that a
        supervisor stops its own children in order (right to left) instead of seeing them
        stop under it and restarting them; whatever is left after that goes next.
        """
        stuck: list[str] = []
        for roots_only in (True, False):
            for ref in reversed(self.actors()):
                if roots_only and ref._cell.parent is not None:
                    continue
                ref.stop(SHUTDOWN)
                if not ref.wait_stopped(timeout):
                    ref.kill()
                    stuck.append(ref.path)
        return stuck

    def close(self, timeout: float = 5.0) -> list[str]:
        """Stop every actor and the clock (if this system made it)."""
        stuck = self.stop_all(timeout)
        if self._owns_clock:
            self.clock.close()
        return stuck

    def _unregister(self, path: str, ref: ActorRef) -> None:
        with self._lock:
            if self._registry.get(path) is ref:
                del self._registry[path]

    def __repr__(self) -> str:
        return f"<ActorSystem {self.name} actors={len(self._registry)}>"
