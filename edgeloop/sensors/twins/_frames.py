"""Frame pulls: a twin fetches full frames over the bulk lane for other actors.

The twin sends the ``FrameRequest`` and reads the ``FrameReady``; the bytes come over the
device's bulk lane, whose receiver blocks. So the blocking part runs in a
:class:`FramePuller`, one thread per twin, and its outcome comes back to the twin as a
message: the twin's own thread never waits for a frame.

Where the receiver comes from is the deployment's business: a twin takes a
:data:`FrameSourceFactory` (``frames=`` in its args), called once in ``on_start`` with
the device's name and the node's actor system. :class:`LaneFrames` serves frames from any
bulk :class:`~edgeloop.transport.bulk.Receiver`, checked against their FrameRef.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from edgeloop.actors import ActorSystem
from edgeloop.messages import FrameRef

__all__ = [
    "FrameSource",
    "FrameSourceFactory",
    "LaneFrames",
    "FramePuller",
    "frame_mismatch",
]

_log = structlog.get_logger("edgeloop.sensors.twins")


class FrameSource(Protocol):
    """Where a twin's frames come from. ``fetch`` blocks (in the puller's thread)."""

    def fetch(self, ref: FrameRef, timeout: float) -> Any:
        """The frame ``ref`` names, checked against it; TimeoutError if it does not come,
        ProtocolError if what came is not that frame."""

    def close(self) -> None:
        """Release the lane (the twin is stopping)."""


FrameSourceFactory = Callable[[str, ActorSystem], "FrameSource | None"]
"""``factory(device, system)``: the frame source of one device's twin, or None."""


class LaneFrames:
    """A :class:`FrameSource` over one bulk-lane receiver (``FrameFetcher`` semantics:
    frames for other refs wait, holding their slots, until they are fetched)."""

    def __init__(self, receiver: Any, *, close_receiver: bool = True) -> None:
        from edgeloop.transport.bulk import FrameFetcher  # zmq and numpy: only when used

        self.receiver = receiver
        self._fetcher = FrameFetcher(receiver)
        self._close_receiver = close_receiver

    def fetch(self, ref: FrameRef, timeout: float) -> Any:
        return self._fetcher.fetch(ref, timeout=timeout)

    def close(self) -> None:
        self._fetcher.drop()
        if self._close_receiver:
            self.receiver.close()


def frame_mismatch(wanted: FrameRef, offered: FrameRef) -> str | None:
    """How the device's FrameReady ref contradicts the one asked for, or None."""
    for field in ("device", "frame_id", "shape", "dtype", "nbytes", "checksum"):
        if getattr(wanted, field) != getattr(offered, field):
            return (
                f"the device offers {field}={getattr(offered, field)!r} for frame "
                f"{wanted.frame_id}, the event's ref says {getattr(wanted, field)!r}"
            )
    return None


_Done = Callable[[Any, BaseException | None], None]


class FramePuller:
    """One thread that runs a source's blocking fetches, one after another.

    ``done(frame, error)`` runs in the puller's thread: it must only hand the outcome to
    an actor (``send_signal``). Frames fetched after their request was given up on are
    released by the twin when their outcome arrives.
    """

    def __init__(self, source: FrameSource, name: str) -> None:
        self.source = source
        self._jobs: queue.SimpleQueue[tuple[FrameRef, float, _Done] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def pull(self, ref: FrameRef, timeout: float, done: _Done) -> None:
        self._jobs.put((ref, timeout, done))

    def close(self, timeout: float = 5.0) -> None:
        """Finish the fetch in progress (at most its timeout), then close the source."""
        self._jobs.put(None)
        self._thread.join(timeout)
        try:
            self.source.close()
        except Exception as error:  # noqa: BLE001 - closing must not fail the twin's stop
            _log.warning("frame_source_close_failed", error=repr(error))

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            ref, timeout, done = job
            try:
                frame = self.source.fetch(ref, timeout)
            except Exception as error:  # noqa: BLE001 - any failure fails the pull, not the thread
                done(None, error)
            else:
                done(frame, None)
