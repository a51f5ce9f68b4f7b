"""The ``learner`` suite: the learner's core against exact and batch references.

Results (the ratio is always ``edgeloop / anchor``):

``filter_exactness``
    max |belief - reference| of the jitted float32 batched filter over random models,
    against an independent float64 numpy/SciPy filter; anchor: the tolerance 1e-5
    (goal: ratio <= 1).
``streaming_vs_nuts``
    max |E[A] streaming VB - E[A] batch NUTS| of a 4-zone transition matrix seen
    through a noisy camera, 2,000 events in windows of 100, each window's counts
    committed after 10 windows (a fixed lag; the environment gives the error without
    it); anchor: 0.02 (goal <= 1). ``streaming_vs_nuts_runtime``: seconds, streaming VB
    (compiled beforehand, as the Learner does in ``on_start``) / one batch NUTS run
    (which compiles for its data's shape) (goal < 1).
``svi_vs_nuts``
    max |E[log q] streaming SVI - batch NUTS| of three cameras' quality from 2,000 label
    counts in windows, in units of NUTS's posterior sd (the environment gives it in log
    q); anchor: 0.25 sd (goal <= 1); ``svi_vs_nuts_runtime`` as above.
``yard_decisions``
    simulated yards swept over camera noise and overlap: the fused learner's skunk-catch
    rate against the better of the best single camera and a two-frame rule, each tuned
    to the learner's false-close rate (goal > 1); ``yard_vs_single_camera``,
    ``yard_vs_two_frame`` separately; ``yard_cat_closes``: closes on a cat in the trap
    over cat episodes (goal <= 0).
``gibbs_repair``
    tracks deliberately given the wrong species at first, corrected by blocked Gibbs
    within the window, over those injected (goal >= 0.9).
``update_throughput``, ``update_latency_p99``
    the Learner actor, measured by ``edgeloop.bench._learner_actor`` (the shells' part)
    when that module is present.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import time
from typing import Any

import numpy as np

from edgeloop.bench._report import Result, SuiteResult

__all__ = ["Sizes", "FULL", "QUICK", "run_learner"]


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    """How much each result measures."""

    exact_models: int
    exact_tracks: int
    exact_steps: int
    hmm_events: int
    hmm_window: int
    hmm_lag: int
    nuts_warmup: int
    nuts_samples: int
    svi_windows: int
    yard_episodes: int
    gibbs_tracks: int
    gibbs_sweeps: int
    quick: bool = False


FULL = Sizes(
    exact_models=5,
    exact_tracks=8,
    exact_steps=60,
    hmm_events=2000,
    hmm_window=100,
    hmm_lag=10,
    nuts_warmup=500,
    nuts_samples=1000,
    svi_windows=5,
    yard_episodes=400,
    gibbs_tracks=48,
    gibbs_sweeps=30,
)
"""The sizes whose figures are reported (a few minutes on 2 cores)."""
QUICK = Sizes(
    exact_models=2,
    exact_tracks=3,
    exact_steps=20,
    hmm_events=600,
    hmm_window=100,
    hmm_lag=3,
    nuts_warmup=100,
    nuts_samples=150,
    svi_windows=2,
    yard_episodes=120,
    gibbs_tracks=24,
    gibbs_sweeps=12,
    quick=True,
)
"""CI-sized: every row runs; NUTS is shorter, so its figures are noisier."""

EXACT_TOL = 1e-5
STREAM_TOL = 0.02
SVI_TOL = 0.25
YARD_CONFIGS = (
    {"label_acc": 0.85, "zone_acc": 0.85, "emb_noise": 1.0, "overlap": 1.0},
    {"label_acc": 0.7, "zone_acc": 0.75, "emb_noise": 3.0, "overlap": 1.0},
    {"label_acc": 0.55, "zone_acc": 0.65, "emb_noise": 6.0, "overlap": 1.0},
    {"label_acc": 0.7, "zone_acc": 0.75, "emb_noise": 3.0, "overlap": 0.3},
)
"""The sweep: camera noise from easy to hard, then less overlap at medium noise."""


def _filter_exactness(sizes: Sizes) -> Result:
    from edgeloop.learning import core
    from edgeloop.learning.core import reference

    dims = core.Dims(classes=4, zones=4, cameras=3, tod_bins=2, score_bins=2, dim=16)
    worst = 0.0
    for model in range(sizes.exact_models):
        spec = reference.random_spec(dims, model, active=3)
        p = core.params(spec)
        n = sizes.exact_tracks
        tracks = [
            reference.random_observations(dims, 1000 * model + i, sizes.exact_steps)
            for i in range(n)
        ]
        state = core.init(p, n)
        got = np.zeros((n, sizes.exact_steps, *dims.states))
        for t in range(sizes.exact_steps):
            rows: dict[str, Any] = {
                key: np.stack([obs[key][t] for obs in tracks]) for key in tracks[0]
            }
            state = core.step(p, state, core.make_obs_batch(dims, n, track=np.arange(n), **rows))
            got[:, t] = np.asarray(state.belief)
        for i, obs in enumerate(tracks):
            want, _ = reference.filter_reference(spec, obs)
            worst = max(worst, float(np.max(np.abs(got[i] - want))))
    return Result(
        "filter_exactness", "max abs error", worst, EXACT_TOL, "tolerance 1e-5", goal="<= 1"
    )


def _hmm_setup(events: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 4-zone chain seen through a camera that reports the right zone 90% of the time."""
    rng = np.random.default_rng(seed)
    trans = np.array(
        [[0.7, 0.2, 0.1, 0.0], [0.15, 0.6, 0.2, 0.05], [0.05, 0.2, 0.6, 0.15], [0.0, 0.1, 0.3, 0.6]]
    )
    emit = np.full((4, 4), 0.1 / 3)
    np.fill_diagonal(emit, 0.9)
    z = np.zeros(events, np.int64)
    y = np.zeros(events, np.int64)
    for t in range(events):
        z[t] = rng.integers(4) if t == 0 else rng.choice(4, p=trans[z[t - 1]])
        y[t] = rng.choice(4, p=emit[z[t]])
    return trans, emit, y


def _streaming_vs_nuts(sizes: Sizes) -> tuple[list[Result], dict[str, Any]]:
    from edgeloop.learning import core
    from edgeloop.learning.core import batch

    _, emit, y = _hmm_setup(sizes.hmm_events, 7)
    n = sizes.hmm_events
    dims = core.Dims(classes=1, zones=4, cameras=1, tod_bins=1, score_bins=1, dim=1)
    known = np.broadcast_to(emit * 1e6, (1, 4, 4))  # the camera is known, not learnt
    prior = core.prior(dims, active=1, alpha=1e-9, zone_conc=known, detect_conc=(1e6, 1.0))
    start = np.zeros((1, n), np.bool_)
    start[0, 0] = True
    seq = core.make_obs_seq(
        dims,
        start=start,
        steps=np.ones((1, n), np.int32),
        tod=np.zeros((1, n), np.int32),
        present=np.ones((1, n, 1), np.bool_),
        zone=y.reshape(1, n, 1),
        label=np.zeros((1, n, 1), np.int32),
        score=np.full((1, n, 1), 0.5),
        embedding=np.zeros((1, n, 1, 1)),
    )
    w = sizes.hmm_window
    # The Learner compiles its update once, in on_start; time the stream, not that.
    head = core.ObsSeq(*(a[:, : w * sizes.hmm_lag] for a in seq))
    core.svb_replay(prior, head, window=w, lag=sizes.hmm_lag)
    started = time.perf_counter()
    post = core.svb_replay(prior, seq, window=w, lag=sizes.hmm_lag)
    streamed = np.asarray(core.spec_of(post).trans)[0, 0]
    stream_s = time.perf_counter() - started
    started = time.perf_counter()
    samples = batch.nuts_transitions(
        core.prng_key(1),
        np.log(emit[:, y].T),
        warmup=sizes.nuts_warmup,
        samples=sizes.nuts_samples,
    )
    nuts_mean = np.asarray(samples).mean(axis=0)
    nuts_s = time.perf_counter() - started
    err = float(np.max(np.abs(streamed - nuts_mean)))
    detail: dict[str, Any] = {}
    if sizes.hmm_lag > 1 and not sizes.quick:  # plain SVB, for the record (one more compile)
        plain = np.asarray(core.spec_of(core.svb_replay(prior, seq, window=w, lag=1)).trans)
        detail["svb_without_lag_error"] = round(float(np.max(np.abs(plain[0, 0] - nuts_mean))), 4)
    return [
        Result("streaming_vs_nuts", "max abs error", err, STREAM_TOL, "tolerance 0.02", "<= 1"),
        Result("streaming_vs_nuts_runtime", "s", stream_s, nuts_s, "batch NUTS", "< 1"),
    ], detail


def _svi_vs_nuts(sizes: Sizes) -> tuple[list[Result], dict[str, Any]]:
    from edgeloop.learning import core
    from edgeloop.learning.core import batch

    rng = np.random.default_rng(3)
    cams, k1, outcomes = 3, 5, 10
    base = np.full((k1, outcomes), 0.02)
    for k in range(k1):
        base[k, 2 * k], base[k, 2 * k + 1] = 0.6, 0.2
    base /= base.sum(axis=1, keepdims=True)
    quality = np.array([5.0, 20.0, 80.0])
    confusion = np.stack(
        [[rng.dirichlet(quality[c] * base[k]) for k in range(k1)] for c in range(cams)]
    )
    per = 2000 // sizes.svi_windows
    windows = []
    for _ in range(sizes.svi_windows):
        n = np.zeros((cams, k1, outcomes))
        for _ in range(per):
            c, k = int(rng.integers(cams)), int(rng.integers(k1))
            n[c, k, rng.choice(outcomes, p=confusion[c, k])] += 1
        windows.append(n)
    started = time.perf_counter()
    q = core.quality_prior(cams)
    past = np.zeros_like(windows[0])
    key = core.prng_key(4)
    for counts in windows:
        key, sub = core.split_key(key)
        q = core.svi_quality(sub, q, base, past, counts)
        past = past + counts
    svi_loc = np.asarray(q.loc)
    svi_s = time.perf_counter() - started
    started = time.perf_counter()
    samples = batch.nuts_quality(
        core.prng_key(5),
        core.quality_prior(cams),
        base,
        past,
        warmup=sizes.nuts_warmup,
        samples=4 * sizes.nuts_samples,
    )
    nuts_s = time.perf_counter() - started
    draws = np.asarray(samples)
    gap = np.abs(svi_loc - draws.mean(axis=0))
    in_sd = float(np.max(gap / draws.std(axis=0)))
    return [
        Result("svi_vs_nuts", "posterior sd", in_sd, SVI_TOL, "tolerance 0.25 sd", "<= 1"),
        Result("svi_vs_nuts_runtime", "s", svi_s, nuts_s, "batch NUTS", "< 1"),
    ], {"svi_max_abs_error_log_q": round(float(np.max(gap)), 4)}


def _yard(sizes: Sizes) -> tuple[list[Result], dict[str, Any]]:
    from edgeloop.bench._yard_eval import evaluate

    outcomes = [evaluate(i, sizes.yard_episodes, cfg) for i, cfg in enumerate(YARD_CONFIGS)]
    fused = float(np.mean([o.fused.catch for o in outcomes]))
    single = float(np.mean([o.single.catch for o in outcomes]))
    heuristic = float(np.mean([o.heuristic.catch for o in outcomes]))
    best = float(np.mean([max(o.single.catch, o.heuristic.catch) for o in outcomes]))
    cat_closes = sum(o.fused.cat_closes for o in outcomes)
    cat_episodes = sum(o.cat_episodes for o in outcomes)
    detail = {
        "yard_sweep": [
            {
                **o.config,
                "fused_catch": round(o.fused.catch, 3),
                "fused_false_close": round(o.fused.false_close, 3),
                "single_catch": round(o.single.catch, 3),
                "single_camera": o.single_camera,
                "two_frame_catch": round(o.heuristic.catch, 3),
            }
            for o in outcomes
        ]
    }
    unit = "skunk-catch rate"
    return [
        Result("yard_decisions", unit, fused, best, "best baseline, equal false closes", "> 1"),
        Result("yard_vs_single_camera", unit, fused, single, "best single camera", "> 1"),
        Result("yard_vs_two_frame", unit, fused, heuristic, "two-frame rule", "> 1"),
        Result("yard_cat_closes", "closes", cat_closes, cat_episodes, "cat episodes", "<= 0"),
    ], detail


def _plausible_spec(dims: Any, seed: int) -> Any:
    from edgeloop.learning.core import reference

    spec = reference.random_spec(dims, seed, active=2)
    z, k1, s = dims.zones, dims.classes + 1, dims.score_bins
    label = np.full((k1, k1), 0.3)
    np.fill_diagonal(label, 1.0)
    label = np.repeat(label / label.sum(1, keepdims=True), s, axis=1) / s
    return spec._replace(
        zone_obs=np.broadcast_to(0.8 * np.eye(z) + 0.2 / z, (dims.cameras, z, z)),
        label=np.broadcast_to(label, (dims.cameras, k1, k1 * s)),
    )


def _gibbs_repair(sizes: Sizes) -> tuple[Result, dict[str, Any]]:
    from edgeloop.learning import core
    from edgeloop.learning.core import reference

    dims = core.Dims(classes=3, zones=3, cameras=2, tod_bins=1, score_bins=2, dim=4)
    truth = _plausible_spec(dims, 21)
    early, _, _ = reference.simulate(truth, 4, tracks=40, length=12)
    base, _ = core.svb_window(core.prior(dims, active=2), core.make_obs_seq(dims, **early))
    obs, classes, _ = reference.simulate(truth, 5, tracks=sizes.gibbs_tracks, length=12)
    assign = classes.copy()
    wrong = np.arange(0, sizes.gibbs_tracks, 4)
    assign[wrong] = 1 - assign[wrong]  # the streaming learner's early mistakes
    result = core.gibbs_run(
        core.prng_key(6),
        base,
        core.make_obs_seq(dims, **obs),
        assign,
        sweeps=sizes.gibbs_sweeps,
        burn_in=sizes.gibbs_sweeps // 4,
    )
    final = np.asarray(result.frequency).argmax(axis=1)
    fixed = int(np.sum(final[wrong] == classes[wrong]))
    right = np.setdiff1d(np.arange(sizes.gibbs_tracks), wrong)
    kept = float(np.mean(final[right] == classes[right]))
    return Result(
        "gibbs_repair", "tracks", fixed, len(wrong), "wrong assignments injected", ">= 0.9"
    ), {"gibbs_kept_right": round(kept, 3)}


def _actor_rows(quick: bool) -> list[Result]:
    """``update_throughput`` and ``update_latency_p99`` through the Learner actor: the
    shells' module ``edgeloop.bench._learner_actor`` provides ``run_actor_rows(quick)``;
    until it exists the suite has no actor rows."""
    name = "edgeloop.bench._learner_actor"
    if importlib.util.find_spec(name) is None:
        return []
    rows: list[Result] = list(importlib.import_module(name).run_actor_rows(quick))
    return rows


def environment(sizes: Sizes, quick: bool, extra: dict[str, Any]) -> dict[str, Any]:
    """Where and with what the figures were measured."""
    versions: dict[str, str | None] = {}
    for package in ("jax", "numpyro", "scikit-learn", "scipy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        **versions,
        "quick": quick,
        "sizes": dataclasses.asdict(sizes),
        **extra,
    }


def run_learner(quick: bool = False, *, sizes: Sizes | None = None) -> SuiteResult:
    """Run the ``learner`` suite: :data:`QUICK` sizes for CI, :data:`FULL` otherwise."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sizes = sizes or (QUICK if quick else FULL)
    results = [_filter_exactness(sizes)]
    stream_rows, stream_detail = _streaming_vs_nuts(sizes)
    results += stream_rows
    svi_rows, svi_detail = _svi_vs_nuts(sizes)
    results += svi_rows
    yard_rows, yard_detail = _yard(sizes)
    results += yard_rows
    gibbs, gibbs_detail = _gibbs_repair(sizes)
    results.append(gibbs)
    results += _actor_rows(quick)
    return SuiteResult(
        "learner",
        tuple(results),
        environment(sizes, quick, {**stream_detail, **svi_detail, **yard_detail, **gibbs_detail}),
    )
