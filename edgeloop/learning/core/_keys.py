"""PRNG keys for callers that must not import JAX themselves (shells, benchmarks)."""

from __future__ import annotations

import jax
from jax import Array

__all__ = ["prng_key", "split_key"]


def prng_key(seed: int) -> Array:
    """A JAX PRNG key from an integer seed (the node's seeded RNG supplies the seed)."""
    return jax.random.PRNGKey(seed)


def split_key(key: Array) -> tuple[Array, Array]:
    """Two independent keys from one: keep one, use the other."""
    a, b = jax.random.split(key)
    return a, b
