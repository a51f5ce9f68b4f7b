"""Sender and Receiver: the slot/credit protocol driven over one provider connection.

A :class:`Receiver` hands out :class:`Frame`\\s: read-only numpy views straight into its
ring (or into the transport's buffer), valid until the frame is released; releasing
grants the slot back to the sender. A :class:`Sender` waits for a credit, writes a frame
into the slot and completes it. Both are used from one thread at a time, like a ZeroMQ
socket; both are context managers.
"""

from __future__ import annotations

import dataclasses
import re
import time
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import numpy as np
import structlog

from edgeloop.errors import PeerLostError, ProtocolError
from edgeloop.messages import BulkComplete
from edgeloop.transport.bulk._protocol import (
    CreditState,
    Geometry,
    RingState,
    RingStatistics,
    crc32,
    encode_imm,
    pack_header,
)
from edgeloop.transport.bulk._provider import ReceiveSide, SendHandle, SendSide

__all__ = ["Frame", "Receiver", "Sender", "ReceiverStatistics", "as_bytes_array"]

_log = structlog.get_logger("edgeloop.transport.bulk")

_DTYPE = re.compile(r"[<>|=]?[a-z][a-z0-9]*")
_RAW_DTYPES: set[np.dtype[Any]] = set()
"""Dtypes already found able to travel as raw bytes (a sender sees a handful)."""


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def as_bytes_array(data: Any) -> np.ndarray:
    """``data`` (an ndarray or any buffer) as a C-contiguous array, without a copy where
    it already is one; ValueError for a dtype that cannot travel as raw bytes."""
    array = np.asarray(data) if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    if array.dtype not in _RAW_DTYPES:
        if array.dtype.hasobject or not _DTYPE.fullmatch(array.dtype.str):
            raise ValueError(f"dtype {array.dtype} cannot travel on the bulk lane as raw bytes")
        if len(_RAW_DTYPES) < 64:
            _RAW_DTYPES.add(array.dtype)
    return array


class Frame:
    """A received frame: ``array`` is a read-only view of the slot, valid until
    :meth:`release` (after that the sender may overwrite it: copy what you keep)."""

    __slots__ = ("_owner", "_receiver", "array", "descriptor", "released")

    def __init__(
        self, receiver: Receiver, descriptor: BulkComplete, array: np.ndarray, owner: object
    ) -> None:
        self._receiver = receiver
        self._owner = owner
        self.descriptor = descriptor
        self.array = array
        self.released = False

    @property
    def seq(self) -> int:
        """The frame's sequence number on its lane (0, 1, 2, ...)."""
        return self.descriptor.seq

    @property
    def slot(self) -> int:
        """The ring slot the frame occupies until released."""
        return self.descriptor.slot

    @property
    def nbytes(self) -> int:
        """The frame's size in bytes."""
        return self.descriptor.nbytes

    @property
    def frame_id(self) -> int | None:
        """The FrameRef id the sender gave, if any."""
        return self.descriptor.frame_id

    def release(self) -> None:
        """Give the slot back to the sender (idempotent)."""
        if not self.released:
            self.released = True
            self._owner = None
            self._receiver._release(self)

    def __enter__(self) -> Frame:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self.released else "held"
        return (
            f"<Frame seq={self.seq} slot={self.slot} {self.array.dtype}{self.array.shape} {state}>"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiverStatistics:
    """A receiver's counters: frames accepted, released and held now; rejections by reason."""

    provider: str
    accepted: int
    released: int
    held: int
    rejected: dict[str, int]


class _Closable(Protocol):
    def close(self) -> None: ...


_S = TypeVar("_S", bound=_Closable)


class _End(Generic[_S]):
    """What both ends of a lane share: an idempotent close and the context manager."""

    side: _S
    _closed: bool

    def close(self) -> None:
        """Close the connection (idempotent). On the receiver this releases the ring:
        frames still held become invalid, so release or copy them first."""
        if not self._closed:
            self._closed = True
            self.side.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Receiver(_End[ReceiveSide]):
    """The ring owner's end of a lane (build one with :func:`open_receiver`)."""

    def __init__(self, side: ReceiveSide, lane: int, geometry: Geometry, *, verify: bool) -> None:
        self.side = side
        self.lane = lane
        self.geometry = geometry
        self.verify = verify
        self._state = RingState(lane, geometry, verify=verify)
        self._held: set[int] = set()
        self._closed = False
        self._peer_lost = False
        credit = self._state.grant_idle()
        if credit is not None:
            side.grant(credit)

    @property
    def provider(self) -> str:
        """The provider this lane runs on."""
        return self.side.provider

    @property
    def ring(self) -> memoryview | None:
        """The registered ring (to page-lock it for a GPU consumer), if the provider has one."""
        return self.side.ring

    def wait_attached(self, timeout: float | None = None) -> bool:
        """Wait until the sender has attached; whether it did within ``timeout`` seconds."""
        return self.side.establish(timeout)

    def recv(self, timeout: float | None = None) -> Frame:
        """The next frame, in order; TimeoutError if none arrives within ``timeout`` s.

        A write that breaks the protocol raises ProtocolError (``reason`` says how; the
        lane stays usable); a sender that went away raises PeerLostError.
        """
        if self._closed:
            raise ProtocolError("recv() on a closed receiver", reason="bad_state")
        arrival = self.side.poll(timeout)
        if arrival is None:
            raise TimeoutError(f"no frame within {timeout} s on lane {self.lane} ({self.provider})")
        verdict = self._state.complete(
            arrival.imm, arrival.header, arrival.payload, arrival.byte_len
        )
        if verdict.error is not None:
            if verdict.credit is not None:
                self.side.grant(verdict.credit)
            _log.warning(
                "bulk_frame_rejected",
                lane=self.lane,
                provider=self.provider,
                reason=verdict.error.reason,
                detail=str(verdict.error),
            )
            raise verdict.error
        descriptor = verdict.descriptor
        assert descriptor is not None
        if verdict.credit is not None:
            self.side.grant(verdict.credit)
        array = np.frombuffer(arrival.payload[: descriptor.nbytes], dtype=verdict.dtype).reshape(
            descriptor.shape
        )
        array.flags.writeable = False
        self._held.add(descriptor.slot)
        return Frame(self, descriptor, array, arrival.owner)

    def _release(self, frame: Frame) -> None:
        self._held.discard(frame.slot)
        credit = self._state.release(frame.slot)
        if credit is not None and not self._closed and not self._peer_lost:
            try:
                self.side.grant(credit)
            except PeerLostError:  # releasing never fails; the next recv() reports the loss
                self._peer_lost = True

    def statistics(self) -> ReceiverStatistics:
        """What this receiver has seen so far."""
        stats: RingStatistics = self._state.statistics
        return ReceiverStatistics(
            self.provider, stats.accepted, stats.released, len(self._held), dict(stats.rejected)
        )


class Sender(_End[SendSide]):
    """The writing end of a lane (build one with :func:`open_sender`)."""

    def __init__(
        self, side: SendSide, lane: int, geometry: Geometry, *, checksums: bool = True
    ) -> None:
        self.side = side
        self.lane = lane
        self.geometry = geometry
        self.checksums = checksums
        self._state = CreditState(lane, geometry)
        self._closed = False

    @property
    def provider(self) -> str:
        """The provider this lane runs on."""
        return self.side.provider

    @property
    def credits(self) -> int:
        """Frames the sender may write without waiting (credits received so far)."""
        self._drain_credits(0.0)
        return self._state.credits

    def wait_credits(self, count: int = 1, timeout: float | None = None) -> bool:
        """Wait until the sender holds at least ``count`` credits; whether it did within
        ``timeout`` seconds (credits travel asynchronously on some providers)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._drain_credits(0.0)
        while self._state.credits < count:
            if not self._drain_credits(_remaining(deadline)):
                return False
        return True

    def _drain_credits(self, timeout: float | None) -> bool:
        """Take every credit that has arrived, waiting up to ``timeout`` for the first."""
        credit = self.side.poll_credit(timeout)
        if credit is None:
            return False
        while credit is not None:
            self._state.add(credit)
            credit = self.side.poll_credit(0.0)
        return True

    def _take_credit(self, timeout: float | None) -> bool:
        """Take the next credit message, waiting up to ``timeout`` for it.

        A sender out of credits takes one message, not all that have arrived: asking
        the provider whether another is there costs a check (on ZeroMQ, a command
        poll inside libzmq) every time it runs dry, and the ones left wait for the
        next time.
        """
        credit = self.side.poll_credit(timeout)
        if credit is None:
            return False
        self._state.add(credit)
        return True

    def send(
        self,
        data: Any,
        *,
        timeout: float | None = None,
        checksum: int | None = None,
        frame_id: int | None = None,
    ) -> SendHandle:
        """Write one frame (an ndarray or any buffer) into the next slot the receiver
        granted, waiting up to ``timeout`` seconds for a credit (back-pressure:
        TimeoutError when none comes).

        ``checksum`` is the frame's CRC-32 if the caller knows it (a FrameRef's); else
        the sender computes one when the lane's ``checksums`` setting is on. The returned
        handle says when ``data`` may be modified again (ZeroMQ sends it zero-copy).
        A frame larger than a slot raises ProtocolError ``oversized`` before any write.
        """
        if self._closed:
            raise ProtocolError("send() on a closed sender", reason="bad_state")
        array = as_bytes_array(data)
        self._state.check_size(array.nbytes)  # before waiting for a credit
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._state.credits == 0:
            if not self._take_credit(_remaining(deadline)):
                raise TimeoutError(
                    f"no credit within {timeout} s on lane {self.lane} ({self.provider}): "
                    f"the receiver holds all {self.geometry.slot_count} slots"
                )
        raw = array.reshape(-1).view(np.uint8).data
        if checksum is None and self.checksums:
            checksum = crc32(raw)
        descriptor = self._state.take(
            array.nbytes, array.shape, array.dtype.str, checksum, frame_id
        )
        imm = encode_imm(descriptor.seq, descriptor.slot)
        return self.side.write(descriptor.slot, pack_header(descriptor), raw, imm)
