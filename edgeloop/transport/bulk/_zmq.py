"""The ``zmq`` provider: frames as zero-copy ZeroMQ multipart messages, for peers on other hosts.

The receiver binds a DEALER socket (``tcp://host:port`` or ``ipc://path``) and the
sender connects one; each side has a private context, so closing a lane leaves no
thread or descriptor behind. Messages, first part naming the kind:

- sender to receiver: ``[b"H", key]`` once (the hello: the ring's 64-bit key from
  BulkReady), then per frame ``[b"W" + imm (u32 LE) + header, payload]``;
- receiver to sender: ``b"C" + BulkCredit``, one part.

The payload is sent with ``copy=False``: ZeroMQ reads the caller's buffer while it
transmits, and the handle :meth:`Sender.send` returns is done once the buffer may be
reused (:class:`_Written`: the moment ``track=True`` would report). ZeroMQ cannot
receive into an application buffer, so a host-memory receiver hands out views of
ZeroMQ's own message buffer (zero-copy; the slot is then only a credit); a ``gpu``
receiver copies the payload once into its page-aligned ring so the consumer can
page-lock the ring.

A peer that dies shows as a disconnect on the socket monitor (TCP or IPC end-of-file;
ZMTP heartbeats catch a silent peer across hosts): PeerLostError, after the frames that
already arrived. A frame cut off mid-transfer is never delivered (multipart messages are
atomic).
"""

from __future__ import annotations

import mmap
import secrets
import struct
import threading
import time
import weakref
from typing import Final, cast

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from edgeloop.errors import PeerLostError, ProtocolError
from edgeloop.messages import BulkCredit, decode_bulk, encode_bulk
from edgeloop.transport.bulk._protocol import HEADER, Geometry
from edgeloop.transport.bulk._provider import Arrival, Availability, Params, SendHandle

__all__ = ["ZmqProvider", "ZmqReceiveSide", "ZmqSendSide", "DEFAULT_ENDPOINT"]

DEFAULT_ENDPOINT: Final = "tcp://127.0.0.1:*"
"""Where a receiver binds unless configured (``tcp://0.0.0.0:*`` to take other hosts)."""

HEARTBEAT_IVL_MS: Final = 1000
HEARTBEAT_TIMEOUT_MS: Final = 10_000
_WRITE = struct.Struct("<cI")
"""A write's first part starts with ``W`` and the immediate value; the slot header follows."""
_KEY = struct.Struct("<Q")
_W = ord("W")
_C = ord("C")
_SLICE = 0.05
"""Longest blocking receive, in seconds, before the monitor is checked for a lost peer."""
# Plain ints: pyzmq's flags are IntFlag members, and ``SNDMORE | NOBLOCK`` or
# ``events & POLLIN`` on them runs enum machinery in Python on every frame.
_NOBLOCK: Final = int(zmq.NOBLOCK)
_SNDMORE: Final = int(zmq.SNDMORE)
_POLLIN: Final = int(zmq.POLLIN)
_EVENTS: Final = int(zmq.EVENTS)
_RCVTIMEO: Final = int(zmq.RCVTIMEO)


def _socket(context: zmq.Context[zmq.Socket[bytes]]) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
    monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    return sock, monitor


def check_hello(parts: list[zmq.Frame], key: int) -> None:
    """Raise ProtocolError (``bad_key``) unless ``parts`` is a hello with the ring's key."""
    if (
        len(parts) != 2
        or parts[0].bytes != b"H"
        or len(parts[1]) != _KEY.size
        or _KEY.unpack(parts[1].bytes)[0] != key
    ):
        raise ProtocolError(
            "a peer connected to the bulk lane without the ring's key", reason="bad_key"
        )


class _Link:
    """A DEALER socket with its disconnect monitor."""

    def __init__(self) -> None:
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
        self.sock, self.monitor = _socket(self.context)
        self._rcvtimeo = -1  # what RCVTIMEO is set to (libzmq's default: wait for ever)
        self.peer_lost = False
        self.closed = False

    @classmethod
    def to_receiver(cls, ready: Params) -> _Link:
        """A link connected to the receiver of ``ready`` that has said hello with the
        ring's key (closed again if that fails)."""
        link = cls()
        try:
            link.sock.connect(str(ready["endpoint"]))
            link.send(b"H", _KEY.pack(int(ready["key"])))
        except BaseException:
            link.close()
            raise
        return link

    def recv(self, timeout: float | None) -> list[zmq.Frame]:
        """The next multipart message, ``[]`` after ``timeout``; PeerLostError once the
        peer disconnected and everything it sent has been read.

        A wait is a blocking receive (``RCVTIMEO``) in slices of :data:`_SLICE`, the
        monitor checked between slices: one poll of one socket inside libzmq per
        message, where polling the socket and its monitor together costs libzmq a
        command check on each before and after every poll (counted: twice the poll
        and epoll_wait calls per frame). RCVTIMEO is set only when the slice changes:
        a ``setsockopt`` per receive cost about 20 us of the receiving thread's CPU
        per 4 MiB frame.
        """
        sock = self.sock
        if timeout is not None and timeout <= 0:  # a probe: never blocks
            if cast("int", sock.getsockopt(_EVENTS)) & _POLLIN:
                return self._parts(_NOBLOCK)
            self._check_monitor()
            if self.peer_lost:
                raise PeerLostError("bulk-lane peer went away (ZeroMQ connection closed)")
            return []
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
            rcvtimeo = max(0, round(remaining * 1000))
            if rcvtimeo != self._rcvtimeo:
                sock.setsockopt(_RCVTIMEO, rcvtimeo)
                self._rcvtimeo = rcvtimeo
            try:
                return self._parts(0)
            except zmq.Again:
                pass
            self._check_monitor()
            if self.peer_lost:  # everything it sent before it went has been read
                raise PeerLostError("bulk-lane peer went away (ZeroMQ connection closed)")
            if deadline is not None and time.monotonic() >= deadline:
                return []

    def _parts(self, flags: int) -> list[zmq.Frame]:
        """``recv_multipart(flags, copy=False)`` without its enum arithmetic; the parts
        after the first are already there (a multipart message arrives whole)."""
        sock = self.sock
        part = sock.recv(flags, copy=False)
        parts = [part]
        while part.more:  # pyzmq sets it from ZMQ_RCVMORE on every zero-copy receive
            part = sock.recv(0, copy=False)
            parts.append(part)
        return parts

    def _check_monitor(self) -> None:
        while cast("int", self.monitor.getsockopt(_EVENTS)) & _POLLIN:
            event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self.peer_lost = True

    def send(self, *parts: bytes) -> None:
        """Queue a message of ``parts`` without blocking: a DEALER whose peer is gone has
        no pipe to queue on, and the lane's credits keep a live peer's queue far below
        its HWM."""
        if self.peer_lost:
            raise PeerLostError("bulk-lane peer went away (ZeroMQ connection closed)")
        sock = self.sock
        try:
            for part in parts[:-1]:
                sock.send(part, _SNDMORE | _NOBLOCK)  # not send_multipart: it does enum
            sock.send(parts[-1], _NOBLOCK)  # arithmetic in Python on every part
        except zmq.ZMQError as exc:
            raise self._lost() from exc

    def send_credit(self, credit: BulkCredit) -> None:
        """Queue a credit: one part, ``C`` then the message (every part is one more call
        into libzmq on each side)."""
        self.send(b"C" + encode_bulk(credit))

    def recv_credit(self, timeout: float | None) -> BulkCredit | None:
        """The next credit, ``None`` after ``timeout``; ProtocolError ``bad_state`` for
        a message that is not one."""
        parts = self.recv(timeout)
        if not parts:
            return None
        head = parts[0].buffer
        if len(parts) != 1 or not head or head[0] != _C:
            raise ProtocolError("expected a bulk_credit on the bulk lane", reason="bad_state")
        message = decode_bulk(head[1:])
        if not isinstance(message, BulkCredit):
            raise ProtocolError(
                f"expected a bulk_credit, got {type(message).__name__}", reason="bad_state"
            )
        return message

    def send_write(self, head: bytes, payload: memoryview) -> _Written:
        """Queue a write, ``[head, payload]``, the payload zero-copy, without blocking
        (as :meth:`send`). libzmq checks the high-water mark on a message's first part
        only, so the second part fails only if the connection went away in between: a
        lost peer as well."""
        if self.peer_lost:
            raise PeerLostError("bulk-lane peer went away (ZeroMQ connection closed)")
        sock = self.sock
        view = np.frombuffer(payload, np.uint8)  # a fresh object that only pyzmq keeps
        try:
            sock.send(head, _SNDMORE | _NOBLOCK)
            sock.send(view.data, _NOBLOCK, copy=False)  # the memoryview holds view
        except zmq.ZMQError as exc:
            raise self._lost() from exc
        return _Written(view)

    def _lost(self) -> PeerLostError:
        self.peer_lost = True
        return PeerLostError("bulk-lane peer went away (ZeroMQ has no connection to queue on)")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.disable_monitor()
            self.monitor.close(linger=0)
            self.sock.close(linger=0)
            self.context.term()


class _Written:
    """A write whose payload ZeroMQ may still be reading: done once nothing holds
    ``view``, the array the payload was sent as.

    pyzmq keeps the object a zero-copy message was made from until libzmq has sent the
    bytes and called it free (its garbage-collector thread drops it then), and nothing
    else holds ``view``. This is the moment ``track=True`` reports, without the Event
    and MessageTracker it builds per message and the Event its collector sets; both
    cost the sending thread CPU on every frame (measured: docs/bulk-lane.md §4).
    """

    __slots__ = ("_view",)

    def __init__(self, view: np.ndarray) -> None:
        self._view = weakref.ref(view)

    def done(self) -> bool:
        return self._view() is None

    def wait(self, timeout: float | None = None) -> bool:
        view = self._view()
        if view is None:
            return True
        released = threading.Event()
        weakref.finalize(view, released.set)
        del view  # if that was the last reference, the finalizer has run already
        return released.wait(timeout)


class ZmqReceiveSide:
    """The receiver's end: a bound DEALER; frames stay in ZeroMQ's buffers (host memory)
    or are copied once into a page-aligned ring (gpu memory)."""

    provider = "zmq"

    def __init__(self, lane: int, geometry: Geometry, memory: str, endpoint: str) -> None:
        self.lane = lane
        self.geometry = geometry
        self.key = secrets.randbits(64)
        self.link = _Link()
        try:
            self.link.sock.bind(endpoint)
        except zmq.ZMQError:
            self.link.close()
            raise
        self.endpoint = self.link.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._ring = memoryview(mmap.mmap(-1, geometry.ring_size)) if memory == "gpu" else None
        self._pending: list[BulkCredit] = []
        self.attached = False

    @property
    def ring(self) -> memoryview | None:
        return self._ring

    def ready_params(self) -> Params:
        return {"endpoint": self.endpoint, "key": self.key}

    def _hello(self, parts: list[zmq.Frame]) -> None:
        check_hello(parts, self.key)
        self.attached = True
        for credit in self._pending:
            self.link.send_credit(credit)
        self._pending.clear()

    def establish(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.attached:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            parts = self.link.recv(remaining)
            if not parts:
                return False
            if parts[0].bytes != b"H":
                raise ProtocolError(
                    "the bulk-lane sender wrote before its hello", reason="bad_state"
                )
            self._hello(parts)
        return True

    def grant(self, credit: BulkCredit) -> None:
        if self.attached:
            self.link.send_credit(credit)
        else:
            self._pending.append(credit)

    def poll(self, timeout: float | None) -> Arrival | None:
        if not self.attached:
            deadline = None if timeout is None else time.monotonic() + timeout
            if not self.establish(timeout):
                return None
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        parts = self.link.recv(timeout)
        if not parts:
            return None
        head = parts[0].buffer
        if len(parts) != 2 or len(head) < _WRITE.size or head[0] != _W:
            raise ProtocolError("malformed write on the bulk lane", reason="malformed")
        _, imm = _WRITE.unpack_from(head)
        header = head[_WRITE.size : _WRITE.size + HEADER]
        payload_frame = parts[1]
        payload = payload_frame.buffer
        byte_len = payload.nbytes
        slot = imm & 0xFF
        fits = slot < self.geometry.slot_count and byte_len <= self.geometry.slot_size
        if self._ring is not None and fits:
            start = self.geometry.payload_offset(slot)
            self._ring[start : start + byte_len] = payload
            payload = self._ring[start : start + self.geometry.slot_size]
            return Arrival(imm, header, payload, byte_len)
        return Arrival(imm, header, payload, byte_len, payload_frame)

    def close(self) -> None:
        self.link.close()


class ZmqSendSide:
    """The sender's end: a connected DEALER sending payloads zero-copy."""

    provider = "zmq"

    def __init__(self, lane: int, geometry: Geometry, ready: Params) -> None:
        self.lane = lane
        self.geometry = geometry
        self.link = _Link.to_receiver(ready)

    def poll_credit(self, timeout: float | None) -> BulkCredit | None:
        return self.link.recv_credit(timeout)

    def write(self, slot: int, header: bytes, payload: memoryview, imm: int) -> SendHandle:
        if not 0 <= slot < self.geometry.slot_count or payload.nbytes > self.geometry.slot_size:
            raise ProtocolError(
                f"write of {payload.nbytes} bytes into slot {slot} is outside the ring",
                reason="remote_access",
            )
        # Two parts, not four: every part is one more call into libzmq (and one more
        # release and retake of the GIL) on each side, for a few bytes.
        return self.link.send_write(_WRITE.pack(b"W", imm) + header, payload)

    def close(self) -> None:
        self.link.close()


class _ZmqSetup:
    def __init__(self, lane: int, geometry: Geometry) -> None:
        self.lane = lane
        self.geometry = geometry

    @property
    def params(self) -> Params:
        return {}

    def attach(self, ready: Params) -> ZmqSendSide:
        return ZmqSendSide(self.lane, self.geometry, ready)

    def close(self) -> None:
        pass


class ZmqProvider:
    """Zero-copy ZeroMQ multipart frames over tcp or ipc."""

    name = "zmq"

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT) -> None:
        self.endpoint = endpoint

    def probe(self) -> Availability:
        return Availability(True, f"ZeroMQ {zmq.zmq_version()} (pyzmq {zmq.__version__})")

    def listen(self, lane: int, geometry: Geometry, memory: str, accept: Params) -> ZmqReceiveSide:
        return ZmqReceiveSide(lane, geometry, memory, self.endpoint)

    def prepare(self, lane: int, geometry: Geometry) -> _ZmqSetup:
        return _ZmqSetup(lane, geometry)
