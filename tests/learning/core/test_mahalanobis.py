"""Every form of the embedding's Mahalanobis term against a float64 solve."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeloop.learning import core
from edgeloop.learning.core import _mahalanobis as forms
from edgeloop.learning.core import reference

#: D = 16, the smallest embedding the kernel runs (a Triton ``dot`` needs sides >= 16).
DIMS = core.Dims(classes=5, zones=2, cameras=3, dim=16)


def _float64(spec: core.YardSpec, x: np.ndarray) -> np.ndarray:
    scale = np.asarray(spec.emb_scale, np.float64)
    diff = x[..., None, :].astype(np.float64) - np.asarray(spec.emb_loc, np.float64)
    solved = np.einsum("kij,...kj->...ki", np.linalg.inv(scale), diff)
    return np.sum(diff * solved, axis=-1)


def _kernel_interpreted(p: core.Params, x: jax.Array) -> jax.Array:
    return forms.mahalanobis_kernel(p, x, interpret=True)


@pytest.mark.parametrize(
    "form",
    [forms.mahalanobis, forms.mahalanobis_product, forms.mahalanobis_fused, _kernel_interpreted],
    ids=["dispatch", "product", "fused", "kernel"],
)
@pytest.mark.parametrize("rows", [7, 64])  # 7 x 3 reports fit no tile: padded
def test_every_form_matches_the_float64_solve(form, rows):
    spec = reference.random_spec(DIMS, 3, active=3)
    p = core.params(spec)
    x = np.random.default_rng(rows).normal(size=(rows, DIMS.cameras, DIMS.dim)).astype(np.float32)
    got = np.asarray(jax.jit(form)(p, x))
    want = _float64(spec, x)
    assert got.shape == (rows, DIMS.cameras, DIMS.classes + 1)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-5)


def test_the_kernel_falls_back_where_triton_cannot_tile_the_embedding():
    dims = core.Dims(classes=3, zones=2, cameras=2, dim=6)  # D = 6: no Triton dot
    spec = reference.random_spec(dims, 1)
    p = core.params(spec)
    x = np.random.default_rng(1).normal(size=(5, dims.dim)).astype(np.float32)
    got = np.asarray(forms.mahalanobis_kernel(p, x, interpret=True))
    np.testing.assert_allclose(got, _float64(spec, x), rtol=2e-6, atol=1e-5)


# XLA flushes subnormal floats to zero, so the split is exact for numbers whose low part
# is still normal: magnitudes above about 1e-34 (embeddings and whitening are near 1).
_NORMAL = st.floats(width=32, allow_nan=False, allow_infinity=False).filter(
    lambda v: v == 0 or abs(v) > 1e-30
)


@given(st.lists(_NORMAL, min_size=1, max_size=64))
def test_the_3xtf32_split_is_exact_and_its_high_part_fits_tf32(values):
    a = np.asarray(values, np.float32)
    hi, lo = (np.asarray(part) for part in forms._split(a))
    assert np.array_equal(hi.astype(np.float64) + lo.astype(np.float64), a.astype(np.float64))
    assert np.all(hi.view(np.int32) & 0x1FFF == 0)  # 10 mantissa bits left
