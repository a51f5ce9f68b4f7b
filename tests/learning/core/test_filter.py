"""The batched filter against float64 references: loops, SciPy densities, enumeration."""

from __future__ import annotations

import numpy as np
import pytest

from edgeloop.errors import ObservationError
from edgeloop.learning import core
from edgeloop.learning.core import reference
from tests.learning.core.helpers import DIMS


def _run_track(spec: core.YardSpec, obs: dict[str, np.ndarray], n_tracks: int, slot: int):
    p = core.params(spec)
    state = core.init(p, n_tracks)
    beliefs, evidence = [], []
    for t in range(len(obs["start"])):
        row = {key: value[t : t + 1] for key, value in obs.items()}
        batch = core.make_obs_batch(DIMS, n_tracks, track=[slot], **row)
        state = core.step(p, state, batch)
        beliefs.append(np.asarray(state.belief[slot]))
        evidence.append(float(state.log_evidence[slot]))
    return np.array(beliefs), np.array(evidence), state


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_filter_matches_float64_reference(seed):
    spec = reference.random_spec(DIMS, seed, active=2)
    obs = reference.random_observations(DIMS, seed + 100, steps=25)
    beliefs, evidence, _ = _run_track(spec, obs, n_tracks=5, slot=3)
    want_b, want_e = reference.filter_reference(spec, obs)
    assert np.max(np.abs(beliefs - want_b)) <= 1e-5
    np.testing.assert_allclose(evidence, want_e, rtol=1e-5, atol=1e-3)
    assert np.all(beliefs[:, 2, :] == 0.0)  # the inactive slot never gains mass


def test_filter_matches_enumeration_of_all_paths():
    spec = reference.random_spec(DIMS, 7)
    obs = reference.random_observations(DIMS, 8, steps=5)
    obs["steps"][:] = 1
    beliefs, evidence, _ = _run_track(spec, obs, n_tracks=1, slot=0)
    want, log_z = reference.enumerate_reference(spec, obs)
    assert np.max(np.abs(beliefs[-1] - want)) <= 1e-5
    assert evidence[-1] == pytest.approx(log_z, rel=1e-5)


def test_step_touches_only_the_named_tracks_and_padding_is_a_no_op():
    spec = reference.random_spec(DIMS, 3)
    p = core.params(spec)
    state = core.init(p, 6)
    obs = reference.random_observations(DIMS, 4, steps=2)
    rows = {key: value[:2] for key, value in obs.items()}
    batch = core.make_obs_batch(DIMS, 6, track=[4, 1], pad_to=8, **rows)
    after = core.step(p, state, batch)
    changed = np.any(np.asarray(after.belief) != np.asarray(state.belief), axis=(1, 2))
    assert changed.tolist() == [False, True, False, False, True, False]


def test_bad_observations_are_refused_naming_the_field():
    obs = reference.random_observations(DIMS, 0, steps=2)
    good = {key: value[:2] for key, value in obs.items()}
    with pytest.raises(ObservationError) as bad_track:
        core.make_obs_batch(DIMS, 4, track=[0, 0], **good)
    assert bad_track.value.field == "track"
    with pytest.raises(ObservationError) as bad_label:
        core.make_obs_batch(DIMS, 4, track=[0, 1], **{**good, "label": good["label"] + 9})
    assert bad_label.value.field == "label"
    nan = good["embedding"].copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ObservationError) as bad_emb:
        core.make_obs_batch(DIMS, 4, track=[0, 1], **{**good, "embedding": nan})
    assert bad_emb.value.field == "embedding"
    with pytest.raises(ObservationError) as bad_shape:
        core.make_obs_batch(DIMS, 4, track=[0, 1], **{**good, "zone": good["zone"][:, :1]})
    assert bad_shape.value.field == "zone"


def test_decide_closes_only_when_a_cat_is_unlikely():
    dims = core.Dims(classes=2, zones=2, cameras=1, dim=2)
    loss = core.trap_loss(dims, trap_zone=1, targets=[0], protected=[1])
    skunk_in_trap = np.zeros((3, 2), np.float32)
    skunk_in_trap[0, 1] = 1.0
    mostly_skunk = skunk_in_trap * 0.95
    mostly_skunk[1, 1] = 0.05  # a 5% cat in the trap: 0.05 * 100 > 0.95 * 1
    decision = core.decide(np.stack([skunk_in_trap, mostly_skunk]), loss)
    assert decision.action.tolist() == [core.CLOSE, core.OPEN]
    joint = core.decide_joint(
        np.stack([skunk_in_trap, mostly_skunk]), loss, np.array([True, False])
    )
    assert int(joint.action) == core.CLOSE


def test_adding_a_class_swaps_parameters_without_recompiling():
    rng = np.random.default_rng(0)
    post = core.prior(DIMS, active=1)
    p = core.params(core.spec_of(post))
    state = core.init(p, 4)
    obs = reference.random_observations(DIMS, 1, steps=1)
    batch = core.make_obs_batch(DIMS, 4, track=[0], **obs)
    state = core.step(p, state, batch)
    compiled = core.step._cache_size()
    post, slot = core.add_class(post, rng.normal(size=(5, DIMS.dim)) + 6.0)
    state = core.step(core.params(core.spec_of(post)), state, batch)
    assert slot == 1
    assert core.step._cache_size() == compiled


def test_an_embedding_unlike_every_species_is_taken_for_new():
    rng = np.random.default_rng(2)
    post = core.prior(DIMS, active=2, niw_kappa=1.0)
    stats = core.zero_stats(DIMS)
    for k, centre in enumerate([-3.0, 3.0]):
        x = rng.normal(size=(50, DIMS.dim)) * 0.3 + centre
        w, s, o = np.zeros(4), np.zeros((4, DIMS.dim)), np.zeros((4, DIMS.dim, DIMS.dim))
        w[k], s[k], o[k] = 50.0, x.sum(0), x.T @ x
        post = core.svb_update(post, stats._replace(emb_w=w, emb_sum=s, emb_outer=o))
    p = core.params(core.spec_of(post))
    embedding = np.zeros((2, 2, DIMS.dim), np.float32)
    embedding[0], embedding[1] = -3.0, 12.0  # like species 0; unlike anything seen
    known = {  # two tracks seen by camera 0 only, whose device could not tell
        "zone": np.zeros((2, 2), np.int32),
        "label": np.full((2, 2), DIMS.new, np.int32),
        "score": np.full((2, 2), 0.9, np.float32),
        "embedding": embedding,
        "present": np.array([[True, False], [True, False]]),
        "start": np.array([True, True]),
    }
    state = core.step(p, core.init(p, 2), core.make_obs_batch(DIMS, 2, track=[0, 1], **known))
    p_class = np.asarray(state.belief).sum(axis=2)
    assert p_class[0, 0] > 0.99
    assert p_class[1, DIMS.new] > 0.99


def test_a_gap_of_many_ticks_matches_the_matrix_power():
    from edgeloop.learning.core import _filter

    spec = reference.random_spec(DIMS, 4)
    p = core.params(spec)
    rng = np.random.default_rng(4)
    steps = np.array([0, 1, 2, 3, 7, 64, 1000], np.int32)
    tod = rng.integers(0, DIMS.tod_bins, steps.size).astype(np.int32)
    belief = rng.dirichlet(np.ones(np.prod(DIMS.states)), steps.size).reshape(-1, *DIMS.states)
    trans = np.asarray(spec.trans, np.float64)
    want = [
        np.einsum("kz,kzy->ky", b, np.stack([np.linalg.matrix_power(t[h], s) for t in trans]))
        for b, h, s in zip(belief, tod, steps, strict=True)
    ]
    got = np.asarray(_filter._predict_batch(p, belief.astype(np.float32), tod, steps))
    assert np.max(np.abs(got - np.stack(want))) <= 1e-5
