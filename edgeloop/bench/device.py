"""``edgeloop bench device``: what the device agent's promises cost on the device.

Each figure is the device's own work per event (no link, no node), against the floor of
the same work in plain Python and numpy, in interleaved rounds:

- ``journalled_event``: numbering an observation into an event, scoring it, keeping its
  frame and writing it to the journal (``DeviceCore.observe`` with a journal), against
  the same core with its outbox in memory only: what surviving ``kill -9`` costs, ``<= 2``;
- ``frame_keep``: keeping one 256 x 256 frame (copy, CRC-32, ref, eviction), against
  ``numpy`` copying it and ``zlib.crc32`` hashing it, ``<= 1.5``;
- ``journal_recovery``: reading back a journal of 10,000 events (CRC checks, decode,
  which are unacknowledged), against ``msgspec`` decoding the same events from one list,
  ``<= 3``.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from edgeloop.bench._measure import interleave, median, timed_section
from edgeloop.bench._report import Result, SuiteResult
from edgeloop.messages import Event
from edgeloop.sensors.device import (
    CameraSettings,
    DeviceConfig,
    DeviceCore,
    FrameRing,
    Journal,
    Observation,
    OutboxConfig,
)

__all__ = ["run_device", "Sizes", "QUICK", "FULL"]


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    """Events per timed round, frames per round, events recovered, rounds."""

    events: int
    frames: int
    recovered: int
    rounds: int


QUICK = Sizes(events=2_000, frames=200, recovered=2_000, rounds=3)
FULL = Sizes(events=20_000, frames=2_000, recovered=10_000, rounds=7)


def run_device(quick: bool = False, *, sizes: Sizes | None = None) -> SuiteResult:
    """Run the ``device`` suite: :data:`QUICK` sizes for CI, :data:`FULL` otherwise."""
    sizes = sizes or (QUICK if quick else FULL)
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-device-") as tmp:
        results = [
            _journalled_event(Path(tmp), sizes),
            _frame_keep(sizes),
            _journal_recovery(Path(tmp), sizes),
        ]
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "quick": quick,
        **dataclasses.asdict(sizes),
    }
    return SuiteResult("device", tuple(results), env)


def _config(limit: int) -> DeviceConfig:
    return DeviceConfig(
        name="cam-bench",
        node="tcp://127.0.0.1:1",
        reachable=("porch",),
        initial=CameraSettings(zones=("porch",), frame_rate=60.0),
        outbox=OutboxConfig(limit=limit),
        frame_budget=64 << 20,
    )


def _observations(n: int, shape: tuple[int, int]) -> list[Observation]:
    rng = np.random.default_rng(0)
    embeddings = rng.integers(-100, 100, size=(n, 20)).astype(np.int8)
    frames = [rng.integers(0, 255, size=shape, dtype=np.uint8) for _ in range(8)]
    return [
        Observation(t=i / 50, zone="porch", embedding=embeddings[i], frame=frames[i % 8])
        for i in range(n)
    ]


def _per_event(n: int, work: Callable[[], Any]) -> float:
    """Microseconds per event of ``work()``, which handles ``n`` events."""
    with timed_section():
        start = time.perf_counter()
        work()
        elapsed = time.perf_counter() - start
    return elapsed / n * 1e6


def _journalled_event(tmp: Path, sizes: Sizes) -> Result:
    n = sizes.events
    seen = _observations(n, (32, 32))
    rounds = iter(range(10_000))

    def run(journalled: bool) -> float:
        journal = Journal.open(tmp / f"j{next(rounds)}.bin") if journalled else None
        core = DeviceCore(_config(n + 1), journal=journal)
        try:
            return _per_event(n, lambda: [core.observe(o, 0.0) for o in seen])
        finally:
            core.close()

    ours, anchor = interleave(sizes.rounds, lambda: run(True), lambda: run(False))
    return Result(
        "journalled_event", "µs", median(ours), median(anchor), "in-memory outbox", "<= 2"
    )


def _frame_keep(sizes: Sizes) -> Result:
    n = sizes.frames
    seen = _observations(n, (256, 256))
    frames = [o.frame for o in seen]
    ids = iter(range(10**9))

    def keep() -> None:
        ring = FrameRing("cam-bench", 32 << 20)
        for observation in seen:
            ring.put(next(ids), observation.frame)  # type: ignore[arg-type]

    def floor() -> None:
        kept = []
        for frame in frames:
            copy = np.array(frame, copy=True)
            kept.append((copy, zlib.crc32(copy.data)))
            if len(kept) > 400:
                kept.pop(0)

    ours, anchor = interleave(
        sizes.rounds, lambda: _per_event(n, keep), lambda: _per_event(n, floor)
    )
    anchor_name = "numpy copy and crc32"
    return Result("frame_keep", "µs", median(ours), median(anchor), anchor_name, "<= 1.5")


def _journal_recovery(tmp: Path, sizes: Sizes) -> Result:
    n = sizes.recovered
    path = tmp / "recovery.bin"
    journal = Journal.open(path)
    core = DeviceCore(_config(n + 1), journal=journal)
    for observation in _observations(n, (8, 8)):
        core.observe(observation, 0.0)
    events = core.outbox.pending()
    core.close()
    blob = msgspec.msgpack.encode(events)
    decoder = msgspec.msgpack.Decoder(list[Event])

    def recover() -> None:
        again = Journal.open(path)
        assert len(again.recovered.events) == n
        again.close()

    ours, anchor = interleave(
        sizes.rounds,
        lambda: _per_event(n, recover),
        lambda: _per_event(n, lambda: decoder.decode(blob)),
    )
    return Result(
        "journal_recovery", "µs", median(ours), median(anchor), "msgspec list decode", "<= 3"
    )
