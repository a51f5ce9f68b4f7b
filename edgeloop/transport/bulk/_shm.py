"""The ``shm`` provider: a ``multiprocessing.shared_memory`` ring between processes on one host.

The receiver creates the ring as one shared-memory segment (``/dev/shm/edgeloop-bulk-*``)
and listens on a Unix ``SOCK_SEQPACKET`` socket in the abstract namespace (no file to
clean up; it vanishes with the process). The sender maps the segment, connects, and
says hello with the ring's 64-bit key; from then on a write is a ``memcpy`` of header
and payload into the slot followed by a 5-byte completion packet (``W`` + the immediate
value) on the socket, sent strictly after the copy. Credits come back on the same
socket as MessagePack :class:`~edgeloop.messages.BulkCredit`.

Lifecycle (``multiprocessing/shared_memory.py``'s contract: ``close`` drops this
handle's mapping, ``unlink`` removes the name "once and only once" across all handles):

- only the receiver, the owner, unlinks, and it does so as soon as the sender has
  attached (its hello arrived: both sides have mapped the segment), or at close if no
  sender ever attached. From then on the name is gone and the memory lives exactly as
  long as the last mapping, so no crash of either side can leave a segment behind;
- Python 3.11 registers every ``SharedMemory`` with the process's resource tracker, the
  attaching one too (bpo-38119): its tracker would unlink the owner's segment when the
  sender exits, and warn about a "leaked" segment. The sender therefore unregisters its
  handle right after attaching; the owner keeps its registration, so if the owner is
  killed before any sender attached, its resource tracker (a separate process that
  outlives it) unlinks the segment and prints a "leaked shared_memory" warning;
- a peer that dies turns into end-of-file on the socket: PeerLostError on the survivor's
  next wait. A sender killed between the copy and the completion packet leaves a slot
  with a partial frame that is never handed out.

Frames are read-only numpy views into the mapping. A consumer that keeps arrays past
``close`` keeps the mapping alive until they are collected (the file descriptor is
closed at once either way).
"""

from __future__ import annotations

import os
import secrets
import socket
import struct
import time
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from typing import Final

import structlog

from edgeloop.errors import PeerLostError, ProtocolError
from edgeloop.messages import BulkClose, BulkCredit, decode_bulk, encode_bulk
from edgeloop.transport.bulk._protocol import HEADER, Geometry
from edgeloop.transport.bulk._provider import (
    DONE,
    Arrival,
    Availability,
    Params,
    SendHandle,
)

__all__ = ["SEGMENT_PREFIX", "ShmProvider", "ShmReceiveSide", "ShmSendSide"]

SEGMENT_PREFIX: Final = "edgeloop-bulk-"
"""Every ring's segment name starts so: ``ls /dev/shm/edgeloop-bulk-*`` lists live rings."""

_log = structlog.get_logger("edgeloop.transport.bulk")
_HELLO = struct.Struct("<cQ")
_WRITE = struct.Struct("<cI")
_PACKET = 64 * 1024
_OWNED: set[str] = set()
"""Segments this process created and has not unlinked yet (its tracker holds them once)."""


def _recv(sock: socket.socket, timeout: float | None) -> bytes | None:
    """One packet, ``None`` after ``timeout``; PeerLostError at end-of-file or reset."""
    sock.settimeout(timeout)
    try:
        packet = sock.recv(_PACKET)
    except (TimeoutError, BlockingIOError):
        return None
    except (ConnectionResetError, BrokenPipeError) as exc:
        raise PeerLostError(f"bulk-lane peer went away ({exc})") from exc
    if not packet:
        raise PeerLostError("bulk-lane peer went away (its socket closed)")
    return packet


def _send(sock: socket.socket, packet: bytes) -> None:
    try:
        try:
            sock.send(packet)
        except TimeoutError:  # a timeout left by the last _recv; a full queue is rare
            sock.settimeout(None)
            sock.send(packet)
    except (ConnectionResetError, BrokenPipeError) as exc:
        raise PeerLostError(f"bulk-lane peer went away ({exc})") from exc


class ShmReceiveSide:
    """The owner's end: the segment, the listening socket, the one accepted sender."""

    provider = "shm"

    def __init__(self, lane: int, geometry: Geometry) -> None:
        self.lane = lane
        self.geometry = geometry
        token = secrets.token_hex(8)
        self.key = secrets.randbits(64)
        self.address = f"\0{SEGMENT_PREFIX}{token}"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.listener.bind(self.address)
            self.listener.listen(1)
            self.shm = SharedMemory(
                f"{SEGMENT_PREFIX}{token}", create=True, size=geometry.ring_size
            )
            _OWNED.add(self.shm.name)
        except BaseException:
            self.listener.close()
            raise
        self._ring: memoryview = self.shm.buf  # type: ignore[assignment]  # None only once closed
        self._unlinked = False
        self.conn: socket.socket | None = None
        self._pending: list[BulkCredit] = []
        self._closed = False

    @property
    def name(self) -> str:
        """The segment's name (without the leading ``/``)."""
        return self.shm.name

    @property
    def ring(self) -> memoryview | None:
        return self.shm.buf

    def ready_params(self) -> Params:
        return {
            "segment": self.shm.name,
            "socket": self.address[1:],
            "size": self.geometry.ring_size,
            "key": self.key,
        }

    def unlink(self) -> None:
        """Remove the segment's name (exactly once; the mappings stay valid)."""
        if not self._unlinked:
            self._unlinked = True
            self.shm.unlink()
            _OWNED.discard(self.shm.name)

    def establish(self, timeout: float | None) -> bool:
        if self.conn is not None:
            return True
        if self._closed:
            return False
        self.listener.settimeout(timeout)
        try:
            conn, _ = self.listener.accept()
        except TimeoutError:
            return False
        try:
            hello = _recv(conn, timeout)
            if (
                hello is None
                or len(hello) != _HELLO.size
                or _HELLO.unpack(hello) != (b"H", self.key)
            ):
                raise ProtocolError(
                    "a process connected to the bulk lane without the ring's key",
                    reason="bad_key",
                )
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        self.listener.close()  # one sender per lane: nobody else may connect
        self.unlink()  # both sides have mapped it: the name is no longer needed
        for credit in self._pending:
            _send(conn, encode_bulk(credit))
        self._pending.clear()
        return True

    def grant(self, credit: BulkCredit) -> None:
        if self.conn is None:
            self._pending.append(credit)
        else:
            _send(self.conn, encode_bulk(credit))

    def poll(self, timeout: float | None) -> Arrival | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.conn is None and not self.establish(timeout):
            return None
        assert self.conn is not None
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        packet = _recv(self.conn, remaining)
        if packet is None:
            return None
        if len(packet) != _WRITE.size or packet[:1] != b"W":
            message = decode_bulk(packet)  # DecodeError if it is no message either
            if isinstance(message, BulkClose):
                raise PeerLostError(f"the sender closed the lane: {message.reason}")
            raise ProtocolError(
                f"expected a completion, got {type(message).__name__}", reason="bad_state"
            )
        _, imm = _WRITE.unpack(packet)
        slot = imm & 0xFF
        start = self.geometry.offset(slot) if slot < self.geometry.slot_count else 0
        ring = self._ring
        return Arrival(
            imm, ring[start : start + HEADER], ring[start + HEADER : start + self.geometry.stride]
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.conn is not None:
            self.conn.close()
        self.listener.close()
        self.unlink()
        _close_segment(self.shm)


def _close_segment(shm: SharedMemory) -> None:
    """Unmap ``shm``; if numpy views still use the mapping, close only its descriptor."""
    try:
        shm.close()
    except BufferError:
        _log.warning(
            "bulk_ring_still_referenced",
            segment=shm.name,
            detail="arrays still view the ring; it is unmapped when they are collected",
        )
        # CPython's SharedMemory.close() stops at the BufferError before it closes its file
        # descriptor, and its __del__ would try (and fail) again. Close the descriptor and
        # drop the handle's mmap: the mapping then lives exactly as long as the arrays.
        fd = getattr(shm, "_fd", -1)
        if fd >= 0:
            os.close(fd)
        shm._fd = -1  # type: ignore[attr-defined]
        shm._buf = None  # type: ignore[attr-defined]
        shm._mmap = None  # type: ignore[attr-defined]


class ShmSendSide:
    """The sender's end: the mapped segment and the connected socket."""

    provider = "shm"

    def __init__(self, geometry: Geometry, ready: Params) -> None:
        self.geometry = geometry
        name = str(ready["segment"])
        if not name.startswith(SEGMENT_PREFIX):
            raise ProtocolError(f"segment {name!r} is not a bulk-lane ring", reason="bad_params")
        try:
            self.shm = SharedMemory(name)
        except FileNotFoundError as exc:
            raise PeerLostError(f"the receiver's ring {name!r} is gone") from exc
        # Attaching registered the segment with this process's resource tracker, which
        # would unlink the owner's segment when this process exits: only the owner tracks.
        # (An owner in this very process shares the tracker, whose entry is a set: keep it.)
        if name not in _OWNED:
            resource_tracker.unregister(self.shm._name, "shared_memory")  # type: ignore[attr-defined]
        if self.shm.size < geometry.ring_size or int(ready["size"]) != geometry.ring_size:
            _close_segment(self.shm)
            raise ProtocolError(
                f"ring {name!r} is {self.shm.size} bytes, the lane needs {geometry.ring_size}",
                reason="bad_params",
            )
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.sock.connect("\0" + str(ready["socket"]))
            _send(self.sock, _HELLO.pack(b"H", int(ready["key"])))
        except BaseException:
            self.sock.close()
            _close_segment(self.shm)
            raise
        self._ring: memoryview = self.shm.buf  # type: ignore[assignment]  # None only once closed
        self._closed = False

    def poll_credit(self, timeout: float | None) -> BulkCredit | None:
        packet = _recv(self.sock, timeout)
        if packet is None:
            return None
        message = decode_bulk(packet)
        if isinstance(message, BulkClose):
            raise PeerLostError(f"the receiver closed the lane: {message.reason}")
        if not isinstance(message, BulkCredit):
            raise ProtocolError(
                f"expected a bulk_credit, got {type(message).__name__}", reason="bad_state"
            )
        return message

    def write(self, slot: int, header: bytes, payload: memoryview, imm: int) -> SendHandle:
        if not 0 <= slot < self.geometry.slot_count or payload.nbytes > self.geometry.slot_size:
            raise ProtocolError(
                f"write of {payload.nbytes} bytes into slot {slot} is outside the ring",
                reason="remote_access",
            )
        start = self.geometry.offset(slot)
        ring = self._ring
        ring[start : start + len(header)] = header
        ring[start + HEADER : start + HEADER + payload.nbytes] = payload
        _send(self.sock, _WRITE.pack(b"W", imm))
        return DONE

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.sock.close()
            _close_segment(self.shm)


class _ShmSetup:
    def __init__(self, geometry: Geometry) -> None:
        self.geometry = geometry

    @property
    def params(self) -> Params:
        return {}

    def attach(self, ready: Params) -> ShmSendSide:
        return ShmSendSide(self.geometry, ready)

    def close(self) -> None:
        pass


class ShmProvider:
    """Shared memory between processes on one host (and one network namespace)."""

    name = "shm"

    def probe(self) -> Availability:
        if not os.path.isdir("/dev/shm"):
            return Availability(False, "no /dev/shm on this machine")
        return Availability(True, "POSIX shared memory under /dev/shm")

    def listen(self, lane: int, geometry: Geometry, memory: str, accept: Params) -> ShmReceiveSide:
        return ShmReceiveSide(lane, geometry)

    def prepare(self, lane: int, geometry: Geometry) -> _ShmSetup:
        return _ShmSetup(geometry)
