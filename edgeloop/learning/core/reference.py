"""Float64 references the jitted core is checked against (tests and ``bench learner``).

Written independently of the filter: plain numpy loops over states and cameras, the
Student-t density from SciPy, and brute-force enumeration of every path for short tracks.
Slow on purpose and obviously right. Also random models and observations for checks.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
from scipy import stats

from edgeloop.learning.core._model import Dims, YardSpec

__all__ = [
    "random_spec",
    "random_observations",
    "filter_reference",
    "enumerate_reference",
    "enumerate_smoother",
    "simulate",
]


def _rows(rng: np.random.Generator, shape: tuple[int, ...], conc: float = 1.0) -> np.ndarray:
    return rng.dirichlet(np.full(shape[-1], conc), size=shape[:-1])


def random_spec(dims: Dims, seed: int, *, active: int | None = None) -> YardSpec:
    """A random yard model in float64 with ``active`` species slots in use (default all)."""
    rng = np.random.default_rng(seed)
    k1, z, c, h, d = dims.classes + 1, dims.zones, dims.cameras, dims.tod_bins, dims.dim
    active = dims.classes if active is None else active
    prior = np.zeros(k1)
    prior[:active] = rng.uniform(0.5, 2.0, active)
    prior[dims.new] = 0.3
    scale = np.empty((k1, d, d))
    for k in range(k1):
        a = rng.normal(size=(d, d)) / np.sqrt(d)
        scale[k] = a @ a.T + 0.5 * np.eye(d)
    df = rng.uniform(3.0, 12.0, k1)
    df[: active // 2] = np.inf  # some classes Gaussian, some Student-t
    return YardSpec(
        class_prior=prior / prior.sum(),
        init_zone=_rows(rng, (k1, z)),
        trans=_rows(rng, (k1, h, z, z)),
        zone_obs=_rows(rng, (c, z, z)) * 0.5 + 0.5 * np.eye(z)[None],
        detect=rng.uniform(0.3, 0.95, (c, z)),
        label=_rows(rng, (c, k1, dims.outcomes)),
        emb_loc=rng.normal(scale=2.0, size=(k1, d)),
        emb_scale=scale,
        emb_df=df,
        score_edges=np.sort(rng.uniform(0.0, 1.0, dims.score_bins - 1)),
    )


def random_observations(dims: Dims, seed: int, steps: int) -> dict[str, np.ndarray]:
    """``steps`` random fused observations of one track, as arrays with a leading T axis
    (the keyword arguments of ``make_obs_batch`` without ``track``)."""
    rng = np.random.default_rng(seed)
    c, d = dims.cameras, dims.dim
    present = rng.random((steps, c)) < 0.6
    present[np.arange(steps), rng.integers(0, c, steps)] = True
    silent = ~present & (rng.random((steps, c)) < 0.5)
    start = np.zeros(steps, np.bool_)
    start[0] = True
    return {
        "start": start,
        "steps": rng.integers(0, 3, steps).astype(np.int32),
        "tod": rng.integers(0, dims.tod_bins, steps).astype(np.int32),
        "present": present,
        "silent": silent,
        "zone": rng.integers(0, dims.zones, (steps, c)).astype(np.int32),
        "label": rng.integers(0, dims.classes + 1, (steps, c)).astype(np.int32),
        "score": rng.random((steps, c)).astype(np.float32),
        "embedding": rng.normal(scale=2.0, size=(steps, c, d)).astype(np.float32),
    }


class _Spec64(NamedTuple):
    """A YardSpec as float64 numpy arrays."""

    class_prior: np.ndarray
    init_zone: np.ndarray
    trans: np.ndarray
    zone_obs: np.ndarray
    detect: np.ndarray
    label: np.ndarray
    emb_loc: np.ndarray
    emb_scale: np.ndarray
    emb_df: np.ndarray
    score_edges: np.ndarray


def _f64(spec: YardSpec) -> _Spec64:
    return _Spec64(*(np.asarray(field, dtype=np.float64) for field in spec))


def _emb_logpdf(spec: _Spec64, k: int, x: np.ndarray) -> float:
    loc, scale, df = spec.emb_loc[k], spec.emb_scale[k], float(spec.emb_df[k])
    if np.isinf(df):
        return float(stats.multivariate_normal(loc, scale).logpdf(x))
    return float(stats.multivariate_t(loc, scale, df=df).logpdf(x))


def _obs_loglik(spec: _Spec64, obs: dict[str, np.ndarray], t: int) -> np.ndarray:
    k1, z = spec.init_zone.shape
    cams = spec.zone_obs.shape[0]
    bins = len(spec.score_edges) + 1
    ll = np.zeros((k1, z))
    for c in range(cams):
        if obs["present"][t, c]:
            b = int(np.sum(float(obs["score"][t, c]) >= spec.score_edges))
            outcome = int(obs["label"][t, c]) * bins + b
            x = obs["embedding"][t, c].astype(np.float64)
            for k in range(k1):
                class_term = np.log(spec.label[c, k, outcome]) + _emb_logpdf(spec, k, x)
                for zz in range(z):
                    ll[k, zz] += (
                        class_term
                        + np.log(spec.zone_obs[c, zz, obs["zone"][t, c]])
                        + np.log(spec.detect[c, zz])
                    )
        elif obs["silent"][t, c]:
            ll += np.log1p(-spec.detect[c])[None, :]
    return ll


def filter_reference(model: YardSpec, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Filtered beliefs [T, K1, Z] and cumulative log evidence [T] of one track, float64."""
    spec = _f64(model)
    k1, z = spec.init_zone.shape
    steps = len(obs["start"])
    beliefs = np.zeros((steps, k1, z))
    evidence = np.zeros(steps)
    belief = np.zeros((k1, z))
    total = 0.0
    for t in range(steps):
        if obs["start"][t]:
            belief = spec.class_prior[:, None] * spec.init_zone
            total = 0.0
        else:
            for _ in range(int(obs["steps"][t])):
                nxt = np.zeros((k1, z))
                for k in range(k1):
                    nxt[k] = belief[k] @ spec.trans[k, int(obs["tod"][t])]
                belief = nxt
        ll = _obs_loglik(spec, obs, t)
        with np.errstate(divide="ignore"):
            joint = np.log(belief) + ll
        top = joint.max()
        weights = np.exp(joint - top)
        total += top + np.log(weights.sum())
        belief = weights / weights.sum()
        beliefs[t] = belief
        evidence[t] = total
    return beliefs, evidence


def enumerate_reference(model: YardSpec, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    """The final belief [K1, Z] and log evidence of one short track by summing over every
    (class, zone path): exponential in T, so T <= 6. ``steps`` must be 1 after the start."""
    spec = _f64(model)
    k1, z = spec.init_zone.shape
    steps = len(obs["start"])
    final = np.zeros((k1, z))
    lls = [_obs_loglik(spec, obs, t) for t in range(steps)]
    for k in range(k1):
        if spec.class_prior[k] == 0:
            continue
        for path in itertools.product(range(z), repeat=steps):
            logp = (
                np.log(spec.class_prior[k])
                + np.log(spec.init_zone[k, path[0]])
                + lls[0][k, path[0]]
            )
            for t in range(1, steps):
                logp += np.log(spec.trans[k, int(obs["tod"][t]), path[t - 1], path[t]])
                logp += lls[t][k, path[t]]
            final[k, path[-1]] += np.exp(logp)
    total = final.sum()
    return final / total, float(np.log(total))


def enumerate_smoother(
    model: YardSpec, obs: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed marginals [T, K1, Z] and expected transition counts [K1, H, Z, Z] of one
    short track (one start, then ``steps`` = 1), by summing over every path."""
    spec = _f64(model)
    k1, z = spec.init_zone.shape
    h = spec.trans.shape[1]
    steps = len(obs["start"])
    marg = np.zeros((steps, k1, z))
    counts = np.zeros((k1, h, z, z))
    lls = [_obs_loglik(spec, obs, t) for t in range(steps)]
    total = 0.0
    for k in range(k1):
        if spec.class_prior[k] == 0:
            continue
        for path in itertools.product(range(z), repeat=steps):
            logp = np.log(spec.class_prior[k] * spec.init_zone[k, path[0]]) + lls[0][k, path[0]]
            for t in range(1, steps):
                logp += np.log(spec.trans[k, int(obs["tod"][t]), path[t - 1], path[t]])
                logp += lls[t][k, path[t]]
            weight = np.exp(logp)
            total += weight
            for t in range(steps):
                marg[t, k, path[t]] += weight
                if t:
                    counts[k, int(obs["tod"][t]), path[t - 1], path[t]] += weight
    return marg / total, counts / total


def simulate(
    model: YardSpec, seed: int, tracks: int, length: int, *, tod: int = 0
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Sample ``tracks`` tracks of ``length`` ticks from the model itself: the window's
    fields [M, T, ...] (for ``make_obs_seq``), the true classes [M] and zones [M, T]."""
    spec = _f64(model)
    rng = np.random.default_rng(seed)
    k1, z = spec.init_zone.shape
    c, d = spec.zone_obs.shape[0], spec.emb_loc.shape[1]
    bins = len(spec.score_edges) + 1
    edges = np.concatenate([[0.0], spec.score_edges, [1.0]])
    classes = rng.choice(k1, size=tracks, p=spec.class_prior)
    zones = np.zeros((tracks, length), np.int64)
    out = {
        "start": np.zeros((tracks, length), np.bool_),
        "steps": np.ones((tracks, length), np.int32),
        "tod": np.full((tracks, length), tod, np.int32),
        "present": np.zeros((tracks, length, c), np.bool_),
        "silent": np.zeros((tracks, length, c), np.bool_),
        "zone": np.zeros((tracks, length, c), np.int32),
        "label": np.zeros((tracks, length, c), np.int32),
        "score": np.zeros((tracks, length, c), np.float32),
        "embedding": np.zeros((tracks, length, c, d), np.float32),
    }
    out["start"][:, 0] = True
    for m in range(tracks):
        k = classes[m]
        chol = np.linalg.cholesky(spec.emb_scale[k])
        for t in range(length):
            if t == 0:
                zones[m, t] = rng.choice(z, p=spec.init_zone[k])
            else:
                zones[m, t] = rng.choice(z, p=spec.trans[k, tod, zones[m, t - 1]])
            zz = zones[m, t]
            for cam in range(c):
                if rng.random() >= spec.detect[cam, zz]:
                    out["silent"][m, t, cam] = True
                    continue
                out["present"][m, t, cam] = True
                out["zone"][m, t, cam] = rng.choice(z, p=spec.zone_obs[cam, zz])
                outcome = rng.choice(spec.label.shape[2], p=spec.label[cam, k])
                out["label"][m, t, cam] = outcome // bins
                b = outcome % bins
                out["score"][m, t, cam] = rng.uniform(edges[b], edges[b + 1])
                noise = chol @ rng.normal(size=d)
                df = spec.emb_df[k]
                if np.isfinite(df):
                    noise = noise / np.sqrt(rng.chisquare(df) / df)
                out["embedding"][m, t, cam] = spec.emb_loc[k] + noise
    return out, classes, zones
