"""Simulated cameras for the ``sensors`` suite, in a process of their own.

``python -m edgeloop.bench._cameras MODE ADDRESS NODE_ID COUNT`` links ``COUNT`` cameras
(``cam-00``, ...) to ``ADDRESS``: device-role edgeloop endpoints (``MODE`` ``edgeloop``)
or raw pyzmq DEALERs (``zmq``), then prints ``ready`` and obeys stdin, one command a line:

``burst N K``
    cameras ``0..N-1`` each send their next ``K`` events, back to back; prints ``ok``;
``paced M GAP``
    camera 0 sends ``M`` events ``GAP`` seconds apart, each stamped (``Event.ts``) with
    ``time.perf_counter()`` just before its send, so the receiver, on the same host and
    the same monotonic clock, measures the one-way latency; the process collects its
    garbage first and keeps the collector paused meanwhile, as the suites do in timed
    code; prints ``ok``;
``quit``
    closes every camera and exits.

Cameras live apart from the node, as real ones do, so their threads do not compete with
the node's for one interpreter's GIL.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
import zmq

from edgeloop.bench.sensors import camera_name
from edgeloop.messages import DeviceStatus, Event
from edgeloop.transport import Endpoint, EndpointConfig, LinkConfig, PeerAddress, PeerUp

WAIT = 30.0
_HWM = 100_000


def event(device: str, seq: int, ts: float = 1.0) -> Event:
    return Event(
        device=device,
        seq=seq,
        ts=ts,
        zone="z1",
        label="skunk",
        score=0.87,
        embedding=bytes(range(32)),
        head_version=1,
        config_version=1,
    )


def _status(device: str) -> DeviceStatus:
    return DeviceStatus(
        device=device,
        ts=1.0,
        boot=1,
        next_seq=1,
        oldest_seq=1,
        outbox_depth=0,
        outbox_dropped=0,
        frames_held=0,
        frames_evicted=0,
        head_version=1,
        config_version=1,
    )


def _edgeloop_cameras(
    address: str, node: str, count: int
) -> tuple[list[Callable[[Event], object]], Callable[[], None]]:
    endpoints: list[Endpoint] = []
    for index in range(count):
        up = threading.Event()
        camera = Endpoint(
            EndpointConfig(
                LinkConfig(camera_name(index), role="device", queue_limit=_HWM),
                peers=(PeerAddress(address),),
            ),
            on_message=lambda _peer, _message: None,  # the twins' acks
            on_peer=lambda e, up=up: up.set() if isinstance(e, PeerUp) else None,  # type: ignore[misc]
        )
        camera.start()
        endpoints.append(camera)
        if not up.wait(WAIT):
            msg = f"camera {index} did not reach the node at {address}"
            raise RuntimeError(msg)
        # As a device agent does when its link comes up: where its stream starts.
        camera.send(node, _status(camera_name(index)))
    sends = [(lambda e, send=c.send: send(node, e)) for c in endpoints]

    def close() -> None:
        for camera in endpoints:
            camera.close()

    return sends, close  # type: ignore[return-value]


def _zmq_cameras(
    address: str, count: int
) -> tuple[list[Callable[[Event], object]], Callable[[], None]]:
    encode = msgspec.msgpack.Encoder().encode
    contexts: list[zmq.Context[Any]] = []
    dealers: list[zmq.Socket[Any]] = []
    for _ in range(count):
        context: zmq.Context[Any] = zmq.Context()
        dealer: zmq.Socket[Any] = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.SNDHWM, _HWM)
        dealer.connect(address)
        contexts.append(context)
        dealers.append(dealer)
    sends = [(lambda e, send=d.send: send(encode(e))) for d in dealers]

    def close() -> None:
        for dealer in dealers:
            dealer.close(linger=0)
        for context in contexts:
            context.term()

    return sends, close  # type: ignore[return-value]


def main(argv: list[str]) -> int:
    mode, address, node, count_text = argv
    # stdout is the command channel: logs go to stderr, warnings and worse only.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    count = int(count_text)
    if mode == "edgeloop":
        sends, close = _edgeloop_cameras(address, node, count)
    else:
        sends, close = _zmq_cameras(address, count)
    seqs = [1] * count
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    tick = threading.Event()
    try:
        for line in sys.stdin:
            words = line.split()
            if not words or words[0] == "quit":
                break
            if words[0] == "burst":
                cameras, k = int(words[1]), int(words[2])
                for index in range(cameras):
                    name, first = camera_name(index), seqs[index]
                    batch = [event(name, seq) for seq in range(first, first + k)]
                    seqs[index] = first + k
                    send = sends[index]
                    for item in batch:
                        send(item)
            elif words[0] == "paced":
                m, gap = int(words[1]), float(words[2])
                send, clock = sends[0], time.perf_counter
                # The suites' rule for timed code (collect first, no collector while
                # it runs) holds for the cameras too: a collection of the process's
                # objects would land on one event's latency.
                gc.collect()
                gc.disable()
                try:
                    for _ in range(m):
                        seq, seqs[0] = seqs[0], seqs[0] + 1
                        send(event(camera_name(0), seq, clock()))
                        tick.wait(gap)
                finally:
                    gc.enable()
            out.write("ok\n")
            out.flush()
    finally:
        close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
