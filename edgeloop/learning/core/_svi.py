"""Streaming NumPyro SVI for the one non-conjugate piece: each camera's quality.

A camera's label confusion rows are Dirichlet around a shared template ``base`` [K1, O]
with a per-camera concentration q_c (its *quality*: how tightly its confusion hugs the
template; a new camera borrows from it). log q_c has a Normal prior, which is not
conjugate to the Dirichlet-multinomial. Integrating the confusion out, the likelihood of
all label counts factorises exactly over windows::

    p(n_1..n_B | q) = prod_b DM(n_b | q * base + n_1 + ... + n_{b-1})

so streaming is exact up to one projection per window: the Normal guide of window b
(mean-field, fitted with ``TraceMeanField_ELBO``, whose KL to a Normal prior is analytic)
is the prior of window b + 1, and the next fit starts from its parameters (warm start)
with a decaying step size. The cost is a few hundred gradient steps per window, so the
shells run it on a schedule (minutes), never per event.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import gammaln
from jax.typing import ArrayLike

__all__ = ["Quality", "quality_prior", "quality_log_likelihood", "svi_quality", "quality_model"]


class Quality(NamedTuple):
    """The Normal posterior (or prior) of log quality per camera: ``loc``, ``scale`` [C]."""

    loc: Array
    scale: Array

    def mean(self) -> Array:
        """E[q_c] under the LogNormal."""
        return jnp.exp(self.loc + 0.5 * self.scale**2)


def quality_prior(cameras: int, loc: float = 2.5, scale: float = 1.5) -> Quality:
    """A vague prior on log quality (q around e^2.5 = 12, anything from 0.5 to 250 plausible)."""
    return Quality(jnp.full(cameras, loc), jnp.full(cameras, scale))


def quality_log_likelihood(
    log_q: Array, base: ArrayLike, past: ArrayLike, counts: ArrayLike
) -> Array:
    """log DM(counts | q * base + past) per camera [C], up to terms free of q.

    ``base`` [K1, O] rows sum to one; ``past`` and ``counts`` [C, K1, O] are (expected)
    label counts before and in this window."""
    alpha = jnp.exp(log_q)[:, None, None] * jnp.asarray(base)[None] + jnp.asarray(past)
    n = jnp.asarray(counts)
    row = gammaln(alpha.sum(-1)) - gammaln((alpha + n).sum(-1))
    cell = jnp.sum(gammaln(alpha + n) - gammaln(alpha), axis=-1)
    return jnp.sum(row + cell, axis=-1)


def quality_model(prior: Quality, base: Array, past: Array, counts: Array) -> None:
    """The NumPyro model of one window (also what batch NUTS runs on all data at once)."""
    import numpyro
    import numpyro.distributions as dist

    with numpyro.plate("camera", prior.loc.shape[0]):
        log_q = numpyro.sample("log_q", dist.Normal(prior.loc, prior.scale))
    numpyro.factor("labels", jnp.sum(quality_log_likelihood(log_q, base, past, counts)))


def _guide(prior: Quality, base: Array, past: Array, counts: Array) -> None:
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    loc = numpyro.param("loc", prior.loc)
    scale = numpyro.param("scale", prior.scale, constraint=constraints.positive)
    with numpyro.plate("camera", prior.loc.shape[0]):
        numpyro.sample("log_q", dist.Normal(loc, scale))


def svi_quality(
    key: Array,
    prior: Quality,
    base: ArrayLike,
    past: ArrayLike,
    counts: ArrayLike,
    *,
    steps: int = 400,
    step_size: float = 0.05,
    decay: float = 0.02,
    particles: int = 16,
) -> Quality:
    """One streaming window: fit the guide, warm-started at ``prior``, return it (the
    next window's prior). The step size decays geometrically to ``decay`` of its start.
    Jitted once per (shapes, steps, particles)."""
    data = (jnp.asarray(base), jnp.asarray(past), jnp.asarray(counts))
    return _fit(key, prior, *data, steps, step_size, decay, particles)  # type: ignore[no-any-return]


@functools.partial(jax.jit, static_argnums=(5, 7, 8))
def _fit(
    key: Array,
    prior: Quality,
    base: Array,
    past: Array,
    counts: Array,
    steps: int,
    step_size: float,
    decay: float,
    particles: int,
) -> Quality:
    import numpyro.optim
    from numpyro.infer import SVI, TraceMeanField_ELBO

    def schedule(i: Array) -> Array:
        return step_size * decay ** (i / steps)

    svi = SVI(
        quality_model,
        _guide,
        numpyro.optim.Adam(schedule),
        TraceMeanField_ELBO(num_particles=particles),
    )
    data = (prior, base, past, counts)
    state = svi.init(key, *data, init_params={"loc": prior.loc, "scale": prior.scale})

    def body(s: Any, _: None) -> tuple[Any, None]:
        s, _loss = svi.update(s, *data)
        return s, None

    state, _ = jax.lax.scan(body, state, None, length=steps)
    fitted = svi.get_params(state)
    return Quality(loc=fitted["loc"], scale=fitted["scale"])
