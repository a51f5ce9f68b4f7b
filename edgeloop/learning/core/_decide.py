"""Decisions by expected loss under the filtered belief.

A loss table ``loss[a, class, zone]`` says what action ``a`` costs if the animal is of that
class and in that zone; the decision is the action of least expected loss. For the trap,
closing on a cat (or on anything protected) costs far more than leaving it open on a
skunk, so the trap closes only when P(skunk in the trap) is high *and* P(cat in the trap)
is tiny. Several tracks near one trap add their expected losses (:func:`decide_joint`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array

from edgeloop.learning.core._model import EXACT, Dims

__all__ = ["OPEN", "CLOSE", "Decision", "trap_loss", "expected_loss", "decide", "decide_joint"]

OPEN = 0
"""Action index: leave the trap open."""
CLOSE = 1
"""Action index: close the trap."""


class Decision(NamedTuple):
    """``action`` int32[...] (the argmin) and ``expected_loss`` float32[..., A]."""

    action: Array
    expected_loss: Array


def trap_loss(
    dims: Dims,
    *,
    trap_zone: int,
    targets: Iterable[int],
    protected: Iterable[int],
    miss_target: float = 1.0,
    close_on_protected: float = 100.0,
    close_on_other: float = 5.0,
    close_on_new: float = 20.0,
    close_empty: float = 0.5,
) -> Array:
    """The loss table [2, K1, Z] of one trap (actions :data:`OPEN`, :data:`CLOSE`).

    Leaving it open while a target (the skunk) is in ``trap_zone`` costs ``miss_target``;
    closing costs ``close_on_protected`` on a protected class (cats), ``close_on_new`` on
    NEW, ``close_on_other`` on other classes in the trap, ``close_empty`` when the
    animal is elsewhere (a wasted close). The default weights make a cat close 100x worse
    than a missed skunk.
    """
    k1, z = dims.states
    table = np.zeros((2, k1, z), np.float32)
    targets = list(targets)
    protected = list(protected)
    table[1, :, :] = close_empty
    table[1, :, trap_zone] = close_on_other
    table[1, protected, trap_zone] = close_on_protected
    table[1, dims.new, trap_zone] = close_on_new
    table[1, targets, trap_zone] = 0.0
    table[0, targets, trap_zone] = miss_target
    return jnp.asarray(table)


def expected_loss(belief: Array, loss: Array) -> Array:
    """E[loss(a)] [..., A] for beliefs [..., K1, Z] and a loss table [A, K1, Z]."""
    return jnp.einsum("...kz,akz->...a", belief, loss, precision=EXACT)


def decide(belief: Array, loss: Array) -> Decision:
    """The least-expected-loss action per track (beliefs [..., K1, Z])."""
    risk = expected_loss(belief, loss)
    return Decision(action=jnp.argmin(risk, axis=-1).astype(jnp.int32), expected_loss=risk)


def decide_joint(belief: Array, loss: Array, near: Array) -> Decision:
    """One action for several tracks [N, K1, Z] sharing one actuator: the losses of the
    tracks where ``near`` (bool[N]) is set add up (each animal is one more risk)."""
    risk = jnp.sum(jnp.where(near[:, None], expected_loss(belief, loss), 0.0), axis=0)
    return Decision(action=jnp.argmin(risk).astype(jnp.int32), expected_loss=risk)
