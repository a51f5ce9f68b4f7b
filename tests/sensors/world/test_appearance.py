"""Appearance: the digits, their fixed split, and the frozen extractor against
scikit-learn's own loader and PCA."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from edgeloop.sensors.world import EMBED_SCALE, FeatureExtractor, normalise
from edgeloop.sensors.world._appearance import _whitened_pca, digits


def test_the_digits_are_scikit_learns_bundled_data_set():
    bunch = load_digits()
    assert np.array_equal(digits().images, bunch.images)
    assert np.array_equal(digits().target, bunch.target)


def test_each_class_splits_into_disjoint_halves_the_same_way_every_time():
    data = digits()
    for digit in range(10):
        gallery, wild = data.gallery(digit), data.wild(digit)
        assert not set(gallery) & set(wild)
        assert set(gallery) | set(wild) == set(np.flatnonzero(data.target == digit))
        assert abs(len(gallery) - len(wild)) <= 1
    assert np.array_equal(type(data)().gallery(3), data.gallery(3))


def test_normalise_stretches_each_image_to_the_digits_range():
    images = np.stack([np.full((8, 8), 5.0), np.arange(64.0).reshape(8, 8) * 0.1])
    out = normalise(images)
    assert out[1].min() == 0.0
    assert out[1].max() == pytest.approx(16.0)
    assert np.all(out[0] == 0.0)  # a flat image stays flat, without dividing by zero


def test_the_extractor_is_scikit_learns_whitened_pca():
    x = normalise(digits().images[:600]).reshape(600, -1)
    mean, projection = _whitened_pca(x, 20)
    ours = (x - mean) @ projection
    theirs = PCA(n_components=20, whiten=True, svd_solver="full").fit_transform(x)
    signs = np.sign(np.sum(ours * theirs, axis=0))  # components are defined up to sign
    assert np.allclose(ours, theirs * signs * EMBED_SCALE, atol=1e-6)


def test_the_extractor_names_its_classes_and_gives_int8_embeddings():
    extractor = FeatureExtractor([8, 3, 5], 16)
    assert extractor.id == "digits-pca16-358"
    assert extractor.known == (3, 5, 8)
    embeddings, classes = extractor.gallery()
    assert embeddings.dtype == np.int8
    assert embeddings.shape == (len(classes), 16)
    assert set(classes) == {3, 5, 8}
    whitened = embeddings.astype(float) / EMBED_SCALE
    assert np.allclose(whitened.std(axis=0), 1.0, atol=0.1)  # whitened: unit variance
    again, _ = FeatureExtractor([3, 5, 8], 16).gallery()
    assert np.array_equal(embeddings, again)


def test_the_extractor_needs_two_digit_classes():
    with pytest.raises(ValueError, match="at least two"):
        FeatureExtractor([3], 8)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        FeatureExtractor([3, 12], 8)
