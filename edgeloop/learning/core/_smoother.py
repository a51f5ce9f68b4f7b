"""Forward-backward over whole tracks: smoothed beliefs and expected sufficient statistics.

The learning half of the core. A window of M tracks, each a sequence of T fused
observations (:class:`ObsSeq`, padded with rows that have no camera), is filtered
forwards and smoothed backwards in one ``lax.scan`` each, ``vmap``-ed over tracks; the
smoothed marginals and two-slice marginals give the expected counts that
:func:`~edgeloop.learning.core.svb_update` adds to the posterior. :func:`svb_window` is
streaming VB for one window: a few VB-EM sweeps, then the posterior is the next prior.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from edgeloop.errors import ObservationError
from edgeloop.learning.core._filter import (
    ObsBatch,
    _bool_array,
    _float_array,
    _int_array,
    _log_likelihood_parts,
)
from edgeloop.learning.core._model import EXACT, Dims, Params, params, prior_belief
from edgeloop.learning.core._posterior import Posterior, SuffStats, spec_of, svb_update

__all__ = [
    "ObsSeq",
    "Smoothed",
    "make_obs_seq",
    "padding_obs_seq",
    "smooth",
    "expected_stats",
    "svb_window",
    "svb_lagged",
    "svb_replay",
]

ObsSeq = ObsBatch
"""A window of tracks: the fields of :class:`ObsBatch` with leading axes [M, T] (``track``
is unused). A row with no camera present or silent and ``steps = 0`` changes nothing,
which is how shorter tracks are padded."""


class Smoothed(NamedTuple):
    """Per track: ``filtered`` and ``smoothed`` beliefs [M, T, K1, Z], ``log_evidence``
    [M] (log p(all its rows)), and ``last`` [M, K1, Z] (the filtered belief after the
    last row, to carry a track into the next window)."""

    filtered: Array
    smoothed: Array
    log_evidence: Array
    last: Array


def make_obs_seq(dims: Dims, **fields: object) -> ObsSeq:
    """Check and pack a window [M, T] (keyword arguments as :func:`make_obs_batch`, less
    ``track``; every field required except ``silent``). Raises ObservationError."""
    zone = np.asarray(fields.get("zone"))
    if zone.ndim != 3 or zone.shape[2] != dims.cameras:
        raise ObservationError("zone", f"expected shape [M, T, {dims.cameras}], got {zone.shape}")
    m, t, c = zone.shape
    silent = fields.get("silent")
    arrays = (
        np.zeros((m, t), np.int32),
        _bool_array("start", fields.get("start"), (m, t)),
        _int_array("steps", fields.get("steps"), (m, t), 2**20),
        _int_array("tod", fields.get("tod"), (m, t), dims.tod_bins),
        _bool_array("present", fields.get("present"), (m, t, c)),
        np.zeros((m, t, c), np.bool_)
        if silent is None
        else _bool_array("silent", silent, (m, t, c)),
        _int_array("zone", zone, (m, t, c), dims.zones),
        _int_array("label", fields.get("label"), (m, t, c), dims.classes + 1),
        _float_array("score", fields.get("score"), (m, t, c)),
        _float_array("embedding", fields.get("embedding"), (m, t, c, dims.dim)),
    )
    return ObsSeq(*(jnp.asarray(a) for a in arrays))


def padding_obs_seq(dims: Dims, tracks: int, rows: int) -> ObsSeq:
    """A window [tracks, rows] of padding only (no camera present): what a shell runs once
    to compile a window shape before real windows come."""
    m, t, c = tracks, rows, dims.cameras
    return make_obs_seq(
        dims,
        start=np.zeros((m, t), bool),
        steps=np.zeros((m, t), np.int32),
        tod=np.zeros((m, t), np.int32),
        present=np.zeros((m, t, c), bool),
        zone=np.zeros((m, t, c), np.int32),
        label=np.zeros((m, t, c), np.int32),
        score=np.zeros((m, t, c), np.float32),
        embedding=np.zeros((m, t, c, dims.dim), np.float32),
    )


def _power(trans: Array, steps: Array) -> Array:
    eye = jnp.broadcast_to(jnp.eye(trans.shape[-1], dtype=trans.dtype), trans.shape)
    out: Array = jax.lax.fori_loop(
        0, steps, lambda _, m: jnp.matmul(m, trans, precision=EXACT), eye
    )
    return out


def _smooth_one(p: Params, seq: ObsSeq, first: Array) -> tuple[Array, Array, Array, Array]:
    prior = prior_belief(p)
    # Every row's likelihood and tick matrix at once; the scans then only multiply.
    lls, consts = jax.vmap(_log_likelihood_parts, in_axes=(None, 0))(p, seq)  # [T, K1, Z]
    moves = jax.vmap(lambda tod, n: _power(p.trans[:, tod], n))(seq.tod, seq.steps)

    def forward(prev: Array, xs: tuple[Array, Array, Array]) -> tuple[Array, tuple[Array, ...]]:
        start, move, ll = xs
        pred = jnp.where(start, prior, jnp.einsum("kz,kzy->ky", prev, move, precision=EXACT))
        joint = jnp.log(pred) + ll
        top = jnp.max(joint)
        weights = jnp.exp(joint - top)
        total = jnp.sum(weights)
        filt = weights / total
        return filt, (filt, pred, top + jnp.log(total))

    last, (filt, pred, incr) = jax.lax.scan(forward, first, (seq.start, moves, lls))
    prev_filt = jnp.concatenate([first[None], filt[:-1]], axis=0)

    def backward(after: Array, xs: tuple[Array, ...]) -> tuple[Array, tuple[Array, Array]]:
        # after = smoothed belief at t; returns the smoothed belief at t - 1 and xi_t
        start, steps, move, pred_t, prev_t = xs
        ratio = jnp.where(pred_t > 0, after / jnp.where(pred_t > 0, pred_t, 1.0), 0.0)
        xi = prev_t[:, :, None] * move * ratio[:, None, :]
        before = jnp.where(start, prev_t, jnp.sum(xi, axis=2))
        counted = jnp.where(start | (steps != 1), 0.0, xi)
        return before, (after, counted)

    xs = (seq.start, seq.steps, moves, pred, prev_filt)
    _, (smoothed, xi) = jax.lax.scan(backward, last, xs, reverse=True)
    return filt, smoothed, xi, jnp.sum(incr) + jnp.sum(consts)


def _stats_one(p: Params, seq: ObsSeq, smoothed: Array, xi: Array) -> SuffStats:
    h = p.trans.shape[1]
    bins = jnp.sum(seq.score[..., None] >= p.score_edges, axis=-1)
    outcome = seq.label * (p.score_edges.shape[0] + 1) + bins  # [T, C]
    pres = seq.present.astype(smoothed.dtype)  # [T, C]
    sil = seq.silent.astype(smoothed.dtype)
    zone_b = smoothed.sum(axis=1)  # [T, Z]
    class_b = smoothed.sum(axis=2)  # [T, K1]
    n_zone = p.log_zone_obs.shape[-1]
    starts = seq.start.astype(smoothed.dtype)
    zone_onehot = jax.nn.one_hot(seq.zone, n_zone)  # [T, C, Z]
    out_onehot = jax.nn.one_hot(outcome, p.log_label.shape[-1])  # [T, C, O]
    tod_onehot = jax.nn.one_hot(seq.tod, h)  # [T, H]
    w = jnp.einsum("tc,tk->tck", pres, class_b, precision=EXACT)  # [T, C, K1]
    x = seq.embedding  # [T, C, D]
    return SuffStats(
        crp=jnp.einsum("t,tk->k", starts, class_b, precision=EXACT),
        init=jnp.einsum("t,tkz->kz", starts, smoothed, precision=EXACT),
        trans=jnp.einsum("th,tkzy->khzy", tod_onehot, xi, precision=EXACT),
        zone=jnp.einsum("tc,tz,tcy->czy", pres, zone_b, zone_onehot, precision=EXACT),
        detect=jnp.stack(
            [
                jnp.einsum("tc,tz->cz", pres, zone_b, precision=EXACT),
                jnp.einsum("tc,tz->cz", sil, zone_b, precision=EXACT),
            ],
            axis=-1,
        ),
        label=jnp.einsum("tck,tco->cko", w, out_onehot, precision=EXACT),
        emb_w=jnp.einsum("tck->k", w, precision=EXACT),
        emb_sum=jnp.einsum("tck,tcd->kd", w, x, precision=EXACT),
        emb_outer=jnp.einsum("tck,tcd,tce->kde", w, x, x, precision=EXACT),
    )


@jax.jit
def smooth(p: Params, seqs: ObsSeq, first: Array | None = None) -> Smoothed:
    """Filter and smooth M tracks [M, T]; ``first`` [M, K1, Z] is each track's belief
    before its first row (the previous window's ``last``; ignored where a row starts)."""
    m = seqs.start.shape[0]
    if first is None:
        first = jnp.broadcast_to(prior_belief(p), (m, *p.log_init_zone.shape))
    filt, smoothed, _, ev = jax.vmap(_smooth_one, in_axes=(None, 0, 0))(p, seqs, first)
    return Smoothed(filtered=filt, smoothed=smoothed, log_evidence=ev, last=filt[:, -1])


def _expected_stats(
    p: Params, seqs: ObsSeq, first: Array | None, rows: Array | None = None
) -> tuple[SuffStats, Array]:
    m = seqs.start.shape[0]
    if first is None:
        first = jnp.broadcast_to(prior_belief(p), (m, *p.log_init_zone.shape))
    filt, smoothed, xi, _ = jax.vmap(_smooth_one, in_axes=(None, 0, 0))(p, seqs, first)
    if rows is not None:  # count only these rows (every statistic is linear in them)
        weight = rows.astype(smoothed.dtype)[None, :, None, None]
        smoothed, xi = smoothed * weight, xi * weight[..., None]
    per_track = jax.vmap(_stats_one, in_axes=(None, 0, 0, 0))(p, seqs, smoothed, xi)
    return SuffStats(*(jnp.sum(a, axis=0) for a in per_track)), filt


@jax.jit
def expected_stats(p: Params, seqs: ObsSeq, first: Array | None = None) -> tuple[SuffStats, Array]:
    """Expected sufficient statistics of a window under ``p``, summed over its tracks,
    and each track's last filtered belief [M, K1, Z].

    Exact given ``p``. A gap of more than one tick between rows is filtered exactly but
    adds no transition counts (the hidden intermediate ticks are not expanded).
    """
    stats, filt = _expected_stats(p, seqs, first)
    return stats, filt[:, -1]


@functools.partial(jax.jit, static_argnames=("sweeps",))
def svb_window(
    post: Posterior, seqs: ObsSeq, first: Array | None = None, sweeps: int = 10
) -> tuple[Posterior, Array]:
    """Streaming VB on one window: ``sweeps`` VB-EM iterations (E-step under exp E[log
    theta], M-step = prior counts + expected counts), then the result is the next
    window's prior. Returns it and each track's last filtered belief (under the final
    posterior means) to carry into the next window. Jitted as a whole."""

    def sweep(current: Posterior, _: None) -> tuple[Posterior, None]:
        stats, _filt = _expected_stats(params(spec_of(current, "vb")), seqs, first)
        return svb_update(post, stats), None

    current, _ = jax.lax.scan(sweep, post, None, length=sweeps)
    _, filt = _expected_stats(params(spec_of(current, "mean")), seqs, first)
    return current, filt[:, -1]


@functools.partial(jax.jit, static_argnames=("sweeps",))
def svb_lagged(
    committed: Posterior,
    buffer: ObsSeq,
    commit: Array,
    first: Array | None = None,
    sweeps: int = 10,
) -> tuple[Posterior, Posterior, Array]:
    """Streaming VB with a fixed lag: the last few windows stay revisable.

    ``buffer`` [M, T] holds the rows not yet committed (the last L windows, padded at the
    end), ``first`` the belief before its first row. VB-EM runs over the whole buffer with
    ``committed`` as the prior, giving ``current`` (what the filter should use now); then
    the first ``commit`` rows' expected counts under ``current`` are added for good.
    Returns (new committed, current, the E-step's filtered belief after row ``commit - 1``),
    so the caller drops
    those rows from the buffer and carries the belief. ``commit`` is traced: flushing
    the whole buffer at the end does not recompile. Early rows are thus counted under a
    model that has already seen L windows after them, not only what came before.
    """
    t = buffer.start.shape[1]

    def sweep(current: Posterior, _: None) -> tuple[Posterior, None]:
        stats, _last = _expected_stats(params(spec_of(current, "vb")), buffer, first)
        return svb_update(committed, stats), None

    current, _ = jax.lax.scan(sweep, committed, None, length=sweeps)
    rows = jnp.arange(t) < commit
    stats, filt = _expected_stats(params(spec_of(current, "vb")), buffer, first, rows)
    carried = filt[:, jnp.maximum(commit - 1, 0)]
    if first is not None:
        carried = jnp.where(commit > 0, carried, first)
    return svb_update(committed, stats), current, carried


def _slice_into(pad: ObsSeq, seqs: ObsSeq, begin: int, end: int) -> ObsSeq:
    """Rows begin:end of ``seqs`` at the front of the no-op rows ``pad``."""
    return ObsSeq(
        *(p.at[:, : end - begin].set(a[:, begin:end]) for p, a in zip(pad, seqs, strict=True))
    )


def svb_replay(
    prior: Posterior, seqs: ObsSeq, *, window: int, lag: int, sweeps: int = 10
) -> Posterior:
    """Stream a recorded window [M, T] through :func:`svb_lagged` ``window`` rows at a
    time with ``lag`` windows kept revisable, and flush at the end (``lag = 1`` is plain
    SVB). What the Learner does live, replayed: for tests, benchmarks and recovery."""
    m, t = seqs.start.shape
    size = window * lag
    pad = jax.tree.map(lambda a: jnp.zeros((m, size, *a.shape[2:]), a.dtype), seqs)
    committed, first, begin = prior, None, 0
    while begin < t:
        end = min(begin + size, t)
        buffer = _slice_into(pad, seqs, begin, end)
        flush = end == t
        commit = end - begin if flush else window
        committed, _, first = svb_lagged(committed, buffer, jnp.int32(commit), first, sweeps)
        begin += commit
    return committed
