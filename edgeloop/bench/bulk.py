"""The ``bulk`` suite: the bulk lane against a plain copy and raw ZeroMQ, in the same run.

Results (the ratio is always ``edgeloop / anchor``; throughputs in GB/s of frame bytes):

``shm_throughput_{1,4,16}MiB``
    frames through a ``shm`` lane: the sender copies each frame into a slot of the
    shared-memory ring, the receiver checks the descriptor and hands out a zero-copy
    view, releasing frees the slot. Anchor: numpy copying the same frame into a slot of
    a ring of the same size in one process (goal: ratio >= 0.5);
``zmq_throughput_{1,4,16}MiB``
    frames through a ``zmq`` lane over ``tcp://127.0.0.1``; anchor: a raw pyzmq DEALER
    pair (each in its own context, as the lane's ends are) sending the same buffer with
    ``copy=False`` and receiving with ``copy=False`` (goal: ratio >= 0.9);
``shm_checked_throughput_4MiB``
    the ``shm`` lane with checksums on (the sender computes each frame's CRC-32, the
    receiver verifies it), against the anchor's copy plus two ``zlib.crc32`` passes
    (goal: ratio >= 0.9);
``link_credits_{shm,zmq}_4MiB``
    a lane set up over a control link between two endpoints (``open_bulk_receiver`` /
    ``open_bulk_sender``), whose credits travel on the link through both endpoints' I/O
    threads, against the same provider's lane with credits on its own channel (goal:
    ratio >= 0.9: credits on the link cost no throughput);
``vs_ray_16MiB``
    only where ``ray`` is importable: the ``shm`` lane against ``ray.put`` + ``ray.get``
    of the same 16 MiB array (goal: ratio >= 3). Where it is not, the environment says so.

Fairness: both sides of a figure move the same frame (random bytes) the same number of
times, with the same window (at most :data:`WINDOW` frames sent but not yet received and
released), in one thread: the figure is the CPU cost of the path, sender and receiver
together, on the same kernel socket and mapping two processes would use. The lanes run
with ``checksums`` off except in ``shm_checked``: a frame's CRC-32 is computed once by
its producer (it is the FrameRef's) and not again per hop. Rounds are interleaved as in
the ``actors`` suite (:mod:`edgeloop.bench._measure`).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import platform
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import zmq

from edgeloop import messages
from edgeloop.bench._measure import interleave, median, timed_section
from edgeloop.bench._report import Result, SuiteResult
from edgeloop.errors import LinkError
from edgeloop.transport import (
    Endpoint,
    EndpointConfig,
    LinkConfig,
    PeerAddress,
    PeerDown,
    PeerUp,
    bulk,
)

__all__ = ["Sizes", "FULL", "QUICK", "WINDOW", "SLOTS", "run_bulk"]

MiB = 1024 * 1024
WINDOW = 4
"""Frames in flight (sent, not yet received and released) on every side of a figure."""
SLOTS = 8
"""Slots in each lane's ring (more than the window, so credits arrive ahead of need)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    """How much each result measures: rounds per side, frame bytes moved per round."""

    rounds: int
    bytes_per_round: int
    frame_mib: tuple[int, ...] = (1, 4, 16)


FULL = Sizes(rounds=6, bytes_per_round=512 * MiB)
"""The sizes whose figures are reported (about 20 s on a 2-core machine)."""
QUICK = Sizes(rounds=2, bytes_per_round=8 * MiB, frame_mib=(1, 4, 16))
"""CI-sized (a second or two): proves the suite runs; its ratios are too noisy to judge by."""


def _frames(sizes: Sizes, nbytes: int) -> int:
    return max(2 * WINDOW, sizes.bytes_per_round // nbytes)


def _lane_round(sender: bulk.Sender, receiver: bulk.Receiver, data: np.ndarray, n: int) -> float:
    """GB/s moving ``data`` ``n`` times through a lane, ``WINDOW`` frames in flight."""
    held: deque[bulk.Frame] = deque()
    with timed_section():
        start = time.perf_counter()
        for _ in range(n):
            sender.send(data, timeout=10.0)
            held.append(receiver.recv(timeout=10.0))
            if len(held) >= WINDOW:
                held.popleft().release()
        while held:
            held.popleft().release()
        elapsed = time.perf_counter() - start
    return n * data.nbytes / elapsed / 1e9


def _memcpy_round(ring: np.ndarray, data: np.ndarray, n: int, *, crc: bool = False) -> float:
    """GB/s copying ``data`` ``n`` times into the slots of ``ring`` (and hashing it twice)."""
    size = data.nbytes
    slots = ring.nbytes // size
    with timed_section():
        start = time.perf_counter()
        for index in range(n):
            offset = (index % slots) * size
            if crc:
                zlib.crc32(data.data)
            ring[offset : offset + size] = data
            if crc:
                zlib.crc32(ring[offset : offset + size].data)
        elapsed = time.perf_counter() - start
    return n * size / elapsed / 1e9


class _RawZmq:
    """The anchor: a DEALER pair over tcp, zero-copy sends and receives, same window.

    Each socket has its own context (one I/O thread each), as each end of a lane has and
    as two processes would: on a 2-core machine the thread count decides the figure.
    """

    def __init__(self) -> None:
        self.contexts: list[zmq.Context[zmq.Socket[bytes]]] = [
            zmq.Context(io_threads=1),
            zmq.Context(io_threads=1),
        ]
        self.rx = self.contexts[0].socket(zmq.DEALER)
        self.tx = self.contexts[1].socket(zmq.DEALER)
        for sock in (self.rx, self.tx):
            sock.setsockopt(zmq.LINGER, 0)
        port = self.rx.bind_to_random_port("tcp://127.0.0.1")
        self.tx.connect(f"tcp://127.0.0.1:{port}")

    def round(self, data: np.ndarray, n: int) -> float:
        held: deque[zmq.Frame] = deque()
        with timed_section():
            start = time.perf_counter()
            for _ in range(n):
                self.tx.send(data.data, copy=False)
                held.append(self.rx.recv(copy=False))
                if len(held) >= WINDOW:
                    held.popleft()
            held.clear()
            elapsed = time.perf_counter() - start
        return n * data.nbytes / elapsed / 1e9

    def close(self) -> None:
        self.tx.close(linger=0)
        self.rx.close(linger=0)
        for context in self.contexts:
            context.term()


def _pair(
    provider: str, slot_size: int, *, checked: bool = False
) -> tuple[bulk.Sender, bulk.Receiver]:
    config = bulk.BulkConfig(
        provider=provider,  # type: ignore[arg-type]
        slot_size=slot_size,
        slot_count=SLOTS,
        checksums=checked,
        verify=checked,
    )
    return bulk.connect_pair(config)


def _figure(
    name: str,
    goal: str,
    anchor_name: str,
    sizes: Sizes,
    lane: Callable[[], float],
    anchor: Callable[[], float],
) -> Result:
    got_lane, got_anchor = interleave(sizes.rounds, lane, anchor)
    return Result(name, "GB/s", median(got_lane), median(got_anchor), anchor_name, goal)


def _shm(sizes: Sizes, mib: int, rng: np.random.Generator, *, checked: bool = False) -> Result:
    data = rng.integers(0, 256, mib * MiB, dtype=np.uint8)
    n = _frames(sizes, data.nbytes)
    ring = np.empty(SLOTS * data.nbytes, np.uint8)
    sender, receiver = _pair("shm", data.nbytes, checked=checked)
    try:
        if checked:
            return _figure(
                f"shm_checked_throughput_{mib}MiB",
                ">= 0.9",
                "numpy memcpy + 2x zlib.crc32",
                sizes,
                lambda: _lane_round(sender, receiver, data, n),
                lambda: _memcpy_round(ring, data, n, crc=True),
            )
        return _figure(
            f"shm_throughput_{mib}MiB",
            ">= 0.5",
            "numpy memcpy",
            sizes,
            lambda: _lane_round(sender, receiver, data, n),
            lambda: _memcpy_round(ring, data, n),
        )
    finally:
        sender.close()
        receiver.close()


def _zmq(sizes: Sizes, mib: int, rng: np.random.Generator) -> Result:
    data = rng.integers(0, 256, mib * MiB, dtype=np.uint8)
    n = _frames(sizes, data.nbytes)
    raw = _RawZmq()
    try:
        sender, receiver = _pair("zmq", data.nbytes)
        try:
            return _figure(
                f"zmq_throughput_{mib}MiB",
                ">= 0.9",
                "pyzmq copy=False",
                sizes,
                lambda: _lane_round(sender, receiver, data, n),
                lambda: raw.round(data, n),
            )
        finally:
            sender.close()
            receiver.close()
    finally:
        raw.close()


class _Linked:
    """Two endpoints linked over tcp on loopback (a node and a device), for lanes whose
    handshake and credits travel on their link."""

    def __init__(self) -> None:
        up = threading.Event()

        def on_peer(event: PeerUp | PeerDown) -> None:
            if isinstance(event, PeerUp):
                up.set()

        def ignore(peer: str, message: messages.Message) -> None:
            pass

        self.node = Endpoint(
            EndpointConfig(LinkConfig("bench-node"), listen=("tcp://127.0.0.1:*",)),
            on_message=ignore,
            on_peer=on_peer,
        ).start()
        self.device = Endpoint(
            EndpointConfig(
                LinkConfig("bench-cam", role="device"), peers=(PeerAddress(self.node.bound[0]),)
            ),
            on_message=ignore,
        )
        self.device.start()
        if not up.wait(10.0):
            self.close()
            raise LinkError("the bench's device did not link to its node within 10 s")

    def lane(self, config: bulk.BulkConfig) -> tuple[bulk.Sender, bulk.Receiver]:
        """A lane from the device into a ring on the node, opened over the link."""
        senders: list[bulk.Sender] = []
        thread = threading.Thread(
            target=lambda: senders.append(
                self.device.open_bulk_sender("bench-node", config, timeout=10.0)
            ),
            name="bench-open-bulk-sender",
        )
        thread.start()
        try:
            receiver = self.node.open_bulk_receiver("bench-cam", config, timeout=10.0)
        finally:
            thread.join(10.0)
        if not senders or not receiver.wait_attached(10.0):
            receiver.close()
            raise LinkError("the bench's bulk lane did not open over its link")
        return senders[0], receiver

    def close(self) -> None:
        self.device.close()
        self.node.close()


def _link_credits(sizes: Sizes, provider: str, rng: np.random.Generator) -> Result:
    data = rng.integers(0, 256, 4 * MiB, dtype=np.uint8)
    n = _frames(sizes, data.nbytes)
    config = bulk.BulkConfig(
        provider=provider,  # type: ignore[arg-type]
        slot_size=data.nbytes,
        slot_count=SLOTS,
        checksums=False,
        verify=False,
    )
    linked = _Linked()
    try:
        lsender, lreceiver = linked.lane(config)
        sender, receiver = bulk.connect_pair(config)
        try:
            return _figure(
                f"link_credits_{provider}_4MiB",
                ">= 0.9",
                f"{provider} lane, credits on its own channel",
                sizes,
                lambda: _lane_round(lsender, lreceiver, data, n),
                lambda: _lane_round(sender, receiver, data, n),
            )
        finally:
            for end in (lsender, lreceiver, sender, receiver):
                end.close()
    finally:
        linked.close()


def _ray(sizes: Sizes, rng: np.random.Generator) -> Result | None:
    try:
        ray: Any = importlib.import_module("ray")
    except ImportError:
        return None
    data = rng.integers(0, 256, 16 * MiB, dtype=np.uint8)
    n = _frames(sizes, data.nbytes)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    sender, receiver = _pair("shm", data.nbytes)

    def ray_round() -> float:
        with timed_section():
            start = time.perf_counter()
            for _ in range(n):
                ray.get(ray.put(data))
            elapsed = time.perf_counter() - start
        return n * data.nbytes / elapsed / 1e9

    try:
        return _figure(
            "vs_ray_16MiB",
            ">= 3",
            "ray.put + ray.get",
            sizes,
            lambda: _lane_round(sender, receiver, data, n),
            ray_round,
        )
    finally:
        sender.close()
        receiver.close()
        ray.shutdown()


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def environment(sizes: Sizes, *, quick: bool, ray: bool) -> dict[str, Any]:
    """What produced the figures: interpreter, machine and its load, versions, run sizes."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "edgeloop": _version("edgeloop"),
        "numpy": np.__version__,
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "ray": _version("ray") if ray else "not installed: vs_ray_16MiB skipped",
        "window": WINDOW,
        "slots": SLOTS,
        "quick": quick,
        **dataclasses.asdict(sizes),
    }


def run_bulk(quick: bool = False, *, sizes: Sizes | None = None) -> SuiteResult:
    """Run the ``bulk`` suite: :data:`QUICK` sizes for CI, :data:`FULL` otherwise."""
    sizes = sizes or (QUICK if quick else FULL)
    rng = np.random.default_rng(0)
    results = [_shm(sizes, mib, rng) for mib in sizes.frame_mib]
    results += [_zmq(sizes, mib, rng) for mib in sizes.frame_mib]
    results.append(_shm(sizes, 4, rng, checked=True))
    results += [_link_credits(sizes, provider, rng) for provider in ("shm", "zmq")]
    ray = _ray(sizes, rng)
    if ray is not None:
        results.append(ray)
    return SuiteResult("bulk", tuple(results), environment(sizes, quick=quick, ray=ray is not None))
