"""Helpers for the endpoint tests: in-process endpoints that record what they see, raw
ZeroMQ sockets, and endpoint processes whose output a thread hands to the test."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest
import zmq

from edgeloop import messages
from edgeloop.transport import (
    Endpoint,
    EndpointConfig,
    LinkConfig,
    PeerAddress,
    PeerDown,
    PeerUp,
    ReconnectBackoff,
)

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10.0
"""Seconds a test waits for something that should happen promptly (generous for slow CI)."""

FAST: dict[str, Any] = {
    "heartbeat_interval": 0.1,
    "liveness_timeout": 1.0,
    "handshake_timeout": 1.0,
    "close_timeout": 0.5,
    "backoff": ReconnectBackoff(min=0.05, max=0.2),
}
"""Link timing that keeps the tests short; the acceptor's heartbeat and liveness win."""


def tell(n: int, to: str = "/sink") -> messages.Tell:
    """The ``n``-th Tell of a test (its body says ``n``)."""
    return messages.Tell(to=to, body=messages.encode_body(n))


def number(message: messages.Message) -> int:
    """The ``n`` a :func:`tell` carries."""
    assert isinstance(message, messages.Tell), message
    value = messages.decode_body(message.body)
    assert isinstance(value, int)
    return value


class Peer:
    """An in-process endpoint and what it saw: data messages, peer events, undelivered."""

    def __init__(
        self,
        endpoint_id: str,
        role: str = "node",
        *,
        listen: tuple[str, ...] = (),
        peers: tuple[str, ...] = (),
        on_message: Callable[[str, messages.Message], None] | None = None,
        max_message_size: int = messages.DEFAULT_MAX_SIZE,
        **timing: Any,
    ) -> None:
        self.messages: queue.Queue[tuple[str, messages.Message]] = queue.Queue()
        self.events: queue.Queue[PeerUp | PeerDown] = queue.Queue()
        self.undelivered: queue.Queue[tuple[str, object, str]] = queue.Queue()
        config = EndpointConfig(
            LinkConfig(endpoint_id, role=role, **{**FAST, **timing}),
            listen=listen,
            peers=tuple(PeerAddress(address) for address in peers),
            max_message_size=max_message_size,
        )
        self.endpoint = Endpoint(
            config,
            on_message=on_message or (lambda peer, message: self.messages.put((peer, message))),
            on_peer=self.events.put,
            on_undelivered=lambda peer, message, reason: self.undelivered.put(
                (peer, message, reason)
            ),
        )

    @property
    def address(self) -> str:
        """The first bound endpoint (``tcp://127.0.0.1:*`` resolved to its port)."""
        return self.endpoint.bound[0]

    def start(self) -> Peer:
        self.endpoint.start()
        return self

    def event(self, timeout: float = WAIT) -> PeerUp | PeerDown:
        """The next peer event, or fail the test after ``timeout``."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"{self.endpoint.config.link.id}: no peer event within {timeout} s")

    def message(self, timeout: float = WAIT) -> tuple[str, messages.Message]:
        """The next data message and its sender, or fail the test after ``timeout``."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"{self.endpoint.config.link.id}: no message within {timeout} s")

    def up(self, peer: str, *, reconnected: bool = False) -> None:
        """Wait for ``PeerUp(peer)`` with this ``reconnected`` flag."""
        event = self.event()
        assert isinstance(event, PeerUp), event
        assert (event.peer, event.reconnected) == (peer, reconnected), event


@contextmanager
def ipc_folder() -> Iterator[str]:
    """A short temporary folder for ipc:// endpoints (their paths must stay under ~100
    characters, which pytest's tmp_path does not promise)."""
    folder = tempfile.mkdtemp(prefix="el-", dir="/tmp")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class RawSockets:
    """Plain ZeroMQ sockets for playing a peer by hand; all closed with linger 0."""

    def __init__(self) -> None:
        self.context: zmq.Context[Any] = zmq.Context()
        self.sockets: list[zmq.Socket[Any]] = []

    def dealer(self, address: str, identity: bytes | None = None) -> zmq.Socket[Any]:
        socket: zmq.Socket[Any] = self.context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        if identity is not None:
            socket.setsockopt(zmq.ROUTING_ID, identity)
        socket.connect(address)
        self.sockets.append(socket)
        return socket

    def close(self) -> None:
        for socket in self.sockets:
            socket.close(linger=0)
        self.context.term()


def receive(socket: zmq.Socket[Any], timeout: float = WAIT) -> list[bytes]:
    """The next multipart message on ``socket``, or fail the test after ``timeout``."""
    if not socket.poll(int(timeout * 1000)):
        pytest.fail(f"nothing arrived within {timeout} s")
    return socket.recv_multipart()


def receive_kind(
    socket: zmq.Socket[Any], kind: type[messages.Message], timeout: float = WAIT
) -> messages.Message:
    """The next message of ``kind`` on a DEALER, skipping heartbeats and the like."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no {kind.__name__} within {timeout} s")
        [payload] = receive(socket, left)
        message = messages.decode(payload)
        if isinstance(message, kind):
            return message


def handshake(socket: zmq.Socket[Any], peer: str) -> messages.Welcome:
    """Play a device's side of the handshake on a raw DEALER."""
    socket.send(messages.encode(messages.Hello(peer=peer, role="device", protocol=1)))
    welcome = receive_kind(socket, messages.Welcome)
    assert isinstance(welcome, messages.Welcome)
    return welcome


class PeerProcess:
    """``tests.integration.peers.endpoint_peer`` in a subprocess; a thread reads its
    stdout lines (JSON) into a queue, so the test waits on them with a timeout."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        self._stderr = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.peers.endpoint_peer", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._unclaimed: list[dict[str, Any]] = []
        assert self.proc.stdout is not None
        self._reader = threading.Thread(
            target=self._read, args=(self.proc.stdout,), name="peer-stdout", daemon=True
        )
        self._reader.start()
        self.bound: list[str] = []

    def ready(self) -> PeerProcess:
        """Wait for the process's readiness line; its bound endpoints are then known."""
        self.bound = self.wait_for("ready")["bound"]
        return self

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def wait_for(self, event: str, timeout: float = WAIT, **fields: object) -> dict[str, Any]:
        """The first line for ``event`` whose fields match, or fail the test (with the
        process's log) after ``timeout``. Lines it passes over stay for later calls, so
        events of several peers may be awaited in any order."""

        def matches(line: dict[str, Any]) -> bool:
            return line.get("event") == event and all(line.get(k) == v for k, v in fields.items())

        for index, line in enumerate(self._unclaimed):
            if matches(line):
                return self._unclaimed.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=left) if left > 0 else None
            except queue.Empty:
                line = None
            if line is None:  # the time is up, or the process ended
                log = self.log.read_text(errors="replace")[-2000:]
                pytest.fail(f"no {event} {fields} from the peer process within {timeout} s\n{log}")
            if matches(line):
                return line
            self._unclaimed.append(line)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to say goodbye."""
        self.proc.kill()
        self.proc.wait(WAIT)

    def cleanup(self) -> None:
        """Kill the process if it still runs, reap it, and stop the reader thread."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        self._reader.join(WAIT)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()


def port_of(address: str) -> int:
    """The port of a ``tcp://host:port`` endpoint."""
    return int(address.rsplit(":", 1)[1])
