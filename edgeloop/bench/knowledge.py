"""``edgeloop bench knowledge``: the open-world cycle's quality on the digits, leave-one-out.

Each of the ten digit classes in turn is the "opossum": the world's frozen extractor
(whitened PCA to 20 values, int8) is fitted on the other nine classes' gallery half, the
open-world model (:mod:`edgeloop.learning.core.openworld`) on the same embeddings, and
everything is measured on the wild half. Known wild embeddings are split in two: even
rows calibrate the thresholds, odd rows test. Rows (``edgeloop`` field = our value):

- ``digits_auroc_cloud``: novelty AUROC of the NIW log-odds, against LDA's minimum
  Mahalanobis distance (target >= 0.98);
- ``digits_auroc_device``: of the compiled int8 head's nearest distance, loaded through
  a device's own ``check_head``/``load_head``, against the same LDA (target >= 0.90);
- ``digits_new_class_acc_5shot`` / ``_1shot``: the new class learnt from k gallery
  examples (what the cameras' buffers would give), accuracy on its wild half over all
  K + 1 classes, against scikit-learn's nearest centroid given the same examples (target
  >= 0.90 for 5-shot; 1-shot reported);
- ``digits_known_acc_drop``: known-class accuracy lost once the 5-shot class is added,
  against the issue's tolerance 0.01 (a baseline's drop can be 0, which no ratio reads);
- ``digits_device_new_class_acc_5shot``: the recompiled head on the new class (reported);
- ``digits_track_auroc_3frames``: novelty AUROC of whole 3-frame tracks (NIW marginal
  likelihoods), against one frame's (reported);
- ``digits_false_alarm_rate``: novelty flags on known test rows at the threshold
  calibrated for 1% (reported, against the 0.01 it was calibrated for);
- ``learn_and_compile_ms``: learn the class, compile and check its head, against
  refitting scikit-learn's LDA on all the data.

Then the ``yard_*`` rows (``_knowledge_yard``): the same core on the ``opossum`` yard's
own camera detections (frames to notice, false alarms, 5-shot class, known-accuracy drop).

Then the cycle end to end (``_cycle``), ``cycles`` times on a fresh node with the yard's
eight cameras as device agents over real ZeroMQ links on loopback:
``cycle_latency_p50_ms`` (notice to the last camera's head ack; the issue counts from the
first event of the new species and leaves out the wait for the k examples, which is
``cycle_wait_for_examples_ms``, against k frames at the cameras' rate).

The issue's absolute targets and whether each is met are in the environment's
``targets``; the rows' goals compare with the anchors.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edgeloop.bench._cycle import cycle_rows
from edgeloop.bench._knowledge_yard import yard_rows
from edgeloop.bench._report import Result, SuiteResult
from edgeloop.errors import EdgeloopInternalError
from edgeloop.messages import encode_head
from edgeloop.sensors import Head, check_head, compile_head, load_head
from edgeloop.sensors.world import FeatureExtractor

if TYPE_CHECKING:  # importing the learning core loads JAX: only when the suite runs
    from edgeloop.learning.core import openworld

__all__ = ["run_knowledge", "QUICK", "FULL", "Sizes", "TARGETS"]

TARGETS = {
    "digits_auroc_cloud": ">= 0.98",
    "digits_auroc_device": ">= 0.90",
    "digits_new_class_acc_5shot": ">= 0.90",
    "digits_known_acc_drop": "<= 0.01",
    "cycle_latency_p50_ms": "<= 1000",
}
"""The issue's targets on the ``edgeloop`` values (not on the ratios)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    """Random draws of the k examples per held-out class, and the embedding size."""

    repeats: int
    dim: int = 20
    cycles: int = 10
    """Knowledge cycles run end to end on loopback (``_cycle``)."""


QUICK = Sizes(repeats=3, cycles=3)
FULL = Sizes(repeats=20, cycles=10)

Int8s = npt.NDArray[np.int8]
_NC = "nearest centroid"


@dataclasses.dataclass(slots=True)
class _Tally:
    figures: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.figures.setdefault(name, []).append(value)

    def mean(self, name: str) -> float:
        return float(np.mean(self.figures[name]))


def run_knowledge(quick: bool = False, *, sizes: Sizes | None = None) -> SuiteResult:
    """Run the ``knowledge`` suite: :data:`QUICK` draws for CI, :data:`FULL` otherwise."""
    sizes = sizes or (QUICK if quick else FULL)
    rng = np.random.default_rng(20190531)
    tally = _Tally()
    for novel in range(10):
        _one_class_out(novel, sizes, rng, tally)
    m = tally.mean
    results = [
        Result("digits_auroc_cloud", "AUROC", m("cloud"), m("lda_auc"), "LDA Mahalanobis", ">= 1"),
        Result(
            "digits_auroc_device", "AUROC", m("device"), m("lda_auc"), "LDA Mahalanobis", ">= 0.95"
        ),
        Result("digits_new_class_acc_5shot", "fraction", m("new5"), m("nc5"), _NC, ">= 1"),
        Result("digits_new_class_acc_1shot", "fraction", m("new1"), m("nc1"), _NC, ">= 1"),
        Result("digits_known_acc_drop", "fraction", m("drop"), 0.01, "tolerance 0.01", "<= 1"),
        Result(
            "digits_device_new_class_acc_5shot",
            "fraction",
            m("device5"),
            m("nc5"),
            _NC,
            ">= 0.9",
        ),
        Result("digits_track_auroc_3frames", "AUROC", m("track3"), m("cloud"), "one frame", ">= 1"),
        Result("digits_false_alarm_rate", "fraction", m("fpr"), 0.01, "calibrated 0.01", "<= 2"),
        Result(
            "learn_and_compile_ms",
            "ms",
            float(np.median(tally.figures["ours_ms"])),
            float(np.median(tally.figures["lda_ms"])),
            "scikit-learn LDA refit",
            "<= 1",
        ),
    ]
    results += yard_rows()
    with tempfile.TemporaryDirectory(prefix="edgeloop-cycle-") as where:
        rows, cycle_env = cycle_rows(sizes.cycles, Path(where))
    results += rows
    values = {r.name: r.edgeloop for r in results}
    targets = {
        name: {"goal": goal, "value": values[name], "met": _holds(goal, values[name])}
        for name, goal in TARGETS.items()
    }
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "quick": quick,
        "targets": targets,
        "cloud_auroc_min": float(np.min(tally.figures["cloud"])),
        "device_auroc_min": float(np.min(tally.figures["device"])),
        "head_bytes_max": int(np.max(tally.figures["head_bytes"])),
        **dataclasses.asdict(sizes),
        **cycle_env,
    }
    return SuiteResult("knowledge", tuple(results), env)


def _holds(goal: str, value: float) -> bool:
    op, number = goal.split()
    return value >= float(number) if op == ">=" else value <= float(number)


def _one_class_out(novel: int, sizes: Sizes, rng: np.random.Generator, tally: _Tally) -> None:
    from edgeloop.learning.core import openworld

    extractor = FeatureExtractor([d for d in range(10) if d != novel], sizes.dim)
    x, y = extractor.gallery()
    names = [str(c) for c in y]
    wild, truth = extractor.wild()
    calibration, test, test_truth = wild[0::2], wild[1::2], truth[1::2].astype(str)
    unknown, _ = extractor.wild([novel])
    examples, _ = extractor.gallery([novel])

    model = openworld.fit_known(x, names)
    model = openworld.calibrate_threshold(model, calibration, fpr=0.01)
    tally.add("fpr", float(np.mean(openworld.is_novel(model, test))))
    tally.add(
        "cloud",
        _auroc(openworld.novelty_scores(model, test), openworld.novelty_scores(model, unknown)),
    )
    lda = _lda(x, y)
    tally.add("lda_auc", _auroc(_min_mahalanobis(lda, test), _min_mahalanobis(lda, unknown)))
    tally.add("track3", _track_auroc(model, test, test_truth, unknown, rng))
    device = _device_head(model, calibration, extractor, tally)
    tally.add("device", _auroc(_nearest(device, test), _nearest(device, unknown)))
    before = float(np.mean(_labels(model, test) == test_truth))

    for k in (5, 1):
        for _ in range(sizes.repeats):
            shots = examples[rng.choice(len(examples), size=k, replace=False)]
            start = time.perf_counter()
            grown, name = openworld.learn_class(model, shots)
            head = _device_head(grown, calibration, extractor, tally) if k == 5 else None
            ours_ms = (time.perf_counter() - start) * 1e3
            tally.add(f"new{k}", float(np.mean(_labels(grown, unknown) == name)))
            tally.add(f"nc{k}", _nearest_centroid(x, names, shots, unknown))
            if head is None:
                continue
            tally.add("ours_ms", ours_ms)
            tally.add("lda_ms", _lda_refit_ms(x, y, shots, novel))
            tally.add("drop", before - float(np.mean(_labels(grown, test) == test_truth)))
            best, _, _ = head.score_many(unknown)
            tally.add("device5", float(np.mean(np.array(head.labels)[best] == name)))


def _track_auroc(
    model: openworld.OpenWorld,
    test: Int8s,
    truth: npt.NDArray[np.str_],
    unknown: Int8s,
    rng: np.random.Generator,
    tracks: int = 60,
) -> float:
    """Novelty AUROC of 3-frame tracks: frames of one known class against novel ones."""
    from edgeloop.learning.core import openworld

    known = []
    for _ in range(tracks):
        rows = np.flatnonzero(truth == truth[rng.integers(len(truth))])
        known.append(openworld.track_novelty(model, test[rng.choice(rows, 3, replace=False)]))
    novel = [
        openworld.track_novelty(model, unknown[rng.choice(len(unknown), 3, replace=False)])
        for _ in range(tracks)
    ]
    return _auroc(np.array(known), np.array(novel))


def _device_head(
    model: openworld.OpenWorld, held_out: Int8s, extractor: FeatureExtractor, tally: _Tally
) -> Head:
    """Compile the head, check it as a device would (bytes and all), and check that it is
    what the sensors' own compiler makes from the same means and covariance."""
    from edgeloop.learning.core import head_compiler

    spec = head_compiler.compile_openworld_head(model, held_out, extractor=extractor.id)
    head = load_head(encode_head(spec), extractor=extractor.id, dim=extractor.dim)
    theirs = compile_head(
        model.means,
        head_compiler.head_covariance(model),
        model.labels,
        extractor=extractor.id,
        version=spec.version,
        novelty_threshold=spec.novelty_threshold,
    )
    if (theirs.whitening, theirs.prototypes) != (spec.whitening, spec.prototypes):
        msg = "the learner's head compiler and the sensors' compile_head disagree"
        raise EdgeloopInternalError(msg)
    check_head(spec, extractor=extractor.id, dim=extractor.dim)
    tally.add("head_bytes", float(len(encode_head(spec))))
    return head


def _labels(model: openworld.OpenWorld, x: Int8s) -> npt.NDArray[np.str_]:
    from edgeloop.learning.core import openworld

    return np.asarray(np.array(model.labels)[openworld.classify(model, x)])


def _nearest(head: Head, x: Int8s) -> npt.NDArray[np.float64]:
    return np.asarray(head.distances(x).min(axis=1))


def _auroc(known: npt.NDArray[np.float64], novel: npt.NDArray[np.float64]) -> float:
    from sklearn.metrics import roc_auc_score

    truth = np.r_[np.zeros(len(known)), np.ones(len(novel))]
    return float(roc_auc_score(truth, np.r_[known, novel]))


def _lda(x: Int8s, y: npt.NDArray[np.int64]) -> Any:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    return LinearDiscriminantAnalysis(store_covariance=True).fit(x.astype(np.float64), y)


def _min_mahalanobis(lda: Any, x: Int8s) -> npt.NDArray[np.float64]:
    inverse = np.linalg.inv(lda.covariance_)
    diff = x.astype(np.float64)[:, None, :] - lda.means_[None, :, :]
    return np.asarray(np.einsum("nkd,de,nke->nk", diff, inverse, diff).min(axis=1))


def _lda_refit_ms(x: Int8s, y: npt.NDArray[np.int64], shots: Int8s, novel: int) -> float:
    start = time.perf_counter()
    _lda(np.vstack([x, shots]), np.r_[y, np.full(len(shots), novel)])
    return (time.perf_counter() - start) * 1e3


def _nearest_centroid(x: Int8s, names: list[str], shots: Int8s, unknown: Int8s) -> float:
    from sklearn.neighbors import NearestCentroid

    fitted = NearestCentroid().fit(
        np.vstack([x, shots]).astype(np.float64), [*names, "new"] + ["new"] * (len(shots) - 1)
    )
    return float(np.mean(fitted.predict(unknown.astype(np.float64)) == "new"))
