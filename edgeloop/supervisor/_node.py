"""Node: one process hosting a root supervisor, its actor system, its clock and its links."""

from __future__ import annotations

import atexit
import dataclasses
import random
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import structlog

from edgeloop.actors import (
    SHUTDOWN,
    ActorRef,
    ActorRefLike,
    ActorStatistics,
    ActorSystem,
    ExitReason,
)
from edgeloop.clock import Clock
from edgeloop.errors import (
    ActorStartError,
    ConfigError,
    EdgeloopError,
    LinkError,
    NodeError,
    NodeFailedError,
)
from edgeloop.supervisor._devices import SERVICE as DEVICES_SERVICE
from edgeloop.supervisor._devices import DevicePort
from edgeloop.supervisor._operations import SupervisorRef
from edgeloop.supervisor._remote import (
    EndpointFactory,
    EndpointLike,
    LinkSettings,
    Remoting,
    zmq_endpoint,
)
from edgeloop.supervisor._status import STATUS_PATH, StatusActor, node_status
from edgeloop.supervisor._supervisor import Supervisor
from edgeloop.supervisor.config import (
    AppConfig,
    check_endpoint,
    check_starts,
    link_config,
    load_app,
)
from edgeloop.supervisor.spec import ChildSpec, SupervisorFlags

if TYPE_CHECKING:
    from edgeloop.transport import LinkConfig, PeerAddress, PeerDown, PeerUp
    from edgeloop.transport._security import SecurityConfig

__all__ = ["Node", "ROOT_PATH"]

ROOT_PATH = "/"
"""The root supervisor's path; its children live at ``/<id>``."""

_log = structlog.get_logger("edgeloop.node")


class Node:
    """A supervisor node: ``start()`` builds the tree, ``stop()`` takes it down in order.

    If the root supervisor escalates, the node stops by itself: :meth:`wait` returns the
    reason and :meth:`raise_if_failed` raises :class:`~edgeloop.errors.NodeFailedError`.

    A node with ``listen`` endpoints or ``peers`` also opens links to other nodes (after its
    tree has started; they close after the tree has stopped), so that ``node.ref("edge-b:
    /yard/fusion")`` reaches an actor there. Its ``name`` is then its id on the links.
    ``endpoint_factory`` builds the endpoint (ZeroMQ by default).
    """

    def __init__(
        self,
        name: str = "edgeloop",
        flags: SupervisorFlags | None = None,
        children: Sequence[ChildSpec] = (),
        *,
        clock: Clock | None = None,
        seed: int | None = None,
        listen: Sequence[str] = (),
        peers: Sequence[str | PeerAddress | Mapping[str, Any]] = (),
        link: LinkConfig | None = None,
        security: SecurityConfig | None = None,
        endpoint_factory: EndpointFactory | None = None,
    ) -> None:
        self.name = name
        self.flags = flags or SupervisorFlags()
        self.children = tuple(children)
        reserved = STATUS_PATH.lstrip("/")
        if any(child.id == reserved for child in self.children):
            raise ConfigError(
                "supervisor.children",
                f"the id {reserved!r} is reserved: the node answers status asks at "
                f"{STATUS_PATH}; rename that child",
            )
        self._clock = clock
        self._seed = seed
        self._links = _link_settings(name, listen, peers, link, security)
        self._endpoint_factory: EndpointFactory = endpoint_factory or zmq_endpoint
        self._system: ActorSystem | None = None
        self._root: ActorRef | None = None
        self._remoting: Remoting | None = None
        self._endpoint: EndpointLike | None = None
        self._devices: DevicePort | None = None
        self._stop_lock = threading.Lock()
        self._started_at: float | None = None

    @classmethod
    def from_app(
        cls,
        app: AppConfig | str | Path,
        *,
        name: str | None = None,
        endpoint_factory: EndpointFactory | None = None,
    ) -> Node:
        """Build a node from an app file (or a parsed one); imports are checked now."""
        config = app if isinstance(app, AppConfig) else load_app(app)
        check_starts(config.children)
        node = config.node
        return cls(
            name or node.name,
            config.flags,
            config.children,
            seed=node.seed,
            listen=node.listen,
            peers=node.peers,
            link=node.link,
            security=node.security,
            endpoint_factory=endpoint_factory,
        )

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Start the root supervisor and, left to right, the whole tree."""
        if self._system is not None:
            msg = f"node {self.name!r} is already started"
            raise NodeError(msg)
        self._system = ActorSystem(self.name, clock=self._clock, seed=self._seed)
        # Before the tree: twins register with the port from their on_start.
        self._devices = DevicePort(self._system)
        self._system.services[DEVICES_SERVICE] = self._devices
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
        fields: dict[str, Any] = {"children": [c.id for c in self.children]}
        self._started_at = time.monotonic()
        if self._links is not None:
            self._open_links(self._links, self._system)
            # Outside the tree: it answers `edgeloop node status` over the links.
            try:
                self._system.spawn(
                    StatusActor, STATUS_PATH, args={"node": self, "started_at": self._started_at}
                )
            except EdgeloopError as error:
                self.stop()
                msg = f"node {self.name!r} could not start its status actor: {error}"
                raise NodeError(msg) from error
            fields["listen"] = list(self._links.listen)
            fields["peers"] = [p.address for p in self._links.peers]
        # A program that returns without stop() would end with the actors' (daemon)
        # threads still running: one inside XLA then aborts the interpreter at exit. The
        # hook stops the tree first, as stop() would (unregistered when the node stops).
        atexit.register(self._stop_at_exit)
        _log.info("node_started", node=self.name, **fields)
        return self

    def _stop_at_exit(self) -> None:
        if self._system is not None:
            _log.warning("node_stopped_at_exit", node=self.name, hint="call node.stop()")
            self.stop()

    def _open_links(self, settings: LinkSettings, system: ActorSystem) -> None:
        from edgeloop.transport import PeerDown as LinkDown  # zmq once the node has links

        devices = self.devices
        remoting = Remoting(system, on_other=devices.on_message)

        def on_peer(event: PeerUp | PeerDown) -> None:
            # Device links go to the port; every down also to Remoting (it fails what
            # hung on that peer, and a name is a node's or a device's, never both).
            if isinstance(event, LinkDown):
                if devices.connected(event.peer):
                    devices.on_peer(event.peer, False, reason=event.reason)
                remoting.on_peer(event)
            elif event.role == "device":
                devices.on_peer(event.peer, True, reconnected=event.reconnected)
            else:
                remoting.on_peer(event)

        def on_undelivered(peer: str, message: object, reason: str) -> None:
            if devices.connected(peer) or devices.route(peer) is not None:
                devices.on_undelivered(peer, message, reason)
            else:
                remoting.on_undelivered(peer, message, reason)

        # The endpoint's own generator (reconnect jitter), seeded from the node's, so that
        # runs with the same seed draw the same delays without sharing one across threads.
        rng = random.Random(system.random.getrandbits(64))
        try:
            endpoint = self._endpoint_factory(
                settings,
                on_message=remoting.on_message,
                on_peer=on_peer,
                on_undelivered=on_undelivered,
                rng=rng,
            )
            remoting.attach(endpoint)
            devices.attach(endpoint)
            endpoint.start()
        except (LinkError, ConfigError, OSError) as error:
            remoting.close()
            assert self._root is not None
            self._root.stop(SHUTDOWN)
            self._root.wait_stopped()
            system.close()
            self._system = None
            self._root = None
            msg = f"node {self.name!r} could not open its links: {error}"
            raise NodeError(msg) from error
        self._remoting = remoting
        system.remote_resolver = remoting.ref
        self._endpoint = endpoint

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
            atexit.unregister(self._stop_at_exit)
            self._close_links()
            stuck = system.close()
            log = _log.error if reason.abnormal else _log.info
            log("node_stopped", node=self.name, reason=str(reason), abandoned=stuck or None)
        return reason

    def _close_links(self) -> None:
        endpoint, self._endpoint = self._endpoint, None
        if self._devices is not None:
            self._devices.attach(None)
        if endpoint is not None:
            endpoint.close()
        if self._remoting is not None:
            self._remoting.close()

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

    def ref(self, address: str) -> ActorRefLike:
        """A ref from an address: ``"edge-b:/yard/fusion"`` gives a :class:`RemoteRef`; a
        bare path ``"/yard/fusion"`` (or this node's own name before it) the local actor.
        Actors do the same with ``self.system.ref(address)``.

        Raises :class:`~edgeloop.errors.PathNotFoundError` if no local actor holds the
        path, ValueError for a malformed address, and :class:`~edgeloop.errors.LinkError`
        for another node when this one has no links (set ``listen`` or ``peers``).
        """
        return self.system.ref(address)

    def peers(self) -> list[str]:
        """The nodes (and devices) whose links are ready now, sorted by name."""
        endpoint = self._endpoint
        return sorted(endpoint.connected_peers()) if endpoint is not None else []

    @property
    def devices(self) -> DevicePort:
        """The node's boundary with its devices (NodeError before :meth:`start`)."""
        if self._devices is None:
            msg = f"node {self.name!r} is not started; start it before using its device port"
            raise NodeError(msg)
        return self._devices

    @property
    def remoting(self) -> Remoting | None:
        """This node's remote actors (pending asks, watches, counters), if it has links."""
        return self._remoting

    @property
    def endpoint(self) -> EndpointLike | None:
        """This node's endpoint while its links are open."""
        return self._endpoint

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

    def status(self) -> dict[str, Any]:
        """The live tree, peers and counters as builtins (what ``node status`` prints)."""
        return node_status(self, self._started_at)

    def __repr__(self) -> str:
        state = "running" if self._system is not None else "stopped"
        return f"<Node {self.name} {state}>"


def _link_settings(
    name: str,
    listen: Sequence[str],
    peers: Sequence[str | PeerAddress | Mapping[str, Any]],
    link: LinkConfig | None,
    security: SecurityConfig | None,
) -> LinkSettings | None:
    """What the node's endpoint is built from, or ``None`` for a node without links."""
    if isinstance(listen, str) or isinstance(peers, str):
        raise ConfigError(
            "node.listen" if isinstance(listen, str) else "node.peers",
            "expected a list of endpoints, not one string",
        )
    if not listen and not peers:
        return None
    from edgeloop.transport import PeerAddress

    endpoints = tuple(
        check_endpoint(item, f"node.listen[{index}]", listening=True)
        for index, item in enumerate(listen)
    )
    addresses: list[PeerAddress] = []
    for index, peer in enumerate(peers):
        key = f"node.peers[{index}]"
        if isinstance(peer, str):
            peer = PeerAddress(peer)
        elif isinstance(peer, Mapping):
            peer = PeerAddress(peer.get("address", ""), peer.get("server_key"))
        check_endpoint(peer.address, key, listening=False)
        addresses.append(peer)
    if link is None:
        identity = link_config(name)
    else:
        try:
            identity = dataclasses.replace(link, id=name)
        except ConfigError as error:
            raise ConfigError("node.name", error.problem) from None
    return LinkSettings(identity, endpoints, tuple(addresses), security)
