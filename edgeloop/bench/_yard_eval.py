"""Decisions on the simulated yard: the fused learner against one camera and a two-frame
rule, each baseline tuned to the learner's false-close rate (``bench learner``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgeloop.bench import _yard as yard

__all__ = ["YardOutcome", "evaluate"]


@dataclasses.dataclass(frozen=True)
class Rates:
    """What a decision rule did over a set of episodes."""

    catch: float  # skunk episodes closed with the skunk in the trap / skunk episodes
    false_close: float  # closes without a skunk in the trap / episodes
    cat_closes: int  # closes with a cat in the trap


@dataclasses.dataclass(frozen=True)
class YardOutcome:
    """One yard configuration: the learner, its two baselines, and the sizes."""

    config: dict[str, float]
    fused: Rates
    single: Rates  # the best single camera, at <= the fused false-close rate
    single_camera: int
    heuristic: Rates  # the two-frame rule, at <= the fused false-close rate
    episodes: int
    cat_episodes: int


def _rates(stat: np.ndarray, threshold: float, eps: yard.Episodes) -> Rates:
    fire = stat > threshold  # [E, T]
    closed = fire.any(axis=1)
    when = np.argmax(fire, axis=1)
    rows = np.arange(len(when))
    in_trap = eps.zones[rows, when] == yard.TRAP
    skunk = eps.species == 0
    catch = closed & skunk & in_trap
    cat = closed & (eps.species == 1) & in_trap
    false = closed & ~(skunk & in_trap)
    return Rates(
        catch=float(catch.sum() / max(skunk.sum(), 1)),
        false_close=float(false.mean()),
        cat_closes=int(cat.sum()),
    )


def _tuned(stat: np.ndarray, eps: yard.Episodes, budget: Rates) -> Rates:
    """The best catch rate over thresholds whose false closes and cat closes stay within
    the budget (the learner's): a baseline is compared at equal false-close rate."""
    candidates = np.unique(stat[np.isfinite(stat)])
    best = Rates(0.0, 0.0, 0)
    for threshold in np.concatenate([[-np.inf], candidates, [np.inf]]):
        r = _rates(stat, float(threshold), eps)
        if (
            r.false_close <= budget.false_close + 1e-12
            and r.cat_closes <= budget.cat_closes
            and r.catch > best.catch
        ):
            best = r
    return best


def _model(world: yard.YardWorld) -> Any:
    """The learner's model of this yard: known camera and motion models (the quantities
    streaming VB learns, given here to isolate decisions) and embedding classes learnt
    from the training digits by NIW updates (add_class with an empirical-Bayes prior)."""
    from edgeloop.learning import core

    k, z, c, d = len(yard.SPECIES), len(yard.ZONES), 3, yard.DIM
    dims = core.Dims(classes=k, zones=z, cameras=c, tod_bins=2, score_bins=3, dim=d)
    pooled = sum(np.cov(t.T) * (len(t) - 1) for t in world.train) / sum(
        len(t) - 1 for t in world.train
    )
    nu = d + 4.0
    post = core.prior(dims, active=0, niw_nu=nu, niw_psi=pooled * (nu - d - 1), niw_kappa=0.05)
    for train in world.train:
        post, _ = core.add_class(post, train)
    spec = core.spec_of(post)
    right, wrong = yard.score_bin_probs()
    label = np.zeros((c, k + 1, (k + 1) * 3))
    for lab in range(k + 1):
        for s in range(k + 1):
            bins = right if lab == s else wrong
            label[:, s, lab * 3 : lab * 3 + 3] = world.confusion[:, s, lab, None] * bins[None, :]
    trans = np.concatenate([yard.TRANS, yard.TRANS.mean(axis=0, keepdims=True)])
    prior = np.append(yard.SPECIES_P * 0.99, 0.01)
    spec = spec._replace(
        class_prior=prior,
        init_zone=np.broadcast_to(yard.INIT, (k + 1, z)),
        trans=trans,
        zone_obs=world.zone_obs,
        detect=np.clip(world.detect, 1e-3, 1 - 1e-3),
        label=label,
        score_edges=yard.SCORE_EDGES,
    )
    return dims, core.params(spec)


def _filter_stat(
    dims: Any, p: Any, eps: yard.Episodes, cams: list[int], quant: float
) -> np.ndarray:
    """E[loss(open)] - E[loss(close)] per episode and tick under the filter that sees
    only cameras ``cams`` (the others are masked out entirely)."""
    from edgeloop.learning import core

    n = len(eps.species)
    loss = core.trap_loss(dims, trap_zone=yard.TRAP, targets=[0], protected=[1])
    mask = np.zeros(3, np.bool_)
    mask[cams] = True
    state = core.init(p, n)
    out = np.zeros((n, yard.TICKS))
    for t in range(yard.TICKS):
        batch = core.make_obs_batch(
            dims,
            n,
            track=np.arange(n),
            start=np.full(n, t == 0),
            tod=eps.tod,
            present=eps.present[:, t] & mask,
            silent=eps.silent[:, t] & mask,
            zone=eps.zone[:, t],
            label=eps.label[:, t],
            score=eps.score[:, t],
            embedding=eps.embedding[:, t],
            embedding_scale=quant,
        )
        state = core.step(p, state, batch)
        risk = np.asarray(core.expected_loss(state.belief, loss))
        out[:, t] = risk[:, core.OPEN] - risk[:, core.CLOSE]
    return out


def _heuristic_stat(eps: yard.Episodes) -> np.ndarray:
    """The two-frame rule: the in-trap camera (0) says "skunk, in the trap" in two
    consecutive frames; the statistic is the lower of the two scores (else -inf)."""
    says = eps.present[:, :, 0] & (eps.label[:, :, 0] == 0) & (eps.zone[:, :, 0] == yard.TRAP)
    score = np.where(says, eps.score[:, :, 0], -np.inf)
    both = np.full(score.shape, -np.inf)
    both[:, 1:] = np.minimum(score[:, 1:], score[:, :-1])
    return both


def evaluate(seed: int, episodes: int, config: dict[str, float]) -> YardOutcome:
    """Simulate one configuration and score the learner and its baselines on it."""
    world = yard.make_world(seed, **config)
    eps = yard.simulate(world, seed + 1, episodes)
    dims, p = _model(world)
    fused = _rates(_filter_stat(dims, p, eps, [0, 1, 2], world.quant), 0.0, eps)
    singles = [
        _tuned(_filter_stat(dims, p, eps, [cam], world.quant), eps, fused) for cam in range(3)
    ]
    best = int(np.argmax([r.catch for r in singles]))
    return YardOutcome(
        config=config,
        fused=fused,
        single=singles[best],
        single_camera=best,
        heuristic=_tuned(_heuristic_stat(eps), eps, fused),
        episodes=episodes,
        cat_episodes=int(np.sum(eps.species == 1)),
    )
