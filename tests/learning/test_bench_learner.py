"""The learner suite's pieces that need no compiling: registration, the yard simulator's
ground truth, and how baselines are tuned to the learner's false-close budget."""

from __future__ import annotations

import dataclasses

import numpy as np

from edgeloop import bench
from edgeloop.bench import _yard as yard
from edgeloop.bench import _yard_eval as yard_eval


def test_the_learner_suite_is_registered():
    assert "learner" in bench.SUITES


def test_the_yard_simulator_respects_what_each_camera_can_see():
    world = yard.make_world(0, label_acc=0.8, zone_acc=0.8, emb_noise=1.0)
    eps = yard.simulate(world, 1, episodes=40)
    cannot = world.detect[np.arange(3)[None, None], eps.zones[:, :, None]] == 0
    assert not np.any(eps.present & cannot)
    assert np.array_equal(eps.silent, ~eps.present)
    assert eps.embedding.dtype == np.int8
    assert set(np.unique(eps.species)) <= {0, 1, 2}
    assert np.all(eps.zones[:, 0] <= 1)  # animals arrive away or on the lawn


def _episodes(species: list[int], zones: list[list[int]]) -> yard.Episodes:
    e, t = len(species), len(zones[0])
    empty = np.zeros((e, t, 3))
    return yard.Episodes(
        species=np.array(species),
        zones=np.array(zones),
        tod=np.zeros(e, np.int64),
        present=empty.astype(bool),
        silent=empty.astype(bool),
        zone=empty.astype(np.int32),
        label=empty.astype(np.int32),
        score=empty.astype(np.float32),
        embedding=np.zeros((e, t, 3, yard.DIM), np.int8),
    )


def test_rates_count_catches_false_closes_and_cats():
    eps = _episodes([0, 0, 1, 2], [[1, 3], [1, 2], [1, 3], [3, 3]])
    stat = np.array([[0.0, 2.0], [0.0, 2.0], [0.0, 2.0], [0.0, 0.0]])
    rates = yard_eval._rates(stat, 1.0, eps)
    assert rates.catch == 0.5  # one of two skunks closed on in the trap
    assert rates.false_close == 0.5  # the skunk near the trap and the cat in it
    assert rates.cat_closes == 1


def test_a_baseline_is_tuned_within_the_learners_false_close_budget():
    eps = _episodes([0, 0, 1], [[3, 3], [3, 3], [3, 3]])
    # a weak statistic: the cat scores between the two skunks
    stat = np.array([[5.0, 5.0], [1.0, 1.0], [3.0, 3.0]])
    strict = yard_eval._tuned(stat, eps, yard_eval.Rates(1.0, 0.0, 0))
    assert dataclasses.astuple(strict) == (0.5, 0.0, 0)  # only the first skunk, no cat
    loose = yard_eval._tuned(stat, eps, yard_eval.Rates(1.0, 0.5, 1))
    assert loose.catch == 1.0
