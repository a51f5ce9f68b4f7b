"""The slot/credit protocol, sans-IO: what the receiver and the sender of a lane may do.

Rules (the receiver owns the ring; every provider obeys them, the ``fake`` one enforces
the transport half the way an RDMA reliable connection does):

1. The receiver's ring has ``slot_count`` slots. Slot ``i`` starts at ``i * stride``
   and holds a :data:`HEADER` of 4 KiB (a little-endian ``u32`` length, then the
   MessagePack :class:`~edgeloop.messages.BulkComplete` descriptor) followed by up to
   ``slot_size`` payload bytes, so the payload is page-aligned.
2. The receiver grants credits (:class:`~edgeloop.messages.BulkCredit`), one slot each.
   A slot is *granted* (the sender holds it), *filled* (a frame is in it, the consumer
   holds it) or *idle*.
3. The sender writes header and payload into a slot it holds a credit for, in one
   one-sided write, and completes the write with a 32-bit immediate value
   ``(seq mod 2**24) << 8 | slot`` (:func:`encode_imm`). Sequence numbers start at 0
   and grow by one per frame.
4. On the completion the receiver reads the header from the slot and checks it against
   the immediate value and its own state before it hands out a zero-copy view; any
   mismatch is a :class:`~edgeloop.errors.ProtocolError` whose ``reason`` names it:
   ``bad_slot`` (out of range or not granted), ``bad_imm`` (header and immediate value
   disagree), ``malformed`` (the header does not decode), ``bad_lane``, ``bad_seq``,
   ``oversized`` (more bytes than a slot holds), ``bad_shape`` (shape and dtype do not
   make ``nbytes``), ``bad_checksum``. A rejected write into a granted slot gives the
   credit back at once, so one bad frame never shrinks the window.
5. When the consumer releases a frame its slot is granted again.

Nothing here touches memory other than the slot bytes it is given, or does I/O.
"""

from __future__ import annotations

import dataclasses
import math
import struct
import zlib
from collections import deque
from collections.abc import Iterable
from enum import Enum
from typing import Any, Final, NamedTuple

import msgspec
import numpy as np

from edgeloop.errors import ProtocolError
from edgeloop.messages import BulkComplete, BulkCredit, encode_bulk

__all__ = [
    "HEADER",
    "PAGE",
    "MAX_SLOTS",
    "Geometry",
    "SlotState",
    "RingState",
    "CreditState",
    "RingStatistics",
    "encode_imm",
    "decode_imm",
    "pack_header",
    "unpack_header",
    "crc32",
]

PAGE: Final = 4096
HEADER: Final = PAGE
"""Bytes at the start of every slot for the descriptor; the payload follows, page-aligned."""
MAX_SLOTS: Final = 256
"""The immediate value has 8 bits for the slot."""
_SEQ_MASK: Final = (1 << 24) - 1
_LENGTH = struct.Struct("<I")
_DESCRIPTOR: Final = msgspec.msgpack.Decoder(BulkComplete)
"""Decodes a slot header's body, with BulkComplete's bounds (a tag check rejects any
other bulk message; the body is at most a header long, under the bulk size limit)."""


def encode_imm(seq: int, slot: int) -> int:
    """The 32-bit immediate value that completes frame ``seq`` written into ``slot``."""
    return ((seq & _SEQ_MASK) << 8) | (slot & 0xFF)


def decode_imm(imm: int) -> tuple[int, int]:
    """``(seq mod 2**24, slot)`` from an immediate value."""
    return (imm >> 8) & _SEQ_MASK, imm & 0xFF


def crc32(data: memoryview | bytes | bytearray | np.ndarray) -> int:
    """CRC-32 of the bytes, as ``zlib.crc32`` computes it (the FrameRef checksum)."""
    return zlib.crc32(data.data if isinstance(data, np.ndarray) else data) & 0xFFFFFFFF


def _round_up(value: int, to: int) -> int:
    return -(-value // to) * to


@dataclasses.dataclass(frozen=True, slots=True)
class Geometry:
    """A ring of ``slot_count`` slots, each taking frames of up to ``slot_size`` bytes."""

    slot_size: int
    slot_count: int

    def __post_init__(self) -> None:
        if not 1 <= self.slot_count <= MAX_SLOTS:
            raise ValueError(f"slot_count must be in 1..{MAX_SLOTS}, got {self.slot_count}")
        if not 1 <= self.slot_size <= 2**40:
            raise ValueError(f"slot_size must be in 1..2**40 bytes, got {self.slot_size}")

    @property
    def stride(self) -> int:
        """Bytes from one slot's start to the next: the header plus the page-rounded payload."""
        return HEADER + _round_up(self.slot_size, PAGE)

    @property
    def ring_size(self) -> int:
        """Bytes of the whole ring."""
        return self.stride * self.slot_count

    def offset(self, slot: int) -> int:
        """Where ``slot`` starts in the ring (its header)."""
        return slot * self.stride

    def payload_offset(self, slot: int) -> int:
        """Where ``slot``'s payload starts in the ring."""
        return slot * self.stride + HEADER


def pack_header(descriptor: BulkComplete) -> bytes:
    """The header bytes for ``descriptor`` (length-prefixed MessagePack, under 4 KiB)."""
    body = encode_bulk(descriptor)
    if len(body) + _LENGTH.size > HEADER:  # pragma: no cover - the schema's bounds forbid it
        raise ProtocolError(f"descriptor of {len(body)} bytes does not fit a slot header")
    return _LENGTH.pack(len(body)) + body


def unpack_header(header: memoryview | bytes) -> BulkComplete:
    """The descriptor in a slot header; ProtocolError ``malformed`` if there is none."""
    if len(header) < _LENGTH.size:
        raise ProtocolError("slot header is truncated", reason="malformed")
    (length,) = _LENGTH.unpack_from(header)
    if not 0 < length <= HEADER - _LENGTH.size or length > len(header) - _LENGTH.size:
        raise ProtocolError(f"slot header claims {length} descriptor bytes", reason="malformed")
    try:  # straight from the slot (no copy), into the one type a header may hold
        return _DESCRIPTOR.decode(memoryview(header)[_LENGTH.size : _LENGTH.size + length])
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            f"slot header is not a BulkComplete descriptor: {exc}", reason="malformed"
        ) from exc


class SlotState(Enum):
    """Where a slot of the ring is in its cycle."""

    IDLE = "idle"  # neither side holds it: before the first grant, or released and
    # withheld until a batch of credits goes out (RingState.release)
    GRANTED = "granted"  # the sender holds a credit for it
    FILLED = "filled"  # a frame is in it; the consumer holds it until it releases


@dataclasses.dataclass(slots=True)
class RingStatistics:
    """What a ring has seen: frames accepted and released, rejections by reason."""

    accepted: int = 0
    released: int = 0
    rejected: dict[str, int] = dataclasses.field(default_factory=dict)


class Verdict(NamedTuple):  # a tuple: built once per frame, a frozen dataclass costs more
    """The receiver's decision on one completed write.

    ``descriptor`` is set when the frame is accepted; ``error`` when it is rejected.
    ``credit`` is what to send the sender now, if anything: a rejected write's slot, or
    the withheld slots once an accepted frame used the sender's last credit.
    """

    descriptor: BulkComplete | None
    error: ProtocolError | None = None
    credit: BulkCredit | None = None
    dtype: np.dtype[Any] | None = None  # the accepted frame's, checked and built once per layout


_LAYOUTS_KEPT: Final = 64
"""Layouts (dtype, shape, nbytes) a ring remembers as checked: a stream has a handful."""


def _check_layout(descriptor: BulkComplete) -> str | None:
    """What is wrong with the descriptor's shape and dtype, or ``None``."""
    try:
        dtype = np.dtype(descriptor.dtype)
    except TypeError:
        return f"dtype {descriptor.dtype!r} is not a numpy dtype"
    if dtype.hasobject or dtype.itemsize == 0:
        return f"dtype {descriptor.dtype!r} cannot travel as raw bytes"
    if math.prod(descriptor.shape) * dtype.itemsize != descriptor.nbytes:
        return (
            f"shape {descriptor.shape} of {descriptor.dtype} is "
            f"{math.prod(descriptor.shape) * dtype.itemsize} bytes, not {descriptor.nbytes}"
        )
    return None


class RingState:
    """The receiver's half of a lane: which slots are granted and filled, the next seq.

    Single-threaded: the receiver that owns it calls every method from one thread.
    """

    def __init__(
        self,
        lane: int,
        geometry: Geometry,
        *,
        verify: bool = True,
        credit_batch: int | None = None,
    ) -> None:
        self.lane = lane
        self.geometry = geometry
        self.verify = verify
        self.credit_batch = credit_batch or max(1, geometry.slot_count // 4)
        self.expected_seq = 0
        self._states = [SlotState.IDLE] * geometry.slot_count
        self._granted = 0  # slots in the GRANTED state: the credits the sender holds
        self._withheld = 0
        self._layouts: dict[tuple[str, tuple[int, ...], int], np.dtype[Any]] = {}
        self.statistics = RingStatistics()

    def state(self, slot: int) -> SlotState:
        """Where ``slot`` is in its cycle."""
        return self._states[slot]

    def grant_idle(self) -> BulkCredit | None:
        """Grant every idle slot (the first credits of a lane), or ``None`` if none is idle."""
        slots = [i for i, state in enumerate(self._states) if state is SlotState.IDLE]
        self._withheld = 0
        self._granted += len(slots)
        for slot in slots:
            self._states[slot] = SlotState.GRANTED
        return BulkCredit(lane=self.lane, slots=tuple(slots)) if slots else None

    def release(self, slot: int) -> BulkCredit | None:
        """The consumer is done with the frame in ``slot``: the credit to send, if any.

        Released slots are granted back in batches of ``credit_batch`` (a quarter of the
        ring by default), so that a stream costs one credit message per batch rather than
        per frame: each message wakes the transport on both sides. A batch goes out early
        whenever the sender holds no credit at all, so it is never kept waiting for
        slots the consumer has already released; at most ``credit_batch - 1`` slots are
        withheld while it still has some to write into.
        """
        if not 0 <= slot < self.geometry.slot_count or self._states[slot] is not SlotState.FILLED:
            raise ValueError(f"slot {slot} holds no frame to release")
        self._states[slot] = SlotState.IDLE
        self.statistics.released += 1
        self._withheld += 1
        if self._withheld >= self.credit_batch or not self._granted:
            return self.grant_idle()
        return None

    def complete(
        self,
        imm: int,
        header: memoryview | bytes | BulkComplete,
        payload: memoryview | None,
        byte_len: int | None = None,
    ) -> Verdict:
        """Judge the write that completed with ``imm``.

        ``header`` is the slot's header bytes (or the descriptor itself, for providers
        that carry it beside the payload); ``payload`` the slot's payload bytes (``None``
        skips the checksum); ``byte_len`` the bytes the transport says it wrote, if it says.
        """
        seq24, slot = (imm >> 8) & _SEQ_MASK, imm & 0xFF  # decode_imm, inlined: per frame
        if slot >= self.geometry.slot_count:
            return self._reject(
                f"write into slot {slot}, but the ring has {self.geometry.slot_count}",
                "bad_slot",
            )
        if self._states[slot] is not SlotState.GRANTED:
            return self._reject(
                f"write into slot {slot}, which the sender holds no credit for "
                f"(it is {self._states[slot].value})",
                "bad_slot",
            )
        try:
            descriptor = header if isinstance(header, BulkComplete) else unpack_header(header)
        except ProtocolError as exc:
            return self._reject(str(exc), exc.reason, slot)
        if descriptor.lane != self.lane:
            return self._reject(
                f"descriptor for lane {descriptor.lane} on lane {self.lane}", "bad_lane", slot
            )
        if descriptor.slot != slot or descriptor.seq & _SEQ_MASK != seq24:
            return self._reject(
                f"descriptor says seq {descriptor.seq} in slot {descriptor.slot}, the "
                f"immediate value says seq {seq24} (mod 2**24) in slot {slot}",
                "bad_imm",
                slot,
            )
        if descriptor.seq != self.expected_seq:
            return self._reject(
                f"frame seq {descriptor.seq} arrived, seq {self.expected_seq} was expected",
                "bad_seq",
                slot,
            )
        self.expected_seq += 1  # the sender spent this seq, whatever the checks below say
        if descriptor.nbytes > self.geometry.slot_size:
            return self._reject(
                f"frame of {descriptor.nbytes} bytes exceeds the slot size of "
                f"{self.geometry.slot_size} bytes",
                "oversized",
                slot,
            )
        if byte_len is not None and byte_len != descriptor.nbytes:
            return self._reject(
                f"descriptor says {descriptor.nbytes} bytes, the transport wrote {byte_len}",
                "bad_imm",
                slot,
            )
        layout = (descriptor.dtype, descriptor.shape, descriptor.nbytes)
        dtype = self._layouts.get(layout)
        if dtype is None:
            problem = _check_layout(descriptor)
            if problem is not None:
                return self._reject(problem, "bad_shape", slot)
            if len(self._layouts) >= _LAYOUTS_KEPT:
                self._layouts.clear()
            dtype = self._layouts[layout] = np.dtype(descriptor.dtype)
        if self.verify and descriptor.checksum is not None and payload is not None:
            actual = crc32(payload[: descriptor.nbytes])
            if actual != descriptor.checksum:
                return self._reject(
                    f"frame seq {descriptor.seq} has CRC-32 {actual:#010x}, its descriptor "
                    f"says {descriptor.checksum:#010x}: the bytes were corrupted",
                    "bad_checksum",
                    slot,
                )
        self._states[slot] = SlotState.FILLED
        self._granted -= 1
        self.statistics.accepted += 1
        if self._withheld and not self._granted:
            # That was the sender's last credit: it must not wait for a batch to fill.
            return Verdict(descriptor, None, self.grant_idle(), dtype)
        return Verdict(descriptor, None, None, dtype)

    def _reject(self, message: str, reason: str, slot: int | None = None) -> Verdict:
        self.statistics.rejected[reason] = self.statistics.rejected.get(reason, 0) + 1
        credit = None if slot is None else BulkCredit(lane=self.lane, slots=(slot,))
        return Verdict(None, ProtocolError(message, reason=reason), credit)


class CreditState:
    """The sender's half of a lane: the credits it holds (oldest first) and the next seq.

    Single-threaded: the sender that owns it calls every method from one thread.
    """

    def __init__(self, lane: int, geometry: Geometry) -> None:
        self.lane = lane
        self.geometry = geometry
        self.next_seq = 0
        self._held: deque[int] = deque()
        self._held_set: set[int] = set()

    @property
    def credits(self) -> int:
        """How many frames the sender may write now."""
        return len(self._held)

    def add(self, credit: BulkCredit) -> None:
        """Take the credits the receiver granted; ProtocolError ``bad_credit`` if it
        grants a slot out of range or one the sender already holds."""
        if credit.lane != self.lane:
            raise ProtocolError(
                f"credit for lane {credit.lane} on lane {self.lane}", reason="bad_lane"
            )
        duplicated = len(set(credit.slots)) != len(credit.slots)
        for slot in credit.slots:
            if duplicated or slot >= self.geometry.slot_count or slot in self._held_set:
                raise ProtocolError(
                    f"receiver granted slot {slot}, which is out of range or already held",
                    reason="bad_credit",
                )
        self._held.extend(credit.slots)
        self._held_set.update(credit.slots)

    def check_size(self, nbytes: int) -> None:
        """ProtocolError ``oversized`` unless a frame of ``nbytes`` fits a slot."""
        if nbytes > self.geometry.slot_size:
            raise ProtocolError(
                f"frame of {nbytes} bytes exceeds the lane's slot size of "
                f"{self.geometry.slot_size} bytes; use a larger slot_size or split the frame",
                reason="oversized",
            )

    def take(
        self,
        nbytes: int,
        shape: Iterable[int],
        dtype: str,
        checksum: int | None,
        frame_id: int | None = None,
    ) -> BulkComplete:
        """Spend the oldest credit on a frame: its descriptor (IndexError if none is held)."""
        self.check_size(nbytes)
        slot = self._held.popleft()
        self._held_set.discard(slot)
        descriptor = BulkComplete(
            lane=self.lane,
            seq=self.next_seq,
            slot=slot,
            nbytes=nbytes,
            shape=tuple(shape),
            dtype=dtype,
            checksum=checksum,
            frame_id=frame_id,
        )
        self.next_seq += 1
        return descriptor
