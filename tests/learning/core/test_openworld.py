"""The open-world core (notice, learn, name) and the head compiler, on synthetic clusters.

Oracles are independent: scipy's multivariate t for the predictive, the textbook NIW
update written out here, the sensors' own ``compile_head``/``check_head``/``load_head``
for the compiled head, and fresh samples for the calibrated false-alarm rate.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import multivariate_t

from edgeloop.errors import KnowledgeError
from edgeloop.learning.core import head_compiler, openworld
from edgeloop.messages import encode_head
from edgeloop.sensors import check_head, compile_head, load_head

DIM = 4
CENTRES = np.array([[0.0, 0, 0, 0], [6, 0, 0, 0], [0, 6, 0, 0], [0, 0, 6, 0]])
NOVEL = np.array([0.0, 0, 0, 7])
MIX = np.array([[1.0, 0.3, 0, 0], [0, 1.0, 0.2, 0], [0, 0, 1.0, 0], [0, 0, 0.4, 0.8]])


def sample(centre: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(centre + rng.standard_normal((n, DIM)) @ MIX.T)


def known_data(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    x = np.vstack([sample(c, n, rng) for c in CENTRES])
    return x, [f"c{k}" for k in range(len(CENTRES)) for _ in range(n)]


@pytest.fixture(scope="module")
def model() -> openworld.OpenWorld:
    x, labels = known_data(100, 0)
    held_out, _ = known_data(500, 1)
    return openworld.calibrate_threshold(openworld.fit_known(x, labels), held_out, fpr=0.01)


def test_posteriors_follow_the_niw_update(model: openworld.OpenWorld):
    x, labels = known_data(100, 0)
    p = model.prior
    rows = x[np.array(labels) == "c2"]
    n, mean = len(rows), rows.mean(axis=0)
    scatter = (rows - mean).T @ (rows - mean)
    shift = mean - p.mean
    expected_psi = p.psi + scatter + p.kappa * n / (p.kappa + n) * np.outer(shift, shift)
    k = model.labels.index("c2")
    assert (model.counts[k], model.kappa[k], model.nu[k]) == (n, p.kappa + n, p.nu + n)
    np.testing.assert_allclose(model.means[k], (p.kappa * p.mean + n * mean) / (p.kappa + n))
    np.testing.assert_allclose(model.psi[k], expected_psi)
    pooled = openworld.pooled_covariance(x, labels)
    np.testing.assert_allclose(p.psi / (p.nu - DIM - 1), pooled, rtol=1e-4)


def test_predictive_is_the_student_t(model: openworld.OpenWorld):
    x = sample(NOVEL, 5, np.random.default_rng(2))
    logp = openworld.predictive_logpdf(model, x)
    assert logp.shape == (5, len(model.labels) + 1)
    for k in range(len(model.labels) + 1):
        if k < len(model.labels):
            kappa, nu, mean, psi = model.kappa[k], model.nu[k], model.means[k], model.psi[k]
        else:
            p = model.prior
            kappa, nu, mean, psi = p.kappa, p.nu, p.mean, p.psi
        df = nu - DIM + 1
        oracle = multivariate_t(loc=mean, shape=psi * (kappa + 1) / (kappa * df), df=df)
        np.testing.assert_allclose(logp[:, k], oracle.logpdf(x), rtol=1e-9)


def test_known_classes_are_classified(model: openworld.OpenWorld):
    x, labels = known_data(200, 3)
    predicted = np.array(model.labels)[openworld.classify(model, x)]
    assert np.mean(predicted == np.array(labels)) > 0.97


def test_threshold_gives_the_calibrated_false_alarm_rate(model: openworld.OpenWorld):
    fresh, _ = known_data(2_000, 4)
    rate = float(np.mean(openworld.is_novel(model, fresh)))
    assert 0.003 < rate < 0.02
    novel = sample(NOVEL, 500, np.random.default_rng(5))
    assert np.mean(openworld.is_novel(model, novel)) > 0.9


def test_learn_a_class_from_five_examples_then_name_it(model: openworld.OpenWorld):
    rng = np.random.default_rng(6)
    grown, name = openworld.learn_class(model, sample(NOVEL, 5, rng))
    assert (name, grown.labels[-1]) == ("species-5", name)
    assert (grown.version, len(model.labels)) == (model.version + 1, 4)  # model unchanged
    novel = sample(NOVEL, 500, rng)
    assert np.mean(np.array(grown.labels)[openworld.classify(grown, novel)] == name) > 0.9
    x, labels = known_data(200, 7)
    before = np.mean(np.array(model.labels)[openworld.classify(model, x)] == np.array(labels))
    after = np.mean(np.array(grown.labels)[openworld.classify(grown, x)] == np.array(labels))
    assert before - after <= 0.01
    named = openworld.name_class(grown, name, "opossum")
    assert (named.labels[-1], named.version) == ("opossum", grown.version + 1)
    np.testing.assert_array_equal(named.means, grown.means)


def test_one_example_borrows_the_pooled_covariance(model: openworld.OpenWorld):
    grown, _ = openworld.learn_class(model, NOVEL[None, :])
    p = model.prior
    new_cov = grown.psi[-1] / (grown.nu[-1] - DIM - 1)
    pooled = p.psi / (p.nu - DIM - 1)
    # one example adds a rank-one shift to the prior's scatter, no within-class scatter
    assert np.linalg.norm(new_cov - pooled) / np.linalg.norm(pooled) < 0.5


@pytest.mark.parametrize(
    ("examples", "field"),
    [
        (np.zeros((3, DIM + 1)), "examples"),
        (np.zeros((0, DIM)), "examples"),
        (np.full((2, DIM), np.nan), "examples"),
        (np.zeros(DIM), "examples"),
        ([["a"] * DIM], "examples"),
    ],
)
def test_bad_examples_are_refused(model: openworld.OpenWorld, examples: object, field: str):
    labels, version, means = model.labels, model.version, model.means.copy()
    with pytest.raises(KnowledgeError, match="examples") as error:
        openworld.learn_class(model, examples)  # type: ignore[arg-type]
    assert error.value.field == field
    assert (model.labels, model.version) == (labels, version)
    np.testing.assert_array_equal(model.means, means)


def test_bad_vocabulary_operations_are_refused(model: openworld.OpenWorld):
    for taken in ("c1", ""):
        with pytest.raises(KnowledgeError, match="empty or already exists") as error:
            openworld.learn_class(model, NOVEL[None, :], taken)
        assert error.value.field == "label"
    with pytest.raises(KnowledgeError, match="no class 'zebra'"):
        openworld.name_class(model, "zebra", "horse")
    with pytest.raises(KnowledgeError, match="taken"):
        openworld.name_class(model, "c0", "c1")
    with pytest.raises(KnowledgeError, match="two known classes"):
        openworld.fit_known(np.zeros((3, DIM)), ["a", "a", "a"])
    with pytest.raises(KnowledgeError, match="one label per row") as error:
        openworld.fit_known(np.zeros((3, DIM)), ["a", "b"])
    assert error.value.field == "labels"


def test_threshold_needs_calibration_and_enough_data(model: openworld.OpenWorld):
    raw = dataclasses.replace(model, threshold=float("inf"))
    with pytest.raises(KnowledgeError, match="calibrate_threshold first"):
        openworld.is_novel(raw, NOVEL[None, :])
    with pytest.raises(KnowledgeError, match="at least 100") as error:
        openworld.calibrate_threshold(raw, np.zeros((50, DIM)), fpr=0.01)
    assert error.value.field == "held_out_known"
    with pytest.raises(KnowledgeError, match="fpr"):
        openworld.calibrate_threshold(raw, np.zeros((50, DIM)), fpr=1.5)


def test_compiled_head_is_what_a_device_compiles_and_accepts(model: openworld.OpenWorld):
    grown, name = openworld.learn_class(model, sample(NOVEL, 5, np.random.default_rng(8)))
    held_out, _ = known_data(500, 9)
    spec = head_compiler.compile_openworld_head(grown, held_out, extractor="synthetic", fpr=0.05)
    assert (spec.version, spec.labels) == (grown.version, grown.labels)
    theirs = compile_head(
        grown.means,
        head_compiler.head_covariance(grown),
        grown.labels,
        extractor="synthetic",
        version=spec.version,
        novelty_threshold=spec.novelty_threshold,
    )
    assert theirs == spec
    data = encode_head(spec)
    assert len(data) < head_compiler.HEAD_BUDGET
    head = load_head(data, extractor="synthetic", dim=DIM)
    check_head(spec, extractor="synthetic", dim=DIM)
    np.testing.assert_allclose(
        head.distances(held_out), head_compiler.head_distances(spec, held_out)
    )
    assert np.mean(head.distances(held_out).min(axis=1) > spec.novelty_threshold) == pytest.approx(
        0.05, abs=0.005
    )
    novel = sample(NOVEL, 300, np.random.default_rng(10))
    best, _, _ = head.score_many(novel)
    assert np.mean(np.array(head.labels)[best] == name) > 0.9


def test_head_over_budget_is_refused():
    rng = np.random.default_rng(11)
    dim, classes = 24, 40
    x = rng.standard_normal((classes * 30, dim)) + np.repeat(
        rng.normal(0, 5, (classes, dim)), 30, 0
    )
    labels = [f"class-{k}" for k in range(classes) for _ in range(30)]
    big = openworld.fit_known(x, labels)
    with pytest.raises(KnowledgeError, match="over the 1024-byte budget") as error:
        head_compiler.compile_openworld_head(big, x, extractor="synthetic")
    assert error.value.field == "head"


def test_head_distances_refuse_wrong_shapes(model: openworld.OpenWorld):
    held_out, _ = known_data(100, 12)
    spec = head_compiler.compile_openworld_head(model, held_out, extractor="synthetic")
    with pytest.raises(KnowledgeError, match=r"shape \(n, 4\)"):
        head_compiler.head_distances(spec, np.zeros((3, 5)))


def test_track_novelty_is_the_chain_of_sequential_predictives(model: openworld.OpenWorld):
    track = sample(NOVEL, 4, np.random.default_rng(13))
    # oracle: p(x1..n | class) = prod_i p(x_i | x_<i, class), each a Student-t predictive
    chains = []
    for k in range(len(model.labels) + 1):
        total = 0.0
        for i, row in enumerate(track):  # the class's posterior after the earlier frames
            grown = _absorb(model, k, track[:i]) if i else model
            total += float(openworld.predictive_logpdf(grown, row[None, :])[0, k])
        chains.append(total)
    known = np.logaddexp.reduce(chains[:-1]) - np.log(len(model.labels))
    assert openworld.track_novelty(model, track) == pytest.approx(chains[-1] - known, rel=1e-9)
    one = openworld.track_novelty(model, track[:1])
    assert one == pytest.approx(float(openworld.novelty_scores(model, track[:1])[0]), rel=1e-9)


def test_track_novelty_grows_with_evidence(model: openworld.OpenWorld):
    rng = np.random.default_rng(14)
    novel = sample(NOVEL, 6, rng)
    known = sample(CENTRES[1], 6, rng)
    assert openworld.track_novelty(model, novel) > openworld.track_novelty(model, novel[:2]) > 0
    assert openworld.track_novelty(model, known) < 0


def _absorb(model: openworld.OpenWorld, k: int, x: np.ndarray) -> openworld.OpenWorld:
    """``model`` with class ``k`` (or NEW, ``k == len(labels)``) updated by ``x`` through
    the textbook NIW update, written independently of the module's."""
    p = model.prior
    if k == len(model.labels):
        kappa, nu, mean, psi = p.kappa, p.nu, p.mean, p.psi
    else:
        kappa, nu, mean, psi = model.kappa[k], model.nu[k], model.means[k], model.psi[k]
    n, xbar = len(x), x.mean(axis=0)
    s = (x - xbar).T @ (x - xbar)
    new = (
        kappa + n,
        nu + n,
        (kappa * mean + n * xbar) / (kappa + n),
        psi + s + kappa * n / (kappa + n) * np.outer(xbar - mean, xbar - mean),
    )
    if k == len(model.labels):
        return dataclasses.replace(model, prior=openworld.NiwPrior(new[2], new[0], new[1], new[3]))
    return dataclasses.replace(
        model,
        kappa=np.r_[model.kappa[:k], new[0], model.kappa[k + 1 :]],
        nu=np.r_[model.nu[:k], new[1], model.nu[k + 1 :]],
        means=np.vstack([model.means[:k], new[2][None], model.means[k + 1 :]]),
        psi=np.concatenate([model.psi[:k], new[3][None], model.psi[k + 1 :]]),
    )
