"""Each class's squared whitened distance ``|W_k (x - m_k)|^2`` of an embedding, the one
heavy term of the filter's likelihood, in the form each platform runs fastest.

Three forms of one formula, chosen when XLA compiles (``lax.platform_dependent``):

- CPUs: one matrix product of every report with the stacked whitening matrices (a library
  GEMM; the [..., K1 * D] intermediate is small for the CPU's batch sizes);
- CUDA GPUs: a Pallas kernel that keeps a tile of reports in registers, whitens it against
  each class and writes only the K1 distances. Over a million tracks the GEMM's
  [3M, K1 * D] intermediate (1.7 GB written and read back) was most of the step;
- elsewhere: a broadcast product reduced over D, which XLA fuses.

All keep float32 accuracy (the filter's exactness goal is 1e-5 on beliefs): the GEMM and
the fused form in full float32; the kernel's products as three TF32 products of split
operands (``hi * hi + hi * lo + lo * hi``, the "3xTF32" of CUTLASS), which run on the
tensor cores and err by about 1e-6 relative, where one TF32 product errs by 1e-3.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from edgeloop.learning.core._model import EXACT, Params

__all__ = ["mahalanobis", "mahalanobis_product", "mahalanobis_fused", "mahalanobis_kernel"]

#: Reports per kernel program (the largest of these that divides the reports, so that no
#: padded copy is made): a [tile, D] block stays in registers while it is whitened against
#: every class. 128 ran fastest on an H200 (64: 15 % slower, 256: 20 %).
TILES = (128, 64, 256, 32, 16)


def mahalanobis(p: Params, embedding: Array) -> Array:
    """``|W_k (x - m_k)|^2`` for every class k: [..., D] -> [..., K1]."""
    out: Array = jax.lax.platform_dependent(
        p,
        embedding,
        cpu=mahalanobis_product,
        cuda=mahalanobis_kernel,
        default=mahalanobis_fused,
    )
    return out


def mahalanobis_product(p: Params, embedding: Array) -> Array:
    """``W x - W m`` as one [..., D] x [D, K1 * D] product."""
    k1, dim = p.emb_loc.shape
    stacked = p.emb_whiten.reshape(k1 * dim, dim)
    white = jnp.matmul(embedding, stacked.T, precision=EXACT)
    white = white.reshape(*embedding.shape[:-1], k1, dim)
    white = white - jnp.einsum("kij,kj->ki", p.emb_whiten, p.emb_loc, precision=EXACT)
    return jnp.sum(white * white, axis=-1)


def mahalanobis_fused(p: Params, embedding: Array) -> Array:
    """Centred, then whitened as a broadcast product reduced over D (XLA fuses the
    product into the reduction; no intermediate of K1 * D per report)."""
    diff = embedding[..., None, :] - p.emb_loc  # [..., K1, D]
    white = jnp.sum(p.emb_whiten * diff[..., None, :], axis=-1)  # [..., K1, D]
    return jnp.sum(white * white, axis=-1)


def _split(a: Array) -> tuple[Array, Array]:
    """``a`` as ``hi + lo`` with ``hi`` exact in TF32 (10 mantissa bits): the low 13 bits
    of the float32 cleared."""
    bits = jax.lax.bitcast_convert_type(a, jnp.int32) & jnp.int32(-8192)
    hi = jax.lax.bitcast_convert_type(bits, jnp.float32)
    return hi, a - hi


def _dot_3xtf32(a: Array, b: Array) -> Array:
    """``a @ b`` to float32 accuracy from three TF32 products (the smallest added first)."""
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)

    def tf32(x: Array, y: Array) -> Array:
        return jnp.dot(x, y, precision=jax.lax.Precision.DEFAULT)

    return tf32(a_hi, b_hi) + (tf32(a_hi, b_lo) + tf32(a_lo, b_hi))


def mahalanobis_kernel(p: Params, embedding: Array, *, interpret: bool = False) -> Array:
    """The Pallas (Triton) form: one program per tile of reports, centred and whitened
    against each class with a 3xTF32 ``dot``, K1 distances written.

    Triton blocks need power-of-two sides of at least 16 for a ``dot``, so the classes
    are padded to a power of two and a ``D`` that is not one falls back to
    :func:`mahalanobis_fused`. ``interpret`` runs the kernel in Python (CPU tests).
    """
    from jax.experimental import pallas as pl

    k1, dim = p.emb_loc.shape
    if dim < 16 or dim & (dim - 1):
        return mahalanobis_fused(p, embedding)
    padded_k = 1 << (k1 - 1).bit_length()
    rows = embedding.reshape(-1, dim)
    count = rows.shape[0]
    tile = next((t for t in TILES if count % t == 0), TILES[0])
    padded_rows = -(-max(count, 1) // tile) * tile
    if padded_rows != count:
        rows = jnp.pad(rows, ((0, padded_rows - count), (0, 0)))
    extra = ((0, padded_k - k1), (0, 0))
    loc = jnp.pad(p.emb_loc, extra)
    whiten_t = jnp.pad(jnp.swapaxes(p.emb_whiten, -1, -2), (*extra, (0, 0)))

    def kernel(x_ref: jax.Array, w_ref: jax.Array, loc_ref: jax.Array, o_ref: jax.Array) -> None:
        x = x_ref[...]
        column = jax.lax.broadcasted_iota(jnp.int32, (tile, padded_k), 1)
        out = jnp.zeros((tile, padded_k), jnp.float32)
        for k in range(k1):
            white = _dot_3xtf32(x - loc_ref[k, :][None, :], w_ref[k, :, :])
            out = jnp.where(column == k, jnp.sum(white * white, axis=1)[:, None], out)
        o_ref[...] = out

    shape = jax.ShapeDtypeStruct((padded_rows, padded_k), jnp.float32)  # type: ignore[no-untyped-call]
    distances: Array = pl.pallas_call(
        kernel,
        out_shape=shape,
        grid=(padded_rows // tile,),
        in_specs=[
            pl.BlockSpec((tile, dim), lambda i: (i, 0)),
            pl.BlockSpec((padded_k, dim, dim), lambda i: (0, 0, 0)),
            pl.BlockSpec((padded_k, dim), lambda i: (0, 0)),
        ],
        out_specs=pl.BlockSpec((tile, padded_k), lambda i: (i, 0)),
        interpret=interpret,
    )(rows, whiten_t, loc)
    return distances[:count, :k1].reshape(*embedding.shape[:-1], k1)
