"""The conformance suite every bulk provider passes: plain functions, no test framework.

Each check takes a :data:`PairFactory` (``factory(**config overrides) -> (sender,
receiver)``, both ends of one fresh lane of the provider under test), runs the lane
through one rule of the protocol and raises AssertionError when the provider breaks it.
It closes what it opens. A test suite runs every check in :data:`CHECKS` for every
provider (``tests/transport/test_bulk_conformance.py``); peer death across real
processes and leak checks (``/dev/shm``, file descriptors) are added there.

Forged writes (:func:`forge`) go straight to the provider's ``write``, past the
sender's checks, as a buggy or hostile peer's would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import msgspec
import numpy as np

from edgeloop.errors import PeerLostError, ProtocolError
from edgeloop.messages import BulkComplete, FrameRef
from edgeloop.transport.bulk._fetch import FrameFetcher, send_frame
from edgeloop.transport.bulk._lane import Frame, Receiver, Sender
from edgeloop.transport.bulk._protocol import crc32, encode_imm, pack_header

__all__ = ["PairFactory", "CHECKS", "WAIT", "forge", "frame_for", "check"]

PairFactory = Callable[..., tuple[Sender, Receiver]]
"""``factory(**overrides)``: a connected lane; overrides are BulkConfig fields."""

WAIT: Final = 5.0
"""Seconds a check waits for something that should happen promptly."""
SHORT: Final = 0.05
"""Seconds a check waits for something that must *not* happen (back-pressure)."""


def frame_for(seq: int, shape: tuple[int, ...] = (64, 48)) -> np.ndarray:
    """A frame whose bytes depend on ``seq`` (so reordering or mixing shows)."""
    return (np.arange(int(np.prod(shape)), dtype=np.uint32) * 2654435761 + seq).reshape(shape)


_E = TypeVar("_E", bound=BaseException)


def _raises(kind: type[_E], call: Callable[[], object], what: str) -> _E:
    """The ``kind`` exception ``call()`` raises; AssertionError(``what``) if it returns."""
    try:
        result = call()
    except kind as exc:
        return exc
    if isinstance(result, Frame):
        result.release()
    raise AssertionError(what)


def _expect_error(reason: str, receiver: Receiver) -> ProtocolError:
    error = _raises(
        ProtocolError,
        lambda: receiver.recv(WAIT),
        f"a write that should be rejected ({reason}) was accepted",
    )
    assert error.reason == reason, f"rejected for {error.reason!r}, expected {reason!r}: {error}"
    return error


def _round_trip(sender: Sender, receiver: Receiver, seq_hint: int) -> None:
    data = frame_for(seq_hint, (16, 16))
    sender.send(data, timeout=WAIT)
    with receiver.recv(WAIT) as frame:
        assert np.array_equal(frame.array, data), "the lane delivered other bytes"


def forge(
    sender: Sender,
    *,
    seq: int | None = None,
    changes: dict[str, Any] | None = None,
    slot: int | None = None,
    imm: int | None = None,
    header: bytes | None = None,
    payload: np.ndarray | None = None,
    advances: bool = False,
) -> None:
    """Write a frame whose descriptor has ``changes``, past every sender-side check.

    It spends one of the sender's credits (the receiver gives it back on rejection) unless
    ``slot`` names the slot to write into. ``seq`` sets the sequence number in both the
    descriptor and the immediate value (default: the next one); ``imm`` overrides the
    immediate value, ``header`` the header bytes, ``payload`` the frame (a small one by
    default). ``advances`` says whether the receiver
    will count the sequence number as spent (it does once the descriptor matches the write
    and the expected seq, whatever else is wrong).
    """
    data = frame_for(99, (8, 8)) if payload is None else payload
    raw = data.reshape(-1).view(np.uint8)
    state = sender._state
    if slot is None:
        while state.credits == 0:
            assert sender._drain_credits(WAIT), "no credit to forge with"
        descriptor = state.take(data.nbytes, data.shape, data.dtype.str, crc32(raw))
        if not advances:
            state.next_seq -= 1
    else:
        descriptor = BulkComplete(
            lane=sender.lane,
            seq=state.next_seq,
            slot=slot,
            nbytes=data.nbytes,
            shape=data.shape,
            dtype=data.dtype.str,
            checksum=crc32(raw),
        )
    if seq is not None:
        descriptor = msgspec.structs.replace(descriptor, seq=seq)
    value = encode_imm(descriptor.seq, descriptor.slot) if imm is None else imm
    if changes:
        descriptor = msgspec.structs.replace(descriptor, **changes)
    body = pack_header(descriptor) if header is None else header
    sender.side.write(descriptor.slot if slot is None else slot, body, raw.data, value)


# -- the checks ---------------------------------------------------------------------------


def check_ordering(factory: PairFactory) -> None:
    """Frames arrive exactly once, in the order sent, with their bytes, across slot reuse."""
    sender, receiver = factory(slot_count=4)
    with sender, receiver:
        held = []
        for seq in range(20):
            sender.send(frame_for(seq), timeout=WAIT)
            held.append(receiver.recv(WAIT))
            if len(held) == 3:
                frame = held.pop(0)
                assert frame.seq == seq - 2
                assert np.array_equal(frame.array, frame_for(seq - 2))
                frame.release()
        for offset, frame in enumerate(held):
            assert frame.seq == 18 + offset
            assert np.array_equal(frame.array, frame_for(18 + offset))
            frame.release()
        stats = receiver.statistics()
        assert (stats.accepted, stats.released, stats.held) == (20, 20, 0)
        assert not stats.rejected


def check_zero_copy_views(factory: PairFactory) -> None:
    """A frame is a read-only view with the sender's shape and dtype."""
    sender, receiver = factory()
    with sender, receiver:
        data = np.linspace(0.0, 1.0, 3 * 5 * 7, dtype=np.float32).reshape(3, 5, 7)
        sender.send(data, timeout=WAIT)
        with receiver.recv(WAIT) as frame:
            assert frame.array.shape == (3, 5, 7)
            assert frame.array.dtype == np.float32
            assert not frame.array.flags.writeable
            assert np.array_equal(frame.array, data)
        sender.send(b"", timeout=WAIT)
        with receiver.recv(WAIT) as empty:
            assert empty.nbytes == 0


def check_credits_and_back_pressure(factory: PairFactory) -> None:
    """A sender holds one credit per slot, waits when they are spent, resumes on release."""
    sender, receiver = factory(slot_count=2)
    with sender, receiver:
        assert sender.wait_credits(2, WAIT), "the receiver did not grant one credit per slot"
        assert sender.credits == 2
        sender.send(frame_for(0), timeout=WAIT)
        sender.send(frame_for(1), timeout=WAIT)
        assert sender.credits == 0
        _raises(
            TimeoutError,
            lambda: sender.send(frame_for(2), timeout=SHORT),
            "a third frame went out with two slots and none released",
        )
        first = receiver.recv(WAIT)
        second = receiver.recv(WAIT)
        assert receiver.statistics().held == 2
        first.release()
        sender.send(frame_for(2), timeout=WAIT)  # the released slot came back as a credit
        with receiver.recv(WAIT) as third:
            assert third.seq == 2
            assert third.slot == first.slot
        second.release()


def check_oversized_frame_rejected(factory: PairFactory) -> None:
    """A frame larger than a slot is refused by the sender, and by the receiver if forged."""
    sender, receiver = factory(slot_size=4096)
    with sender, receiver:
        error = _raises(
            ProtocolError,
            lambda: sender.send(np.zeros(4097, np.uint8), timeout=WAIT),
            "the sender wrote a frame larger than a slot",
        )
        assert error.reason == "oversized", error
        forge(sender, changes={"nbytes": 4097, "shape": (4097,), "dtype": "|u1"}, advances=True)
        _expect_error("oversized", receiver)
        _round_trip(sender, receiver, 1)


def check_corrupted_descriptors_rejected(factory: PairFactory) -> None:
    """Forged descriptors (bad seq, slot, lane, shape, immediate, bytes) are rejected with
    their reason, and the lane keeps working after each."""
    sender, receiver = factory(slot_count=4)
    with sender, receiver:
        forge(sender, changes={"seq": 7})
        _expect_error("bad_imm", receiver)  # descriptor and immediate value disagree
        forge(sender, changes={"lane": sender.lane + 1})
        _expect_error("bad_lane", receiver)
        forge(sender, changes={"shape": (3, 3)}, advances=True)
        _expect_error("bad_shape", receiver)
        forge(sender, header=b"\x05\x00\x00\x00garbage")
        _expect_error("malformed", receiver)
        forge(sender, seq=sender._state.next_seq + 3)  # from the future, consistently
        _expect_error("bad_seq", receiver)
        # Writes into a slot the consumer holds, or named out of range by the immediate
        # value, are rejected and change nothing (no credit was spent on them).
        sender.send(frame_for(5), timeout=WAIT)
        held = receiver.recv(WAIT)
        forge(sender, slot=held.slot)
        _expect_error("bad_slot", receiver)
        forge(sender, slot=held.slot, imm=encode_imm(sender._state.next_seq, 255))
        _expect_error("bad_slot", receiver)
        if receiver.provider == "zmq":  # frames stay in ZeroMQ's own buffers: untouched
            assert np.array_equal(held.array, frame_for(5))
        # (In a shared ring the forged bytes did land on the held frame, as a one-sided
        # write under one rkey would: only the descriptor check protects the consumer.)
        held.release()
        for seq_hint in range(6):
            _round_trip(sender, receiver, seq_hint)
        assert sender.wait_credits(4, WAIT), "a rejected write lost a credit"
        rejected = receiver.statistics().rejected
        assert sum(rejected.values()) == 7, rejected


def check_checksums(factory: PairFactory) -> None:
    """Checksums travel with frames; a mismatch is rejected, unless verification is off."""
    sender, receiver = factory()
    with sender, receiver:
        data = frame_for(3)
        sender.send(data, timeout=WAIT)
        with receiver.recv(WAIT) as frame:
            assert frame.descriptor.checksum == crc32(data.reshape(-1).view(np.uint8))
        forge(sender, changes={"checksum": 12345}, advances=True)
        error = _expect_error("bad_checksum", receiver)
        assert "corrupted" in str(error)
        _round_trip(sender, receiver, 4)
    sender, receiver = factory(verify=False)
    with sender, receiver:
        forge(sender, changes={"checksum": 12345}, advances=True)
        with receiver.recv(WAIT) as frame:  # not verified: delivered as written
            assert frame.descriptor.checksum == 12345


def check_peer_closing_mid_stream(factory: PairFactory) -> None:
    """A sender that vanishes: frames already written arrive, then PeerLostError; a
    receiver that vanishes: the waiting sender gets PeerLostError."""
    # 128 KiB frames: above pyzmq's copy threshold, so a done handle means the bytes
    # left for the kernel; a copied small frame is "done" while it may still wait in
    # ZeroMQ's queue, which a close without linger drops.
    shape = (256, 128)
    sender, receiver = factory(slot_count=4, slot_size=256 * 1024)
    with receiver:
        handles = [sender.send(frame_for(seq, shape), timeout=WAIT) for seq in range(2)]
        assert all(handle.wait(WAIT) for handle in handles), "writes did not complete"
        sender.side.close()  # no goodbye: what a crash looks like to the receiver
        sender.close()
        for seq in range(2):
            with receiver.recv(WAIT) as frame:
                assert np.array_equal(frame.array, frame_for(seq, shape))
        _raises(
            PeerLostError,
            lambda: receiver.recv(WAIT),
            "recv() after the sender vanished did not raise PeerLostError",
        )
    sender, receiver = factory(slot_count=2)
    with sender:
        sender.send(frame_for(0), timeout=WAIT)
        sender.send(frame_for(1), timeout=WAIT)
        receiver.close()
        _raises(
            PeerLostError,
            lambda: sender.send(frame_for(2), timeout=WAIT),
            "send() after the receiver vanished did not raise PeerLostError",
        )


def check_fetch_by_ref(factory: PairFactory) -> None:
    """Frames are fetched by FrameRef, in any order, checked against the ref."""
    sender, receiver = factory(slot_count=4)
    with sender, receiver:
        frames = {frame_id: frame_for(frame_id, (16, 16)) for frame_id in (10, 11, 12)}
        refs = {
            frame_id: FrameRef(
                device="cam-1",
                frame_id=frame_id,
                shape=data.shape,
                dtype=data.dtype.str,
                nbytes=data.nbytes,
                checksum=crc32(data.reshape(-1).view(np.uint8)),
            )
            for frame_id, data in frames.items()
        }
        for frame_id, data in frames.items():
            send_frame(sender, refs[frame_id], data, timeout=WAIT)
        fetcher = FrameFetcher(receiver)
        for frame_id in (12, 10):
            with fetcher.fetch(refs[frame_id], timeout=WAIT) as frame:
                assert np.array_equal(frame.array, frames[frame_id])
        assert fetcher.waiting == 1
        lying = msgspec.structs.replace(refs[11], checksum=(refs[11].checksum + 1) % 2**32)
        error = _raises(
            ProtocolError,
            lambda: fetcher.fetch(lying, timeout=WAIT),
            "a frame contradicting its ref was handed out",
        )
        assert error.reason == "wrong_frame", error
        assert fetcher.drop() == 0
        assert receiver.statistics().held == 0


CHECKS: Final[tuple[Callable[[PairFactory], None], ...]] = (
    check_ordering,
    check_zero_copy_views,
    check_credits_and_back_pressure,
    check_oversized_frame_rejected,
    check_corrupted_descriptors_rejected,
    check_checksums,
    check_peer_closing_mid_stream,
    check_fetch_by_ref,
)
"""Every check, in the order a failing provider is best debugged."""


def check(factory: PairFactory) -> None:
    """Run every check against ``factory``'s provider."""
    for each in CHECKS:
        each(factory)
