"""One small model shape for every core test (so jitted functions compile once per shape)
and a plausible yard model: cameras mostly right about zone and label."""

from __future__ import annotations

import numpy as np

from edgeloop.learning import core

DIMS = core.Dims(classes=3, zones=3, cameras=2, tod_bins=2, score_bins=2, dim=4)


def plausible(spec: core.YardSpec, wrong_label: float = 0.3) -> core.YardSpec:
    """``spec`` with cameras that are mostly right about zone and label (as the prior
    expects), so that learning from it is identifiable; ``wrong_label`` is the weight of
    each wrong label against 1 for the right one."""
    z, k1, s = DIMS.zones, DIMS.classes + 1, DIMS.score_bins
    label = np.full((k1, k1), wrong_label)
    np.fill_diagonal(label, 1.0)
    label = np.repeat(label / label.sum(1, keepdims=True), s, axis=1) / s
    return spec._replace(
        zone_obs=np.broadcast_to(0.8 * np.eye(z) + 0.2 / z, (DIMS.cameras, z, z)),
        label=np.broadcast_to(label, (DIMS.cameras, k1, k1 * s)),
    )
