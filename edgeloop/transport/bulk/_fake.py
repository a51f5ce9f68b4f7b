"""The ``fake`` provider: an in-process model of an RDMA reliable connection, for tests.

It runs the lane exactly as the verbs provider does (registered regions with keys, a
queue pair per side, one receive posted per credit, RDMA write with immediate, a
completion queue) and enforces the rules a NIC enforces, so the protocol logic verbs
relies on is exercised on machines without RDMA:

- a queue pair moves RESET -> INIT -> RTR -> RTS in that order and posts only in RTS;
- a write names a local region by ``lkey`` and a remote one by ``rkey``; a wrong key, a
  range outside the region, or a remote region without REMOTE_WRITE is a *remote access
  error* (``reason="remote_access"``, or ``local_access`` for the local side) and moves
  both queue pairs to ERROR, as a real RC connection does; every later post fails with
  ``qp_state``;
- a write with immediate consumes one posted receive at the responder; with none posted
  the requester retries ``rnr_retry`` times and then fails with ``rnr``. The receiver
  keeps one receive posted per slot (re-posting one per completion), so a sender that
  respects its credits never meets RNR;
- completions arrive in posting order, the data in place before the completion.

Both ends live in one process; :meth:`FakeReceiveSide.kill` (or ``FakeSendSide.kill``)
plays a peer crashing: the survivor's next wait raises PeerLostError.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import secrets
import threading
import time
from collections import deque
from typing import Final

from edgeloop.errors import PeerLostError, ProtocolError
from edgeloop.messages import BulkCredit
from edgeloop.transport.bulk._protocol import HEADER, Geometry
from edgeloop.transport.bulk._provider import (
    DONE,
    Arrival,
    Availability,
    Params,
    SendHandle,
)

__all__ = [
    "Access",
    "QPState",
    "FakeRegion",
    "FakeQP",
    "FakeProvider",
    "FakeReceiveSide",
    "FakeSendSide",
]

RNR_RETRY: Final = 7
"""Receiver-not-ready retries before a write fails (rdma-core's tests use 7)."""


class Access(enum.IntFlag):
    """Memory-region access flags, as ``ibv_access_flags`` names them."""

    LOCAL_WRITE = 1
    REMOTE_WRITE = 2


class QPState(enum.Enum):
    """Queue-pair states the model walks through (``ibv_qp_state``)."""

    RESET = "reset"
    INIT = "init"
    RTR = "rtr"
    RTS = "rts"
    ERROR = "error"


_NEXT: Final = {QPState.RESET: QPState.INIT, QPState.INIT: QPState.RTR, QPState.RTR: QPState.RTS}
_keys = itertools.count(0x1000)


@dataclasses.dataclass(eq=False, slots=True)
class FakeRegion:
    """A registered memory region: its bytes, access flags and keys."""

    buffer: memoryview
    access: Access
    lkey: int = dataclasses.field(default_factory=lambda: next(_keys))
    rkey: int = dataclasses.field(default_factory=lambda: next(_keys))


@dataclasses.dataclass(frozen=True, slots=True)
class Completion:
    """A receive-side completion: ``IBV_WC_RECV_RDMA_WITH_IMM`` with its immediate."""

    imm: int
    byte_len: int


class FakeQP:
    """One end of a fake RC connection: regions, posted receives, a completion queue."""

    def __init__(self) -> None:
        self.state = QPState.RESET
        self.peer: FakeQP | None = None
        self.regions: dict[int, FakeRegion] = {}  # by lkey and by rkey
        self.posted_recvs = 0
        self.cq: deque[Completion] = deque()
        self.cond = threading.Condition()
        self.rnr_events = 0

    def register(self, buffer: memoryview, access: Access) -> FakeRegion:
        """Register ``buffer`` with this queue pair's protection domain."""
        region = FakeRegion(buffer, access)
        self.regions[region.lkey] = region
        self.regions[region.rkey] = region
        return region

    def modify(self, state: QPState) -> None:
        """Move to ``state``: the next one in RESET -> INIT -> RTR -> RTS, or ERROR."""
        if state is not QPState.ERROR and _NEXT.get(self.state) is not state:
            raise ProtocolError(
                f"queue pair cannot move from {self.state.value} to {state.value}",
                reason="qp_state",
            )
        self.state = state

    def connect(self, peer: FakeQP) -> None:
        """Walk INIT -> RTR -> RTS towards ``peer`` (both sides call this)."""
        self.peer = peer
        for state in (QPState.INIT, QPState.RTR, QPState.RTS):
            self.modify(state)

    def post_recv(self, count: int = 1) -> None:
        """Post ``count`` receives (zero SGEs: a write with immediate consumes one)."""
        with self.cond:
            if self.state not in (QPState.INIT, QPState.RTR, QPState.RTS):
                raise ProtocolError(
                    f"post_recv on a queue pair in {self.state.value}", reason="qp_state"
                )
            self.posted_recvs += count

    def _fail(self, message: str, reason: str) -> ProtocolError:
        self.state = QPState.ERROR
        if self.peer is not None:
            with self.peer.cond:
                self.peer.state = QPState.ERROR
                self.peer.cond.notify_all()
        return ProtocolError(message, reason=reason)

    def post_write_imm(
        self, lkey: int, offset: int, length: int, rkey: int, remote_offset: int, imm: int
    ) -> None:
        """RDMA write ``length`` bytes at ``offset`` of the local region ``lkey`` to
        ``remote_offset`` of the peer's region ``rkey``, completed by ``imm``."""
        if self.state is not QPState.RTS or self.peer is None:
            raise ProtocolError(
                f"post_send on a queue pair in {self.state.value}", reason="qp_state"
            )
        local = self.regions.get(lkey)
        if (
            local is None
            or local.lkey != lkey
            or not 0 <= offset <= offset + length <= len(local.buffer)
        ):
            raise self._fail(
                f"local protection error: lkey {lkey:#x} does not cover "
                f"[{offset}, {offset + length})",
                "local_access",
            )
        peer = self.peer
        with peer.cond:
            remote = peer.regions.get(rkey)
            if (
                remote is None
                or remote.rkey != rkey
                or Access.REMOTE_WRITE not in remote.access
                or not 0 <= remote_offset <= remote_offset + length <= len(remote.buffer)
            ):
                raise self._fail(
                    f"remote access error: rkey {rkey:#x} does not allow a write to "
                    f"[{remote_offset}, {remote_offset + length})",
                    "remote_access",
                )
            if peer.state is not QPState.RTS:
                raise self._fail(f"the responder's queue pair is in {peer.state.value}", "qp_state")
            for _ in range(RNR_RETRY + 1):
                if peer.posted_recvs:
                    break
                self.rnr_events += 1
            else:
                raise self._fail(
                    f"receiver not ready: no receive posted after {RNR_RETRY} retries "
                    "(the sender wrote without a credit)",
                    "rnr",
                )
            peer.posted_recvs -= 1
            remote.buffer[remote_offset : remote_offset + length] = local.buffer[
                offset : offset + length
            ]
            peer.cq.append(Completion(imm, length))
            peer.cond.notify_all()


class _Channel:
    """The lane's control channel in one process: credits one way, liveness both ways."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.credits: deque[BulkCredit] = deque()
        self.receiver_alive = True
        self.sender_alive = True
        self.sender_attached = False


_FABRIC: dict[str, tuple[FakeQP, FakeRegion, _Channel]] = {}
_FABRIC_LOCK = threading.Lock()


def _wait(cond: threading.Condition, deadline: float | None) -> bool:
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        return False
    return cond.wait(remaining)


class FakeReceiveSide:
    """The receiving end: a registered ring with REMOTE_WRITE, one receive per slot."""

    provider = "fake"

    def __init__(self, lane: int, geometry: Geometry) -> None:
        self.geometry = geometry
        self.qp = FakeQP()
        self._ring = bytearray(geometry.ring_size)
        self.region = self.qp.register(
            memoryview(self._ring), Access.LOCAL_WRITE | Access.REMOTE_WRITE
        )
        self.channel = _Channel()
        self.token = secrets.token_hex(8)
        with _FABRIC_LOCK:
            _FABRIC[self.token] = (self.qp, self.region, self.channel)
        self.qp.modify(QPState.INIT)
        self.qp.post_recv(geometry.slot_count)
        self._closed = False

    @property
    def ring(self) -> memoryview | None:
        return self.region.buffer

    def ready_params(self) -> Params:
        return {"token": self.token, "rkey": self.region.rkey, "length": len(self._ring)}

    def establish(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.channel.cond:
            while not self.channel.sender_attached:
                if not self.channel.sender_alive or not _wait(self.channel.cond, deadline):
                    return self.channel.sender_attached
        return True

    def grant(self, credit: BulkCredit) -> None:
        with self.channel.cond:
            self.channel.credits.append(credit)
            self.channel.cond.notify_all()

    def poll(self, timeout: float | None) -> Arrival | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.qp.cond:
            while not self.qp.cq:
                if not self.channel.sender_alive or self.qp.state is QPState.ERROR:
                    raise PeerLostError("the fake sender went away (its queue pair is gone)")
                if not _wait(self.qp.cond, deadline):
                    return None
            completion = self.qp.cq.popleft()
        self.qp.post_recv()  # keep the receive queue stocked: one receive per slot
        slot = completion.imm & 0xFF
        start = self.geometry.offset(slot) if slot < self.geometry.slot_count else 0
        ring = self.region.buffer
        return Arrival(
            completion.imm,
            ring[start : start + HEADER],
            ring[start + HEADER : start + self.geometry.stride],
            completion.byte_len - HEADER,
        )

    def kill(self) -> None:
        """Play a crash: the sender's next wait raises PeerLostError."""
        with self.channel.cond:
            self.channel.receiver_alive = False
            self.channel.cond.notify_all()
        self.qp._fail("receiver crashed", "qp_state")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.kill()
            with _FABRIC_LOCK:
                _FABRIC.pop(self.token, None)


class FakeSendSide:
    """The sending end: a registered staging buffer, writes with immediate into the ring."""

    provider = "fake"

    def __init__(self, geometry: Geometry, ready: Params) -> None:
        token = str(ready["token"])
        with _FABRIC_LOCK:
            found = _FABRIC.get(token)
        if found is None:
            raise PeerLostError(f"no fake receiver with token {token!r} in this process")
        peer_qp, _region, self.channel = found
        self.geometry = geometry
        self.rkey = int(ready["rkey"])
        self.qp = FakeQP()
        self._staging = bytearray(geometry.stride)
        self.staging = self.qp.register(memoryview(self._staging), Access.LOCAL_WRITE)
        self.qp.connect(peer_qp)
        if peer_qp.state is QPState.INIT:
            for state in (QPState.RTR, QPState.RTS):
                peer_qp.modify(state)
            peer_qp.peer = self.qp
        with self.channel.cond:
            self.channel.sender_attached = True
            self.channel.cond.notify_all()
        self._closed = False

    def poll_credit(self, timeout: float | None) -> BulkCredit | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.channel.cond:
            while not self.channel.credits:
                if not self.channel.receiver_alive:
                    raise PeerLostError("the fake receiver went away")
                if not _wait(self.channel.cond, deadline):
                    return None
            return self.channel.credits.popleft()

    def write(self, slot: int, header: bytes, payload: memoryview, imm: int) -> SendHandle:
        length = HEADER + payload.nbytes
        if length > len(self._staging):  # the staging region is one slot: a local check
            raise ProtocolError(
                f"write of {length} bytes exceeds the staging region", reason="local_access"
            )
        self._staging[: len(header)] = header
        self._staging[HEADER:length] = payload
        self.qp.post_write_imm(
            self.staging.lkey, 0, length, self.rkey, slot * self.geometry.stride, imm
        )
        return DONE

    def kill(self) -> None:
        """Play a crash: the receiver's next wait raises PeerLostError."""
        with self.channel.cond:
            self.channel.sender_alive = False
            self.channel.cond.notify_all()
        peer = self.qp.peer
        if peer is not None:
            with peer.cond:
                peer.cond.notify_all()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.kill()


class _FakeSetup:
    def __init__(self, geometry: Geometry) -> None:
        self.geometry = geometry

    @property
    def params(self) -> Params:
        return {}

    def attach(self, ready: Params) -> FakeSendSide:
        return FakeSendSide(self.geometry, ready)

    def close(self) -> None:
        pass


class FakeProvider:
    """The in-process RC model (test-only: both ends must live in this process)."""

    name = "fake"

    def probe(self) -> Availability:
        return Availability(True, "in-process model of an RDMA reliable connection")

    def listen(self, lane: int, geometry: Geometry, memory: str, accept: Params) -> FakeReceiveSide:
        return FakeReceiveSide(lane, geometry)

    def prepare(self, lane: int, geometry: Geometry) -> _FakeSetup:
        return _FakeSetup(geometry)
