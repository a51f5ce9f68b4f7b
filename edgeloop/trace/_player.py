"""Player: feeds a trace's inbound messages through a node's device port, under a
:class:`~edgeloop.clock.VirtualClock`, and captures what the node sends back.

Determinism rests on one rule: **time moves only while the node is idle**. For each
recorded inbound message the player

1. moves the virtual clock to the message's time *one timer at a time*, waiting after each
   timer until the node is idle again (so an actor woken by a timer sees that timer's
   time, never a later one),
2. injects the message (``port.inject``: the path a live message takes),
3. waits until the node is idle: every actor waits for a message with none queued, and
   two successive looks saw the same counters (nothing was handled in between).

With no link, ``port.send`` goes to the player's sink, which stamps each outbound message
with the virtual time. Same trace and same code give the same outbound messages; the
order *between* devices may differ (their actors run concurrently), so comparisons are
per device (:func:`~edgeloop.trace.first_divergence`). What breaks determinism: actors
reading the wall clock or unseeded randomness, threads of their own, or work that never
ends (the player raises ReplayError when the node does not settle in time).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from edgeloop.actors import ActorSystem
from edgeloop.clock import VirtualClock
from edgeloop.errors import ReplayError
from edgeloop.messages import Message
from edgeloop.trace._check import Divergence, first_divergence
from edgeloop.trace._format import RESOLUTION, TraceRecord
from edgeloop.trace._reader import Trace
from edgeloop.trace._recorder import Recorder, RecorderConfig

__all__ = [
    "ReplayNode",
    "ReplayPort",
    "ReplayOptions",
    "ReplayResult",
    "Progress",
    "replay",
    "settle",
]


class ReplayPort(Protocol):
    """The part of the node's ``DevicePort`` the player uses."""

    def inject(self, device: str, message: Message) -> None: ...
    def set_sink(self, sink: Callable[[str, Message], bool] | None) -> None: ...
    def on_peer(
        self, peer: str, up: bool, *, reconnected: bool = False, reason: str = ""
    ) -> None: ...
    def statistics(self) -> Any: ...
    def add_tap(self, tap: Callable[[Any], None]) -> Callable[[], None]: ...


class ReplayNode(Protocol):
    """A node the player can drive: ``edgeloop.supervisor.Node`` built on the clock."""

    @property
    def devices(self) -> ReplayPort: ...
    @property
    def system(self) -> ActorSystem: ...
    def start(self) -> Any: ...
    def stop(self, timeout: float | None = None) -> Any: ...
    def raise_if_failed(self) -> None: ...


Progress = Callable[[int, int], None]
"""Called with (messages injected, messages to inject) after each injection."""


@dataclasses.dataclass(frozen=True, slots=True)
class ReplayOptions:
    """``rate``: trace seconds per wall second (``None``: as fast as the node settles);
    ``topics``: a regular expression the inbound topics must match; ``start_offset``:
    seconds of trace to skip; ``loop``: start over until ``stop`` is set;
    ``settle_timeout``: wall seconds the node gets to settle after each step (generous:
    a learner may compile on its first event);
    ``announce``: tell the node each replayed device is connected before the first
    message (as its link coming up would); ``record``: record the replay's boundary
    (virtual times) as a new trace, e.g. a reference that ``check`` compares later
    replays with (a live recording of a busy, concurrent app rarely matches a replay
    exactly; a replay's recording does, until the code changes)."""

    rate: float | None = 1.0
    topics: str | None = None
    start_offset: float = 0.0
    loop: bool = False
    settle_timeout: float = 60.0
    announce: bool = True
    record: RecorderConfig | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and not self.rate > 0:
            raise ValueError(f"the replay rate must be > 0 (or None for --fast), not {self.rate}")
        if not self.settle_timeout > 0:
            raise ValueError(f"settle_timeout must be > 0, not {self.settle_timeout}")
        if not self.start_offset >= 0:
            raise ValueError(f"start_offset must be >= 0, not {self.start_offset}")
        if self.topics is not None:
            try:
                re.compile(self.topics)
            except re.error as error:
                raise ValueError(
                    f"--topics {self.topics!r} is not a regular expression: {error}"
                ) from None


@dataclasses.dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did: ``outbound`` is what the node sent, ``expected`` what the trace
    recorded it sending (for the replayed devices and time span); ``divergence`` is set by
    a checking replay when they differ."""

    injected: int
    loops: int
    outbound: tuple[TraceRecord, ...]
    expected: tuple[TraceRecord, ...]
    virtual_seconds: float
    wall_seconds: float
    port_counters: dict[str, int] = dataclasses.field(default_factory=dict)
    """The device port's counters after the replay (``unknown_device``: messages for
    devices the app does not serve)."""
    divergence: Divergence | None = None

    @property
    def rate(self) -> float:
        """Injected messages per wall second."""
        return self.injected / self.wall_seconds if self.wall_seconds > 0 else 0.0


def replay(
    trace: Trace,
    node_factory: Callable[[VirtualClock], ReplayNode],
    options: ReplayOptions | None = None,
    *,
    check: bool = False,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    wall: Callable[[], float] = time.monotonic,
) -> ReplayResult:
    """Replay ``trace`` into a node made by ``node_factory(clock)`` (started and stopped
    here). With ``check``, compare its outbound messages with the recorded ones."""
    options = options or ReplayOptions()
    if check and options.loop:
        raise ValueError("a checking replay runs the trace once: drop --loop or --check")
    start = trace.start or 0.0
    first = start + options.start_offset
    inbound = list(trace.records(direction="in", topics=options.topics, start=first))
    devices = sorted({r.device for r in inbound})
    expected = [r for r in trace.records(direction="out", start=first) if r.device in devices]
    end = max([first, *(r.ts for r in inbound), *(r.ts for r in expected)])
    span = end - first
    clock = VirtualClock(first)
    node = node_factory(clock)
    outbound: list[TraceRecord] = []

    def sink(device: str, message: Message) -> bool:
        outbound.append(TraceRecord("out", device, message, clock.now()))
        return True

    stop = stop or threading.Event()
    began = wall()
    node.start()
    injected = loops = 0
    recorder: Recorder | None = None
    try:
        port = node.devices
        port.set_sink(sink)
        if options.record is not None:
            recorder = Recorder(options.record, clock=clock, node="replay")
            recorder.attach(node.devices)
        _settle(node, options.settle_timeout, wall, "after it started")
        if options.announce:
            for device in devices:
                port.on_peer(device, True)
            _settle(node, options.settle_timeout, wall, "after its devices came up")
        total = len(inbound)
        while not stop.is_set():
            shift = loops * (span + 1.0)  # each loop one virtual second after the last
            paced_from = wall()
            for index, record in enumerate(inbound):
                if stop.is_set():
                    break
                at = record.ts + shift
                if options.rate is not None:
                    _pace(paced_from + (at - first - shift) / options.rate, wall, stop)
                _advance_to(clock, at, node, options.settle_timeout, wall)
                port.inject(record.device, record.message)
                _settle(
                    node,
                    options.settle_timeout,
                    wall,
                    f"after message #{index} ({record.topic}) at t={at:.6f}",
                )
                injected += 1
                if progress is not None:
                    progress(index + 1, total)
            # A record's time is rounded to the trace's resolution, so the last one may
            # read a hair before the timer that sent it was due: run on past that.
            _advance_to(clock, end + shift + RESOLUTION, node, options.settle_timeout, wall)
            loops += 1
            if not options.loop or not inbound:
                break
        if recorder is not None:
            closing: Recorder = recorder
            recorder = None
            closing.close()  # before the sink goes: it records what the sink captured
        port.set_sink(None)
        counters = dict(port.statistics().counters)
    finally:
        if recorder is not None:  # the replay failed: keep what it recorded
            recorder.close()
        node.stop()
    result = ReplayResult(
        injected=injected,
        loops=loops,
        outbound=tuple(outbound),
        expected=tuple(expected),
        virtual_seconds=clock.now() - first,
        wall_seconds=wall() - began,
        port_counters=counters,
    )
    if check:
        result = dataclasses.replace(result, divergence=first_divergence(expected, outbound))
    return result


def settle(system: ActorSystem, timeout: float = 10.0) -> None:
    """Wait until every actor of ``system`` is idle and stays so (see the module doc)."""
    _wait_idle(system, timeout, time.monotonic)


# -- internals -------------------------------------------------------------------------


def _settle(node: ReplayNode, timeout: float, wall: Callable[[], float], step: str) -> None:
    _wait_idle(node.system, timeout, wall, step)
    node.raise_if_failed()


def _wait_idle(
    system: ActorSystem, timeout: float, wall: Callable[[], float], step: str = ""
) -> None:
    deadline = wall() + timeout
    previous: tuple[tuple[str, int, int], ...] | None = None
    pause = threading.Event()
    for spins in itertools.count():
        current = _idle_counters(system)
        if current is not None and current == previous:
            return
        previous = current
        if wall() > deadline:
            busy = [ref.path for ref in system.actors() if ref.is_alive() and not ref.is_idle()]
            msg = (
                f"the node did not settle within {timeout} s (busy: {', '.join(busy) or 'none'}) "
                f"{step}; an actor may loop on itself, block, "
                "or run a thread of its own: replays need actors that finish their work"
            )
            raise ReplayError(msg)
        if spins < 100:
            time.sleep(0)  # let the actors' threads run
        else:
            pause.wait(0.0005)


def _idle_counters(system: ActorSystem) -> tuple[tuple[str, int, int], ...] | None:
    """Every live actor's (path, processed, failed) if all are idle, else None."""
    seen = []
    for ref in system.actors():
        if not ref.is_alive():
            continue
        if not ref.is_idle():
            return None
        stats = ref.statistics()
        seen.append((ref.path, stats.processed, stats.failed))
    return tuple(seen)


def _advance_to(
    clock: VirtualClock, at: float, node: ReplayNode, timeout: float, wall: Callable[[], float]
) -> None:
    """Move the clock to ``at`` one due timer at a time, settling after each."""
    while True:
        due = clock.next_due()
        if due is None or due > at:
            break
        clock.advance(max(0.0, due - clock.now()))
        _settle(node, timeout, wall, f"after the timers due at t={due:.6f}")
    if at > clock.now():
        clock.advance(at - clock.now())


def _pace(until: float, wall: Callable[[], float], stop: threading.Event) -> None:
    left = until - wall()
    if left > 0:
        stop.wait(left)
