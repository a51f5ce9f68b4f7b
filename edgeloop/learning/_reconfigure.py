"""Where to point a camera: at the zone where the most uncertain track most likely is.

Pure numpy over the filter's beliefs. A track's uncertainty is the entropy of its zone
marginal; the learner steers the camera that can see the likeliest zone of the most
uncertain live track, and raises its report rate, so the next reports settle it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["most_uncertain", "MIN_ENTROPY"]

MIN_ENTROPY = 0.3
"""Nats of zone entropy below which no track is worth steering a camera for."""


def most_uncertain(
    belief: np.ndarray, live: np.ndarray, steerable: Mapping[int, Sequence[int]]
) -> tuple[int, int] | None:
    """``(camera, zone)`` to point at, or None when no live track is uncertain enough.

    ``belief`` is ``[N, K1, Z]``, ``live`` bool ``[N]``, ``steerable`` maps a camera slot
    to the zones it can be pointed at.
    """
    tracks = np.flatnonzero(live)
    if tracks.size == 0 or not steerable:
        return None
    zones = belief[tracks].sum(axis=1)  # [n, Z]
    zones = zones / np.maximum(zones.sum(axis=1, keepdims=True), 1e-30)
    entropy = -(zones * np.log(np.maximum(zones, 1e-30))).sum(axis=1)
    worst = int(np.argmax(entropy))
    if entropy[worst] < MIN_ENTROPY:
        return None
    best: tuple[float, int, int] | None = None
    for camera, reachable in sorted(steerable.items()):
        for zone in reachable:
            mass = float(zones[worst, zone])
            if best is None or mass > best[0]:
                best = (mass, camera, zone)
    return None if best is None else (best[1], best[2])
