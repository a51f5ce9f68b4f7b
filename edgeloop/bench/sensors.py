"""The ``sensors`` suite: events from simulated cameras through a node's twins, against raw
pyzmq in the same run.

Results (the ratio is always ``edgeloop / anchor``):

``events_per_s_1cam``, ``events_per_s_8cam``, ``events_per_s_32cam``
    events per second a node sustains from 1, 8 and 32 cameras (device-role
    :class:`~edgeloop.transport.Endpoint`\\s; each burst split evenly, each camera sending
    its share back to back) through its link, its :class:`~edgeloop.supervisor.DevicePort`
    and one :class:`~edgeloop.sensors.SensorTwin` per camera (sequencing, the buffer,
    cumulative acks back), counted as each twin delivers them; the anchor is as many raw
    pyzmq DEALERs sending the same encoded Events to a ROUTER whose thread decodes them
    (goal: ratio >= 0.5, the link suite's goal for a bare tell);
``event_latency_p50``, ``event_latency_p99``
    microseconds from a camera's ``send`` of one event until its twin has delivered it
    (device -> link -> port -> twin), events paced so that none waits behind another;
    the anchor is the one-way DEALER -> ROUTER latency of the same Event over the same
    tcp loopback, taken when the ROUTER's thread has decoded it; each round's
    percentile, median over rounds (goal: ratio <= 2).

The node (or the anchor's ROUTER) runs in this process and the cameras in a child
process (:mod:`edgeloop.bench._cameras`), as real cameras live apart from their node, so
their threads do not compete with the node's for one GIL. Latency is one-way: the camera
stamps each event with ``time.perf_counter()`` (the host's monotonic clock, shared by both
processes) and the receiving thread subtracts it. Rounds are interleaved as in the other
suites, over ``tcp://127.0.0.1``.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

import msgspec
import zmq

from edgeloop import ChildSpec, Node
from edgeloop.bench._measure import interleave, median, percentile, timed_section
from edgeloop.bench._report import Result, SuiteResult
from edgeloop.messages import Event, Message
from edgeloop.sensors import SensorTwin

__all__ = ["Sizes", "FULL", "QUICK", "CAMERAS", "run_sensors"]

NODE_ID = "bench-sensors"
CAMERAS = (1, 8, 32)
"""Camera counts whose throughput is measured."""
WAIT = 30.0
"""Seconds any single wait may take before the run is declared stuck."""
BURST = 512
"""Events sent between two waits for the node to have them all (split over the cameras)."""
PACE = 0.0005
"""Seconds between two events of a latency round, so that none waits behind another."""


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    """Rounds per side, events per throughput round, events per latency round."""

    rounds: int
    events: int
    latency_events: int


FULL = Sizes(rounds=4, events=16_384, latency_events=1_000)
"""The sizes whose figures are reported (well under a minute on a 2-core machine)."""
QUICK = Sizes(rounds=1, events=2_048, latency_events=100)
"""CI-sized: proves the suite runs; its ratios are too noisy to judge by."""


def camera_name(index: int) -> str:
    """The device name of camera ``index`` (``cam-00``, ...)."""
    return f"cam-{index:02d}"


class _Counter:
    """Counts arrivals on a receiving thread (and, for latency, how long each took)."""

    def __init__(self) -> None:
        self.count = 0
        self.target = -1
        self.done = threading.Event()
        self.latencies: list[float] | None = None

    def expect(self, n: int, *, latency: bool = False) -> None:
        self.count = 0
        self.latencies = [] if latency else None
        self.done.clear()
        self.target = n

    def hit(self, event: Event) -> None:
        if self.latencies is not None:
            self.latencies.append((time.perf_counter() - event.ts) * 1e6)
        self.count += 1
        if self.count == self.target:
            self.done.set()

    def wait(self) -> None:
        if not self.done.wait(WAIT):
            msg = f"only {self.count} of {self.target} events arrived within {WAIT} s"
            raise RuntimeError(msg)


class _Cameras:
    """The child process that runs the cameras (see :mod:`edgeloop.bench._cameras`)."""

    def __init__(self, mode: str, address: str, count: int) -> None:
        command = [sys.executable, "-m", "edgeloop.bench._cameras", mode, address, NODE_ID]
        self.process = subprocess.Popen(
            [*command, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._expect("ready")

    def command(self, line: str) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(line + "\n")
        stdin.flush()

    def done(self) -> None:
        self._expect("ok")

    def _expect(self, word: str) -> None:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        line = stdout.readline().strip()
        if line != word:
            self.close()
            msg = f"the camera process said {line!r}, not {word!r} (exit {self.process.poll()})"
            raise RuntimeError(msg)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.command("quit")
                self.process.wait(WAIT)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class _Side:
    """What both sides share: the camera process and the counter the receiver hits."""

    name: str
    counter: _Counter
    cameras: _Cameras

    def throughput_round(self, cameras: int, events: int) -> float:
        """``events`` split evenly over ``cameras``, in bursts; events per second."""
        share = max(1, BURST // cameras)
        bursts = max(1, events // (share * cameras))
        counter = self.counter
        with timed_section():
            start = time.perf_counter()
            for _ in range(bursts):
                counter.expect(share * cameras)
                self.cameras.command(f"burst {cameras} {share}")
                counter.wait()
                self.cameras.done()
            elapsed = time.perf_counter() - start
        return bursts * share * cameras / elapsed

    def latency_round(self, events: int) -> list[float]:
        """Microseconds each of ``events`` paced events took from send to receiver."""
        counter = self.counter
        counter.expect(events, latency=True)
        with timed_section():
            self.cameras.command(f"paced {events} {PACE}")
            counter.wait()
            self.cameras.done()
        assert counter.latencies is not None
        return counter.latencies


# -- edgeloop's side ---------------------------------------------------------------------


class _CountingTwin(SensorTwin):
    """A camera's twin that counts what it delivers, in its own thread, as it does."""

    def __init__(self, device: str, counter: _Counter) -> None:
        super().__init__(device)
        self.counter = counter

    def delivered(self, events: Sequence[Event]) -> None:
        hit = self.counter.hit
        for event in events:
            hit(event)


class _EdgeloopSide(_Side):
    """A node with one twin per camera; the cameras' device endpoints link to it."""

    def __init__(self, cameras: int) -> None:
        self.name = "edgeloop"
        self.counter = _Counter()
        twins = [
            ChildSpec(
                camera_name(i),
                _CountingTwin,
                args={"device": camera_name(i), "counter": self.counter},
            )
            for i in range(cameras)
        ]
        self.node = Node(NODE_ID, children=twins, listen=["tcp://127.0.0.1:*"]).start()
        try:
            address = self.node.endpoint.statistics().bound[0]  # type: ignore[union-attr]
            self.cameras = _Cameras("edgeloop", address, cameras)
        except BaseException:
            self.node.stop()
            raise

    def close(self) -> None:
        self.cameras.close()
        self.node.stop()


# -- the anchor: bare pyzmq ----------------------------------------------------------------


class _ZmqSide(_Side):
    """A ROUTER whose thread decodes each Event; the cameras are raw DEALERs."""

    def __init__(self, cameras: int) -> None:
        self.name = "pyzmq+msgspec"
        self.counter = _Counter()
        self._decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)
        self._context: zmq.Context[Any] = zmq.Context()
        self._router: zmq.Socket[Any] = self._context.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.setsockopt(zmq.RCVHWM, 100_000)
        self._router.bind("tcp://127.0.0.1:*")
        address = self._router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._stop = self._context.socket(zmq.PAIR)
        self._stop.bind("inproc://bench-sensors-stop")
        self._thread = threading.Thread(
            target=self._serve, name="bench-sensors-router", daemon=True
        )
        self._thread.start()
        try:
            self.cameras = _Cameras("zmq", address, cameras)
        except BaseException:
            self._close_router()
            raise

    def _serve(self) -> None:
        stop = self._context.socket(zmq.PAIR)
        stop.connect("inproc://bench-sensors-stop")
        router = self._router
        decode = self._decoder.decode
        hit = self.counter.hit
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(stop, zmq.POLLIN)
        try:
            while True:
                ready = dict(poller.poll())
                if stop in ready:
                    return
                while True:
                    try:
                        _identity, payload = router.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    message = decode(payload)
                    if message.__class__ is Event:
                        hit(message)
        finally:
            stop.close(linger=0)

    def _close_router(self) -> None:
        self._stop.send(b"")
        self._thread.join(WAIT)
        self._stop.close(linger=0)
        self._router.close(linger=0)
        self._context.term()

    def close(self) -> None:
        self.cameras.close()
        self._close_router()


# -- the suite -----------------------------------------------------------------------------


def run_sensors(quick: bool = False) -> SuiteResult:
    """Run the sensors suite (CI-sized when ``quick``)."""
    sizes = QUICK if quick else FULL
    load_before = os.getloadavg()[0]
    most = max(CAMERAS)
    ours = _EdgeloopSide(most)
    try:
        anchor = _ZmqSide(most)
        try:
            results = _measure(ours, anchor, sizes)
        finally:
            anchor.close()
    finally:
        ours.close()
    return SuiteResult(
        "sensors",
        tuple(results),
        {
            "transport": "tcp://127.0.0.1",
            "cameras": list(CAMERAS),
            "camera_process": "one child process runs every camera",
            "rounds": sizes.rounds,
            "events_per_round": sizes.events,
            "latency_events_per_round": sizes.latency_events,
            "burst": BURST,
            "latency_pace_s": PACE,
            # Other work on the machine moves these figures more than anything measured.
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
    )


def _measure(ours: _EdgeloopSide, anchor: _ZmqSide, sizes: Sizes) -> list[Result]:
    results: list[Result] = []
    for cameras in CAMERAS:
        got_ours, got_anchor = interleave(
            sizes.rounds,
            lambda n=cameras: ours.throughput_round(n, sizes.events),  # type: ignore[misc]
            lambda n=cameras: anchor.throughput_round(n, sizes.events),  # type: ignore[misc]
        )
        results.append(
            Result(
                f"events_per_s_{cameras}cam",
                "events/s",
                median(got_ours),
                median(got_anchor),
                anchor.name,
                goal=">= 0.5",
            )
        )
    lat_ours, lat_anchor = interleave(
        sizes.rounds,
        lambda: ours.latency_round(sizes.latency_events),
        lambda: anchor.latency_round(sizes.latency_events),
    )
    for q in (50, 99):
        results.append(
            Result(
                f"event_latency_p{q}",
                "us",
                median([percentile(r, q) for r in lat_ours]),
                median([percentile(r, q) for r in lat_anchor]),
                anchor.name,
                goal="<= 2",
            )
        )
    return results
