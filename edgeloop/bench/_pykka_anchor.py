"""The anchor of the ``actors`` suite: the same actors written on raw pykka.

This is the only module of ``edgeloop.bench`` that imports pykka (import-linter allows it
here and nowhere else outside ``edgeloop.actors``). The handlers do exactly the work of
their edgeloop twins in :mod:`edgeloop.bench.actors`, and the timed loops are shared
(:mod:`edgeloop.bench._measure`), so the two sides differ only in the runtime.
"""

from __future__ import annotations

import queue
import time
from typing import Any

import pykka

from edgeloop.bench._measure import FLUSH, MESSAGE, pipeline_round, tell_round, timed_section

__all__ = ["PykkaSide"]


class _Sink(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        return self.count


class _Forward(pykka.ThreadingActor):
    def __init__(self, next_ref: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.next = next_ref

    def on_receive(self, message: Any) -> Any:
        self.next.tell(message)


class _Last(pykka.ThreadingActor):
    def __init__(self, done: queue.SimpleQueue[int]) -> None:
        super().__init__()
        self.done = done
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        if message is FLUSH:
            self.done.put(self.count)


class PykkaSide:
    """A sink actor and a pipeline of ``hops`` actors on pykka, with the timed rounds."""

    name = "pykka"

    def __init__(self, hops: int) -> None:
        self.hops = hops
        self._refs: list[pykka.ActorRef[Any]] = []
        try:
            self.sink = self._start(_Sink.start())
            self.done: queue.SimpleQueue[int] = queue.SimpleQueue()
            ref = self._start(_Last.start(self.done))
            for _ in range(hops - 1):
                ref = self._start(_Forward.start(ref))
            self.first = ref
        except BaseException:
            self.close()
            raise

    def _start(self, ref: pykka.ActorRef[Any]) -> pykka.ActorRef[Any]:
        self._refs.append(ref)
        return ref

    def tell_round(self, n: int) -> float:
        return tell_round(self.sink.tell, self.sink.ask, n)

    def ask_round(self, n: int) -> list[float]:
        ask = self.sink.ask
        clock = time.perf_counter_ns
        message = MESSAGE
        samples = [0] * n
        with timed_section():
            for index in range(n):
                start = clock()
                ask(message)
                samples[index] = clock() - start
        return [sample / 1e3 for sample in samples]

    def pipeline_round(self, n: int) -> float:
        return pipeline_round(self.first.tell, self.done, n, self.hops)

    def close(self) -> None:
        """Stop every actor this side started (the pipeline's head first)."""
        for ref in reversed(self._refs):
            ref.stop()
        self._refs.clear()
