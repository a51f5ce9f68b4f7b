"""The on-device head: a prototype classifier with a novelty gate, and its closed-form build.

A device runs what a ``HeadSpec`` describes (see its docstring in ``edgeloop.messages``):
whiten the int8 embedding, find the nearest int8 prototype, and flag the detection as
novel when even the nearest is farther than the gate. It is the LDA-linear "device
portion" of learner.md section 4.2: it *filters* (recognises the known, lets the unknown
through as novel) and the cloud *decides*.

Validation happens once, when a head is loaded: a malformed head raises
:class:`~edgeloop.errors.HeadError` naming the part, and the device keeps the head it had.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

from edgeloop.errors import DecodeError, HeadError
from edgeloop.messages import HeadSpec, HeadUpdate, decode_head

__all__ = [
    "Head",
    "HeadResult",
    "check_head",
    "load_head",
    "compile_head",
    "fit_head",
]


class HeadResult(NamedTuple):
    """What a head says about one embedding: the most likely label, its softmax
    probability, whether the novelty gate fired, and the squared whitened distance to the
    nearest prototype (what the gate compares with ``novelty_threshold``)."""

    label: str
    score: float
    novel: bool
    distance: float


class Head:
    """A checked head, unpacked once into float matrices for scoring (use :func:`check_head`
    or :func:`load_head` to build one)."""

    def __init__(self, spec: HeadSpec) -> None:
        self.spec = spec
        d = spec.dim
        tri = np.frombuffer(spec.whitening, dtype=np.int8).astype(np.float64)
        whitening = np.zeros((d, d))
        whitening[np.tril_indices(d)] = tri
        self._whitening = whitening * spec.whitening_scale
        protos = np.frombuffer(spec.prototypes, dtype=np.int8).astype(np.float64)
        self._prototypes = protos.reshape(len(spec.labels), d) * spec.prototype_scale
        self._biases = np.asarray(spec.biases, dtype=np.float64)

    @property
    def version(self) -> int:
        """The head's version, which every event scored with it reports."""
        return self.spec.version

    @property
    def labels(self) -> tuple[str, ...]:
        """The classes the head knows, in prototype order."""
        return self.spec.labels

    def distances(self, embeddings: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Squared whitened distances of ``n x dim`` embeddings to every prototype."""
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.spec.dim:
            raise ValueError(
                f"expected embeddings of shape (n, {self.spec.dim}), got {x.shape}; this head "
                f"scores {self.spec.dim}-value embeddings of extractor {self.spec.extractor!r}"
            )
        z = x @ self._whitening.T
        diff = z[:, None, :] - self._prototypes[None, :, :]
        return np.asarray(np.einsum("nkd,nkd->nk", diff, diff))

    def score_many(
        self, embeddings: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Label indices, scores and novelty flags of ``n x dim`` embeddings."""
        best, score, novel, _ = self._evaluate(self.distances(embeddings))
        return best, score, novel

    def score(self, embedding: bytes | npt.ArrayLike) -> HeadResult:
        """Score one embedding: raw int8 bytes as an Event carries them, or numbers."""
        if isinstance(embedding, bytes | bytearray | memoryview):
            x = np.frombuffer(embedding, dtype=np.int8)
        else:
            x = np.asarray(embedding)
        if x.shape != (self.spec.dim,):
            raise ValueError(
                f"expected an embedding of {self.spec.dim} values, got shape {x.shape}"
            )
        diff = self._prototypes - self._whitening @ x  # one embedding: skip the batch path
        d2 = np.einsum("kd,kd->k", diff, diff)
        logits = self._biases - d2 / 2.0
        k = int(np.argmax(logits))
        shifted = np.exp(logits - logits[k])
        nearest = float(d2.min())
        return HeadResult(
            self.labels[k],
            float(1.0 / shifted.sum()),
            nearest > self.spec.novelty_threshold,
            nearest,
        )

    def _evaluate(
        self, d2: npt.NDArray[np.float64]
    ) -> tuple[
        npt.NDArray[np.int64],
        npt.NDArray[np.float64],
        npt.NDArray[np.bool_],
        npt.NDArray[np.float64],
    ]:
        logits = self._biases[None, :] - d2 / 2.0
        best = np.argmax(logits, axis=1)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        score = shifted.max(axis=1) / shifted.sum(axis=1)
        nearest = d2.min(axis=1)
        return best, score, nearest > self.spec.novelty_threshold, nearest


def check_head(spec: HeadSpec, *, extractor: str | None = None, dim: int | None = None) -> Head:
    """``spec`` ready to run on a device whose extractor is ``extractor`` with embeddings of
    ``dim`` values (``None``: not checked), or a HeadError naming what does not fit."""
    try:
        spec = msgspec.msgpack.decode(msgspec.msgpack.encode(spec), type=HeadSpec)
    except msgspec.ValidationError as error:  # built in Python past the receiver's bounds
        raise HeadError(f"malformed head: {error}", field=_field(str(error))) from None
    if extractor is not None and spec.extractor != extractor:
        raise HeadError(
            f"head v{spec.version} was built for extractor {spec.extractor!r}, this device runs "
            f"{extractor!r}; compile the head from this device's embeddings",
            field="extractor",
        )
    if dim is not None and spec.dim != dim:
        raise HeadError(
            f"head v{spec.version} scores {spec.dim}-value embeddings, this device makes {dim}",
            field="dim",
        )
    diagonal = np.frombuffer(spec.whitening, dtype=np.int8)[
        [i * (i + 1) // 2 + i for i in range(spec.dim)]
    ]
    if np.any(diagonal == 0):
        raise HeadError(
            f"head v{spec.version}: the whitening matrix has a zero on its diagonal, so it "
            "ignores some directions of the embedding; quantise it with a finer scale",
            field="whitening",
        )
    return Head(spec)


def load_head(
    data: bytes | HeadUpdate, *, extractor: str | None = None, dim: int | None = None
) -> Head:
    """The head in encoded bytes or a HeadUpdate (whose checksum and version are checked
    too), ready to run; HeadError naming the problem otherwise."""
    raw = data.head if isinstance(data, HeadUpdate) else data
    if isinstance(data, HeadUpdate) and zlib.crc32(raw) != data.checksum:
        raise HeadError(
            f"head update v{data.version}: checksum {data.checksum} does not match the "
            f"bytes ({zlib.crc32(raw)}); the head was damaged on the way, send it again",
            field="checksum",
        )
    try:
        spec = decode_head(raw)
    except DecodeError as error:
        raise HeadError(f"malformed head: {error}", field=error.field) from None
    if isinstance(data, HeadUpdate) and spec.version != data.version:
        raise HeadError(
            f"head update says v{data.version} but carries a v{spec.version} head",
            field="version",
        )
    return check_head(spec, extractor=extractor, dim=dim)


def compile_head(
    means: npt.ArrayLike,
    covariance: npt.ArrayLike,
    labels: Sequence[str],
    *,
    extractor: str,
    version: int,
    novelty_threshold: float,
    log_priors: npt.ArrayLike | None = None,
) -> HeadSpec:
    """The head for class ``means`` (``K x dim``, in embedding units) sharing one
    ``covariance``: whitening ``chol(covariance)^-1`` and whitened prototypes, quantised
    to int8 (prototypes are whitened with the quantised matrix, so they stay consistent)."""
    mu = np.asarray(means, dtype=np.float64)
    cov = np.asarray(covariance, dtype=np.float64)
    k, d = mu.shape
    if cov.shape != (d, d) or len(labels) != k:
        raise ValueError(f"means {mu.shape}, covariance {cov.shape}, {len(labels)} labels disagree")
    lower = np.linalg.cholesky(cov)
    whitening = np.linalg.solve(lower, np.eye(d))
    tri = whitening[np.tril_indices(d)]
    w_scale = float(np.abs(tri).max()) / 127.0
    w_q = np.clip(np.rint(tri / w_scale), -127, 127).astype(np.int8)
    w_hat = np.zeros((d, d))
    w_hat[np.tril_indices(d)] = w_q.astype(np.float64) * w_scale
    protos = mu @ w_hat.T
    p_scale = max(float(np.abs(protos).max()), 1e-12) / 127.0
    p_q = np.clip(np.rint(protos / p_scale), -127, 127).astype(np.int8)
    priors = np.zeros(k) if log_priors is None else np.asarray(log_priors, dtype=np.float64)
    return HeadSpec(
        version=version,
        extractor=extractor,
        dim=d,
        labels=tuple(labels),
        whitening=w_q.tobytes(),
        whitening_scale=w_scale,
        prototypes=p_q.tobytes(),
        prototype_scale=p_scale,
        biases=tuple(float(b) for b in priors),
        novelty_threshold=float(novelty_threshold),
    )


def fit_head(
    embeddings: npt.ArrayLike,
    labels: Sequence[str],
    *,
    extractor: str,
    version: int = 1,
    fpr: float = 0.05,
    shrinkage: float = 0.05,
) -> HeadSpec:
    """A head fitted in closed form on labelled embeddings: class means, the pooled
    within-class covariance (shrunk by ``shrinkage`` towards its diagonal, which keeps
    rare directions from dominating), uniform priors, and a novelty gate that passes a
    fraction ``fpr`` of the training embeddings."""
    x = np.asarray(embeddings, dtype=np.float64)
    names = sorted(set(labels), key=list(labels).index)
    y = np.array([names.index(label) for label in labels])
    means = np.stack([x[y == k].mean(axis=0) for k in range(len(names))])
    centred = x - means[y]
    cov = centred.T @ centred / max(len(x) - len(names), 1)
    cov = (1.0 - shrinkage) * cov + shrinkage * np.diag(np.diag(cov))
    cov += 1e-6 * np.trace(cov) / len(cov) * np.eye(len(cov))
    draft = compile_head(
        means, cov, names, extractor=extractor, version=version, novelty_threshold=1.0
    )
    nearest = Head(draft).distances(x).min(axis=1)
    threshold = float(np.quantile(nearest, 1.0 - fpr))
    return msgspec.structs.replace(draft, novelty_threshold=max(threshold, 1e-9))


def _field(text: str) -> str:
    start = text.rfind("`$")
    return text[start + 1 : -1] if start >= 0 and text.endswith("`") else ""
