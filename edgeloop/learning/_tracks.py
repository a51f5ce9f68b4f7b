"""Which track each observation of a micro-batch belongs to, and the rounds it runs in.

The filter keeps one belief per track slot; this table decides the slot. An observation
may continue a *live* track (seen within ``gate`` seconds) whose last zone is its zone or
next to it, when its embedding is likelier under "this animal" than "another" (the same
two-hypothesis test as fusion, against the track's running mean embedding); the best such
track wins, else the observation starts a track in the least recently used slot. The
match is vectorised over the batch against the tracks as they were before it, which is
what makes a batch of thousands cost little more than one; new tracks are matched one by
one (they are rare).

The core applies at most one observation per track per step, so a batch is laid out in
*rounds*: round r holds the r-th observation (by time) of each track, and the kernel scans
over rounds. Sizes are rounded up to buckets so a handful of compiled shapes serve every
batch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

__all__ = [
    "TrackTable",
    "Assignment",
    "Layout",
    "layout",
    "bucket",
    "fit_width",
    "ROUND_BASE",
    "WIDTH_BASE",
]


def bucket(n: int, base: int = 2, least: int = 1) -> int:
    """The power of ``base`` at or above ``max(n, least)``: one compiled shape per bucket."""
    size = 1
    while size < max(n, least):
        size *= base
    return size


_SMALL = 64
"""Batches below this many observations match without touching the BLAS thread pool."""


@functools.cache
def _blas() -> ThreadpoolController:
    """The BLAS thread pools of this process. Association's matrix product runs on one
    thread: on a two-core edge box the pool's other worker, spinning while it waits for
    work, took as much CPU as the whole rest of a flush (measured: 5 us of 10 per event),
    from the very actor threads the product was meant to help."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


_FAR = np.float32(-1e30)
"""The log ratio of a track the zone gate rules out: no match (finite, so that it can
ride in a matrix product)."""

ROUND_BASE = 2
"""Rounds are bucketed to powers of two (1, 2, 4, ... 64) ..."""
WIDTH_BASE = 2
"""... and widths to powers of two from 16: padding costs filter work (at most 2x), and
only the shapes a deployment's traffic hits are ever compiled (a handful)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Assignment:
    """Per observation: its track slot, whether the track starts there, and the ticks
    since the track's previous observation."""

    track: np.ndarray
    start: np.ndarray
    steps: np.ndarray


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    """Where each observation goes in a ``[rounds, width]`` grid of the kernel."""

    rounds: int
    width: int
    round: np.ndarray
    column: np.ndarray


class TrackTable:
    """Track slots: last time, last zone and running mean embedding of each.

    ``adjacent`` is a bool ``[Z, Z]`` matrix (``True`` on the diagonal). ``tick`` is the
    filter's time step in seconds; ``max_steps`` caps the ticks predicted between two
    observations (after that many the zone chain has forgotten where the animal was).
    """

    def __init__(
        self,
        slots: int,
        dim: int,
        adjacent: np.ndarray,
        *,
        gate: float = 30.0,
        tick: float = 1.0,
        max_steps: int = 32,
        same_sigma: float = 12.0,
        diff_sigma: float = 40.0,
        memory: int = 32,
    ) -> None:
        self.slots = slots
        self.adjacent = np.asarray(adjacent, dtype=bool)
        self.gate = gate
        self.tick = tick
        self.max_steps = max_steps
        self.memory = memory  # the running mean weighs at most this many observations
        self._same_var = same_sigma**2
        self._diff_var = diff_sigma**2
        self.last_ts = np.full(slots, -np.inf)
        self.zone = np.zeros(slots, np.int32)
        self.mean = np.zeros((slots, dim), np.float32)
        self.count = np.zeros(slots, np.int64)
        self.started = 0

    def live(self, now: float) -> np.ndarray:
        """bool ``[slots]``: tracks seen within ``gate`` seconds of ``now``."""
        return self.last_ts >= now - self.gate

    def assign(self, ts: np.ndarray, zone: np.ndarray, emb: np.ndarray) -> Assignment:
        """Match ``B`` observations (times, zone indices, embeddings ``[B, D]``) to tracks
        and update the table."""
        if ts.shape[0] == 1:
            return self._assign_one(float(ts[0]), int(zone[0]), emb[0])
        return self._assign_batch(ts, zone, emb)

    def _assign_batch(self, ts: np.ndarray, zone: np.ndarray, emb: np.ndarray) -> Assignment:
        b = ts.shape[0]
        track = np.full(b, -1, np.int64)
        if b == 0:
            return Assignment(track, np.zeros(0, bool), np.zeros(0, np.int32))
        live = np.flatnonzero(self.last_ts >= float(ts.min()) - self.gate)
        if live.size:
            llr = self._log_ratio(emb, zone, live)
            if float(ts.max()) - self.gate > float(self.last_ts[live].min()):
                stale = (ts[:, None] - self.last_ts[live][None, :]) > self.gate
                llr[stale] = -np.inf
            best = np.argmax(llr, axis=1)
            ok = llr[np.arange(b), best] > 0.0
            track[ok] = live[best[ok]]
        start = track < 0
        self._start_new(np.flatnonzero(start), ts, zone, emb, track)
        start = self._starts(track, ts, start)
        steps = self._steps(track, ts, start)
        self._update(track, ts, zone, emb)
        return Assignment(track, start, steps)

    def _assign_one(self, ts: float, zone: int, emb: np.ndarray) -> Assignment:
        """:meth:`assign` of one observation (the paced case: each event a batch of its
        own), the same decisions and arithmetic in a few scalar steps rather than the
        dozens of array calls the general path costs."""
        live = np.flatnonzero(self.last_ts >= ts - self.gate)
        slot = -1
        if live.size:
            llr = self._log_ratio(emb[None, :], np.array([zone]), live)[0]
            best = int(np.argmax(llr))
            if llr[best] > 0.0:
                slot = int(live[best])
        start = slot < 0
        if start:
            slot = int(np.argmin(self.last_ts))
            self.last_ts[slot] = ts
            self.count[slot] = 0
            self.mean[slot] = 0.0
            self.started += 1
            steps = 0
        else:
            gap = ts - float(self.last_ts[slot])
            steps = int(np.clip(np.rint(gap / self.tick), 0, self.max_steps))
        self.last_ts[slot] = max(float(self.last_ts[slot]), ts)
        self.zone[slot] = zone
        n = min(int(self.count[slot]), self.memory)
        mean = self.mean[slot].astype(np.float64) * n + emb.astype(np.float64)
        self.mean[slot] = mean / (n + 1)
        self.count[slot] += 1
        return Assignment(
            np.array([slot], np.int64), np.array([start]), np.array([steps], np.int32)
        )

    def _log_ratio(self, emb: np.ndarray, zone: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """``[B, M]``: log p(emb | that track's animal) - log p(emb | another animal),
        ``-inf``-like (-1e30) where the track's last zone is not next to the observation's.

        Linear in the squared distance ``|e|^2 + |m|^2 - 2 e.m``, so the whole matrix,
        zone gate included (a one-hot column per zone), is one matrix product: the
        observations ``[e, |e|^2, onehot(zone)]`` against per track
        ``[-2 slope m, slope, slope |m|^2 + offset + gate(zone)]``."""
        n = np.minimum(self.count[slots], self.memory).astype(np.float32)
        n = np.maximum(n, 1.0)
        same = self._same_var * (1.0 + 1.0 / n)
        other = self._same_var / n + self._diff_var
        slope = 0.5 * (1.0 / other - 1.0 / same)
        offset = 0.5 * emb.shape[1] * np.log(other / same)
        means = self.mean[slots]
        e = emb.astype(np.float32, copy=False)
        b, d, z = e.shape[0], e.shape[1], self.adjacent.shape[0]
        gate = np.where(self.adjacent[:, self.zone[slots]], 0.0, _FAR)  # [Z, M]
        left = np.zeros((b, d + 1 + z), np.float32)
        left[:, :d] = e
        left[:, d] = (e * e).sum(1)
        left[np.arange(b), d + 1 + zone] = 1.0
        right = np.empty((d + 1 + z, slots.shape[0]), np.float32)
        right[:d] = (-2.0 * slope)[None, :] * means.T
        right[d] = slope
        right[d + 1 :] = (slope * (means * means).sum(1) + offset)[None, :] + gate
        if b < _SMALL:  # OpenBLAS runs products this small on the caller's thread
            small: np.ndarray = left @ right
            return small
        with _blas().limit(limits=1, user_api="blas"):
            result: np.ndarray = left @ right
        return result

    def _start_new(
        self,
        unmatched: np.ndarray,
        ts: np.ndarray,
        zone: np.ndarray,
        emb: np.ndarray,
        track: np.ndarray,
    ) -> None:
        """Start a track for the first unmatched observation, give it every later one
        that fits it (vectorised), and repeat: one pass per new animal, not per report."""
        dims = emb.shape[1]
        same = self._same_var * 2.0  # two single observations of one animal
        other = self._same_var + self._diff_var
        offset = 0.5 * dims * math.log(other / same)
        while unmatched.size:
            first, rest = int(unmatched[0]), unmatched[1:]
            slot = int(np.argmin(self.last_ts))
            self.last_ts[slot] = ts[first]  # taken: the next new animal gets another slot
            self.count[slot] = 0
            self.mean[slot] = 0.0
            self.started += 1
            track[first] = slot
            squared = ((emb[rest] - emb[first]) ** 2).sum(axis=1)
            fits = 0.5 * (squared / other - squared / same) + offset > 0.0
            fits &= self.adjacent[zone[rest], zone[first]]
            track[rest[fits]] = slot
            unmatched = rest[~fits]

    def _starts(self, track: np.ndarray, ts: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        """A fresh track starts at its earliest observation in the batch."""
        start = np.zeros(track.shape[0], bool)
        if fresh.any():
            new = np.isin(track, np.unique(track[fresh]))
            order = np.flatnonzero(new)[np.lexsort((ts[new], track[new]))]
            first = np.r_[True, track[order][1:] != track[order][:-1]]
            start[order[first]] = True
        return start

    def _steps(self, track: np.ndarray, ts: np.ndarray, start: np.ndarray) -> np.ndarray:
        order = np.lexsort((ts, track))
        sorted_track = track[order]
        sorted_ts = ts[order]
        previous = np.where(
            np.r_[True, sorted_track[1:] != sorted_track[:-1]],
            self.last_ts[sorted_track],
            np.r_[-np.inf, sorted_ts[:-1]],
        )
        gap = np.where(np.isfinite(previous), sorted_ts - previous, 0.0)
        steps = np.clip(np.rint(gap / self.tick), 0, self.max_steps).astype(np.int32)
        result = np.empty_like(steps)
        result[order] = steps
        result[start] = 0
        return result

    def _update(self, track: np.ndarray, ts: np.ndarray, zone: np.ndarray, emb: np.ndarray) -> None:
        slots, inverse = np.unique(track, return_inverse=True)
        order = np.lexsort((ts, track))
        latest = order[np.r_[track[order][1:] != track[order][:-1], True]]  # in slot order
        self.last_ts[slots] = np.maximum(self.last_ts[slots], ts[latest])
        self.zone[slots] = zone[latest]
        by_slot = np.argsort(inverse, kind="stable")
        counts = np.bincount(inverse, minlength=slots.shape[0])
        sums = np.add.reduceat(emb[by_slot].astype(np.float64), np.r_[0, np.cumsum(counts)[:-1]])
        n = np.minimum(self.count[slots], self.memory)
        self.mean[slots] = (self.mean[slots] * n[:, None] + sums) / (n + counts)[:, None]
        self.count[slots] += counts

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The table's arrays, for a snapshot."""
        return {
            "track_last_ts": self.last_ts.copy(),
            "track_zone": self.zone.copy(),
            "track_mean": self.mean.copy(),
            "track_count": self.count.copy(),
        }

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`to_arrays` saved (same slots and dimension)."""
        self.last_ts = np.array(arrays["track_last_ts"], np.float64)
        self.zone = np.array(arrays["track_zone"], np.int32)
        self.mean = np.array(arrays["track_mean"], np.float32)
        self.count = np.array(arrays["track_count"], np.int64)


def fit_width(rounds: int, width: int, reports: int) -> int:
    """``width``, doubled until ``rounds * width`` slots hold ``reports`` camera reports
    (the kernel gives each cell one report slot; fused observations bring several)."""
    while rounds * width < reports:
        width *= WIDTH_BASE
    return width


def layout(assignment: Assignment, ts: np.ndarray, *, least_width: int = 16) -> Layout:
    """The ``[rounds, width]`` cell of each observation: round = its rank by time within
    its track, column = its place within the round; both sizes rounded up to buckets."""
    track = assignment.track
    b = track.shape[0]
    if b == 1:
        one = np.zeros(1, np.int64)
        return Layout(1, bucket(1, WIDTH_BASE, least_width), one, one)
    order = np.lexsort((ts, track))
    sorted_track = track[order]
    first = np.r_[True, sorted_track[1:] != sorted_track[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(b), 0))
    rank = np.empty(b, np.int64)
    rank[order] = np.arange(b) - group_start
    column = np.empty(b, np.int64)
    by_round = np.lexsort((track, rank))
    sorted_rank = rank[by_round]
    round_first = np.r_[True, sorted_rank[1:] != sorted_rank[:-1]]
    round_start = np.maximum.accumulate(np.where(round_first, np.arange(b), 0))
    column[by_round] = np.arange(b) - round_start
    rounds = int(rank.max()) + 1 if b else 1
    width = int(column.max()) + 1 if b else 1
    return Layout(bucket(rounds, ROUND_BASE), bucket(width, WIDTH_BASE, least_width), rank, column)
