"""An in-memory stand-in for the ZeroMQ endpoint: nodes in one process, linked by address.

A :class:`FakeNetwork` hands out :class:`FakeEndpoint` objects through
:meth:`FakeNetwork.factory` (a ``Node(endpoint_factory=...)``). An endpoint that listens on
an address is linked to every endpoint that names that address among its peers, whichever
starts first. Each endpoint delivers on a thread of its own, in order, as the real one does
on its I/O thread; every message goes through the wire codec (``encode`` then ``decode``),
so what arrives is what a peer would decode, constraints checked. Tests cut, heal and jam
links to make peers lost, back, or dropping what is sent.
"""

from __future__ import annotations

import queue
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from edgeloop import messages
from edgeloop.errors import DecodeError
from edgeloop.supervisor._remote import LinkSettings
from edgeloop.transport import PeerDown, PeerUp


class FakeNetwork:
    """Endpoints of one test, and the links between them."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.endpoints: dict[str, FakeEndpoint] = {}
        self.jammed: dict[tuple[str, str], str] = {}
        self.connected: set[frozenset[str]] = set()

    def factory(
        self,
        settings: LinkSettings,
        *,
        on_message: Callable[[str, messages.Message], None],
        on_peer: Callable[[PeerUp | PeerDown], None],
        on_undelivered: Callable[[str, object, str], None],
        rng: random.Random,
    ) -> FakeEndpoint:
        """An endpoint with the real one's constructor shape."""
        return FakeEndpoint(self, settings, on_message, on_peer, on_undelivered)

    def __getitem__(self, name: str) -> FakeEndpoint:
        return self.endpoints[name]

    def cut(self, a: str, b: str, reason: str = "liveness_timeout") -> None:
        """Lose the link between ``a`` and ``b``: both sides get ``PeerDown(reason)``."""
        with self.lock:
            first, second = self.endpoints[a], self.endpoints[b]
            self.connected.discard(frozenset((a, b)))
        first.post_peer(PeerDown(b, reason))
        second.post_peer(PeerDown(a, reason))

    def heal(self, a: str, b: str) -> None:
        """Bring a cut link back: both sides get ``PeerUp(reconnected=True)``."""
        self._link(self.endpoints[a], self.endpoints[b], reconnected=True)

    def jam(self, sender: str, receiver: str, reason: str = "queue_full") -> None:
        """From now on ``sender`` accepts messages for ``receiver`` but drops them."""
        with self.lock:
            self.jammed[sender, receiver] = reason

    def register(self, endpoint: FakeEndpoint) -> None:
        with self.lock:
            if endpoint.id in self.endpoints:
                msg = f"a fake endpoint named {endpoint.id!r} is already running"
                raise AssertionError(msg)
            self.endpoints[endpoint.id] = endpoint
            others = [e for e in self.endpoints.values() if e is not endpoint]
        for other in others:
            if endpoint.dials(other) or other.dials(endpoint):
                self._link(endpoint, other, reconnected=False)

    def unregister(self, endpoint: FakeEndpoint) -> None:
        with self.lock:
            self.endpoints.pop(endpoint.id, None)
            pairs = [pair for pair in self.connected if endpoint.id in pair]
            self.connected.difference_update(pairs)
            peers = [self.endpoints[p] for pair in pairs for p in pair if p != endpoint.id]
        for peer in peers:  # the closing side hears nothing, as with a real Close
            peer.post_peer(PeerDown(endpoint.id, "closed"))

    def _link(self, a: FakeEndpoint, b: FakeEndpoint, *, reconnected: bool) -> None:
        with self.lock:
            self.connected.add(frozenset((a.id, b.id)))
        a.post_peer(PeerUp(b.id, "node", reconnected))
        b.post_peer(PeerUp(a.id, "node", reconnected))


class FakeEndpoint:
    """One node's fake endpoint: ``start``, ``close``, ``send``, ``connected_peers``."""

    def __init__(
        self,
        network: FakeNetwork,
        settings: LinkSettings,
        on_message: Callable[[str, messages.Message], None],
        on_peer: Callable[[PeerUp | PeerDown], None],
        on_undelivered: Callable[[str, object, str], None],
    ) -> None:
        self.network = network
        self.settings = settings
        self.id = settings.link.id
        self.links: set[str] = set()  # as this endpoint's own thread has been told
        self.sent: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.errors: list[BaseException] = []
        self._on_message = on_message
        self._on_peer = on_peer
        self._on_undelivered = on_undelivered
        self._inbox: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"fake-link:{self.id}")
        self._started = False

    def dials(self, other: FakeEndpoint) -> bool:
        """Whether this endpoint names one of ``other``'s listen addresses as a peer."""
        return any(p.address in other.settings.listen for p in self.settings.peers)

    def start(self) -> FakeEndpoint:
        self._started = True
        self._thread.start()
        self.network.register(self)
        return self

    def close(self, timeout: float = 2.0) -> None:
        if not self._started:
            return
        self._started = False
        self.network.unregister(self)
        self._inbox.put(None)
        self._thread.join(timeout)

    def send(self, peer: str, message: messages.Message) -> bool:
        with self.network.lock:
            if peer not in self.links:
                return False
            other = self.network.endpoints.get(peer)
            if frozenset((self.id, peer)) not in self.network.connected or other is None:
                jammed: str | None = "transport_lost"  # lost, and this side not told yet
            else:
                jammed = self.network.jammed.get((self.id, peer))
        self.sent[type(message).__name__] += 1
        if jammed is not None:
            self._inbox.put(lambda: self._on_undelivered(peer, message, jammed))
            return True
        assert other is not None
        wire = messages.encode(message)
        other.post(self.id, wire)
        return True

    def connected_peers(self) -> list[str]:
        with self.network.lock:
            return sorted(self.links)

    def statistics(self) -> dict[str, Any]:
        return {"sent": dict(self.sent), "rejected": dict(self.rejected)}

    def post(self, sender: str, wire: bytes) -> None:
        """Deliver ``wire`` from ``sender`` on this endpoint's thread, decoded as a peer would."""

        def deliver() -> None:
            try:
                message = messages.decode(wire)
            except DecodeError as error:
                self.rejected[error.reason] += 1
                return
            self._on_message(sender, message)

        self._inbox.put(deliver)

    def post_peer(self, event: PeerUp | PeerDown) -> None:
        """Tell this endpoint about ``event`` on its thread; what it sees as linked changes
        there too, as the real endpoint's does on its I/O thread."""

        def notify() -> None:
            with self.network.lock:
                if isinstance(event, PeerUp):
                    self.links.add(event.peer)
                else:
                    self.links.discard(event.peer)
            self._on_peer(event)

        self._inbox.put(notify)

    def _run(self) -> None:
        while True:
            work = self._inbox.get()
            if work is None:
                return
            try:
                work()
            except Exception as error:  # noqa: BLE001 - the test asserts errors is empty
                self.errors.append(error)
