"""Blocked Gibbs over a sliding window of tracks: the repair of early mistakes.

Streaming updates never revisit a track once its statistics are added; if an early
track was taken for the wrong species, that error stays in the counts. The repair
resamples the window from scratch, starting from the posterior *before* the window
(``base``), with three kinds of move per sweep:

1. parameters | assignments, zones: conjugate draws (Dirichlet rows, Beta detection,
   Normal-Inverse-Wishart per species) from ``base`` plus the window's hard counts;
2. species of track i | everything else: a CRP move, p(s_i = k) proportional to
   (n_k without i) * p(y_i | k), the evidence coming from a forward filter over zones
   of each class at once; NEW has weight alpha plus its members and the Student-t
   predictive of its members so far (one NEW cluster per window: a truncation);
3. zones of track i | its species: forward-filter backward-sample (FFBS).

Tracks are visited in a random order each sweep (random scan). :func:`gibbs_run`
returns the assignment frequencies after burn-in and the posterior with the window's
averaged counts, for the shells to publish as a snapshot.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from edgeloop.learning.core._filter import _log_likelihood_parts
from edgeloop.learning.core._model import EXACT, Params, YardSpec, params, prior_belief
from edgeloop.learning.core._posterior import Posterior, SuffStats, add_stats, spec_of
from edgeloop.learning.core._smoother import ObsSeq, _power, _stats_one

__all__ = ["GibbsResult", "gibbs_run", "draw_spec"]


class GibbsResult(NamedTuple):
    """``assign`` int32[M] (the last sweep's species per track), ``frequency`` [M, K1]
    (how often each track was each class after burn-in), ``zones`` int32[M, T] (the last
    sample), ``posterior`` (``base`` plus the window's counts averaged after burn-in)."""

    assign: Array
    frequency: Array
    zones: Array
    posterior: Posterior


def _inverse_wishart(chi2: Array, normal: Array, psi: Array) -> Array:
    """Sigma ~ IW(nu, psi) by Bartlett's decomposition of its inverse, given the draws
    ``chi2`` [D] (chi-square with nu - i degrees of freedom) and ``normal`` [D, D]."""
    bartlett = jnp.tril(normal, -1) + jnp.diag(jnp.sqrt(chi2))
    chol_prec = jnp.linalg.cholesky(jnp.linalg.inv(psi))
    inv = jnp.linalg.inv(
        jnp.matmul(chol_prec, bartlett, precision=EXACT)
    )  # precision = (L B)(L B)^T
    sigma: Array = jnp.matmul(inv.T, inv, precision=EXACT)
    return sigma


def draw_spec(key: Array, post: Posterior) -> YardSpec:
    """A model drawn from ``post``: Dirichlet/Beta rows and a Gaussian per species.

    NEW keeps its Student-t posterior predictive (collapsed), so an empty NEW cluster
    is the prior predictive rather than one arbitrary draw from the prior. Every gamma
    variate comes from one ``jax.random.gamma`` call (each call compiles a rejection
    sampler, so one call keeps compiles short).
    """
    k_gamma, k_norm, k_mu = jax.random.split(key, 3)
    mean = spec_of(post)
    k1, d = post.niw_mean.shape
    conc = (
        post.init_conc,
        post.trans_conc,
        post.zone_conc,
        post.label_conc,
        post.detect_conc,
        0.5 * (post.niw_nu[:, None] - jnp.arange(d)[None, :]),
    )
    flat = jnp.concatenate([c.reshape(-1) for c in conc])
    gammas = jax.random.gamma(k_gamma, flat)
    parts, offset = [], 0
    for c in conc:
        parts.append(gammas[offset : offset + c.size].reshape(c.shape))
        offset += c.size
    init, trans, zone, label, detect, half_chi2 = parts
    sigma = jax.vmap(_inverse_wishart)(
        2.0 * half_chi2, jax.random.normal(k_norm, (k1, d, d)), post.niw_psi
    )
    chol = jnp.linalg.cholesky(sigma / post.niw_kappa[:, None, None])
    mu = post.niw_mean + jnp.einsum(
        "kij,kj->ki", chol, jax.random.normal(k_mu, (k1, d)), precision=EXACT
    )
    new = jnp.arange(k1) == k1 - 1

    def rows(g: Array) -> Array:
        return g / jnp.sum(g, axis=-1, keepdims=True)

    return mean._replace(
        init_zone=rows(init),
        trans=rows(trans),
        zone_obs=rows(zone),
        detect=rows(detect)[..., 0],
        label=rows(label),
        emb_loc=jnp.where(new[:, None], mean.emb_loc, mu),
        emb_scale=jnp.where(new[:, None, None], mean.emb_scale, sigma),
        emb_df=jnp.where(new, mean.emb_df, jnp.inf),
    )


def _hard_stats(p_trans: Array, window: ObsSeq, assign: Array, zones: Array) -> tuple[Array, Array]:
    """One-hot "marginals" [M, T, K1, Z] and two-slice counts of sampled paths."""
    k1, z = p_trans.shape[0], p_trans.shape[-1]
    species = jax.nn.one_hot(assign, k1)
    onehot = species[:, None, :, None] * jax.nn.one_hot(zones, z)[:, :, None, :]
    prev = jnp.concatenate([zones[:, :1], zones[:, :-1]], axis=1)
    pair = jax.nn.one_hot(prev, z)[..., :, None] * jax.nn.one_hot(zones, z)[..., None, :]
    xi = species[:, None, :, None, None] * pair[:, :, None]
    moved = (~window.start & (window.steps == 1)).astype(xi.dtype)
    return onehot, xi * moved[..., None, None, None]


def _window_stats(p: Params, window: ObsSeq, assign: Array, zones: Array) -> SuffStats:
    onehot, xi = _hard_stats(p.trans, window, assign, zones)
    per = jax.vmap(_stats_one, in_axes=(None, 0, 0, 0))(p, window, onehot, xi)
    return SuffStats(*(jnp.sum(a, axis=0) for a in per))


def _ffbs(key: Array, log_class_prior: Array, p: Params, seq: ObsSeq) -> tuple[Array, Array]:
    """Sample (class, zone path) of one track from the joint forward filter."""
    pp = p._replace(log_class_prior=log_class_prior)
    prior = prior_belief(pp)
    lls, _ = jax.vmap(_log_likelihood_parts, in_axes=(None, 0))(pp, seq)  # [T, K1, Z]
    moves = jax.vmap(lambda tod, n: _power(pp.trans[:, tod], n))(seq.tod, seq.steps)

    def forward(prev: Array, xs: tuple[Array, Array, Array]) -> tuple[Array, Array]:
        start, move, ll = xs
        pred = jnp.where(start, prior, jnp.einsum("kz,kzy->ky", prev, move, precision=EXACT))
        joint = jnp.log(pred) + ll
        weights = jnp.exp(joint - jnp.max(joint))
        filt = weights / jnp.sum(weights)
        return filt, filt

    last, filt = jax.lax.scan(forward, prior, (seq.start, moves, lls))
    k_class, k_last, k_path = jax.random.split(key, 3)
    species = jax.random.categorical(k_class, jnp.log(jnp.sum(last, axis=1)))
    z_last = jax.random.categorical(k_last, jnp.log(last[species]))
    steps = seq.start.shape[0]

    def backward(after: Array, t: Array) -> tuple[Array, Array]:
        logits = jnp.log(filt[t, species]) + jnp.log(moves[t + 1, species, :, after])
        z = jax.random.categorical(jax.random.fold_in(k_path, t), logits)
        return z, z

    _, path = jax.lax.scan(backward, z_last, jnp.arange(steps - 1), reverse=True)
    return species, jnp.concatenate([path, z_last[None]])


_Carry = tuple[Array, Array, SuffStats, Array]  # assign, zones, summed stats, frequencies
_Visit = tuple[Array, Array, Array]  # assign, zones, class counts


@functools.partial(jax.jit, static_argnames=("sweeps", "burn_in"))
def gibbs_run(
    key: Array, base: Posterior, window: ObsSeq, assign: Array, sweeps: int = 20, burn_in: int = 5
) -> GibbsResult:
    """Run ``sweeps`` blocked-Gibbs sweeps over a window of M tracks [M, T] that each begin
    at row 0, starting from the species ``assign`` [M] the streaming learner gave them.

    ``base`` is the posterior before the window (the snapshot taken when the window's
    first track began); the window's own counts are resampled, never double counted.
    """
    m = window.start.shape[0]
    k1 = base.crp.shape[0]
    learn = base.active
    shape = params(spec_of(base))  # only its score edges and shapes are read for counting
    # A track with no report is padding (windows are padded to few shapes): it is no
    # member of any species (the CRP counts) and is never resampled.
    real = jnp.any(window.present, axis=(1, 2))
    member = real.astype(jnp.float32)[:, None]

    def sweep(carry: _Carry, xs: tuple[Array, Array]) -> tuple[_Carry, None]:
        assign, zones, acc, freq = carry
        k, i = xs
        keep = (i > burn_in).astype(jnp.float32)  # the state the previous sweep left
        k_draw, k_order, k_tracks = jax.random.split(k, 3)
        stats = _window_stats(shape, window, assign, zones)
        acc = jax.tree.map(lambda a, b: a + keep * b, acc, stats)
        p = params(draw_spec(k_draw, add_stats(base, stats, learn)))
        counts = jnp.sum(jax.nn.one_hot(assign, k1) * member, axis=0)

        def visit(state: _Visit, i: Array) -> tuple[_Visit, None]:
            assign, zones, counts = state
            without = counts - jax.nn.one_hot(assign[i], k1) * member[i]
            weight = jnp.where(learn, base.crp + without, 0.0)
            seq = jax.tree.map(lambda a: a[i], window)
            species, path = _ffbs(jax.random.fold_in(k_tracks, i), jnp.log(weight), p, seq)
            species = jnp.where(real[i], species, assign[i])
            path = jnp.where(real[i], path, zones[i])
            counts = without + jax.nn.one_hot(species, k1) * member[i]
            return (assign.at[i].set(species), zones.at[i].set(path), counts), None

        order = jax.random.permutation(k_order, m)
        (assign, zones, _), _ = jax.lax.scan(visit, (assign, zones, counts), order)
        kept = (i >= burn_in).astype(jnp.float32)
        return (assign, zones, acc, freq + kept * jax.nn.one_hot(assign, k1)), None

    # The first pass only samples zones for the given species (no parameter is drawn
    # from all-zero zones): a FFBS under the base posterior's mean model.
    p0 = params(spec_of(base))
    zones0 = jax.vmap(lambda key, seq, s: _ffbs(key, jnp.log(jax.nn.one_hot(s, k1)), p0, seq)[1])(
        jax.random.split(jax.random.fold_in(key, sweeps), m), window, assign
    )
    zero = jax.tree.map(jnp.zeros_like, _window_stats(shape, window, assign, zones0))
    carry = (assign.astype(jnp.int32), zones0, zero, jnp.zeros((m, k1)))
    (assign, zones, acc, freq), _ = jax.lax.scan(
        sweep, carry, (jax.random.split(key, sweeps), jnp.arange(sweeps))
    )
    n_kept = sweeps - burn_in
    # acc summed the states left by sweeps burn_in .. sweeps - 2 (each read at the start
    # of the next sweep); the final state completes the kept ones.
    final = _window_stats(shape, window, assign, zones)
    mean_stats = jax.tree.map(lambda a, b: a / n_kept + b / n_kept, acc, final)
    return GibbsResult(
        assign=assign,
        frequency=freq / n_kept,
        zones=zones,
        posterior=add_stats(base, mean_stats, learn.at[-1].set(False)),
    )
