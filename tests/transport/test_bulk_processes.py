"""Peers in real processes, killed with SIGKILL: the survivor finds out, nothing leaks.

Each test runs one end of a lane here and the other in ``tests/transport/peer.py``; the
conftest fixture then checks that no ring is left in /dev/shm and no descriptor open.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgeloop import messages
from edgeloop.errors import PeerLostError
from edgeloop.transport import bulk
from edgeloop.transport.bulk.conformance import frame_for
from tests.helpers import WAIT, wait_for
from tests.transport.conftest import SHM, segments

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


class Peer:
    """A peer process and its line protocol (stdout read with a timeout, never a sleep)."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.transport.peer", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        self.buffer = b""

    def line(self, timeout: float = WAIT) -> list[str]:
        """The next line the peer prints, split into words."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, remaining))
            chunk = os.read(self.proc.stdout.fileno(), 65536) if ready else b""
            if not chunk:
                raise AssertionError(f"peer said nothing more within {timeout} s: {self.stderr()}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode().split()

    def expect(self, word: str) -> list[str]:
        """The next line, which must start with ``word``; its other words."""
        words = self.line()
        assert words[:1] == [word], (words, self.stderr())
        return words[1:]

    def message(self, word: str) -> messages.BulkMessage:
        """The handshake message the peer prints after ``word``."""
        return messages.decode_bulk(bytes.fromhex(self.expect(word)[0]))

    def tell(self, word: str, message: messages.BulkMessage) -> None:
        """Send the peer a handshake message."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{word} {messages.encode_bulk(message).hex()}\n".encode())
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL the peer and reap it."""
        self.proc.kill()
        self.proc.wait(WAIT)

    def wait_dead(self) -> int:
        """Reap a peer that kills itself; its exit status."""
        return self.proc.wait(WAIT)

    def stderr(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-2000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self.log.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[type[Peer]]:
    """Start peers; every one is killed and reaped after the test."""
    peers: list[Peer] = []

    def start(*args: str) -> Peer:
        peer = Peer(tmp_path / f"peer-{len(peers)}.log", *args)
        peers.append(peer)
        return peer

    yield start  # type: ignore[misc]
    for peer in peers:
        peer.close()


def config(provider: str) -> bulk.BulkConfig:
    return bulk.BulkConfig(provider=provider, slot_size=16 * 1024 * 1024, slot_count=4)  # type: ignore[arg-type]


def receive_from(spawn, provider: str, *args: str) -> tuple[Peer, bulk.Receiver]:
    """A receiver here, attached to a sender peer running ``args``."""
    peer = spawn("sender", provider, *args)
    cfg = config(provider)
    offer = bulk.make_offer(1, cfg)
    peer.tell("offer", offer)
    accept = peer.message("accept")
    receiver, ready = bulk.open_receiver(offer, accept, cfg)
    peer.tell("ready", ready)
    peer.expect("attached")
    assert receiver.wait_attached(WAIT)
    return peer, receiver


def send_to(spawn, provider: str, *args: str) -> tuple[Peer, bulk.Sender, str]:
    """A sender here, attached to a receiver peer running ``args``; the ring's name."""
    peer = spawn("receiver", provider, *args)
    cfg = config(provider)
    offer = peer.message("offer")
    accept, setup = bulk.answer(offer, cfg)
    peer.tell("accept", accept)
    data, segment = peer.expect("ready")
    ready = messages.decode_bulk(bytes.fromhex(data))
    sender = bulk.open_sender(offer, setup, ready, cfg)
    return peer, sender, segment


def test_shm_sender_killed_after_frames(spawn):
    """Frames a killed shm sender completed are all delivered intact; then PeerLostError."""
    peer, receiver = receive_from(spawn, "shm", "stream", "3")
    with receiver:
        assert peer.expect("sent") == ["3"]
        peer.kill()
        for seq in range(3):
            with receiver.recv(WAIT) as frame:
                assert np.array_equal(frame.array, frame_for(seq))
        with pytest.raises(PeerLostError):
            receiver.recv(WAIT)


def test_zmq_sender_killed_after_frames(spawn):
    """Frames from a killed zmq sender arrive intact and in order, then PeerLostError.

    Unlike shm, a zmq "completion" only means ZeroMQ handed the bytes on in the sender's
    process; if that process dies before its kernel and I/O thread flush them, TCP does
    not deliver them. So what arrives must be an intact prefix, not necessarily all three.
    """
    peer, receiver = receive_from(spawn, "zmq", "stream", "3")
    with receiver:
        assert peer.expect("sent") == ["3"]
        peer.kill()
        arrived: list[int] = []

        def drain() -> None:
            while True:
                with receiver.recv(WAIT) as frame:
                    assert np.array_equal(frame.array, frame_for(len(arrived)))
                    arrived.append(frame.seq)

        with pytest.raises(PeerLostError):
            drain()
        assert len(arrived) <= 3


def test_shm_sender_killed_mid_write(spawn):
    """A half-written slot of a sender killed before its completion is never handed out."""
    peer, receiver = receive_from(spawn, "shm", "partial")
    with receiver:
        peer.expect("partial")
        assert peer.wait_dead() == -9
        with receiver.recv(WAIT) as frame:
            assert frame.seq == 0
        with pytest.raises(PeerLostError):
            receiver.recv(WAIT)
        assert receiver.statistics().accepted == 1


def test_zmq_sender_killed_mid_frame(spawn):
    """A sender killed while a 16 MiB frame is in flight: earlier frames arrive, the cut
    one arrives whole or not at all, then PeerLostError."""
    peer, receiver = receive_from(spawn, "zmq", "big")
    with receiver:
        assert peer.wait_dead() == -9
        for seq in range(2):
            with receiver.recv(WAIT) as frame:
                assert np.array_equal(frame.array, frame_for(seq))
        try:
            last = receiver.recv(WAIT)
        except PeerLostError:
            pass
        else:
            with last:
                assert last.nbytes == 16 * 1024 * 1024
                assert int(last.array.min()) == 1
            with pytest.raises(PeerLostError):
                receiver.recv(WAIT)


@pytest.mark.parametrize("provider", ["shm", "zmq"])
def test_receiver_killed_while_sender_waits(spawn, provider: str):
    """A sender blocked on credits of a killed receiver gets PeerLostError; the ring is gone."""
    peer, sender, segment = send_to(spawn, provider, "hold", "4")
    with sender:
        peer.expect("attached")
        for seq in range(4):
            sender.send(frame_for(seq), timeout=WAIT)
        peer.expect("held")
        if provider == "shm":
            assert segment not in segments(), "the owner unlinks once the sender attached"
        peer.kill()
        with pytest.raises(PeerLostError):
            sender.send(frame_for(4), timeout=WAIT)


def test_shm_owner_killed_before_attach_leaves_no_segment(spawn):
    """An owner killed before any sender attached: its resource tracker unlinks the ring."""
    peer = spawn("receiver", "shm", "unattached")
    offer = peer.message("offer")
    accept, setup = bulk.answer(offer, config("shm"))
    peer.tell("accept", accept)
    _, segment = peer.expect("ready")
    assert (SHM / segment).exists()
    setup.close()
    peer.kill()
    wait_for(lambda: not (SHM / segment).exists(), what=f"{segment} unlinked by the tracker")
