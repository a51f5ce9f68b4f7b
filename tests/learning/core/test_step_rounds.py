"""``step_rounds`` (per-report likelihoods, then a scan over rounds) against ``step``."""

from __future__ import annotations

import jax
import numpy as np

from edgeloop.learning import core
from edgeloop.learning.core import reference
from tests.learning.core.helpers import DIMS

_rounds = jax.jit(core.step_rounds)


def test_rounds_of_reports_filter_as_steps_of_camera_slots() -> None:
    """Three rounds over five tracks, some cells empty, some observations seen by both
    cameras, the reports in shuffled order with padding: the same beliefs and evidence
    as one ``step`` per round."""
    spec = reference.random_spec(DIMS, 5, active=2)
    p = core.params(spec)
    n, rounds, width = 6, 3, 4
    rng = np.random.default_rng(1)
    tracks = [np.array([0, 2, 4]), np.array([2, 4, 1, 0]), np.array([1])]
    obs = reference.random_observations(DIMS, 9, steps=sum(len(t) for t in tracks))
    obs["silent"][:] = False  # a RoundBatch carries reports only
    obs["start"][:] = False
    obs["start"][:3] = True
    want = core.init(p, n)
    cells = {k: np.zeros((rounds, width), np.int32) for k in ("track", "steps", "tod")}
    cells["track"][:] = n
    start = np.zeros((rounds, width), bool)
    reports: list[tuple[int, int, int, int, float, np.ndarray]] = []
    i = 0
    for r, round_tracks in enumerate(tracks):
        b = len(round_tracks)
        rows = {key: value[i : i + b] for key, value in obs.items()}
        want = core.step(p, want, core.make_obs_batch(DIMS, n, track=round_tracks, **rows))
        for w in range(b):
            cells["track"][r, w] = round_tracks[w]
            start[r, w] = rows["start"][w]
            cells["steps"][r, w] = rows["steps"][w]
            cells["tod"][r, w] = rows["tod"][w]
            for c in np.flatnonzero(rows["present"][w]):
                reports.append(
                    (
                        r * width + w,
                        int(c),
                        int(rows["zone"][w, c]),
                        int(rows["label"][w, c]),
                        float(rows["score"][w, c]),
                        rows["embedding"][w, c],
                    )
                )
        i += b
    assert len(reports) > i  # some observations were seen by both cameras
    order = rng.permutation(len(reports))
    m = rounds * width
    cell = np.full(m, m, np.int32)
    camera, zone, label = (np.zeros(m, np.int32) for _ in range(3))
    score = np.zeros(m, np.float32)
    embedding = np.zeros((m, DIMS.dim), np.float32)
    for slot, k in enumerate(order):
        cell[slot], camera[slot], zone[slot], label[slot], score[slot], embedding[slot] = reports[k]
    batch = core.RoundBatch(
        track=cells["track"],
        start=start,
        steps=cells["steps"],
        tod=cells["tod"],
        cell=cell,
        camera=camera,
        zone=zone,
        label=label,
        score=score,
        embedding=embedding,
    )
    got = _rounds(p, core.init(p, n), batch)
    np.testing.assert_allclose(np.asarray(got.belief), np.asarray(want.belief), atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(got.log_evidence), np.asarray(want.log_evidence), rtol=1e-5, atol=1e-4
    )
    assert np.all(np.asarray(got.belief)[[3, 5]] == np.asarray(core.init(p, n).belief)[[3, 5]])
