"""Batch NUTS gold standards that the streaming learners are measured against.

Slow by design (all data at once, thousands of gradient evaluations) and used only by
tests and ``bench learner``: the transition matrix of a zone chain seen through a known
noisy camera (against streaming VB), and camera quality (against streaming SVI).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from edgeloop.learning.core._model import EXACT
from edgeloop.learning.core._svi import Quality, quality_model

__all__ = ["hmm_log_likelihood", "nuts_transitions", "nuts_quality"]


def hmm_log_likelihood(init: Array, trans: Array, log_emit: Array) -> Array:
    """log p(y_1..T) of a discrete HMM by the forward algorithm; ``log_emit`` [T, Z] is
    log p(y_t | z_t = z)."""

    def body(carry: tuple[Array, Array], ll: Array) -> tuple[tuple[Array, Array], None]:
        belief, total = carry
        joint = jnp.log(jnp.matmul(belief, trans, precision=EXACT)) + ll
        top = jnp.max(joint)
        w = jnp.exp(joint - top)
        return (w / jnp.sum(w), total + top + jnp.log(jnp.sum(w))), None

    joint = jnp.log(init) + log_emit[0]
    top = jnp.max(joint)
    w = jnp.exp(joint - top)
    (_, total), _ = jax.lax.scan(body, (w / jnp.sum(w), top + jnp.log(jnp.sum(w))), log_emit[1:])
    return total


def nuts_transitions(
    key: Array, log_emit: ArrayLike, *, warmup: int, samples: int, prior_conc: float = 1.0
) -> Array:
    """Posterior samples [S, Z, Z] of the transition matrix (rows ~ Dirichlet(prior_conc),
    initial zone ~ Dirichlet(1)) given every observation's log emission [T, Z]."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    emit = jnp.asarray(log_emit)
    z = emit.shape[1]

    def model() -> None:
        init = numpyro.sample("init", dist.Dirichlet(jnp.ones(z)))
        with numpyro.plate("row", z):
            trans = numpyro.sample("trans", dist.Dirichlet(jnp.full(z, prior_conc)))
        numpyro.factor("obs", hmm_log_likelihood(init, trans, emit))

    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=samples, progress_bar=False)
    mcmc.run(key)
    out: Array = mcmc.get_samples()["trans"]
    return out


def nuts_quality(
    key: Array, prior: Quality, base: ArrayLike, counts: ArrayLike, *, warmup: int, samples: int
) -> Array:
    """Posterior samples [S, C] of log camera quality given all label counts at once."""
    from numpyro.infer import MCMC, NUTS

    n = jnp.asarray(counts)
    mcmc = MCMC(NUTS(quality_model), num_warmup=warmup, num_samples=samples, progress_bar=False)
    mcmc.run(key, prior, jnp.asarray(base), jnp.zeros_like(n), n)
    out: Array = mcmc.get_samples()["log_q"]
    return out
