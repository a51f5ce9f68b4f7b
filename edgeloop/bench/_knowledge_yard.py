"""The knowledge cycle's core on the simulated ``opossum`` yard's own camera detections.

Unlike the digits rows (clean wild images), these embeddings come through the cameras:
night noise, exposure and crops. The open-world model is fitted on the extractor's
gallery of the known species; its 1% threshold is calibrated on the yard's known
detections before the opossum first arrives (the recent data a node would have); the
"query" returns the opossum's first five detections, and everything after is test data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from edgeloop.bench._report import Result
from edgeloop.sensors import check_head, load_head
from edgeloop.sensors.world import World

if TYPE_CHECKING:  # importing the learning core loads JAX: only when the suite runs
    from edgeloop.learning.core.openworld import OpenWorld

__all__ = ["yard_rows"]

SHOTS = 5


def yard_rows() -> list[Result]:
    """Rows ``yard_frames_to_notice``, ``yard_false_alarm_rate``,
    ``yard_new_class_acc_5shot`` and ``yard_known_acc_drop``."""
    from edgeloop.learning.core import head_compiler, openworld
    from edgeloop.messages import encode_head

    world = World("opossum")
    names = {s.digit: s.name for s in world.scenario.species}
    x, y = world.extractor.gallery()
    model = openworld.fit_known(x, [names[int(c)] for c in y])
    embeddings, species, ticks = _detections(world)
    is_opossum = species == "opossum"
    arrival = int(ticks[is_opossum].min())
    before, after = ticks < arrival, ticks >= arrival
    model = openworld.calibrate_threshold(model, embeddings[before & ~is_opossum], fpr=0.01)
    flags = openworld.is_novel(model, embeddings)
    device = check_head(world.initial_head())
    gate = device.score_many(embeddings)[2]
    opossum = embeddings[is_opossum]
    known_after = after & ~is_opossum
    truth = species[known_after]

    grown, name = openworld.learn_class(model, opossum[:SHOTS])
    later = opossum[SHOTS:]
    acc_new = float(np.mean(np.array(grown.labels)[openworld.classify(grown, later)] == name))
    acc_before = _accuracy(model, embeddings[known_after], truth)
    acc_after = _accuracy(grown, embeddings[known_after], truth)
    spec = head_compiler.compile_openworld_head(
        grown, embeddings[before & ~is_opossum], extractor=world.extractor.id, version=2
    )
    head = load_head(encode_head(spec), extractor=world.extractor.id, dim=world.extractor.dim)
    best = head.score_many(later)[0]
    device_acc = float(np.mean(np.array(head.labels)[best] == name))
    return [
        Result(
            "yard_frames_to_notice",
            "frames",
            _first(flags[is_opossum]),
            _first(gate[is_opossum]),
            "device gate (5% FPR)",
            "<= 1",
        ),
        Result(
            "yard_false_alarm_rate",
            "fraction",
            float(np.mean(flags[known_after])),
            0.01,
            "calibrated 0.01",
            "<= 2",
        ),
        Result("yard_new_class_acc_5shot", "fraction", acc_new, device_acc, "device head", ">= 1"),
        Result(
            "yard_known_acc_drop",
            "fraction",
            acc_before - acc_after,
            0.01,
            "tolerance 0.01",
            "<= 1",
        ),
    ]


def _detections(
    world: World,
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.str_], npt.NDArray[np.int64]]:
    rows, species, ticks = [], [], []
    for tick in range(world.ticks):
        for observation in world.observe(tick, render=False):
            for detection in observation.detections:
                rows.append(detection.embedding)
                species.append(detection.species)
                ticks.append(tick)
    return np.stack(rows), np.array(species), np.array(ticks)


def _accuracy(model: OpenWorld, x: npt.NDArray[np.int8], truth: npt.NDArray[np.str_]) -> float:
    from edgeloop.learning.core import openworld

    return float(np.mean(np.array(model.labels)[openworld.classify(model, x)] == truth))


def _first(flags: npt.NDArray[np.bool_]) -> float:
    """1-based index of the first flagged frame (``len + 1`` if none is)."""
    hits = np.flatnonzero(flags)
    return float(hits[0] + 1) if hits.size else float(len(flags) + 1)
