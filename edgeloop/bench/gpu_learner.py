"""The learner's batched filter on a GPU: track-updates per second against raw JAX.

One step updates every track's belief over (species + NEW) x zone from a fused
observation of three cameras (zone, label and score, a 16-d embedding scored under each
class's Student-t). The figure is tracks / seconds-per-step of the jitted
:func:`edgeloop.learning.core.filter_update` over N tracks (default 1,000,000). The
anchor is a raw JAX step of the same size: the same exact HMM update (predict through
each class's zone chain, multiply by a per-state likelihood, normalise) with the
likelihood handed in precomputed, i.e. the memory-bound floor of any exact filter step.
Goal: the learner within 2x of the anchor (ratio >= 0.5)::

    python -m edgeloop.bench.gpu_learner --json                 # on the lent GPU
    JAX_PLATFORMS=cpu python -m edgeloop.bench.gpu_learner --tracks 20000   # anywhere

It runs on whatever device JAX picks (the CPU too), so it is also its own smoke test.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["measure", "main"]

GOAL = ">= 0.5"


def _time(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``fn()`` (blocked until its result is ready), after a warm-up."""
    import jax

    ready: Callable[[Any], Any] = jax.block_until_ready
    ready(fn())  # compile
    ready(fn())
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        ready(fn())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(tracks: int, repeats: int) -> list[dict[str, Any]]:
    """Time the learner's step and the raw anchor over ``tracks`` tracks."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from edgeloop.learning import core
    from edgeloop.learning.core import reference

    dims = core.Dims(classes=8, zones=4, cameras=3, tod_bins=2, score_bins=2, dim=16)
    p = jax.device_put(core.params(reference.random_spec(dims, 0, active=6)))
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    n, c, k1, z = tracks, dims.cameras, dims.classes + 1, dims.zones
    obs = core.ObsBatch(
        track=jnp.arange(n, dtype=jnp.int32),
        start=jnp.zeros(n, bool),
        steps=jnp.ones(n, jnp.int32),
        tod=jax.random.randint(keys[0], (n,), 0, dims.tod_bins),
        present=jax.random.bernoulli(keys[1], 0.7, (n, c)),
        silent=jnp.zeros((n, c), bool),
        zone=jax.random.randint(keys[2], (n, c), 0, z),
        label=jax.random.randint(keys[3], (n, c), 0, k1),
        score=jax.random.uniform(keys[4], (n, c)),
        embedding=jax.random.normal(keys[5], (n, c, dims.dim)),
    )
    belief = jnp.broadcast_to(core.prior_belief(p), (n, k1, z)) + 0.0
    learner = jax.jit(core.filter_update)
    state = core.init(p, n)
    step = core.step

    lik = jax.random.uniform(keys[6], (n, k1, z), minval=0.1)

    @jax.jit
    def raw(belief: Any, trans: Any, tod: Any, lik: Any) -> Any:
        pred = jnp.einsum("nkz,nkzy->nky", belief, trans[:, tod].transpose(1, 0, 2, 3))
        post = pred * lik
        return post / jnp.sum(post, axis=(1, 2), keepdims=True)

    t_learner = _time(lambda: learner(p, belief, obs), repeats)
    t_step = _time(lambda: step(p, state, obs), repeats)
    t_raw = _time(lambda: raw(belief, p.trans, obs.tod, lik), repeats)
    got, _ = learner(p, belief, obs)
    if not bool(jnp.all(jnp.isfinite(got))) or not np.allclose(
        np.asarray(jnp.sum(got, axis=(1, 2))), 1.0, atol=1e-4
    ):
        msg = "the learner's beliefs are not normalised: the measurement is void"
        raise RuntimeError(msg)

    def row(name: str, seconds: float) -> dict[str, Any]:
        value, anchor = n / seconds, n / t_raw
        ratio = value / anchor
        return {
            "name": name,
            "unit": "track-updates/s",
            "edgeloop": value,
            "anchor": anchor,
            "anchor_name": "raw JAX exact HMM step, likelihood precomputed",
            "ratio": ratio,
            "goal": GOAL,
            "met": math.isfinite(ratio) and ratio >= 0.5,
        }

    return [
        row("filter_update_throughput", t_learner),
        row("step_throughput", t_step),
        _exactness_on_device(),
    ]


def _exactness_on_device(models: int = 2, tracks: int = 32, steps: int = 20) -> dict[str, Any]:
    """The jitted step on this device against the float64 reference (goal <= 1e-5): a
    fast step that rounds differently on a GPU (XLA's TF32 default did) is void."""
    import numpy as np

    from edgeloop.learning import core
    from edgeloop.learning.core import reference

    dims = core.Dims(classes=4, zones=4, cameras=3, tod_bins=2, score_bins=2, dim=16)
    worst = 0.0
    for model in range(models):
        spec = reference.random_spec(dims, model, active=3)
        p = core.params(spec)
        runs = [reference.random_observations(dims, 1000 * model + i, steps) for i in range(tracks)]
        state = core.init(p, tracks)
        got = np.zeros((tracks, steps, *dims.states))
        for t in range(steps):
            rows: dict[str, Any] = {key: np.stack([obs[key][t] for obs in runs]) for key in runs[0]}
            batch = core.make_obs_batch(dims, tracks, track=np.arange(tracks), **rows)
            state = core.step(p, state, batch)
            got[:, t] = np.asarray(state.belief)
        for i, obs in enumerate(runs):
            want, _ = reference.filter_reference(spec, obs)
            worst = max(worst, float(np.max(np.abs(got[i] - want))))
    return {
        "name": "filter_exactness_on_device",
        "unit": "max abs error",
        "edgeloop": worst,
        "anchor": 1e-5,
        "anchor_name": "tolerance",
        "ratio": worst / 1e-5,
        "goal": "<= 1",
        "met": worst <= 1e-5,
    }


def _environment(tracks: int, repeats: int) -> dict[str, Any]:
    import jax

    device = jax.devices()[0]
    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "device": f"{device.platform}: {getattr(device, 'device_kind', '?')}",
        "tracks": tracks,
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the measurement; print a line per figure or (``--json``) the suite document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the JSON document")
    parser.add_argument("--tracks", type=int, default=1_000_000, help="tracks per step")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per path")
    args = parser.parse_args(argv)
    document: dict[str, Any] = {
        "suite": "gpu_learner",
        "results": measure(args.tracks, args.repeats),
        "environment": _environment(args.tracks, args.repeats),
    }
    if args.json:
        print(json.dumps(document, allow_nan=False))
    else:
        for entry in document["results"]:
            print(
                f"{entry['name']:<26} {entry['edgeloop']:.3e} {entry['unit']} vs "
                f"{entry['anchor']:.3e} ({entry['anchor_name']}) ratio {entry['ratio']:.3f} "
                f"goal {entry['goal']} {'met' if entry['met'] else 'NOT met'}  "
                f"[{document['environment']['device']}]"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
