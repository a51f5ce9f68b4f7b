"""The frame ring: full frames stay on the device, within a byte budget, oldest out first.

Every captured frame goes in with its :class:`~edgeloop.messages.FrameRef` (shape, dtype,
size and CRC-32, computed once here); the node pulls the ones it wants by id with a
``FrameRequest``, including frames from before the event that made it ask (DeepStream's
"smart record" pre-event buffer). When a new frame does not fit, the oldest go, and the
evictions are counted for ``DeviceStatus``. Frames live in memory only: after a restart
the ring is empty, and a request for an older frame is answered with an error.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import zlib

import numpy as np

from edgeloop.errors import ConfigError
from edgeloop.messages import FrameRef

__all__ = ["FrameRing", "RingStatistics"]


@dataclasses.dataclass(frozen=True, slots=True)
class RingStatistics:
    """Frames and bytes held now; frames and bytes evicted, and frames put, so far."""

    held: int
    bytes: int
    budget: int
    evicted: int
    evicted_bytes: int
    put: int


class FrameRing:
    """Frames by id, oldest evicted first once ``budget`` bytes are held.

    Thread-safe: the agent puts frames while its frame server reads them.
    """

    def __init__(self, device: str, budget: int) -> None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ConfigError("device.frames.budget", f"expected bytes >= 1, got {budget!r}")
        self.device = device
        self.budget = budget
        self._frames: collections.OrderedDict[int, tuple[FrameRef, np.ndarray]] = (
            collections.OrderedDict()
        )
        self._bytes = 0
        self._evicted = 0
        self._evicted_bytes = 0
        self._put = 0
        self._lock = threading.Lock()

    def put(self, frame_id: int, frame: np.ndarray) -> tuple[FrameRef, int]:
        """Keep ``frame`` (copied, read-only) under ``frame_id``; its ref, and how many
        older frames were evicted to make room. ValueError for a frame over the budget."""
        array = np.array(frame, copy=True, order="C")
        if array.nbytes > self.budget:
            raise ValueError(
                f"a frame of {array.nbytes} bytes exceeds the ring's budget of {self.budget} "
                "bytes; raise frames.budget in the device file"
            )
        if frame_id in self._frames:
            raise ValueError(f"frame id {frame_id} is already in the ring")
        array.flags.writeable = False
        ref = FrameRef(
            device=self.device,
            frame_id=frame_id,
            shape=tuple(int(n) for n in array.shape),
            dtype=array.dtype.str,
            nbytes=int(array.nbytes),
            checksum=zlib.crc32(array.reshape(-1).view(np.uint8).data),
        )
        with self._lock:
            return ref, self._keep(ref, array)

    def _keep(self, ref: FrameRef, array: np.ndarray) -> int:
        evicted = 0
        while self._frames and self._bytes + array.nbytes > self.budget:
            _, (old, _) = self._frames.popitem(last=False)
            self._bytes -= old.nbytes
            self._evicted_bytes += old.nbytes
            evicted += 1
        self._evicted += evicted
        self._frames[ref.frame_id] = (ref, array)
        self._bytes += array.nbytes
        self._put += 1
        return evicted

    def get(self, frame_id: int) -> tuple[FrameRef, np.ndarray] | None:
        """The frame and its ref, or ``None`` if it was evicted or never held."""
        with self._lock:
            return self._frames.get(frame_id)

    def oldest(self) -> int | None:
        """The id of the oldest frame held."""
        with self._lock:
            return next(iter(self._frames), None)

    def __len__(self) -> int:
        return len(self._frames)

    def statistics(self) -> RingStatistics:
        with self._lock:
            return self._statistics()

    def _statistics(self) -> RingStatistics:
        return RingStatistics(
            held=len(self._frames),
            bytes=self._bytes,
            budget=self.budget,
            evicted=self._evicted,
            evicted_bytes=self._evicted_bytes,
            put=self._put,
        )
