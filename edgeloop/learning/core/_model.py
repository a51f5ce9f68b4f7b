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
from typing import NamedTuple

import jax.numpy as jnp
from jax import Array
from jax.scipy.special import gammaln
from jax.typing import ArrayLike

__all__ = ["Dims", "YardSpec", "Params", "params", "prior_belief"]


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
    emb_lognorm: Array  # [K1]
    emb_df: Array  # [K1]; inf for Gaussian classes
    emb_gauss: Array  # [K1] bool


def _log(p: ArrayLike) -> Array:
    return jnp.log(jnp.clip(p, 0.0, None))


def params(spec: YardSpec) -> Params:
    """Digest a :class:`YardSpec` into filter :class:`Params` (works inside ``jit`` too)."""
    scale = jnp.asarray(spec.emb_scale)
    dim = scale.shape[-1]
    chol = jnp.linalg.cholesky(scale)
    eye = jnp.broadcast_to(jnp.eye(dim, dtype=chol.dtype), chol.shape)
    whiten = jnp.linalg.solve(chol, eye)  # lower triangular: chol^-1
    half_logdet = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    df = jnp.asarray(spec.emb_df)
    gauss = jnp.isinf(df)
    safe_df = jnp.where(gauss, 1.0, df)
    t_norm = (
        gammaln((safe_df + dim) / 2) - gammaln(safe_df / 2) - 0.5 * dim * jnp.log(safe_df * math.pi)
    )
    g_norm = -0.5 * dim * math.log(2 * math.pi)
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
        emb_lognorm=(jnp.where(gauss, g_norm, t_norm) - half_logdet).astype(jnp.float32),
        emb_df=df.astype(jnp.float32),
        emb_gauss=gauss,
    )


def prior_belief(p: Params) -> Array:
    """The belief [K1, Z] of a track before its first observation."""
    joint = p.log_class_prior[:, None] + p.log_init_zone
    weights = jnp.exp(joint - jnp.max(joint))
    return weights / jnp.sum(weights)
