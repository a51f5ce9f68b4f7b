"""Frames by reference: a consumer fetches the frame a :class:`~edgeloop.messages.FrameRef`
names; the device sends it with the ref's id and checksum.

Events carry FrameRefs (device, frame id, shape, dtype, nbytes, CRC-32). A consumer that
wants the full frame asks the device for it (a ``FrameRequest`` on the control link,
through the ``request`` callback) and a :class:`FrameFetcher` takes it off the lane,
checked against the ref: size, shape and dtype always, the checksum whenever the receiver
verifies checksums. Frames for other refs that arrive meanwhile are kept (they hold
their slots) until fetched or dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeloop.errors import ProtocolError
from edgeloop.messages import BulkComplete, FrameRef
from edgeloop.transport.bulk._lane import Frame, Receiver, Sender, as_bytes_array
from edgeloop.transport.bulk._protocol import crc32
from edgeloop.transport.bulk._provider import SendHandle

__all__ = ["FrameFetcher", "send_frame", "ref_mismatch"]


def ref_mismatch(ref: FrameRef, descriptor: BulkComplete) -> str | None:
    """How a received frame's descriptor contradicts ``ref``, or ``None`` if it does not."""
    if descriptor.frame_id != ref.frame_id:
        return f"frame id {descriptor.frame_id} is not the ref's {ref.frame_id}"
    if descriptor.nbytes != ref.nbytes or tuple(descriptor.shape) != tuple(ref.shape):
        return (
            f"frame is {descriptor.nbytes} bytes of shape {descriptor.shape}, the ref says "
            f"{ref.nbytes} bytes of shape {ref.shape}"
        )
    if np.dtype(descriptor.dtype) != np.dtype(ref.dtype):
        return f"frame dtype {descriptor.dtype} is not the ref's {ref.dtype}"
    if descriptor.checksum is not None and descriptor.checksum != ref.checksum:
        return f"frame CRC-32 {descriptor.checksum:#010x} is not the ref's {ref.checksum:#010x}"
    return None


def send_frame(
    sender: Sender, ref: FrameRef, data: Any, *, timeout: float | None = None
) -> SendHandle:
    """Send the frame ``ref`` names (the device side); ValueError if ``data`` is not it.

    The ref's checksum travels as the descriptor's, so the frame is not hashed again.
    """
    array = as_bytes_array(data)
    if (
        array.nbytes != ref.nbytes
        or tuple(array.shape) != tuple(ref.shape)
        or array.dtype != np.dtype(ref.dtype)
    ):
        raise ValueError(
            f"data is {array.dtype}{array.shape} ({array.nbytes} bytes), but frame "
            f"{ref.frame_id} is {ref.dtype}{tuple(ref.shape)} ({ref.nbytes} bytes)"
        )
    return sender.send(array, timeout=timeout, checksum=ref.checksum, frame_id=ref.frame_id)


class FrameFetcher:
    """Fetches frames by FrameRef from one lane's receiver (one thread at a time).

    ``request(ref)``, if given, asks the device for the frame (sends a FrameRequest).
    """

    def __init__(
        self, receiver: Receiver, request: Callable[[FrameRef], object] | None = None
    ) -> None:
        self.receiver = receiver
        self.request = request
        self._waiting: dict[int, Frame] = {}

    @property
    def waiting(self) -> int:
        """Frames that arrived for refs nobody has fetched yet (each holds a slot)."""
        return len(self._waiting)

    def fetch(self, ref: FrameRef, *, timeout: float | None = None) -> Frame:
        """The frame ``ref`` names, checked against it; release it when done.

        TimeoutError if it does not arrive within ``timeout`` seconds; ProtocolError
        ``wrong_frame`` if what arrived under its id contradicts the ref (the frame is
        released), or whatever the receiver raises for a broken write.
        """
        if self.request is not None:
            self.request(ref)
        deadline = None if timeout is None else time.monotonic() + timeout
        frame = self._waiting.pop(ref.frame_id, None)
        while frame is None:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            arrived = self.receiver.recv(remaining)
            if arrived.frame_id == ref.frame_id:
                frame = arrived
            elif arrived.frame_id is None or arrived.frame_id in self._waiting:
                arrived.release()  # not fetchable by any ref: give the slot back
            else:
                self._waiting[arrived.frame_id] = arrived
        problem = ref_mismatch(ref, frame.descriptor)
        if problem is None and frame.descriptor.checksum is None and self.receiver.verify:
            actual = crc32(frame.array.reshape(-1).view(np.uint8))
            if actual != ref.checksum:
                problem = f"frame CRC-32 {actual:#010x} is not the ref's {ref.checksum:#010x}"
        if problem is not None:
            frame.release()
            raise ProtocolError(
                f"frame {ref.frame_id} from {ref.device}: {problem}", reason="wrong_frame"
            )
        return frame

    def drop(self) -> int:
        """Release every frame waiting to be fetched; how many there were."""
        frames = list(self._waiting.values())
        self._waiting.clear()
        for frame in frames:
            frame.release()
        return len(frames)
