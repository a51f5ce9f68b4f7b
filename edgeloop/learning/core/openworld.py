"""The open-world cycle's pure core: notice a new species, learn it from a few examples.

A Bayesian prototypical network (learner.md sections 3.3 and 4.1): every known class has
a Normal-Inverse-Wishart posterior over its embedding mean and covariance, all sharing an
empirical-Bayes prior fitted on the known classes (centre = mean of the class means,
covariance = the pooled within-class scatter, ``kappa0`` = within- over between-class
spread). NEW is that prior's Student-t predictive, so "how novel is ``x``" is the closed
form log-odds of NEW against the known mixture:

- **notice**: :func:`novelty_scores` over a threshold from :func:`calibrate_threshold`
  (the quantile that passes 1% of held-out known embeddings); :func:`track_novelty`
  pools a whole track's frames;
- **learn**: :func:`learn_class` turns ``k`` examples into class ``K+1`` (named
  ``species-<K+1>`` until :func:`name_class`); with few examples its covariance is
  essentially the pooled one, which is why 1 to 5 examples suffice.

Plain numpy in float64, no JAX: every step is a few small matrix factorisations, far below
JAX's dispatch cost, and the model is immutable (each call returns a new one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln, logsumexp

from edgeloop.errors import KnowledgeError

__all__ = [
    "NiwPrior",
    "OpenWorld",
    "fit_known",
    "predictive_logpdf",
    "classify",
    "novelty_scores",
    "track_novelty",
    "calibrate_threshold",
    "is_novel",
    "learn_class",
    "name_class",
    "pooled_covariance",
]

Floats = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True, slots=True)
class NiwPrior:
    """The shared Normal-Inverse-Wishart prior: ``mean``, ``kappa`` (pseudo-count of the
    mean), ``nu`` (pseudo-count of the covariance) and scale matrix ``psi``."""

    mean: Floats
    kappa: float
    nu: float
    psi: Floats


@dataclasses.dataclass(frozen=True, slots=True)
class OpenWorld:
    """Known classes' NIW posteriors (row ``k`` is ``labels[k]``) under one prior, and the
    novelty threshold (``inf`` until calibrated). ``version`` counts the changes to the
    vocabulary, so heads compiled from it can say which model they came from."""

    labels: tuple[str, ...]
    prior: NiwPrior
    counts: Floats
    kappa: Floats
    nu: Floats
    means: Floats
    psi: Floats
    threshold: float = float("inf")
    version: int = 1

    @property
    def dim(self) -> int:
        """Length of the embeddings the model scores."""
        return int(self.prior.mean.shape[0])


def _as_examples(x: npt.ArrayLike, dim: int | None, what: str) -> Floats:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        msg = f"{what} must be numbers, got {type(x).__name__}"
        raise KnowledgeError(msg, field=what) from None
    if a.ndim != 2 or a.shape[0] == 0 or (dim is not None and a.shape[1] != dim):
        want = f"(n >= 1, {dim})" if dim is not None else "(n >= 1, dim)"
        raise KnowledgeError(f"{what} must have shape {want}, got {a.shape}", field=what)
    if not np.all(np.isfinite(a)):
        raise KnowledgeError(f"{what} hold NaN or infinite values; drop those rows", field=what)
    return a


def _niw_update(prior: NiwPrior, x: Floats) -> tuple[float, float, Floats, Floats]:
    n = float(len(x))
    mean = x.mean(axis=0)
    centred = x - mean
    kappa = prior.kappa + n
    shift = mean - prior.mean
    psi = prior.psi + centred.T @ centred + (prior.kappa * n / kappa) * np.outer(shift, shift)
    return kappa, prior.nu + n, (prior.kappa * prior.mean + n * mean) / kappa, psi


def _log_marginal(prior: NiwPrior, x: Floats) -> float:
    """log p(x_1..n) with the mean and covariance integrated out under ``prior``."""
    n, d = x.shape
    kappa, nu, _, psi = _niw_update(prior, x)
    half = np.arange(d) / 2.0
    return float(
        np.sum(gammaln(nu / 2.0 - half) - gammaln(prior.nu / 2.0 - half))
        + prior.nu / 2.0 * np.linalg.slogdet(prior.psi)[1]
        - nu / 2.0 * np.linalg.slogdet(psi)[1]
        + d / 2.0 * np.log(prior.kappa / kappa)
        - n * d / 2.0 * np.log(np.pi)
    )


def pooled_covariance(x: npt.ArrayLike, labels: Sequence[str]) -> Floats:
    """The within-class covariance pooled over the classes in ``labels``."""
    a = _as_examples(x, None, "embeddings")
    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels])
    centred = a - np.stack([a[y == k].mean(axis=0) for k in range(len(names))])[y]
    return np.asarray(centred.T @ centred / max(len(a) - len(names), 1))


def fit_known(
    embeddings: npt.ArrayLike, labels: Sequence[str], *, nu_extra: float = 40.0
) -> OpenWorld:
    """The model of the known classes in ``labels`` (one per row of ``embeddings``).

    ``nu_extra`` is how many pseudo-observations the pooled covariance is worth beyond the
    minimum (``dim + 1``): it is what a new class with a handful of examples borrows.
    """
    x = _as_examples(embeddings, None, "embeddings")
    if len(labels) != len(x):
        msg = f"{len(labels)} labels for {len(x)} embeddings; give one label per row"
        raise KnowledgeError(msg, field="labels")
    names = tuple(sorted(set(labels), key=list(labels).index))
    if len(names) < 2:
        raise KnowledgeError("need at least two known classes to fit the prior", field="labels")
    d = x.shape[1]
    y = np.array([names.index(label) for label in labels])
    class_means = np.stack([x[y == k].mean(axis=0) for k in range(len(names))])
    within = pooled_covariance(x, list(labels))
    within += 1e-6 * np.trace(within) / d * np.eye(d)
    between = np.cov(class_means.T, bias=True)
    kappa0 = float(np.trace(within) / max(np.trace(between), 1e-12))
    nu0 = d + 1.0 + nu_extra
    prior = NiwPrior(class_means.mean(axis=0), kappa0, nu0, (nu0 - d - 1.0) * within)
    model = OpenWorld(
        labels=(),
        prior=prior,
        counts=np.zeros(0),
        kappa=np.zeros(0),
        nu=np.zeros(0),
        means=np.zeros((0, d)),
        psi=np.zeros((0, d, d)),
    )
    for k, name in enumerate(names):
        model = _append(model, x[y == k], name)
    return dataclasses.replace(model, version=1)


def _append(model: OpenWorld, x: Floats, name: str) -> OpenWorld:
    kappa, nu, mean, psi = _niw_update(model.prior, x)
    return dataclasses.replace(
        model,
        labels=(*model.labels, name),
        counts=np.r_[model.counts, float(len(x))],
        kappa=np.r_[model.kappa, kappa],
        nu=np.r_[model.nu, nu],
        means=np.vstack([model.means, mean[None, :]]),
        psi=np.concatenate([model.psi, psi[None]]),
        version=model.version + 1,
    )


def _student_t(x: Floats, kappa: float, nu: float, mean: Floats, psi: Floats) -> Floats:
    d = len(mean)
    df = nu - d + 1.0
    scale = psi * (kappa + 1.0) / (kappa * df)
    lower = np.linalg.cholesky(scale)
    z = np.linalg.solve(lower, (x - mean).T)
    maha = np.einsum("dn,dn->n", z, z)
    half_logdet = float(np.log(np.diag(lower)).sum())
    return np.asarray(
        gammaln((df + d) / 2.0)
        - gammaln(df / 2.0)
        - d / 2.0 * np.log(df * np.pi)
        - half_logdet
        - (df + d) / 2.0 * np.log1p(maha / df)
    )


def predictive_logpdf(model: OpenWorld, embeddings: npt.ArrayLike) -> Floats:
    """Student-t log densities of ``n`` embeddings under every known class and, in the last
    column, under NEW (the prior predictive): ``n x (K + 1)``."""
    x = _as_examples(embeddings, model.dim, "embeddings")
    columns = [
        _student_t(x, model.kappa[k], model.nu[k], model.means[k], model.psi[k])
        for k in range(len(model.labels))
    ]
    p = model.prior
    columns.append(_student_t(x, p.kappa, p.nu, p.mean, p.psi))
    return np.stack(columns, axis=1)


def classify(model: OpenWorld, embeddings: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The most likely known class of each embedding (index into ``labels``), equal priors."""
    return np.asarray(np.argmax(predictive_logpdf(model, embeddings)[:, :-1], axis=1))


def novelty_scores(model: OpenWorld, embeddings: npt.ArrayLike) -> Floats:
    """Log-odds of NEW against the known classes (an equal-weight mixture) per embedding:
    higher is more novel."""
    logp = predictive_logpdf(model, embeddings)
    known = logsumexp(logp[:, :-1], axis=1) - np.log(len(model.labels))
    return np.asarray(logp[:, -1] - known)


def track_novelty(model: OpenWorld, embeddings: npt.ArrayLike) -> float:
    """Log-odds that one track's embeddings (all of one animal) come from NEW rather than
    from one of the known classes: the NIW marginal likelihoods of the whole track, so
    evidence accumulates over frames without treating them as independent draws."""
    x = _as_examples(embeddings, model.dim, "embeddings")
    known = [
        _log_marginal(
            NiwPrior(model.means[k], float(model.kappa[k]), float(model.nu[k]), model.psi[k]), x
        )
        for k in range(len(model.labels))
    ]
    return _log_marginal(model.prior, x) - float(logsumexp(known)) + float(np.log(len(known)))


def calibrate_threshold(
    model: OpenWorld, held_out_known: npt.ArrayLike, *, fpr: float = 0.01
) -> OpenWorld:
    """``model`` with the novelty threshold that flags a fraction ``fpr`` of
    ``held_out_known`` (embeddings of known classes the model was not fitted on)."""
    if not 0.0 < fpr < 1.0:
        raise KnowledgeError(f"fpr must lie in (0, 1), got {fpr}", field="fpr")
    scores = novelty_scores(model, held_out_known)
    if len(scores) * fpr < 1.0:
        msg = (
            f"{len(scores)} held-out embeddings cannot resolve a false-alarm rate of {fpr}; "
            f"give at least {int(np.ceil(1.0 / fpr))}"
        )
        raise KnowledgeError(msg, field="held_out_known")
    return dataclasses.replace(model, threshold=float(np.quantile(scores, 1.0 - fpr)))


def is_novel(model: OpenWorld, embeddings: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Whether each embedding crosses the calibrated novelty threshold."""
    if not np.isfinite(model.threshold):
        raise KnowledgeError(
            "the novelty threshold is not calibrated; call calibrate_threshold first",
            field="threshold",
        )
    return np.asarray(novelty_scores(model, embeddings) > model.threshold)


def learn_class(
    model: OpenWorld, examples: npt.ArrayLike, label: str | None = None
) -> tuple[OpenWorld, str]:
    """``model`` with one more class, learnt from ``examples`` (``k x dim``), and its name:
    ``label``, or ``species-<K+1>`` until a user names it."""
    x = _as_examples(examples, model.dim, "examples")
    name = label if label is not None else f"species-{len(model.labels) + 1}"
    if name in model.labels or not name:
        msg = f"class name {name!r} is empty or already exists; choose another name"
        raise KnowledgeError(msg, field="label")
    return _append(model, x, name), name


def name_class(model: OpenWorld, old: str, new: str) -> OpenWorld:
    """``model`` with class ``old`` renamed ``new`` (what a user does for ``species-K+1``)."""
    if old not in model.labels:
        msg = f"no class {old!r}; the classes are {list(model.labels)}"
        raise KnowledgeError(msg, field="old")
    if new in model.labels or not new:
        raise KnowledgeError(f"name {new!r} is empty or taken; choose another", field="new")
    labels = tuple(new if label == old else label for label in model.labels)
    return dataclasses.replace(model, labels=labels, version=model.version + 1)
