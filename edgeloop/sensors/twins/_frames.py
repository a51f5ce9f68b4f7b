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
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from edgeloop.actors import ActorSystem
from edgeloop.errors import EdgeloopError, LinkError, ProtocolError
from edgeloop.messages import FrameRef

__all__ = [
    "FrameSource",
    "FrameSourceFactory",
    "LaneFrames",
    "LinkFrames",
    "link_frames",
    "FramePuller",
    "Pull",
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


LANE_SLOT_SIZE = 1 << 20
LANE_SLOTS = 4
"""A twin's lane: four frames of up to 1 MiB in flight (a 256x256 camera frame is 64 KiB)."""


class LinkFrames:
    """A :class:`FrameSource` over the node's link to the device: it opens a bulk lane
    from the device (``Endpoint.open_bulk_receiver``; the provider is chosen by the
    handshake, ``shm`` on one host) on the first pull, and a new one after a failure."""

    def __init__(
        self,
        device: str,
        endpoint: Callable[[], Any],
        config: Any = None,
        *,
        open_timeout: float = 5.0,
    ) -> None:
        self.device = device
        self._endpoint = endpoint
        self._config = config
        self._open_timeout = open_timeout
        self._lane: LaneFrames | None = None

    def fetch(self, ref: FrameRef, timeout: float) -> Any:
        lane = self._lane or self._open(self._open_timeout)
        try:
            return lane.fetch(ref, timeout)
        except EdgeloopError as error:
            if error.__class__ is not ProtocolError:  # not a wrong frame: the lane broke
                self.close()
            raise

    def _open(self, timeout: float) -> LaneFrames:
        from edgeloop.transport import bulk

        endpoint = self._endpoint()
        opener = getattr(endpoint, "open_bulk_receiver", None)
        if opener is None:
            msg = f"the node has no link that carries a bulk lane to {self.device}"
            raise LinkError(msg)
        config = (
            self._config
            if self._config is not None
            else bulk.BulkConfig(slot_size=LANE_SLOT_SIZE, slot_count=LANE_SLOTS)
        )
        receiver = opener(self.device, config, timeout=timeout)
        self._lane = LaneFrames(receiver)
        _log.info("frame_lane_open", device=self.device, provider=receiver.provider)
        return self._lane

    def close(self) -> None:
        lane, self._lane = self._lane, None
        if lane is not None:
            lane.close()


def link_frames(device: str, system: ActorSystem) -> LinkFrames:
    """The default frame source of a twin: a bulk lane over the node's link to the device."""
    return LinkFrames(device, lambda: node_endpoint(system))


def node_endpoint(system: ActorSystem) -> Any:
    """The endpoint of the node that ``system`` belongs to, or None without links."""
    port = system.services.get("devices")
    return getattr(port, "endpoint", None)


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

_SLICE = 0.1
"""Seconds a fetch waits at a time, so that a pull given up on stops waiting soon."""


class Pull:
    """One fetch in the puller's queue; :meth:`cancel` makes it stop waiting."""

    __slots__ = ("cancelled", "done", "ref", "timeout")

    def __init__(self, ref: FrameRef, timeout: float, done: _Done) -> None:
        self.ref = ref
        self.timeout = timeout
        self.done = done
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FramePuller:
    """One thread that runs a source's blocking fetches, one after another.

    ``done(frame, error)`` runs in the puller's thread: it must only hand the outcome to
    an actor (``send_signal``). Frames fetched after their request was given up on are
    released by the twin when their outcome arrives.
    """

    def __init__(self, source: FrameSource, name: str) -> None:
        self.source = source
        self._jobs: queue.SimpleQueue[Pull | None] = queue.SimpleQueue()
        self._name = name
        self._thread: threading.Thread | None = None  # started by the first pull

    def pull(self, ref: FrameRef, timeout: float, done: _Done) -> Pull:
        """Fetch ``ref`` within ``timeout`` seconds, then call ``done``."""
        job = Pull(ref, timeout, done)
        self._jobs.put(job)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        return job

    def close(self, timeout: float = 2.0) -> None:
        """Stop after the fetch in progress (cancel its pull first: it then stops within a
        slice), then close the source; a thread still busy after ``timeout`` seconds (a
        lane still opening) is left to end by itself, with the source it uses."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout)
            if self._thread.is_alive():
                _log.warning("frame_puller_busy_at_stop", thread=self._name)
                return
        try:
            self.source.close()
        except Exception as error:  # noqa: BLE001 - closing must not fail the twin's stop
            _log.warning("frame_source_close_failed", error=repr(error))

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            deadline = time.monotonic() + job.timeout
            while not job.cancelled:
                left = deadline - time.monotonic()
                try:
                    if left <= 0:
                        msg = f"frame {job.ref.frame_id} did not arrive within {job.timeout} s"
                        raise TimeoutError(msg)
                    frame = self.source.fetch(job.ref, min(left, _SLICE))
                except TimeoutError as error:
                    if left > 0:
                        continue
                    job.done(None, error)
                except Exception as error:  # noqa: BLE001 - any failure fails the pull, not the thread
                    job.done(None, error)
                else:
                    job.done(frame, None)
                break
