"""How fast an ask can be when the caller's socket belongs to an I/O thread: the floor
under ``remote_ask_latency_p50``.

``python -m edgeloop.bench.link_floor [ASKS] [ROUNDS]`` prints JSON: the p50 round trip
of the ``link`` suite's anchor (the caller owns its DEALER), of a *minimal* device whose
DEALER belongs to an I/O thread (the caller appends to a deque and writes a wake-up
byte; the thread polls the pipe and the socket, sends, receives, decodes and hands the
reply over a ``queue.SimpleQueue``: the least any I/O-thread design does), and of
edgeloop's endpoint pair, interleaved in rounds, each with its ratio to the anchor.

The minimal device talks to the anchor's own ROUTER thread, so the only difference from
the anchor is the two thread hand-offs on the caller's side. ``docs/link-protocol.md``
(*Ask latency*) explains what the figures say about the 1.5 goal.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import sys
import threading
import time
from typing import Any

import zmq

from edgeloop import messages
from edgeloop.bench._measure import interleave, median, percentile, timed_section
from edgeloop.bench.link import BODY, TARGET, WAIT, _EdgeloopSide, _ZmqSide

__all__ = ["MinimalDevice", "run_floor"]


class MinimalDevice:
    """A DEALER owned by one I/O thread, woken through a pipe, and nothing else."""

    name = "minimal I/O-thread device"

    def __init__(self, address: str) -> None:
        self._context: zmq.Context[Any] = zmq.Context()
        self._dealer: zmq.Socket[Any] = self._context.socket(zmq.DEALER)
        self._dealer.setsockopt(zmq.LINGER, 0)
        self._dealer.connect(address)
        self._outbox: collections.deque[messages.Message] = collections.deque()
        self.replies: queue.SimpleQueue[messages.Message] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        self._pending = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="bench-minimal-device")
        self._thread.start()

    def send(self, message: messages.Message) -> None:
        self._outbox.append(message)
        if not self._pending:
            self._pending = True
            os.write(self._wake_w, b"!")

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._wake_r, zmq.POLLIN)
        poller.register(self._dealer, zmq.POLLIN)
        encode, decode = messages.encode, messages.decode
        while not self._stop:
            for item, _ in poller.poll(100):
                if item == self._wake_r:
                    os.read(self._wake_r, 4096)
                    self._pending = False
                    while self._outbox:
                        self._dealer.send(encode(self._outbox.popleft()))
                else:
                    self.replies.put(decode(self._dealer.recv(copy=False).buffer))

    def ask_round(self, n: int) -> list[float]:
        clock = time.perf_counter_ns
        samples = [0] * n
        with timed_section():
            for index in range(n):
                ask = messages.Ask(id=index, to=TARGET, body=BODY, timeout=5.0)
                start = clock()
                self.send(ask)
                self.replies.get(timeout=WAIT)
                samples[index] = clock() - start
        return [sample / 1e3 for sample in samples]

    def close(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"!")
        self._thread.join(WAIT)
        self._dealer.close(linger=0)
        self._context.term()
        os.close(self._wake_r)
        os.close(self._wake_w)


def run_floor(asks: int = 1000, rounds: int = 6) -> dict[str, Any]:
    """The p50 of each side in µs (median over interleaved rounds) and ratios to the anchor."""
    anchor = _ZmqSide("tcp://127.0.0.1:*")
    minimal = MinimalDevice(anchor.endpoint)
    edgeloop = _EdgeloopSide("tcp://127.0.0.1:*")
    try:
        sides = {"anchor": anchor, "minimal": minimal, "edgeloop": edgeloop}
        p50: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(rounds):
            got_minimal, got_anchor = interleave(
                1, lambda: minimal.ask_round(asks), lambda: anchor.ask_round(asks)
            )
            p50["minimal"].append(percentile(got_minimal[0], 50))
            p50["anchor"].append(percentile(got_anchor[0], 50))
            p50["edgeloop"].append(percentile(edgeloop.ask_round(asks), 50))
        figures = {name: median(values) for name, values in p50.items()}
        return {
            "p50_us": figures,
            "minimal_ratio": figures["minimal"] / figures["anchor"],
            "edgeloop_ratio": figures["edgeloop"] / figures["anchor"],
            "load_1m": round(os.getloadavg()[0], 2),
            "asks": asks,
            "rounds": rounds,
        }
    finally:
        edgeloop.close()
        minimal.close()
        anchor.close()


if __name__ == "__main__":  # pragma: no cover - a measuring script
    args = [int(arg) for arg in sys.argv[1:3]]
    print(json.dumps(run_floor(*args), indent=2))
