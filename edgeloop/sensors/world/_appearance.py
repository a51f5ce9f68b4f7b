"""Appearance: animals look like handwritten digits, seen through a frozen feature extractor.

The digits data set ships inside scikit-learn (1797 images of 8x8, ten classes; no
download). Each class is split once, by a fixed seed, into a *gallery* half (the
"factory" data the extractor and the initial head are fitted on) and a *wild* half (the
sprites animals show in the world), so the initial head is always measured on images it
was not built from. The extractor is PCA fitted on the known classes' gallery only (no
leakage of the novel class), whitened and quantised to int8: what a camera with a small
frozen network would send.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["Digits", "digits", "normalise", "FeatureExtractor", "EMBED_SCALE"]

SPLIT_SEED = 20190531
"""Seed of the fixed gallery/wild split (the paper's date): the same in every scenario."""

EMBED_SCALE = 32.0
"""int8 steps per unit of whitened PCA feature: +-127 covers about 4 standard deviations."""

Images = npt.NDArray[np.float64]
"""A stack of 8x8 images, values 0..16 as in the digits data set."""


class Digits:
    """The digits data set split per class into a gallery half and a wild half."""

    def __init__(self) -> None:
        table = _load_digits_table()
        self.images: Images = table[:, :64].reshape(-1, 8, 8)
        self.target: npt.NDArray[np.int64] = table[:, 64].astype(np.int64)
        rng = np.random.default_rng(SPLIT_SEED)
        gallery: dict[int, npt.NDArray[np.int64]] = {}
        wild: dict[int, npt.NDArray[np.int64]] = {}
        for digit in range(10):
            idx = rng.permutation(np.flatnonzero(self.target == digit))
            half = len(idx) // 2
            gallery[digit], wild[digit] = np.sort(idx[:half]), np.sort(idx[half:])
        self._gallery = gallery
        self._wild = wild

    def gallery(self, digit: int) -> npt.NDArray[np.int64]:
        """Indices of the factory half of class ``digit``."""
        return self._gallery[digit]

    def wild(self, digit: int) -> npt.NDArray[np.int64]:
        """Indices of the half that animals of class ``digit`` show in the world."""
        return self._wild[digit]


def _load_digits_table() -> npt.NDArray[np.float64]:
    """The 1797 x 65 table (64 pixels, then the class) that scikit-learn ships.

    Read straight from scikit-learn's package data when it is where scikit-learn keeps
    it: importing scikit-learn costs a device process more than a second of CPU.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations)), "datasets/data/digits.csv.gz")
        if path.is_file():
            with gzip.open(path, "rt") as rows:
                return np.loadtxt(rows, delimiter=",", dtype=np.float64)
    from sklearn.datasets import load_digits  # the documented way, slower

    bunch = load_digits()
    return np.column_stack([bunch.data, bunch.target]).astype(np.float64)


@functools.cache
def digits() -> Digits:
    """The split data set, loaded once per process (about 10 ms)."""
    return Digits()


def normalise(images: Images) -> Images:
    """Stretch each 8x8 image to 0..16: the camera's exposure control, which makes day and
    night shots of one animal comparable (night shots stay noisier)."""
    flat = images.reshape(len(images), -1)
    low = flat.min(axis=1, keepdims=True)
    high = flat.max(axis=1, keepdims=True)
    out: Images = (flat - low) * (16.0 / np.maximum(high - low, 1e-9))
    return out.reshape(images.shape)


class FeatureExtractor:
    """The frozen on-device feature extractor: whitened PCA to ``dim`` features, int8.

    Fitted once on the gallery images of ``known`` digit classes; its ``id`` names the
    classes and size, so a head compiled for another extractor is refused by a device.
    Fitting is deterministic (full SVD), so every process that builds the same extractor
    gets the same embeddings.
    """

    def __init__(self, known: Sequence[int], dim: int) -> None:
        if len(set(known)) < 2 or not all(0 <= d <= 9 for d in known):
            raise ValueError(f"known must name at least two digit classes 0..9, got {known}")
        data = digits()
        self.known = tuple(sorted(set(known)))
        self.dim = dim
        self.id = f"digits-pca{dim}-" + "".join(str(d) for d in self.known)
        rows = np.concatenate([data.gallery(d) for d in self.known])
        self._mean, self._projection = _whitened_pca(
            normalise(data.images[rows]).reshape(len(rows), -1), dim
        )

    def embed(self, images: Images) -> npt.NDArray[np.int8]:
        """The int8 embeddings of a stack of 8x8 images (``n x dim``)."""
        flat = normalise(np.asarray(images, dtype=np.float64)).reshape(len(images), -1)
        z = (flat - self._mean) @ self._projection
        return np.clip(np.rint(z), -127, 127).astype(np.int8)

    def gallery(
        self, digits_: Sequence[int] | None = None
    ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int64]]:
        """Embeddings and digit classes of the gallery half of ``digits_`` (default: known)."""
        data = digits()
        classes = self.known if digits_ is None else tuple(digits_)
        rows = np.concatenate([data.gallery(d) for d in classes])
        return self.embed(data.images[rows]), data.target[rows]

    def wild(
        self, digits_: Sequence[int] | None = None
    ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int64]]:
        """Embeddings and classes of the wild half (clean images, no camera in between)."""
        data = digits()
        classes = self.known if digits_ is None else tuple(digits_)
        rows = np.concatenate([data.wild(d) for d in classes])
        return self.embed(data.images[rows]), data.target[rows]


def _whitened_pca(
    x: npt.NDArray[np.float64], dim: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The mean and the ``features x dim`` projection of whitened PCA, scaled to int8 steps.

    The same transform as scikit-learn's ``PCA(whiten=True)`` (signs fixed so that each
    component's largest entry is positive), in numpy: projecting one crop is then a few
    microseconds rather than scikit-learn's per-call input checks.
    """
    mean = x.mean(axis=0)
    centred = x - mean
    # eigenvectors of the small features x features covariance: an SVD of the data matrix
    # gives the same components but is slow under multithreaded BLAS on a busy machine
    variance, vectors = np.linalg.eigh(centred.T @ centred / (len(x) - 1))
    order = np.argsort(variance)[::-1][:dim]
    if variance[order[-1]] <= 1e-9 * variance[order[0]]:
        spanned = int(np.sum(variance > 1e-9 * variance[order[0]]))
        raise ValueError(
            f"the known classes' images span only {spanned} directions; "
            f"choose an embedding size of at most {spanned}, not {dim}"
        )
    components = vectors[:, order].T
    largest = np.argmax(np.abs(components), axis=1)
    components *= np.sign(components[np.arange(dim), largest])[:, None]
    return mean, components.T * (EMBED_SCALE / np.sqrt(variance[order]))[None, :]
