"""The learner's batch path on plain arrays: the one-observation association against the
batched one, the kernel's report grid against the core's ``step``, and decisions summed
on the host against the core's ``decide_joint``."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from edgeloop.learning import core
from edgeloop.learning._kernel import Kernel, Rows, TrapLoss, _run_jit
from edgeloop.learning._tracks import Assignment, Layout, TrackTable, layout
from tests.learning.yard import DIMS, yard_spec

ADJ = np.eye(3, dtype=bool) | np.eye(3, k=1, dtype=bool) | np.eye(3, k=-1, dtype=bool)


def _stream(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` sightings of five animals that wander three zones, with gaps long enough
    that tracks go stale and restart now and then."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=40.0, size=(5, 4))
    animal = rng.integers(0, 5, n)
    ts = np.cumsum(rng.exponential(2.0, n))
    zone = np.clip(animal % 3 + rng.integers(-1, 2, n), 0, 2)
    emb = (centres[animal] + rng.normal(scale=6.0, size=(n, 4))).astype(np.float32)
    return ts, zone, emb


def test_one_observation_takes_the_same_decisions_as_a_batch_of_one() -> None:
    """The scalar path for a single observation and the array path agree on every
    track, start and step count, and leave the same table behind."""
    ts, zone, emb = _stream(400, seed=3)
    quick = TrackTable(8, 4, ADJ, gate=15.0, same_sigma=8.0, diff_sigma=40.0)
    batch = TrackTable(8, 4, ADJ, gate=15.0, same_sigma=8.0, diff_sigma=40.0)
    for i in range(len(ts)):
        one = quick.assign(ts[i : i + 1], zone[i : i + 1], emb[i : i + 1])
        many = batch._assign_batch(ts[i : i + 1], zone[i : i + 1], emb[i : i + 1])
        assert (one.track.tolist(), one.start.tolist(), one.steps.tolist()) == (
            many.track.tolist(),
            many.start.tolist(),
            many.steps.tolist(),
        ), f"observation {i}"
    assert quick.started == batch.started > 5  # tracks did go stale and restart
    for key, value in quick.to_arrays().items():
        np.testing.assert_array_equal(value, batch.to_arrays()[key], err_msg=key)


def _fused_rows(rng: np.random.Generator, b: int) -> Rows:
    """``b`` observations, each seen by both cameras (two reports per row)."""
    m = 2 * b
    return Rows(
        track=np.arange(b),
        start=np.ones(b, bool),
        steps=np.zeros(b, np.int32),
        tod=np.zeros(b, np.int32),
        row=np.repeat(np.arange(b), 2),
        camera=np.tile(np.arange(2, dtype=np.int32), b),
        report_zone=rng.integers(0, 3, m).astype(np.int32),
        report_label=rng.integers(0, 3, m).astype(np.int32),
        report_score=rng.random(m).astype(np.float32),
        report_embedding=rng.normal(scale=30.0, size=(m, 4)).astype(np.float32),
        cameras=2,
    )


def _obs_batch(rows: Rows, n_tracks: int) -> core.ObsBatch:
    """The rows' camera-slot view as the core's batch, for stepping the core alongside."""
    return core.make_obs_batch(
        DIMS,
        n_tracks,
        track=rows.track,
        start=rows.start,
        steps=rows.steps,
        tod=rows.tod,
        present=rows.present,
        zone=rows.zone,
        label=rows.label,
        score=rows.score,
        embedding=rows.embedding,
    )


def _one_round(b: int) -> Layout:
    """``b`` observations of distinct tracks: one round of 16 cells."""
    return Layout(1, 16, np.zeros(b, np.int64), np.arange(b))


def test_the_kernel_filters_fused_rows_as_the_core_step_does() -> None:
    """Twelve observations of two reports each in a grid of 16 cells: the kernel widens
    the grid to hold all 24 reports, and the beliefs equal the core's step over camera
    slots (the rows' slot view, which the trainer uses too)."""
    p = core.params(yard_spec())
    kernel = Kernel(DIMS, p, 16, [])
    rows = _fused_rows(np.random.default_rng(0), 12)
    kernel.run(rows, _one_round(12), np.zeros(16, bool))
    batch = _obs_batch(rows, 16)
    want = core.step(p, core.init(p, 16), batch)
    np.testing.assert_allclose(kernel.belief(), np.asarray(want.belief), atol=1e-6)
    picked = rows.select(np.arange(12) % 3 == 0)
    assert picked.track.tolist() == [0, 3, 6, 9]
    assert picked.row.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    np.testing.assert_array_equal(picked.zone, rows.zone[::3])


def test_decisions_summed_on_the_host_equal_the_core_decision() -> None:
    """After a batch, each trap's action, expected losses and probabilities over the
    live tracks match ``decide_joint`` and the direct sums over every belief."""
    p = core.params(yard_spec())
    traps = [TrapLoss(zone=2, targets=(0,), protected=(1,)), TrapLoss(1, (1,), (0,))]
    kernel = Kernel(DIMS, p, 16, traps)
    rows = _fused_rows(np.random.default_rng(1), 12)
    kernel.run(rows, _one_round(12), np.ones(16, bool))
    live = np.zeros(16, bool)
    live[[0, 3, 4, 7, 13]] = True  # 13: a slot still at the prior
    actions, risks, p_target, p_protected = kernel.decide(live)
    belief = kernel.belief()
    for t, trap in enumerate(traps):
        loss = core.trap_loss(
            DIMS, trap_zone=trap.zone, targets=trap.targets, protected=trap.protected
        )
        want = core.decide_joint(jnp.asarray(belief), loss, jnp.asarray(live))
        assert int(actions[t]) == int(want.action)
        np.testing.assert_allclose(risks[t], np.asarray(want.expected_loss), rtol=1e-5)
        target = belief[live][:, list(trap.targets), trap.zone].sum(1)
        protected = belief[live][:, list(trap.protected), trap.zone].sum(1)
        assert np.isclose(p_target[t], 1.0 - np.prod(1.0 - target), rtol=1e-5)
        assert np.isclose(p_protected[t], 1.0 - np.prod(1.0 - protected), rtol=1e-5)


def test_more_rounds_than_one_call_scans_run_as_several_calls_in_order() -> None:
    """One track seen 70 times, by both cameras each time: 64 rounds, then the other 6,
    with their reports renumbered; the belief equals 70 core steps."""
    p = core.params(yard_spec())
    kernel = Kernel(DIMS, p, 16, [])
    rng = np.random.default_rng(2)
    rows = _fused_rows(rng, 70)
    rows.track = np.full(70, 5)
    rows.start = np.arange(70) == 0
    rows.steps = np.ones(70, np.int32)
    grid = Layout(128, 16, np.arange(70), np.zeros(70, np.int64))
    kernel.run(rows, grid, np.zeros(16, bool))
    want = core.init(p, 16)
    for i in range(70):
        one = rows.select(np.arange(70) == i)
        batch = _obs_batch(one, 16)
        want = core.step(p, want, batch)
    np.testing.assert_allclose(kernel.belief(), np.asarray(want.belief), atol=1e-5)


def test_a_batch_no_compiled_shape_holds_runs_as_compiled_pieces_in_order() -> None:
    """Twelve tracks seen one to eight times each, every sighting by both cameras:
    8 rounds of 12 cells and up to 24 reports a round, against compiled shapes of at
    most 4 x 16. Nothing new is compiled (four pieces), and every belief equals the
    track's observations stepped through the core one by one."""
    p = core.params(yard_spec())
    kernel = Kernel(DIMS, p, 32, [])
    kernel.warm([(1, 16), (4, 16)])
    compiled = _run_jit._cache_size()
    rng = np.random.default_rng(4)
    counts = rng.integers(1, 9, 12)
    counts[0] = 8
    track = np.repeat(np.arange(12), counts)
    rng.shuffle(track)
    ts = np.arange(len(track), dtype=np.float64)
    assignment = Assignment(track, np.zeros(len(track), bool), np.ones(len(track), np.int32))
    grid = layout(assignment, ts)
    assert (grid.rounds, grid.width) == (8, 16)
    rows = _fused_rows(rng, len(track))
    rows.track = track
    rows.start = np.zeros(len(track), bool)
    rows.steps = np.ones(len(track), np.int32)
    kernel.run(rows, grid, np.zeros(32, bool))
    assert _run_jit._cache_size() == compiled
    want = core.init(p, 32)
    for i in range(len(track)):  # in time order: each track's observations in order
        one = rows.select(np.arange(len(track)) == i)
        batch = _obs_batch(one, 32)
        want = core.step(p, want, batch)
    np.testing.assert_allclose(kernel.belief(), np.asarray(want.belief), atol=1e-5)
