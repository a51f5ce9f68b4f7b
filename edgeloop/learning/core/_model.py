"""The yard model's shape and parameters: :class:`Dims`, :class:`YardSpec`, :class:`Params`.

Three levels, each with one job. ``Dims`` fixes every array shape (class *capacity*, not
the number of classes in use, so adding a class never changes a shape and never
recompiles). ``YardSpec`` is the model in plain probabilities, what a person or a
simulator writes and what the float64 reference reads. ``Params`` is the same model
pre-digested for the filter (logs, whitening matrices, normalisers), built by
:func:`params`; it is a pytree of arrays, so it can be passed into jitted code and
swapped between steps without recompiling.

Index conventions: classes ``0..K-1`` are species slots (unused ones are inactive), class
``K`` is NEW (something never seen); on-device labels ``0..K-1`` name a species slot and
label ``K`` means "unknown"; an observed *outcome* is ``label * S + score_bin``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import gammaln
from jax.typing import ArrayLike
from scipy import special

__all__ = ["Dims", "YardSpec", "Params", "params", "prior_belief"]

#: The precision of every matrix product in the learner's core. On GPUs XLA's default
#: rounds float32 products through TF32 (10-bit mantissa), which on an H200 moved beliefs
#: by 5e-3 against the float64 reference; the core's exactness goal is 1e-5, and the
#: products here are small, so they are always done in full float32.
EXACT = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True, slots=True)
class Dims:
    """Every static size of the model; one ``Dims`` means one compiled filter.

    ``classes`` is the capacity K of species slots (NEW is one more), ``zones`` Z,
    ``cameras`` C (slots in a fused observation), ``tod_bins`` H (time-of-day bins of the
    transitions), ``score_bins`` S (on-device score bins), ``dim`` D (embedding size).
    """

    classes: int = 8
    zones: int = 4
    cameras: int = 3
    tod_bins: int = 2
    score_bins: int = 2
    dim: int = 16

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or value < 1:
                msg = f"Dims.{field.name} must be a positive int, got {value!r}"
                raise ValueError(msg)

    @property
    def new(self) -> int:
        """The index of the NEW class (and of the "unknown" on-device label)."""
        return self.classes

    @property
    def states(self) -> tuple[int, int]:
        """The shape of one track's belief: (classes + NEW, zones)."""
        return (self.classes + 1, self.zones)

    @property
    def outcomes(self) -> int:
        """How many (label, score bin) outcomes one camera report can have."""
        return (self.classes + 1) * self.score_bins


class YardSpec(NamedTuple):
    """The yard model in probabilities (rows sum to one). Shapes with K1 = K + 1:

    - ``class_prior`` [K1]: P(class) of a new track (0 for inactive slots; NEW > 0);
    - ``init_zone`` [K1, Z]: P(first zone | class);
    - ``trans`` [K1, H, Z, Z]: P(zone' | zone, class, time-of-day bin) per tick;
    - ``zone_obs`` [C, Z, Z]: P(reported zone | true zone) per camera;
    - ``detect`` [C, Z]: P(camera reports | the animal is in zone);
    - ``label`` [C, K1, K1 * S]: P((label, score bin) | class) per camera;
    - ``emb_loc`` [K1, D], ``emb_scale`` [K1, D, D], ``emb_df`` [K1]: a Student-t per
      class (``emb_df = inf`` makes it Gaussian with covariance ``emb_scale``);
    - ``score_edges`` [S - 1]: increasing score thresholds between the bins.
    """

    class_prior: ArrayLike
    init_zone: ArrayLike
    trans: ArrayLike
    zone_obs: ArrayLike
    detect: ArrayLike
    label: ArrayLike
    emb_loc: ArrayLike
    emb_scale: ArrayLike
    emb_df: ArrayLike
    score_edges: ArrayLike


class Params(NamedTuple):
    """The model as the filter uses it (float32 logs and factors); build with :func:`params`.

    Inactive class slots have ``log_class_prior = -inf``; their other entries are finite
    and never matter, because a class's belief that starts at zero stays zero.
    """

    log_class_prior: Array  # [K1]
    log_init_zone: Array  # [K1, Z]
    trans: Array  # [K1, H, Z, Z]
    log_zone_obs: Array  # [C, Z, Z]
    log_detect: Array  # [C, Z]
    log_miss: Array  # [C, Z]
    log_label: Array  # [C, K1, K1 * S]
    score_edges: Array  # [S - 1]
    emb_loc: Array  # [K1, D]
    emb_whiten: Array  # [K1, D, D]: inverse Cholesky factor of the scale
    emb_lognorm: Array  # [K1], less emb_lognorm_shift (small numbers round finely)
    emb_df: Array  # [K1]; inf for Gaussian classes
    emb_gauss: Array  # [K1] bool
    emb_lognorm_shift: Array  # []: the classes' mean log normaliser, added to evidence


def _log(p: ArrayLike) -> Array:
    return jnp.log(jnp.clip(p, 0.0, None))


def params(spec: YardSpec) -> Params:
    """Digest a :class:`YardSpec` into filter :class:`Params` (works inside ``jit`` too)."""
    df = jnp.asarray(spec.emb_df)
    gauss = jnp.isinf(df)
    whiten, lognorm, shift = _embedding_terms(spec.emb_scale, spec.emb_df)
    detect = jnp.asarray(spec.detect)
    return Params(
        log_class_prior=_log(jnp.asarray(spec.class_prior)),
        log_init_zone=_log(jnp.asarray(spec.init_zone)),
        trans=jnp.asarray(spec.trans, dtype=jnp.float32),
        log_zone_obs=_log(jnp.asarray(spec.zone_obs)),
        log_detect=_log(detect),
        log_miss=_log(1.0 - detect),
        log_label=_log(jnp.asarray(spec.label)),
        score_edges=jnp.asarray(spec.score_edges, dtype=jnp.float32),
        emb_loc=jnp.asarray(spec.emb_loc, dtype=jnp.float32),
        emb_whiten=whiten.astype(jnp.float32),
        emb_lognorm=lognorm.astype(jnp.float32),
        emb_df=df.astype(jnp.float32),
        emb_gauss=gauss,
        emb_lognorm_shift=shift.astype(jnp.float32),
    )


def _embedding_terms(scale_in: ArrayLike, df_in: ArrayLike) -> tuple[Array, Array, Array]:
    """Each class's whitening matrix (the inverse Cholesky factor of its scale), its log
    density normaliser (Student-t, or Gaussian where df = inf) less their mean, and that
    mean.

    A class's normaliser enters every observation of its tracks, so its rounding error
    adds up along a track: concrete inputs are computed in float64 on the host and the
    normalisers centred before they are rounded to float32 (small numbers round finely).
    Inside ``jit`` (Gibbs draws) the same is done in the traced precision.
    """
    scale: Any
    df: Any
    if isinstance(scale_in, jax.core.Tracer) or isinstance(df_in, jax.core.Tracer):
        xp: Any = jnp
        lgamma: Any = gammaln
        scale, df = jnp.asarray(scale_in), jnp.asarray(df_in)
    else:
        xp, lgamma = np, special.gammaln
        scale = np.asarray(scale_in, dtype=np.float64)
        df = np.asarray(df_in, dtype=np.float64)
    dim = scale.shape[-1]
    chol = xp.linalg.cholesky(scale)
    eye = xp.broadcast_to(xp.eye(dim, dtype=chol.dtype), chol.shape)
    whiten = xp.linalg.solve(chol, eye)  # lower triangular: chol^-1
    gauss = xp.isinf(df)
    safe = xp.where(gauss, 1.0, df)
    t_norm = lgamma((safe + dim) / 2) - lgamma(safe / 2) - 0.5 * dim * xp.log(safe * math.pi)
    g_norm = -0.5 * dim * math.log(2 * math.pi)
    full = xp.where(gauss, g_norm, t_norm) - xp.sum(
        xp.log(xp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1
    )
    mean = xp.mean(full)
    return jnp.asarray(whiten), jnp.asarray(full - mean), jnp.asarray(mean)


def prior_belief(p: Params) -> Array:
    """The belief [K1, Z] of a track before its first observation."""
    joint = p.log_class_prior[:, None] + p.log_init_zone
    weights = jnp.exp(joint - jnp.max(joint))
    return weights / jnp.sum(weights)
