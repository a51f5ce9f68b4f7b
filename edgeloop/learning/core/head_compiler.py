"""The head compiler: the open-world posterior, in closed form, as an on-device head.

A camera runs the LDA-linear head a ``HeadSpec`` describes (its docstring in
``edgeloop.messages`` is the contract): whitening ``W = chol(Sigma)^-1`` and whitened
prototypes ``W mu_k``, both int8, equal biases, and a novelty gate on the nearest squared
distance. Here ``mu_k`` are the classes' posterior means and ``Sigma`` their posterior
covariances averaged by class size (the pooled covariance, which a just-learnt class
shares). The arithmetic is the sensors' ``compile_head``, reproduced because ``learning``
may not import ``sensors``; tests and ``edgeloop bench knowledge`` check that the two give
the same bytes and that a device's ``check_head`` accepts what this builds.
"""

from __future__ import annotations

import msgspec
import numpy as np
import numpy.typing as npt

from edgeloop.errors import KnowledgeError
from edgeloop.learning.core.openworld import OpenWorld
from edgeloop.messages import HeadSpec, encode_head

__all__ = [
    "HEAD_BUDGET",
    "head_covariance",
    "quantise_head",
    "head_distances",
    "compile_openworld_head",
]

HEAD_BUDGET = 1024
"""Most bytes an encoded head may take: it travels in one small HeadUpdate per camera."""

Floats = npt.NDArray[np.float64]


def head_covariance(model: OpenWorld, *, shrinkage: float = 0.05) -> Floats:
    """The classes' posterior mean covariances averaged by class size, shrunk by
    ``shrinkage`` towards the diagonal (keeps rare directions from dominating) and
    regularised so its Cholesky factor exists."""
    d = model.dim
    expected = model.psi / (model.nu - d - 1.0)[:, None, None]
    weights = model.counts / model.counts.sum()
    cov = np.einsum("k,kde->de", weights, expected)
    cov = (1.0 - shrinkage) * cov + shrinkage * np.diag(np.diag(cov))
    return np.asarray(cov + 1e-6 * np.trace(cov) / d * np.eye(d))


def quantise_head(
    means: npt.ArrayLike,
    covariance: npt.ArrayLike,
    labels: tuple[str, ...],
    *,
    extractor: str,
    version: int,
    novelty_threshold: float,
) -> HeadSpec:
    """The int8 head of ``means`` (``K x dim``) sharing ``covariance``, exactly as a
    device's compiler builds it: prototypes are whitened with the *quantised* matrix so
    that the two stay consistent."""
    mu = np.asarray(means, dtype=np.float64)
    k, d = mu.shape
    lower = np.linalg.cholesky(np.asarray(covariance, dtype=np.float64))
    whitening = np.linalg.solve(lower, np.eye(d))
    tri = whitening[np.tril_indices(d)]
    w_scale = float(np.abs(tri).max()) / 127.0
    w_q = np.clip(np.rint(tri / w_scale), -127, 127).astype(np.int8)
    w_hat = np.zeros((d, d))
    w_hat[np.tril_indices(d)] = w_q.astype(np.float64) * w_scale
    protos = mu @ w_hat.T
    p_scale = max(float(np.abs(protos).max()), 1e-12) / 127.0
    p_q = np.clip(np.rint(protos / p_scale), -127, 127).astype(np.int8)
    return HeadSpec(
        version=version,
        extractor=extractor,
        dim=d,
        labels=labels,
        whitening=w_q.tobytes(),
        whitening_scale=w_scale,
        prototypes=p_q.tobytes(),
        prototype_scale=p_scale,
        biases=tuple(0.0 for _ in range(k)),
        novelty_threshold=float(novelty_threshold),
    )


def head_distances(spec: HeadSpec, embeddings: npt.ArrayLike) -> Floats:
    """Squared whitened distances (``n x K``) of embeddings to the head's prototypes, as
    the device computes them from the int8 fields."""
    d = spec.dim
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != d:
        msg = f"embeddings must have shape (n, {d}) for this head, got {x.shape}"
        raise KnowledgeError(msg, field="embeddings")
    w = np.zeros((d, d))
    w[np.tril_indices(d)] = np.frombuffer(spec.whitening, dtype=np.int8)
    protos = np.frombuffer(spec.prototypes, dtype=np.int8).astype(np.float64).reshape(-1, d)
    z = x @ (w * spec.whitening_scale).T
    diff = z[:, None, :] - (protos * spec.prototype_scale)[None, :, :]
    return np.asarray(np.einsum("nkd,nkd->nk", diff, diff))


def compile_openworld_head(
    model: OpenWorld,
    held_out_known: npt.ArrayLike,
    *,
    extractor: str,
    version: int | None = None,
    fpr: float = 0.05,
    shrinkage: float = 0.05,
) -> HeadSpec:
    """The device head for ``model``: its novelty gate passes a fraction ``fpr`` of
    ``held_out_known`` (device gates are set for recall; the cloud decides), its version
    is ``version`` or the model's. KnowledgeError if it would exceed :data:`HEAD_BUDGET`."""
    if not 0.0 < fpr < 1.0:
        raise KnowledgeError(f"fpr must lie in (0, 1), got {fpr}", field="fpr")
    draft = quantise_head(
        model.means,
        head_covariance(model, shrinkage=shrinkage),
        model.labels,
        extractor=extractor,
        version=model.version if version is None else version,
        novelty_threshold=1.0,
    )
    nearest = head_distances(draft, held_out_known).min(axis=1)
    threshold = max(float(np.quantile(nearest, 1.0 - fpr)), 1e-9)
    head = msgspec.structs.replace(draft, novelty_threshold=threshold)
    size = len(encode_head(head))
    if size > HEAD_BUDGET:
        msg = (
            f"head v{head.version} encodes to {size} bytes, over the {HEAD_BUDGET}-byte budget; "
            f"use fewer classes ({len(head.labels)}) or a smaller embedding ({head.dim})"
        )
        raise KnowledgeError(msg, field="head")
    return head
