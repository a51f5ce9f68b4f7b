"""Streaming SVI against an exact grid posterior; Gibbs repair; fixed-lag SVB = batch VB."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from edgeloop.learning import core
from edgeloop.learning.core import reference
from tests.learning.core.helpers import DIMS, plausible


def test_streaming_svi_matches_the_exact_posterior_of_camera_quality():
    rng = np.random.default_rng(0)
    k1, outcomes = 3, 6
    base = np.full((k1, outcomes), 0.05)
    base[np.arange(k1), 2 * np.arange(k1)] = 0.75
    base /= base.sum(axis=1, keepdims=True)
    quality = np.array([4.0, 40.0])
    conf = np.stack([[rng.dirichlet(q * base[k]) for k in range(k1)] for q in quality])
    windows = [
        np.stack([[rng.multinomial(60, conf[c, k]) for k in range(k1)] for c in range(2)])
        for _ in range(3)
    ]
    q, past, key = core.quality_prior(2), np.zeros_like(windows[0], float), core.prng_key(0)
    for counts in windows:
        key, sub = core.split_key(key)
        q = core.svi_quality(sub, q, base, past, counts, steps=300)
        past = past + counts
    # the exact posterior of log q on a grid (one dimension per camera, independent)
    grid = np.linspace(-3.0, 8.0, 4001)
    prior = core.quality_prior(2)
    for c in range(2):
        ll = np.array(
            [
                float(
                    core.quality_log_likelihood(
                        np.array([g]), base, 0 * past[c : c + 1], past[c : c + 1]
                    )[0]
                )
                for g in grid[::10]
            ]
        )
        ll = np.interp(grid, grid[::10], ll)
        logp = ll - 0.5 * ((grid - float(prior.loc[c])) / float(prior.scale[c])) ** 2
        w = np.exp(logp - logp.max())
        exact_mean = float(np.sum(w * grid) / np.sum(w))
        exact_sd = float(np.sqrt(np.sum(w * (grid - exact_mean) ** 2) / np.sum(w)))
        assert float(q.loc[c]) == pytest.approx(exact_mean, abs=0.25 * exact_sd)
        assert float(q.scale[c]) == pytest.approx(exact_sd, rel=0.3)


def test_gibbs_repairs_wrong_early_assignments_within_the_window():
    truth = plausible(reference.random_spec(DIMS, 21, active=2))
    early, _, _ = reference.simulate(truth, 4, tracks=16, length=20)
    base, _ = core.svb_window(core.prior(DIMS, active=2), core.make_obs_seq(DIMS, **early))
    obs, classes, _ = reference.simulate(truth, 5, tracks=16, length=20)
    # 48 padding tracks (no report; a window is padded to few shapes), all given class 1:
    # members of no species, so they must not pull the real tracks to class 1
    pad = 48
    obs = {k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in obs.items()}
    assign = np.concatenate([classes, np.ones(pad, classes.dtype)])
    wrong = np.array([0, 5, 10])
    assign[wrong] = 1 - assign[wrong]
    result = core.gibbs_run(
        core.prng_key(3), base, core.make_obs_seq(DIMS, **obs), assign, sweeps=10, burn_in=3
    )
    final = np.asarray(result.frequency).argmax(axis=1)
    assert np.array_equal(final[:16], classes)
    assert np.array_equal(np.asarray(result.assign)[16:], np.ones(pad))  # never resampled
    freq = np.asarray(result.frequency)
    np.testing.assert_allclose(freq.sum(axis=1), 1.0, atol=1e-6)
    # the published posterior holds the window's counts once: one per track of a known
    # species; tracks of NEW (the model's prior lets some be drawn) stay out of it
    added = np.asarray(result.posterior.crp) - np.asarray(base.crp)
    assert added[:2].sum() == pytest.approx(np.sum(classes < 2), abs=1e-3)
    assert added[3] == pytest.approx(0.0)


def test_draws_follow_the_posterior():
    post = core.prior(DIMS, active=2, niw_nu=12.0)
    keys = jax.random.split(core.prng_key(0), 2000)
    draws = jax.jit(jax.vmap(core.draw_spec, in_axes=(0, None)))(keys, post)
    np.testing.assert_allclose(np.asarray(draws.trans).sum(axis=-1), 1.0, atol=1e-5)
    want = np.asarray(post.niw_psi[0]) / (12.0 - DIMS.dim - 1)  # E[IW(nu, psi)]
    sigma = np.asarray(draws.emb_scale)[:, 0].mean(axis=0)
    assert np.max(np.abs(sigma - want)) < 0.1 * np.max(np.abs(want))
    mu = np.asarray(draws.emb_loc)[:, 0]
    np.testing.assert_allclose(mu.mean(axis=0), np.asarray(post.niw_mean[0]), atol=0.15)
    df = np.asarray(draws.emb_df)
    assert np.all(np.isinf(df[:, :3]))  # the species are Gaussian draws
    assert np.all(np.isfinite(df[:, 3]))  # NEW stays the Student-t predictive


def test_fixed_lag_covering_every_window_is_batch_vb():
    truth = plausible(reference.random_spec(DIMS, 8, active=2))
    obs, _, _ = reference.simulate(truth, 9, tracks=6, length=40)
    seq = core.make_obs_seq(DIMS, **obs)
    prior = core.prior(DIMS, active=2)
    batch, _ = core.svb_window(prior, seq, sweeps=11)  # the commit is one more E-step
    lagged = core.svb_replay(prior, seq, window=10, lag=4, sweeps=10)
    np.testing.assert_allclose(
        np.asarray(lagged.trans_conc), np.asarray(batch.trans_conc), rtol=1e-4
    )
    np.testing.assert_allclose(np.asarray(lagged.niw_psi), np.asarray(batch.niw_psi), rtol=1e-3)
