"""CurveZMQ with real sockets: a ROUTER guarded by KeyGuard over tcp://127.0.0.1.

Each refused client must not deliver a single message. The tests first wait for the
client's own socket monitor to report how its handshake ended (so a refusal is observed,
not assumed from silence), then poll the server for a while and assert nothing arrived.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from edgeloop.errors import AuthenticationError
from edgeloop.transport._security import (
    CurveSecurity,
    KeyGuard,
    KeyPair,
    SecurityConfig,
    generate_keypair,
    peer_key,
    secure_client,
    secure_server,
)

pytestmark = pytest.mark.integration

HANDSHAKE_TIMEOUT_MS = 5000
"""Longest wait for a handshake outcome on a loaded CI machine."""

QUIET_MS = 300
"""How long the server is polled to show that a refused client delivered nothing."""

HANDSHAKE_ENDS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED,
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
)

Socket = zmq.Socket[Any]


class Client:
    """A DEALER with a socket monitor, so a test can see how its handshake ended."""

    def __init__(self, socket: Socket, monitor: Socket) -> None:
        self.socket = socket
        self.monitor = monitor

    def handshake(self, timeout_ms: int = HANDSHAKE_TIMEOUT_MS) -> tuple[int, int]:
        """The first handshake outcome (event, value), polling the monitor with a timeout."""
        deadline = time.monotonic() + timeout_ms / 1000
        while (left := deadline - time.monotonic()) > 0:
            if not self.monitor.poll(int(left * 1000) + 1):
                break
            event = recv_monitor_message(self.monitor)
            if event["event"] in HANDSHAKE_ENDS:
                return int(event["event"]), int(event["value"])
        pytest.fail(f"no handshake outcome within {timeout_ms} ms")

    def close(self) -> None:
        if self.socket.closed:
            return
        self.socket.disable_monitor()
        self.monitor.close(linger=0)
        self.socket.close(linger=0)


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    """A private context; every socket and the guard are closed before it terminates."""
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.term()


@pytest.fixture
def keys() -> dict[str, KeyPair]:
    """Fresh key pairs for the server, an allowed client and a stranger."""
    return {name: KeyPair.generate() for name in ("server", "client", "stranger")}


@pytest.fixture
def sockets(context: zmq.Context[Any]) -> Iterator[list[Socket]]:
    """Sockets to close with linger=0 at teardown (before the guard stops)."""
    opened: list[Socket] = []
    yield opened
    for socket in opened:
        socket.close(linger=0)


@pytest.fixture
def clients(context: zmq.Context[Any], sockets: list[Socket]) -> Iterator[list[Client]]:
    """Clients to close at teardown."""
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


@pytest.fixture
def guard(context: zmq.Context[Any], keys: dict[str, KeyPair]) -> Iterator[KeyGuard]:
    """A running guard that admits only the 'client' key; stopped (thread joined) after."""
    with KeyGuard(context, allowed=[keys["client"].public]) as running:
        yield running


def make_server(context: zmq.Context[Any], keypair: KeyPair, sockets: list[Socket]) -> str:
    """Bind a CurveZMQ ROUTER on a random loopback port; return its endpoint."""
    server = context.socket(zmq.ROUTER)
    sockets.append(server)
    secure_server(server, keypair)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    return f"tcp://127.0.0.1:{port}"


@pytest.fixture
def server(
    context: zmq.Context[Any],
    keys: dict[str, KeyPair],
    sockets: list[Socket],
    guard: KeyGuard,
) -> tuple[Socket, str]:
    """The guarded CurveZMQ ROUTER and its endpoint."""
    endpoint = make_server(context, keys["server"], sockets)
    return sockets[-1], endpoint


ConnectFn = Callable[..., Client]


@pytest.fixture
def connect(context: zmq.Context[Any], clients: list[Client]) -> ConnectFn:
    """Connect a DEALER (CurveZMQ if a keypair is given) and send one message."""

    def _connect(
        endpoint: str,
        keypair: KeyPair | None = None,
        server_key: str | None = None,
        message: bytes = b"hello",
    ) -> Client:
        socket = context.socket(zmq.DEALER)
        if keypair is not None:
            assert server_key is not None
            secure_client(socket, keypair, server_key)
        client = Client(socket, socket.get_monitor_socket())
        clients.append(client)
        socket.connect(endpoint)
        socket.send(message)
        return client

    return _connect


def assert_nothing_arrives(server: Socket) -> None:
    """Poll the server for QUIET_MS and fail if any message came in."""
    assert not server.poll(QUIET_MS), f"a refused peer delivered {server.recv_multipart()!r}"


def receive(server: Socket) -> list[zmq.Frame]:
    """One message from the server, waiting at most HANDSHAKE_TIMEOUT_MS."""
    assert server.poll(HANDSHAKE_TIMEOUT_MS), "the message did not arrive"
    return server.recv_multipart(copy=False)


def test_allowed_client_delivers(
    server: tuple[Socket, str], keys: dict[str, KeyPair], guard: KeyGuard, connect: ConnectFn
) -> None:
    """An allowed client's message arrives, tagged with its public key as User-Id."""
    socket, endpoint = server
    client = connect(endpoint, keys["client"], keys["server"].public)
    assert client.handshake() == (zmq.EVENT_HANDSHAKE_SUCCEEDED, 0)
    frames = receive(socket)
    assert frames[-1].bytes == b"hello"
    assert peer_key(frames[-1]) == keys["client"].public
    assert guard.screen(frames[-1]) == keys["client"].public
    stats = guard.statistics()
    assert stats.admitted == 1
    assert stats.refused_total == 0


def test_plaintext_client_is_dropped_in_handshake(
    server: tuple[Socket, str], guard: KeyGuard, connect: ConnectFn
) -> None:
    """A plaintext client fails the handshake (mechanism mismatch) and never reaches ZAP."""
    socket, endpoint = server
    client = connect(endpoint)
    event, value = client.handshake()
    assert event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    assert value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
    assert_nothing_arrives(socket)
    stats = guard.statistics()
    assert (stats.admitted, stats.refused_total) == (0, 0)


def test_unknown_key_is_refused(
    server: tuple[Socket, str], keys: dict[str, KeyPair], guard: KeyGuard, connect: ConnectFn
) -> None:
    """A client whose key is not allowed gets ZAP status 400 and delivers nothing."""
    socket, endpoint = server
    client = connect(endpoint, keys["stranger"], keys["server"].public)
    assert client.handshake() == (zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)
    assert_nothing_arrives(socket)
    stats = guard.statistics()
    assert stats.refused["unknown_key"] >= 1
    assert stats.refused["revoked_key"] == 0
    assert stats.admitted == 0


def test_configured_revoked_key_is_refused(
    context: zmq.Context[Any],
    keys: dict[str, KeyPair],
    sockets: list[Socket],
    connect: ConnectFn,
) -> None:
    """A key listed both allowed and revoked is refused as revoked_key."""
    client_key = keys["client"].public
    with KeyGuard(context, allowed=[client_key], revoked=[client_key]) as guard:
        endpoint = make_server(context, keys["server"], sockets)
        client = connect(endpoint, keys["client"], keys["server"].public)
        assert client.handshake() == (zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)
        assert_nothing_arrives(sockets[-1])
        assert guard.statistics().refused["revoked_key"] >= 1
        client.close()
        sockets.pop().close(linger=0)


def test_key_revoked_at_runtime_is_refused(
    server: tuple[Socket, str], keys: dict[str, KeyPair], guard: KeyGuard, connect: ConnectFn
) -> None:
    """A key revoked while the guard runs is refused at its next handshake."""
    socket, endpoint = server
    guard.revoke(keys["client"].public)
    client = connect(endpoint, keys["client"], keys["server"].public)
    assert client.handshake() == (zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)
    assert_nothing_arrives(socket)
    assert guard.statistics().refused["revoked_key"] >= 1


def test_revoked_while_connected_is_screened(
    server: tuple[Socket, str], keys: dict[str, KeyPair], guard: KeyGuard, connect: ConnectFn
) -> None:
    """After a runtime revoke, an open connection's messages fail screen() and new ones fail ZAP."""
    socket, endpoint = server
    first = connect(endpoint, keys["client"], keys["server"].public, message=b"before")
    assert first.handshake()[0] == zmq.EVENT_HANDSHAKE_SUCCEEDED
    assert guard.screen(receive(socket)[-1]) == keys["client"].public
    guard.revoke(keys["client"].public)
    first.socket.send(b"after")
    frames = receive(socket)  # ZeroMQ cannot drop one ROUTER peer; screen() must
    with pytest.raises(AuthenticationError, match="was revoked"):
        guard.screen(frames[-1])
    assert guard.statistics().dropped["revoked_key"] == 1
    second = connect(endpoint, keys["client"], keys["server"].public, message=b"again")
    assert second.handshake() == (zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)
    assert_nothing_arrives(socket)


def test_allow_at_runtime_admits_next_handshake(
    server: tuple[Socket, str], keys: dict[str, KeyPair], guard: KeyGuard, connect: ConnectFn
) -> None:
    """A stranger refused once is admitted on a new connection after allow()."""
    socket, endpoint = server
    refused = connect(endpoint, keys["stranger"], keys["server"].public)
    assert refused.handshake() == (zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)
    guard.allow(keys["stranger"].public)
    admitted = connect(endpoint, keys["stranger"], keys["server"].public, message=b"now")
    assert admitted.handshake() == (zmq.EVENT_HANDSHAKE_SUCCEEDED, 0)
    frames = receive(socket)
    assert frames[-1].bytes == b"now"
    assert_nothing_arrives(socket)


def test_wrong_server_key_cannot_connect(
    server: tuple[Socket, str], keys: dict[str, KeyPair], guard: KeyGuard, connect: ConnectFn
) -> None:
    """A client that expects another server key fails the handshake before ZAP."""
    socket, endpoint = server
    client = connect(endpoint, keys["client"], keys["stranger"].public)
    event, _ = client.handshake()
    assert event != zmq.EVENT_HANDSHAKE_SUCCEEDED
    assert_nothing_arrives(socket)
    stats = guard.statistics()
    assert (stats.admitted, stats.refused_total) == (0, 0)


def test_no_guard_fails_closed(
    context: zmq.Context[Any],
    keys: dict[str, KeyPair],
    sockets: list[Socket],
    connect: ConnectFn,
) -> None:
    """With no ZAP handler running, a secured server refuses even a well-keyed client."""
    endpoint = make_server(context, keys["server"], sockets)
    client = connect(endpoint, keys["client"], keys["server"].public)
    event, _ = client.handshake()
    assert event != zmq.EVENT_HANDSHAKE_SUCCEEDED
    assert_nothing_arrives(sockets[-1])


def test_plaintext_loopback_unaffected_by_guard(
    context: zmq.Context[Any], guard: KeyGuard, sockets: list[Socket], connect: ConnectFn
) -> None:
    """Plaintext loopback sockets in a guarded context still work ('auto' mixes both)."""
    plain = context.socket(zmq.ROUTER)
    sockets.append(plain)
    port = plain.bind_to_random_port("tcp://127.0.0.1")
    connect(f"tcp://127.0.0.1:{port}", message=b"plain")
    frames = receive(plain)
    assert frames[-1].bytes == b"plain"
    assert peer_key(frames[-1]) is None
    assert guard.statistics().admitted == 0


@pytest.mark.parametrize("name", ["allowed", "stranger"])
def test_curve_security_from_key_files(
    context: zmq.Context[Any], tmp_path: Path, clients: list[Client], name: str
) -> None:
    """CurveSecurity built from generated key files admits the listed peer and no other."""
    server_public, server_secret = generate_keypair(tmp_path, "edge-a")
    allowed_public, allowed_secret = generate_keypair(tmp_path, "cam-01")
    _, stranger_secret = generate_keypair(tmp_path, "cam-99")
    security = CurveSecurity(
        SecurityConfig(mode="on", secret_key=server_secret, allowed=(allowed_public,))
    )
    security.start(context)
    router = context.socket(zmq.ROUTER)
    try:
        security.server(router, "tcp://127.0.0.1:*")
        router.bind("tcp://127.0.0.1:*")
        endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        dealer = context.socket(zmq.DEALER)
        client = Client(dealer, dealer.get_monitor_socket())
        clients.append(client)
        secret = allowed_secret if name == "allowed" else stranger_secret
        client_security = CurveSecurity(SecurityConfig(mode="on", secret_key=secret))
        client_security.start(context)

        class Peer:
            address = endpoint
            server_key = str(server_public)

        client_security.client(dealer, Peer())
        dealer.connect(endpoint)
        dealer.send(b"hi")
        assert security.guard is not None
        if name == "allowed":
            assert client.handshake()[0] == zmq.EVENT_HANDSHAKE_SUCCEEDED
            assert receive(router)[-1].bytes == b"hi"
            assert security.guard.statistics().admitted == 1
        else:
            assert client.handshake() == (zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)
            assert_nothing_arrives(router)
            assert security.guard.statistics().refused["unknown_key"] >= 1
    finally:
        router.close(linger=0)
        security.stop()
