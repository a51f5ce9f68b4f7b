"""The devices of ``bench e2e``, in processes of their own (the node's process holds only
the node, so its CPU time is the node's).

``python -m edgeloop.bench._e2e_devices ROLE MODE ADDRESS COUNT SECONDS RUN_DIR`` imports
what it needs, prints ``loaded``, reads ``go START_AT`` (wall time, ``time.time()``, of
source second 0: the bench picks it once every process has loaded) and then:

``ROLE`` ``cameras``
    ``COUNT`` cameras (``cam-00``, ...) in this one process, each a real
    :class:`~edgeloop.sensors.device.DeviceAgent` with its own ZeroMQ link, journal and
    on-device head (``MODE`` ``edgeloop``), or a raw pyzmq DEALER (``zmq``, the anchor).
    Each reports the yard's gallery embeddings at :data:`RATE` a second, camera ``i``
    offset by ``i / (RATE * COUNT)`` s (real cameras are not in step), from ``START_AT``
    for ``SECONDS``.
``ROLE`` ``trap``
    the trap device: a DeviceAgent whose link thread stamps each Command's arrival with
    ``time.time()`` (``edgeloop``), or a raw DEALER that does the same (``zmq``).

Each prints ``ready`` once linked, answers each line ``count`` with the events made so far
(cameras) or the commands arrived (trap), and on ``quit`` prints one JSON object
(cameras: events made; trap: ``[ts, arrived, device, seq]`` per command) and exits.
Event time: an observation at source second ``t`` is due at ``START_AT + t`` (speed 1),
and the device makes its event when it is due, so the trap's ``arrived - (START_AT +
ts)`` is the time from the event's creation to the command's arrival (it includes how
late the device's thread woke for it: the measure can only err long).
"""

from __future__ import annotations

import functools
import heapq
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import structlog
import zmq

from edgeloop.bench._e2e_app import RATE, SCENARIO, TRAP, ZONE, camera_name
from edgeloop.messages import Command, Event, Message, decode, encode, encode_head
from edgeloop.sensors.device import (
    CameraSettings,
    DeviceAgent,
    DeviceConfig,
    Observation,
    SourceConfig,
    TrapConfig,
    yard_head_loader,
)

if TYPE_CHECKING:
    from edgeloop.sensors.world import World

WAIT = 30.0


class GallerySource:
    """The yard extractor's gallery embeddings in a seeded order, ``rate`` a second from
    ``offset``, in one zone, ``limit`` of them (an ObservationSource)."""

    def __init__(
        self,
        embeddings: npt.NDArray[np.int8],
        *,
        seed: int,
        rate: float,
        offset: float,
        limit: int,
        zone: str = ZONE,
    ) -> None:
        self._rows = embeddings[np.random.default_rng(seed).permutation(len(embeddings))]
        self.rate = rate
        self.offset = offset
        self.limit = limit
        self.zone = zone
        self.count = 0

    def configure(self, *, zones: Sequence[str], exposure: float) -> None:
        if zones:
            self.zone = zones[0]

    def next(self) -> Observation | None:
        if self.count >= self.limit:
            return None
        row = self._rows[self.count % len(self._rows)]
        t = self.offset + self.count / self.rate
        self.count += 1
        return Observation(t=t, zone=self.zone, embedding=row)


class _TimedTrap(DeviceAgent):
    """A trap agent that notes when each Command reached it (its link's I/O thread)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[Any, float, Any, Any]] = []

    def _on_message(self, peer: str, message: Message) -> None:
        if isinstance(message, Command):
            args = message.args
            self.arrivals.append((args.get("ts"), time.time(), args.get("device"), args.get("seq")))
        super()._on_message(peer, message)


def _edgeloop(
    role: str, address: str, count: int, start_at: float, seconds: float, run_dir: Path
) -> tuple[list[DeviceAgent], Callable[[], dict[str, Any]], Callable[[], int]]:
    if role == "trap":
        trap_config = DeviceConfig(
            name=TRAP,
            node=address,
            kind="trap",
            data_dir=run_dir / TRAP,
            trap=TrapConfig(zone=TRAP),
        )
        trap = _TimedTrap(trap_config, start_at=start_at)
        return [trap], lambda: {"arrivals": trap.arrivals}, lambda: len(trap.arrivals)
    world = _world()
    embeddings = _gallery()
    head = encode_head(world.initial_head())
    agents: list[DeviceAgent] = []
    for index in range(count):
        name = camera_name(index)
        source = GallerySource(
            embeddings,
            seed=index,
            rate=RATE,
            offset=index / (RATE * count),
            limit=int(RATE * seconds),
        )
        config = DeviceConfig(
            name=name,
            node=address,
            data_dir=run_dir / name,
            reachable=(ZONE,),
            initial=CameraSettings(zones=(ZONE,), frame_rate=2 * RATE),
            source=SourceConfig(kind="synthetic", speed=1.0),
        )
        agents.append(
            DeviceAgent(
                config,
                source=source,
                head_loader=yard_head_loader(world.extractor.id, world.extractor.dim),
                initial_head=head,
                start_at=start_at,
            )
        )

    def made() -> int:
        return sum(a.statistics().outbox.next_seq - 1 for a in agents)

    return agents, lambda: {"made": made()}, made


def _run_edgeloop(
    role: str, address: str, count: int, start_at: float, seconds: float, run_dir: Path
) -> None:
    agents, report, counter = _edgeloop(role, address, count, start_at, seconds, run_dir)
    for agent in agents:
        agent.start()
    try:
        deadline = time.monotonic() + WAIT
        while not all(a.statistics().connected for a in agents):
            if time.monotonic() > deadline:
                print("not linked", flush=True)
                return
            time.sleep(0.01)  # a child process's own poll, not a test waiting
        print("ready", flush=True)
        _serve(counter)
        result = report()
    finally:
        for agent in agents:
            agent.stop()
    print(json.dumps(result), flush=True)


@functools.cache
def _world() -> World:
    from edgeloop.sensors.world import World

    return World(SCENARIO, 1)


def _gallery() -> npt.NDArray[np.int8]:
    embeddings, _ = _world().extractor.gallery()
    return embeddings


def _run_zmq(role: str, address: str, count: int, start_at: float, seconds: float) -> None:
    context = zmq.Context()
    stop = threading.Event()
    if role == "trap":
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.IDENTITY, TRAP.encode())
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(address)
        socket.send(b"hello")
        arrivals: list[tuple[Any, float, Any, Any]] = []

        def receive() -> None:
            while not stop.is_set():
                if socket.poll(50):
                    data = socket.recv()
                    arrived = time.time()
                    message = decode(data)
                    if isinstance(message, Command):
                        args = message.args
                        arrivals.append(
                            (args.get("ts"), arrived, args.get("device"), args.get("seq"))
                        )

        thread = threading.Thread(target=receive, name="trap")
        thread.start()
        print("ready", flush=True)
        _serve(lambda: len(arrivals))
        stop.set()
        thread.join()
        socket.close()
        context.term()
        print(json.dumps({"arrivals": arrivals}), flush=True)
        return
    embeddings = _gallery()
    sockets = []
    for index in range(count):
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.IDENTITY, camera_name(index).encode())
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(address)
        sockets.append(dealer)
    made = [0]

    def send() -> None:
        limit = int(RATE * seconds)
        orders = [np.random.default_rng(i).permutation(len(embeddings)) for i in range(count)]
        due = [(start_at + i / (RATE * count), i, 0) for i in range(count)]
        heapq.heapify(due)
        while due and not stop.is_set():
            at, index, k = heapq.heappop(due)
            wait = at - time.time()
            if wait > 0 and stop.wait(wait):
                return
            row = embeddings[orders[index][k % len(embeddings)]]
            event = Event(
                device=camera_name(index),
                seq=k + 1,
                ts=at - start_at,
                zone=ZONE,
                label="skunk",
                score=0.9,
                embedding=row.tobytes(),
                head_version=1,
                config_version=1,
            )
            sockets[index].send(encode(event))
            made[0] += 1
            if k + 1 < limit:
                heapq.heappush(due, (start_at + (index / count + k + 1) / RATE, index, k + 1))

    thread = threading.Thread(target=send, name="cameras")
    thread.start()
    print("ready", flush=True)
    _serve(lambda: made[0])
    stop.set()
    thread.join()
    for dealer in sockets:
        dealer.close()
    context.term()
    print(json.dumps({"made": made[0]}), flush=True)


def _serve(count: Callable[[], int]) -> None:
    """Answer ``count`` lines with ``count()`` (events made, or commands arrived) until
    ``quit`` (or the bench's end of stdin)."""
    for line in sys.stdin:
        if line.strip() != "count":
            return
        print(count(), flush=True)


def main(argv: Sequence[str]) -> int:
    role, mode, address, count, seconds, run_dir = argv
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    if role == "cameras":
        _gallery()  # the world's extractor, fitted before the start is set
    print("loaded", flush=True)
    words = sys.stdin.readline().split()
    if len(words) != 2 or words[0] != "go":
        return 2  # the bench went away before the start
    at = float(words[1])
    if mode == "edgeloop":
        _run_edgeloop(role, address, int(count), at, float(seconds), Path(run_dir))
    else:
        _run_zmq(role, address, int(count), at, float(seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
