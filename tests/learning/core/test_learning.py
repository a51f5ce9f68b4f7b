"""Smoother, expected statistics, streaming VB and class addition against references."""

from __future__ import annotations

import numpy as np
import pytest

from edgeloop.errors import ClassCapacityError, LearningError
from edgeloop.learning import core
from edgeloop.learning.core import reference
from tests.learning.core.helpers import DIMS, plausible


def _seq(obs: dict[str, np.ndarray]) -> core.ObsSeq:
    return core.make_obs_seq(DIMS, **{key: value[None] for key, value in obs.items()})


def test_smoother_and_transition_counts_match_enumeration():
    spec = reference.random_spec(DIMS, 11, active=2)
    obs = reference.random_observations(DIMS, 12, steps=5)
    obs["steps"][:] = 1
    p = core.params(spec)
    smoothed = core.smooth(p, _seq(obs))
    want_marg, want_counts = reference.enumerate_smoother(spec, obs)
    assert np.max(np.abs(np.asarray(smoothed.smoothed[0]) - want_marg)) <= 1e-5
    want_filt, want_ev = reference.filter_reference(spec, obs)
    assert np.max(np.abs(np.asarray(smoothed.filtered[0]) - want_filt)) <= 1e-5
    assert float(smoothed.log_evidence[0]) == pytest.approx(want_ev[-1], rel=1e-5)
    stats, last = core.expected_stats(p, _seq(obs))
    assert np.max(np.abs(np.asarray(stats.trans) - want_counts)) <= 1e-5
    assert np.max(np.abs(np.asarray(last[0]) - want_filt[-1])) <= 1e-5
    # one track: the class counts are its class posterior, the initial zones its t=0 marginal
    np.testing.assert_allclose(np.asarray(stats.init), want_marg[0], atol=1e-5)
    assert float(np.sum(stats.crp)) == pytest.approx(1.0, abs=1e-5)


def test_padding_rows_change_nothing():
    spec = reference.random_spec(DIMS, 3)
    obs = reference.random_observations(DIMS, 4, steps=6)
    padded = {key: np.concatenate([value, np.zeros_like(value[:3])]) for key, value in obs.items()}
    p = core.params(spec)
    short, _ = core.expected_stats(p, _seq(obs))
    long, last = core.expected_stats(p, _seq(padded))
    for a, b in zip(short, long, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    want, _ = reference.filter_reference(spec, obs)
    assert np.max(np.abs(np.asarray(last[0]) - want[-1])) <= 1e-5


def test_niw_update_and_student_t_predictive_match_the_textbook():
    x = np.random.default_rng(0).normal(size=(20, DIMS.dim)) + 3.0
    emb_w, emb_sum, emb_outer = (
        np.zeros(4),
        np.zeros((4, DIMS.dim)),
        np.zeros((4, DIMS.dim, DIMS.dim)),
    )
    emb_w[0], emb_sum[0], emb_outer[0] = 20.0, x.sum(0), x.T @ x
    stats = core.zero_stats(DIMS)._replace(emb_w=emb_w, emb_sum=emb_sum, emb_outer=emb_outer)
    new = core.svb_update(core.prior(DIMS, active=2, niw_kappa=0.5, niw_nu=7.0), stats)
    k0, nu0, psi0 = 0.5, 7.0, np.eye(DIMS.dim) * (7.0 - DIMS.dim - 1)
    xbar = x.mean(0)
    kn, nun = k0 + 20, nu0 + 20
    psin = psi0 + (x - xbar).T @ (x - xbar) + k0 * 20 / kn * np.outer(xbar, xbar)
    assert float(new.niw_kappa[0]) == pytest.approx(kn)
    assert float(new.niw_nu[0]) == pytest.approx(nun)
    np.testing.assert_allclose(np.asarray(new.niw_mean[0]), 20 * xbar / kn, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(new.niw_psi[0]), psin, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(new.niw_psi[1]), psi0)  # class 1 saw nothing
    np.testing.assert_allclose(np.asarray(new.niw_psi[3]), psi0)  # NEW stays the prior
    spec = core.spec_of(new)
    df = nun - DIMS.dim + 1
    assert float(spec.emb_df[0]) == pytest.approx(df)
    want_scale = psin * (kn + 1) / (kn * df)
    np.testing.assert_allclose(np.asarray(spec.emb_scale[0]), want_scale, rtol=1e-4)


def test_add_class_fills_the_free_slot_then_refuses():
    post = core.prior(DIMS, active=2)
    x = np.random.default_rng(1).normal(size=(5, DIMS.dim)) + 4.0
    post, slot = core.add_class(post, x)
    assert slot == 2
    assert np.asarray(post.active).tolist() == [True, True, True, True]
    assert float(post.niw_kappa[2]) == pytest.approx(float(post.niw_kappa[3]) + 5)
    spec = core.spec_of(post)
    assert float(spec.class_prior[2]) > 0
    with pytest.raises(ClassCapacityError, match="class slots"):
        core.add_class(post, x)
    with pytest.raises(LearningError, match="embeddings"):
        core.add_class(core.prior(DIMS, active=1), np.zeros((0, DIMS.dim)))


def test_streaming_vb_recovers_transitions_of_simulated_tracks():
    truth = plausible(reference.random_spec(DIMS, 21, active=2), wrong_label=0.05)
    post = core.prior(DIMS, active=2)
    for window in range(4):
        obs, _, _ = reference.simulate(truth, 100 + window, tracks=16, length=20)
        post, last = core.svb_window(post, core.make_obs_seq(DIMS, **obs))
    learnt = np.asarray(core.spec_of(post).trans)[:2, 0]
    err = np.max(np.abs(learnt - np.asarray(truth.trans)[:2, 0]))
    assert err < 0.15, err
    assert last.shape == (16, 4, 3)
