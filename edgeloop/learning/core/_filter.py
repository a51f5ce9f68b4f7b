"""The batched forward filter over (species + NEW) x zone: :func:`init` and :func:`step`.

Each track's belief is exact given the parameters: one prediction per tick through its
class's zone chain (the chain of its time-of-day bin), then one update that multiplies the
likelihoods of every camera that reported (zone, label and score bin, embedding) and of
every camera that watched and stayed silent. That product *is* multi-camera fusion: the
reports are conditionally independent given the state. Tracks are independent, so a batch
is written as whole-array broadcasts (no per-track ``vmap``), which XLA fuses into a few
passes over memory; the state holds a fixed number of track slots and a batch gathers the
ones it touches and scatters them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from edgeloop.errors import ObservationError
from edgeloop.learning.core._mahalanobis import mahalanobis
from edgeloop.learning.core._model import Dims, Params, prior_belief

__all__ = [
    "ObsBatch",
    "RoundBatch",
    "FilterState",
    "make_obs_batch",
    "init",
    "step",
    "step_rounds",
    "filter_update",
    "log_likelihood",
]


class ObsBatch(NamedTuple):
    """B fused observations, at most one per track. Shapes (C cameras, D dims):

    - ``track`` int32[B]: the track slot; ``n_tracks`` (one past the end) marks padding;
    - ``start`` bool[B]: the track begins here (its slot is reset to the prior first);
    - ``steps`` int32[B]: ticks since this track's previous observation (0 = same tick);
    - ``tod`` int32[B]: the time-of-day bin of the transitions;
    - ``present`` bool[B, C]: camera slot c reported in this observation;
    - ``silent`` bool[B, C]: camera slot c watched and did not report (evidence too);
    - ``zone`` int32[B, C], ``label`` int32[B, C] (K = unknown), ``score`` float32[B, C],
      ``embedding`` float32[B, C, D] (dequantised): the reports; ignored where not present.

    Build it with :func:`make_obs_batch`, which checks every field.
    """

    track: Array
    start: Array
    steps: Array
    tod: Array
    present: Array
    silent: Array
    zone: Array
    label: Array
    score: Array
    embedding: Array


class FilterState(NamedTuple):
    """The belief of every track slot: ``belief`` float32[N, K1, Z] (sums to one per
    track) and ``log_evidence`` float32[N] (log p(observations so far) of each track)."""

    belief: Array
    log_evidence: Array


class RoundBatch(NamedTuple):
    """A micro-batch for :func:`step_rounds`: ``R`` rounds of ``W`` cells (each cell one
    fused observation of one track; a track at most once per round) and ``M`` camera
    reports, each naming its cell. Only reports are stored, not every camera slot: the
    likelihood is computed per report (most observations come from one camera).

    - ``track``, ``start``, ``steps``, ``tod``: int32/bool ``[R, W]``, as in
      :class:`ObsBatch` (track ``n_tracks`` marks a padding cell);
    - ``cell`` int32[M]: the report's cell, ``r * W + w`` (``R * W`` marks padding);
    - ``camera``, ``zone``, ``label`` int32[M], ``score`` float32[M], ``embedding``
      float32[M, D] (dequantised): the reports. A cell's cameras are distinct.

    Not checked here: the caller (the Learner) checks every report at its boundary and
    builds the indices itself.
    """

    track: Array
    start: Array
    steps: Array
    tod: Array
    cell: Array
    camera: Array
    zone: Array
    label: Array
    score: Array
    embedding: Array


def _int_array(name: str, value: object, shape: tuple[int, ...], high: int) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != shape:
        raise ObservationError(name, f"expected shape {shape}, got {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ObservationError(name, f"expected integers, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= high):
        raise ObservationError(
            name, f"values must lie in [0, {high}), got {array.min()}..{array.max()}"
        )
    return array.astype(np.int32)


def _bool_array(name: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != shape:
        raise ObservationError(name, f"expected shape {shape}, got {array.shape}")
    if array.size and array.dtype != np.bool_:
        raise ObservationError(name, f"expected booleans, got dtype {array.dtype}")
    return array.astype(np.bool_)


def _float_array(name: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != shape:
        raise ObservationError(name, f"expected shape {shape}, got {array.shape}")
    if array.size and not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise ObservationError(name, f"expected numbers, got dtype {array.dtype}")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise ObservationError(name, "contains NaN or infinity")
    return array


def make_obs_batch(
    dims: Dims,
    n_tracks: int,
    *,
    track: Sequence[int] | np.ndarray,
    zone: object,
    label: object,
    score: object,
    embedding: object,
    present: object,
    start: object = None,
    steps: object = None,
    tod: object = None,
    silent: object = None,
    embedding_scale: float = 1.0,
    pad_to: int | None = None,
) -> ObsBatch:
    """Check and pack B observations (host numpy in, device arrays out).

    Raises :class:`ObservationError` naming the first bad field: a wrong shape, dtype or
    range, a track outside ``[0, n_tracks)``, the same track twice (split the batch),
    an observation with no camera present or silent, NaN scores or embeddings. ``embedding`` may be
    the int8 codes with ``embedding_scale`` their step. ``pad_to`` pads the batch to that
    size with no-op rows, so a shell can keep a few batch sizes and never recompile.
    """
    tracks = np.asarray(track)
    b = tracks.shape[0] if tracks.ndim == 1 else -1
    if b < 0:
        raise ObservationError("track", f"expected a 1-d array, got shape {tracks.shape}")
    c, d = dims.cameras, dims.dim
    tracks = _int_array("track", tracks, (b,), n_tracks)
    if len(np.unique(tracks)) != b:
        raise ObservationError("track", "a track appears twice; split the batch in two")
    present_a = _bool_array("present", present, (b, c))
    silent_a = (
        np.zeros((b, c), np.bool_) if silent is None else _bool_array("silent", silent, (b, c))
    )
    if np.any(silent_a & present_a):
        raise ObservationError("silent", "a camera cannot be both present and silent")
    if b and not np.all((present_a | silent_a).any(axis=1)):
        raise ObservationError("present", "an observation has no camera present or silent")
    start_a = np.zeros(b, np.bool_) if start is None else _bool_array("start", start, (b,))
    steps_a = np.ones(b, np.int32) if steps is None else _int_array("steps", steps, (b,), 2**20)
    tod_a = np.zeros(b, np.int32) if tod is None else _int_array("tod", tod, (b,), dims.tod_bins)
    zone_a = _int_array("zone", zone, (b, c), dims.zones)
    label_a = _int_array("label", label, (b, c), dims.classes + 1)
    score_a = _float_array("score", score, (b, c))
    emb_a = _float_array("embedding", embedding, (b, c, d)) * np.float32(embedding_scale)
    arrays = [tracks, start_a, steps_a, tod_a, present_a, silent_a, zone_a, label_a, score_a, emb_a]
    if pad_to is not None:
        if pad_to < b:
            raise ObservationError("track", f"{b} observations do not fit pad_to={pad_to}")
        extra = pad_to - b
        arrays = [np.concatenate([a, np.zeros((extra, *a.shape[1:]), a.dtype)]) for a in arrays]
        arrays[0][b:] = n_tracks  # out of range: gathered as the prior, dropped on scatter
        arrays[4][b:, 0] = True
    return ObsBatch(*(jnp.asarray(a) for a in arrays))


def _report_terms(
    p: Params, camera: Array, zone: Array, label: Array, score: Array, embedding: Array
) -> tuple[Array, Array]:
    """Camera reports (any leading shape ``...``) as log-likelihood terms over classes
    [..., K1] and zones [..., Z]."""
    bins = jnp.sum(score[..., None] >= p.score_edges, axis=-1)
    outcome = label * (p.score_edges.shape[0] + 1) + bins
    zone_ll = p.log_zone_obs[camera, :, zone] + p.log_detect[camera]  # [..., Z]
    label_ll = p.log_label[camera, :, outcome]  # [..., K1]
    maha = mahalanobis(p, embedding)
    dim = p.emb_loc.shape[-1]
    safe_df = jnp.where(p.emb_gauss, 1.0, p.emb_df)
    shape = jnp.where(p.emb_gauss, -0.5 * maha, -0.5 * (safe_df + dim) * jnp.log1p(maha / safe_df))
    return label_ll + p.emb_lognorm + shape, zone_ll


def _log_likelihood_parts(p: Params, obs: ObsBatch) -> tuple[Array, Array]:
    """log p(observation | class, zone) as a small [..., K1, Z] part plus a constant [...],
    for observations of any leading shape (one row, or a whole batch at once)."""
    cameras = jnp.arange(obs.present.shape[-1])
    per_cam, per_zone = _report_terms(
        p, cameras, obs.zone, obs.label, obs.score, obs.embedding
    )  # [..., C, K1], [..., C, Z]
    pres = obs.present[..., None]
    # Each camera's class terms less their maximum: the sums then stay small numbers,
    # which float32 rounds finely; the constants go to the evidence only.
    top_c = jnp.max(per_cam, axis=-1, keepdims=True)
    class_part = jnp.sum(jnp.where(pres, per_cam - top_c, 0.0), axis=-2)
    zone_part = jnp.sum(jnp.where(pres, per_zone, 0.0), axis=-2) + jnp.sum(
        jnp.where(obs.silent[..., None], p.log_miss, 0.0), axis=-2
    )
    top_z = jnp.max(zone_part, axis=-1, keepdims=True)
    const = jnp.sum(jnp.where(obs.present, top_c[..., 0], 0.0), axis=-1) + top_z[..., 0]
    const = const + p.emb_lognorm_shift * jnp.sum(obs.present, axis=-1)
    return class_part[..., :, None] + (zone_part - top_z)[..., None, :], const


def log_likelihood(p: Params, obs: ObsBatch) -> Array:
    """log p(this fused observation | class, zone): [K1, Z] for one (unbatched) row, or
    [B, K1, Z] for a batch."""
    relative, const = _log_likelihood_parts(p, obs)
    return relative + const[..., None, None]


def _tick(p: Params, belief: Array, tod: Array) -> Array:
    """One tick of every row's zone chain: [B, K1, Z] through ``p.trans[:, tod]``, as Z
    broadcast products (XLA fuses them, and the per-row gather, into one pass)."""
    chosen = jnp.moveaxis(p.trans, 1, 0)[tod]  # [B, K1, Z, Z]
    out = belief[..., 0, None] * chosen[..., 0, :]
    for z in range(1, belief.shape[-1]):
        out = out + belief[..., z, None] * chosen[..., z, :]
    return out


def _predict_batch(p: Params, belief: Array, tod: Array, steps: Array) -> Array:
    """Every row's belief ``steps`` ticks on ([B, K1, Z]). The ticks past the first run in
    a loop over the batch's largest gap, which is empty in the common case (every row one
    tick on); the first is then one fused pass with the update.

    On a GPU the loop's bound makes the host wait for the device once a step (about
    0.15 ms of an H200's 2 ms for a million tracks). Unrolling the ticks by the binary
    digits of their count instead (31 conditional ticks through ``trans^(2^j)``) was
    measured and is worse: XLA made each conditional tick its own pass over the
    beliefs (4.3 ms)."""

    def extra(i: Array, b: Array) -> Array:
        return jnp.where((i < steps)[:, None, None], _tick(p, b, tod), b)

    ahead: Array = jax.lax.fori_loop(1, jnp.max(steps, initial=1), extra, belief)
    return jnp.where((steps >= 1)[:, None, None], _tick(p, ahead, tod), ahead)


def _posterior(prior: Array, relative: Array, const: Array) -> tuple[Array, Array]:
    """Multiply beliefs [..., K1, Z] by their likelihoods and normalise, in logs."""
    joint = jnp.log(prior) + relative
    top = jnp.max(joint, axis=(-2, -1), keepdims=True)
    weights = jnp.exp(joint - top)
    total = jnp.sum(weights, axis=(-2, -1), keepdims=True)
    return weights / total, const + top[..., 0, 0] + jnp.log(total[..., 0, 0])


def _update_given(
    p: Params,
    belief: Array,
    start: Array,
    tod: Array,
    steps: Array,
    relative: Array,
    const: Array,
) -> tuple[Array, Array]:
    """Predict B tracks and multiply in their observations' likelihood parts."""
    predicted = _predict_batch(p, belief, tod, steps)
    prior = jnp.where(start[:, None, None], prior_belief(p), predicted)
    return _posterior(prior, relative, const)


def filter_update(p: Params, belief: Array, obs: ObsBatch) -> tuple[Array, Array]:
    """One filter step for B tracks whose beliefs [B, K1, Z] are given in the batch's
    order (``obs.track`` is ignored); returns the new beliefs and each row's log
    p(observation | past). The dense form of :func:`step`, for callers that keep beliefs
    aligned with their batches (replay, the GPU benchmark)."""
    relative, const = _log_likelihood_parts(p, obs)
    return _update_given(p, belief, obs.start, obs.tod, obs.steps, relative, const)


def init(p: Params, n_tracks: int) -> FilterState:
    """A state of ``n_tracks`` track slots, each at the prior (reset again on ``start``)."""
    belief = jnp.broadcast_to(prior_belief(p), (n_tracks, *p.log_init_zone.shape))
    return FilterState(belief=belief, log_evidence=jnp.zeros(n_tracks, jnp.float32))


@jax.jit
def step(p: Params, state: FilterState, obs: ObsBatch) -> FilterState:
    """Apply a batch of fused observations to the tracks it names; jitted.

    Only the named slots change. Padding rows (track = N) read the prior and are dropped.
    Compiles once per (N, B, Dims); new parameters of the same Dims never recompile.
    """
    belief = state.belief.at[obs.track].get(mode="fill", fill_value=1.0)
    new_belief, increment = filter_update(p, belief, obs)
    evidence = jnp.where(
        obs.start, 0.0, state.log_evidence.at[obs.track].get(mode="fill", fill_value=0.0)
    )
    return FilterState(
        belief=state.belief.at[obs.track].set(new_belief, mode="drop"),
        log_evidence=state.log_evidence.at[obs.track].set(evidence + increment, mode="drop"),
    )


def _cell_parts(p: Params, batch: RoundBatch) -> tuple[Array, Array]:
    """Every cell's likelihood parts ``[R * W, K1, Z]`` and ``[R * W]``: the reports'
    terms summed into their cells, as :func:`_log_likelihood_parts` sums camera slots."""
    cells = batch.track.size
    per_cam, per_zone = _report_terms(
        p, batch.camera, batch.zone, batch.label, batch.score, batch.embedding
    )  # [M, K1], [M, Z]
    top_c = jnp.max(per_cam, axis=1)
    k1, z = p.log_init_zone.shape
    class_part = jnp.zeros((cells, k1)).at[batch.cell].add(per_cam - top_c[:, None], mode="drop")
    zone_part = jnp.zeros((cells, z)).at[batch.cell].add(per_zone, mode="drop")
    count = jnp.zeros(cells).at[batch.cell].add(1.0, mode="drop")
    top_z = jnp.max(zone_part, axis=1)
    const = jnp.zeros(cells).at[batch.cell].add(top_c, mode="drop") + top_z
    const = const + p.emb_lognorm_shift * count
    return class_part[:, :, None] + (zone_part - top_z[:, None])[:, None, :], const


def step_rounds(p: Params, state: FilterState, batch: RoundBatch) -> FilterState:
    """Apply ``R`` rounds of observations in order, as ``R`` calls of :func:`step` would;
    not jitted itself (call it inside a jitted function).

    The likelihoods do not depend on the beliefs, so all reports' are one vectorised
    computation before a ``lax.scan`` over the rounds, whose steps then only predict,
    multiply and normalise. Per report rather than per camera slot: an observation
    seen by one of C cameras costs one likelihood, not C.
    """
    rounds, width = batch.track.shape
    relative, const = _cell_parts(p, batch)
    relative = relative.reshape(rounds, width, *relative.shape[1:])
    const = const.reshape(rounds, width)

    def body(s: FilterState, row: tuple[Array, ...]) -> tuple[FilterState, None]:
        track, start, steps, tod, rel, c = row
        belief = s.belief.at[track].get(mode="fill", fill_value=1.0)
        new_belief, increment = _update_given(p, belief, start, tod, steps, rel, c)
        before = s.log_evidence.at[track].get(mode="fill", fill_value=0.0)
        evidence = jnp.where(start, 0.0, before) + increment
        return FilterState(
            belief=s.belief.at[track].set(new_belief, mode="drop"),
            log_evidence=s.log_evidence.at[track].set(evidence, mode="drop"),
        ), None

    rows = (batch.track, batch.start, batch.steps, batch.tod, relative, const)
    state, _ = jax.lax.scan(body, state, rows)
    return state
