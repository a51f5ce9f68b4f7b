"""The knowledge cycle's pure parts: when to notice, whom a push still waits for, what
each stage took.

No actors, no clock of their own: :class:`~edgeloop.learning.cycle.KnowledgeCycle` reads
its node's clock and passes the times in, so a replay on a virtual clock gives the same
timeline. Plain numpy (no JAX): the cycle scores one event at a time.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from edgeloop.messages import FrameRef

__all__ = [
    "STAGES",
    "Sighting",
    "NoticeWindow",
    "CameraPush",
    "PushTracker",
    "CycleRecord",
    "backoff",
    "max_p_new",
]

STAGES = ("notice", "query", "learn", "recompile", "push")
"""The cycle's five steps, in order (paper section 2)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Sighting:
    """One camera report as the cycle keeps it: where and when, its embedding, the frame
    it names, whether the camera's own gate and the cloud model each found it novel, and
    ``arrived`` (the node's clock when it reached the cycle)."""

    device: str
    seq: int
    ts: float
    embedding: npt.NDArray[np.int8]
    frame: FrameRef | None
    device_novel: bool
    cloud_novel: bool
    head_version: int
    arrived: float


class NoticeWindow:
    """The recent sightings (``window`` seconds of source time) and the notice rule.

    Notice when ``shots`` sightings in the window cross the cloud model's calibrated
    threshold (1% false alarms on known species), or when the gates of ``gate_cameras``
    distinct cameras fired and ``gate_cloud`` of the sightings cross it too (the gates
    pass 5% of known animals each: alone, they fired dozens of times a day in the busy
    yard); either way the caller confirms with the whole track's log-odds.
    """

    __slots__ = ("gate_cameras", "gate_cloud", "shots", "sightings", "window")

    def __init__(self, window: float, shots: int, gate_cameras: int, gate_cloud: int = 1) -> None:
        self.window = window
        self.shots = shots
        self.gate_cameras = gate_cameras
        self.gate_cloud = gate_cloud
        self.sightings: deque[Sighting] = deque()

    def offer(self, sighting: Sighting) -> Literal["cloud", "gates"] | None:
        """Keep ``sighting`` if either judge found it novel; why to notice now, or None."""
        if not (sighting.cloud_novel or sighting.device_novel):
            return None
        self.sightings.append(sighting)
        newest = max(sighting.ts, self.sightings[-1].ts)
        while self.sightings and self.sightings[0].ts < newest - self.window:
            self.sightings.popleft()
        cloud = sum(s.cloud_novel for s in self.sightings)
        if cloud >= self.shots:
            return "cloud"
        gates = len({s.device for s in self.sightings if s.device_novel})
        if gates >= self.gate_cameras and cloud >= self.gate_cloud:
            return "gates"
        return None

    def suspects(self) -> list[Sighting]:
        """The sightings a notice rests on: the cloud-novel ones, else the gate-novel."""
        cloud = [s for s in self.sightings if s.cloud_novel]
        return cloud or list(self.sightings)

    def clear(self) -> None:
        self.sightings.clear()


def max_p_new(belief: npt.ArrayLike, live: npt.ArrayLike) -> float:
    """The largest P(NEW) of a live track: ``belief`` is the learner's ``[N, K + 1, Z]``
    (NEW last, unnormalised is fine), ``live`` bool ``[N]``; 0 with no live track.
    ValueError for shapes that do not fit."""
    b = np.asarray(belief, dtype=np.float64)
    alive = np.asarray(live, dtype=bool)
    if b.ndim != 3 or alive.shape != b.shape[:1]:
        msg = f"expected beliefs [N, K+1, Z] and live [N], got {b.shape} and {alive.shape}"
        raise ValueError(msg)
    mass = b[alive]
    if not len(mass):
        return 0.0
    totals = np.maximum(mass.sum(axis=(1, 2)), 1e-300)
    return float((mass[:, -1, :].sum(axis=1) / totals).max())


def backoff(attempt: int, low: float, high: float) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): ``low`` doubling up to ``high``."""
    return float(min(high, low * 2.0 ** max(0, attempt - 1)))


@dataclasses.dataclass(slots=True)
class CameraPush:
    """One camera's part in a push: ``sent`` until it acks, refuses or goes ``away``."""

    state: Literal["sent", "acked", "refused", "away"] = "sent"
    attempts: int = 1
    error: str = ""
    at: float | None = None


class PushTracker:
    """Which cameras run head ``version``; whom to retry, and when the push is done.

    A camera is done once it acked or refused (a refusal is final: its old head stays
    and resending the same bytes would be refused again). A failed send (timeout, no
    link) is retried with backoff ``low`` doubling to ``high``, up to ``attempts``
    tries; a camera past those stays ``away``: its twin still holds the head as desired
    and sends it when the camera reconnects, and an event scored with the new version
    counts as its ack.
    """

    def __init__(
        self, version: int, cameras: tuple[str, ...], *, attempts: int, low: float, high: float
    ) -> None:
        self.version = version
        self.cameras = {camera: CameraPush() for camera in cameras}
        self.attempts = attempts
        self.low = low
        self.high = high

    def acked(self, camera: str, version: int, now: float) -> bool:
        """Camera runs ``version`` (or newer); whether that is news."""
        entry = self.cameras.get(camera)
        if entry is None or version < self.version or entry.state in ("acked", "refused"):
            return False
        entry.state, entry.at, entry.error = "acked", now, ""
        return True

    def refused(self, camera: str, error: str, now: float) -> None:
        entry = self.cameras.get(camera)
        if entry is not None and entry.state != "acked":
            entry.state, entry.at, entry.error = "refused", now, error

    def failed(self, camera: str, error: str) -> float | None:
        """A send to ``camera`` failed: seconds until the retry, or None (given up)."""
        entry = self.cameras.get(camera)
        if entry is None or entry.state in ("acked", "refused"):
            return None
        entry.error = error
        if entry.attempts >= self.attempts:
            entry.state = "away"
            return None
        entry.attempts += 1
        return backoff(entry.attempts - 1, self.low, self.high)

    @property
    def done(self) -> bool:
        return all(e.state in ("acked", "refused") for e in self.cameras.values())

    def names(self, state: str) -> list[str]:
        return sorted(c for c, e in self.cameras.items() if e.state == state)

    def last_ack(self) -> float | None:
        times = [e.at for e in self.cameras.values() if e.state == "acked" and e.at is not None]
        return max(times) if times else None


@dataclasses.dataclass(slots=True)
class CycleRecord:
    """One run of the cycle, as ``edgeloop node status`` and the demo report it.

    Times are the node's clock; ``first_seen`` is when the first sighting the notice
    rests on reached the cycle, so the ``notice`` stage is the wait for the examples.
    """

    cycle: int
    reason: str
    first_seen: float
    noticed: float
    state: Literal["running", "done", "partial", "failed"] = "running"
    name: str = ""
    renamed_from: str = ""
    model_version: int = 0
    head_version: int = 0
    head_bytes: int = 0
    examples: int = 0
    track_log_odds: float = 0.0
    cameras_queried: tuple[str, ...] = ()
    frames_pulled: int = 0
    frame_bytes: int = 0
    ends: dict[str, float] = dataclasses.field(default_factory=dict)
    push: PushTracker | None = None
    error: str = ""

    def end(self, stage: str, now: float) -> None:
        self.ends[stage] = now

    def stage_ms(self) -> dict[str, float]:
        """Milliseconds each finished stage took."""
        out: dict[str, float] = {}
        start = self.first_seen
        for stage in STAGES:
            if stage not in self.ends:
                break
            out[stage] = round((self.ends[stage] - start) * 1000.0, 3)
            start = self.ends[stage]
        return out

    def latency_ms(self) -> float | None:
        """Notice to the last camera's ack (the wait for examples excluded)."""
        last = self.push.last_ack() if self.push is not None else None
        if last is None or self.state == "running":
            return None
        return round((last - self.noticed) * 1000.0, 3)

    def ack_ms(self) -> dict[str, float]:
        """Milliseconds from the push's start (the head compiled) to each camera's ack."""
        push, start = self.push, self.ends.get("recompile")
        if push is None or start is None:
            return {}
        return {
            camera: round((entry.at - start) * 1000.0, 3)
            for camera, entry in sorted(push.cameras.items())
            if entry.state == "acked" and entry.at is not None
        }

    def to_json(self) -> dict[str, Any]:
        push = self.push
        return {
            "cycle": self.cycle,
            "state": self.state,
            "reason": self.reason,
            "name": self.name,
            "renamed_from": self.renamed_from,
            "model_version": self.model_version,
            "head_version": self.head_version,
            "head_bytes": self.head_bytes,
            "examples": self.examples,
            "track_log_odds": round(self.track_log_odds, 3),
            "cameras_queried": list(self.cameras_queried),
            "frames_pulled": self.frames_pulled,
            "frame_bytes": self.frame_bytes,
            "stage_ms": self.stage_ms(),
            "wait_for_examples_ms": round((self.noticed - self.first_seen) * 1000.0, 3),
            "cycle_latency_ms": self.latency_ms(),
            "cameras_acked": push.names("acked") if push is not None else [],
            "ack_ms": self.ack_ms(),
            "cameras_refused": {c: push.cameras[c].error for c in push.names("refused")}
            if push is not None
            else {},
            "cameras_away": push.names("away") if push is not None else [],
            "error": self.error,
        }
