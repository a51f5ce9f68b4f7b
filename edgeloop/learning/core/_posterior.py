"""The conjugate posterior of the yard model and its streaming (SVB) update.

Every learnt piece has a conjugate prior, so the posterior is a set of counts:
Dirichlet concentrations for the first zones, zone transitions, cameras' zone reports
and label confusions, Beta counts for detection, a Normal-Inverse-Wishart per species
for the embeddings, and CRP counts for how common each species is. Streaming variational
Bayes (Broderick et al. 2013) adds a batch's *expected* sufficient statistics
(:class:`SuffStats`, from the smoother) to the counts: the posterior after one batch is
the prior of the next. NEW's entries always stay at the prior, which is exactly what
makes NEW the prior predictive ("something not yet seen"); :func:`add_class` turns a
few examples of it into a species slot.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import digamma
from jax.typing import ArrayLike

from edgeloop.errors import ClassCapacityError, LearningError
from edgeloop.learning.core._model import EXACT, Dims, YardSpec

__all__ = [
    "Posterior",
    "SuffStats",
    "prior",
    "spec_of",
    "svb_update",
    "add_class",
    "zero_stats",
]


class Posterior(NamedTuple):
    """Conjugate counts of the whole yard model (K1 = K + 1 classes, O outcomes):

    ``crp`` [K1] (species counts; NEW holds the CRP concentration alpha), ``active`` [K1]
    bool, ``init_conc`` [K1, Z], ``trans_conc`` [K1, H, Z, Z], ``zone_conc`` [C, Z, Z],
    ``detect_conc`` [C, Z, 2] (reported, silent), ``label_conc`` [C, K1, O], the NIW
    ``niw_kappa`` [K1], ``niw_mean`` [K1, D], ``niw_nu`` [K1], ``niw_psi`` [K1, D, D], and
    the fixed ``score_edges`` [S - 1].
    """

    crp: Array
    active: Array
    init_conc: Array
    trans_conc: Array
    zone_conc: Array
    detect_conc: Array
    label_conc: Array
    niw_kappa: Array
    niw_mean: Array
    niw_nu: Array
    niw_psi: Array
    score_edges: Array


class SuffStats(NamedTuple):
    """Expected sufficient statistics of some observations, shaped like the posterior:
    ``crp`` [K1], ``init`` [K1, Z], ``trans`` [K1, H, Z, Z], ``zone`` [C, Z, Z], ``detect``
    [C, Z, 2], ``label`` [C, K1, O], and the soft embedding moments ``emb_w`` [K1],
    ``emb_sum`` [K1, D], ``emb_outer`` [K1, D, D]."""

    crp: Array
    init: Array
    trans: Array
    zone: Array
    detect: Array
    label: Array
    emb_w: Array
    emb_sum: Array
    emb_outer: Array


def zero_stats(dims: Dims) -> SuffStats:
    """Statistics of no observations at all."""
    k1, z, c, h, d = dims.classes + 1, dims.zones, dims.cameras, dims.tod_bins, dims.dim
    return SuffStats(
        crp=jnp.zeros(k1),
        init=jnp.zeros((k1, z)),
        trans=jnp.zeros((k1, h, z, z)),
        zone=jnp.zeros((c, z, z)),
        detect=jnp.zeros((c, z, 2)),
        label=jnp.zeros((c, k1, dims.outcomes)),
        emb_w=jnp.zeros(k1),
        emb_sum=jnp.zeros((k1, d)),
        emb_outer=jnp.zeros((k1, d, d)),
    )


def prior(
    dims: Dims,
    *,
    active: int,
    alpha: float = 1.0,
    trans_conc: ArrayLike = 1.0,
    zone_conc: ArrayLike | None = None,
    label_conc: ArrayLike | None = None,
    detect_conc: tuple[float, float] = (2.0, 1.0),
    niw_mean: ArrayLike = 0.0,
    niw_kappa: float = 0.1,
    niw_nu: float | None = None,
    niw_psi: ArrayLike | None = None,
    score_edges: ArrayLike | None = None,
) -> Posterior:
    """A prior with the first ``active`` species slots in use.

    By default a camera's zone report and label are probably right (concentration 8 on
    the diagonal, 1 elsewhere; label "unknown" 2 for every class) and transitions are
    flat; ``niw_psi`` should be the pooled within-class scatter times ``nu - D - 1``
    when known (empirical Bayes: what a new class borrows from the known ones).
    """
    k, k1, z, c, h, d, s = (
        dims.classes,
        dims.classes + 1,
        dims.zones,
        dims.cameras,
        dims.tod_bins,
        dims.dim,
        dims.score_bins,
    )
    if not 0 <= active <= k:
        msg = f"active={active} must lie in [0, {k}] (the class capacity)"
        raise LearningError(msg)
    crp = np.zeros(k1)
    crp[:active] = 1.0
    crp[k] = alpha
    mask = np.zeros(k1, np.bool_)
    mask[:active] = True
    mask[k] = True
    if zone_conc is None:
        zone_conc = np.broadcast_to(1.0 + 7.0 * np.eye(z), (c, z, z))
    if label_conc is None:
        base = np.ones((k1, k1))
        base[np.arange(k), np.arange(k)] = 8.0
        base[:, k] = 2.0
        label_conc = np.broadcast_to(np.repeat(base, s, axis=1) / s, (c, k1, k1 * s))
    nu = float(d + 3) if niw_nu is None else niw_nu
    psi = np.eye(d) * (nu - d - 1) if niw_psi is None else niw_psi
    edges = np.linspace(0.0, 1.0, s + 1)[1:-1] if score_edges is None else score_edges
    return Posterior(
        crp=jnp.asarray(crp),
        active=jnp.asarray(mask),
        init_conc=jnp.ones((k1, z)),
        trans_conc=jnp.broadcast_to(jnp.asarray(trans_conc, dtype=float), (k1, h, z, z)),
        zone_conc=jnp.asarray(zone_conc, dtype=float),
        detect_conc=jnp.broadcast_to(jnp.asarray(detect_conc, dtype=float), (c, z, 2)),
        label_conc=jnp.asarray(label_conc, dtype=float),
        niw_kappa=jnp.full(k1, niw_kappa),
        niw_mean=jnp.broadcast_to(jnp.asarray(niw_mean, dtype=float), (k1, d)),
        niw_nu=jnp.full(k1, nu),
        niw_psi=jnp.broadcast_to(jnp.asarray(psi, dtype=float), (k1, d, d)),
        score_edges=jnp.asarray(edges, dtype=float),
    )


def _rows(conc: Array, mode: str) -> Array:
    if mode == "vb":  # exp E[log p]: the mean-field VB E-step's geometric mean
        return jnp.exp(digamma(conc) - digamma(jnp.sum(conc, axis=-1, keepdims=True)))
    return conc / jnp.sum(conc, axis=-1, keepdims=True)


def spec_of(post: Posterior, mode: Literal["mean", "vb"] = "mean") -> YardSpec:
    """The model the filter should run under this posterior.

    ``"mean"``: posterior means of every Dirichlet/Beta row (the exact one-step
    predictive) and each class's Student-t posterior predictive of embeddings; this is
    the filter's model. ``"vb"``: exp E[log theta] for the Dirichlet rows, the
    mean-field VB E-step used when learning. NEW uses the NIW prior's Student-t.
    """
    d = post.niw_mean.shape[-1]
    df = post.niw_nu - d + 1
    scale = post.niw_psi * ((post.niw_kappa + 1) / (post.niw_kappa * df))[:, None, None]
    weights = jnp.where(post.active, post.crp, 0.0)
    return YardSpec(
        class_prior=weights / jnp.sum(weights),
        init_zone=_rows(post.init_conc, mode),
        trans=_rows(post.trans_conc, mode),
        zone_obs=_rows(post.zone_conc, mode),
        detect=post.detect_conc[..., 0] / jnp.sum(post.detect_conc, axis=-1),
        label=_rows(post.label_conc, mode),
        emb_loc=post.niw_mean,
        emb_scale=scale,
        emb_df=df,
        score_edges=post.score_edges,
    )


def _niw_add(
    post: Posterior, w: Array, total: Array, outer: Array
) -> tuple[Array, Array, Array, Array]:
    kappa = post.niw_kappa + w
    nu = post.niw_nu + w
    mean = (post.niw_kappa[:, None] * post.niw_mean + total) / kappa[:, None]
    psi = (
        post.niw_psi
        + outer
        + post.niw_kappa[:, None, None]
        * jnp.einsum("ki,kj->kij", post.niw_mean, post.niw_mean, precision=EXACT)
        - kappa[:, None, None] * jnp.einsum("ki,kj->kij", mean, mean, precision=EXACT)
    )
    return kappa, mean, nu, 0.5 * (psi + jnp.swapaxes(psi, -1, -2))


def svb_update(post: Posterior, stats: SuffStats) -> Posterior:
    """The posterior after ``stats``: counts added, NIW updated; NEW stays the prior.

    Class-specific statistics of inactive slots and of NEW are dropped (a track that is
    probably NEW is material for :func:`add_class`, not for an existing class).
    """
    return add_stats(post, stats, post.active.at[-1].set(False))


def add_stats(post: Posterior, stats: SuffStats, learn: Array) -> Posterior:
    """Add ``stats`` to the classes where ``learn`` [K1] is set (camera-wide counts always)."""
    keep = learn.astype(post.crp.dtype)
    kappa, mean, nu, psi = _niw_add(
        post,
        stats.emb_w * keep,
        stats.emb_sum * keep[:, None],
        stats.emb_outer * keep[:, None, None],
    )
    return post._replace(
        crp=post.crp + stats.crp * keep,
        init_conc=post.init_conc + stats.init * keep[:, None],
        trans_conc=post.trans_conc + stats.trans * keep[:, None, None, None],
        zone_conc=post.zone_conc + stats.zone,
        detect_conc=post.detect_conc + stats.detect,
        label_conc=post.label_conc + stats.label * keep[None, :, None],
        niw_kappa=jnp.where(learn, kappa, post.niw_kappa),
        niw_mean=jnp.where(learn[:, None], mean, post.niw_mean),
        niw_nu=jnp.where(learn, nu, post.niw_nu),
        niw_psi=jnp.where(learn[:, None, None], psi, post.niw_psi),
    )


def add_class(
    post: Posterior, embeddings: ArrayLike, label_counts: ArrayLike | None = None
) -> tuple[Posterior, int]:
    """Open the first free species slot for a class seen only as NEW so far.

    Its NIW posterior starts from NEW's prior (so it borrows the pooled scatter learnt
    for the known classes) and adds ``embeddings`` [n, D]; its label rows start from
    NEW's plus ``label_counts`` [C, O] when given. Returns the posterior and the slot.
    Raises :class:`ClassCapacityError` when every slot is taken. Shapes do not change,
    so the jitted filter does not recompile.
    """
    active = np.asarray(post.active)
    free = np.flatnonzero(~active[:-1])
    if free.size == 0:
        msg = f"all {active.size - 1} class slots are in use; build Dims with more classes"
        raise ClassCapacityError(msg)
    slot = int(free[0])
    x = jnp.asarray(embeddings, dtype=float)
    if x.ndim != 2 or x.shape[1] != post.niw_mean.shape[1] or x.shape[0] == 0:
        msg = f"embeddings must be [n >= 1, {post.niw_mean.shape[1]}], got {x.shape}"
        raise LearningError(msg)
    new = post.niw_kappa.shape[0] - 1
    one = jnp.zeros(post.crp.shape[0]).at[slot].set(1.0)
    base = post._replace(
        niw_kappa=post.niw_kappa.at[slot].set(post.niw_kappa[new]),
        niw_mean=post.niw_mean.at[slot].set(post.niw_mean[new]),
        niw_nu=post.niw_nu.at[slot].set(post.niw_nu[new]),
        niw_psi=post.niw_psi.at[slot].set(post.niw_psi[new]),
        label_conc=post.label_conc.at[:, slot].set(post.label_conc[:, new]),
        trans_conc=post.trans_conc.at[slot].set(post.trans_conc[new]),
        init_conc=post.init_conc.at[slot].set(post.init_conc[new]),
        crp=post.crp.at[slot].set(0.0),
        active=post.active.at[slot].set(True),
    )
    kappa, mean, nu, psi = _niw_add(
        base,
        one * x.shape[0],
        one[:, None] * jnp.sum(x, axis=0)[None, :],
        one[:, None, None] * jnp.matmul(x.T, x, precision=EXACT)[None],
    )
    labels = base.label_conc
    if label_counts is not None:
        labels = labels.at[:, slot].add(jnp.asarray(label_counts, dtype=float))
    return (
        base._replace(
            crp=base.crp.at[slot].set(1.0),
            niw_kappa=base.niw_kappa.at[slot].set(kappa[slot]),
            niw_mean=base.niw_mean.at[slot].set(mean[slot]),
            niw_nu=base.niw_nu.at[slot].set(nu[slot]),
            niw_psi=base.niw_psi.at[slot].set(psi[slot]),
            label_conc=labels,
        ),
        slot,
    )
