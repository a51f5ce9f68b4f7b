"""A small, clear yard for the shells' tests: skunk and cat, three zones, two cameras.

The model is informative on purpose (a camera's label is right 90% of the time, the two
species' embeddings lie far apart), so a test can say what the learner must conclude.
"""

from __future__ import annotations

import numpy as np

from edgeloop.learning import core
from edgeloop.learning._config import LearnerConfig, TrapConfig
from edgeloop.messages import Event

DIMS = core.Dims(classes=2, zones=3, cameras=2, tod_bins=1, score_bins=1, dim=4)
ZONES = ("lawn", "porch", "trap")
CAMERAS = ("cam-a", "cam-b")
LABELS = ("skunk", "cat")
CENTRES = {"skunk": np.array([40, -40, 0, 0]), "cat": np.array([-40, 40, 0, 0])}


def yard_spec() -> core.YardSpec:
    k1, z, c = DIMS.classes + 1, DIMS.zones, DIMS.cameras
    stay = 0.8
    trans = np.full((k1, 1, z, z), (1 - stay) / (z - 1))
    trans[:, 0, np.arange(z), np.arange(z)] = stay
    label = np.full((c, k1, k1), 0.05)
    for cam in range(c):
        label[cam, np.arange(k1), np.arange(k1)] = 0.9
    label /= label.sum(axis=2, keepdims=True)
    loc = np.zeros((k1, DIMS.dim))
    loc[0] = CENTRES["skunk"]
    loc[1] = CENTRES["cat"]
    return core.YardSpec(
        class_prior=np.array([0.45, 0.45, 0.1]),
        init_zone=np.full((k1, z), 1 / z),
        trans=trans,
        zone_obs=np.tile(0.9 * np.eye(z) + 0.1 / z, (c, 1, 1)),
        detect=np.full((c, z), 0.8),
        label=label,
        emb_loc=loc,
        emb_scale=np.tile(np.eye(DIMS.dim) * 100.0, (k1, 1, 1)),
        emb_df=np.array([np.inf, np.inf, 5.0]),
        score_edges=np.zeros(0),
    )


def config(**overrides: object) -> LearnerConfig:
    base: dict[str, object] = {
        "spec": yard_spec(),
        "dims": DIMS,
        "cameras": CAMERAS,
        "zones": ZONES,
        "labels": LABELS,
        "adjacency": {"lawn": ["porch"], "porch": ["trap"]},
        "traps": (TrapConfig(device="trap-1", zone="trap", twin="/yard/trap-1"),),
        "tracks": 16,
        "snapshot_every": None,
        "warm_shapes": ((1, 16),),
    }
    base.update(overrides)
    return LearnerConfig(**base)  # type: ignore[arg-type]


def sighting(
    device: str, seq: int, ts: float, species: str, zone: str, *, jitter: int = 0
) -> Event:
    """What a camera reports when it sees ``species`` in ``zone``."""
    emb = (CENTRES[species] + jitter).astype(np.int8).tobytes()
    return Event(
        device=device,
        seq=seq,
        ts=ts,
        zone=zone,
        label=species,
        score=0.9,
        embedding=emb,
        head_version=1,
        config_version=1,
    )


TEST_SHAPES = tuple((rounds, 16) for rounds in (1, 2, 4, 8, 16, 32, 64))
"""The (rounds, width) buckets the tests' batches fall in."""


def warm(cfg: LearnerConfig) -> None:
    """Compile the batch step for ``cfg``'s shapes in this process (the compilation cache
    is shared by every learner of the same model), so learners start within a timeout."""
    from edgeloop.learning import core
    from edgeloop.learning._kernel import Kernel, TrapLoss

    traps = [
        TrapLoss(cfg.zones.index(t.zone), (LABELS.index("skunk"),), (LABELS.index("cat"),))
        for t in cfg.traps
    ]
    Kernel(cfg.dims, core.params(cfg.spec), cfg.tracks, traps).warm(TEST_SHAPES)
