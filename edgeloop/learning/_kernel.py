"""The learner's jitted work: a micro-batch laid out in rounds, filtered, then decided.

This is the one module of the shells that imports JAX; the Learner imports it in
``on_start``, so ``import edgeloop.learning`` stays light and the first compilation
happens there, off the event path. One call to :meth:`Kernel.run` is one dispatch: a
``lax.scan`` of the core's ``step`` over the rounds, then every trap's decision over the
live tracks, and one transfer of the small results back to the host.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from edgeloop.learning import core
from edgeloop.learning._tracks import ROUND_BASE, Layout, bucket

__all__ = ["Kernel", "Rows", "TrapLoss", "MAX_ROUNDS"]

MAX_ROUNDS = 64
"""Most rounds (observations of one track) one compiled call scans over."""


@dataclasses.dataclass(frozen=True, slots=True)
class TrapLoss:
    """One trap's loss table inputs, as indices of the model."""

    zone: int
    targets: tuple[int, ...]
    protected: tuple[int, ...]


@dataclasses.dataclass(slots=True)
class Rows:
    """A micro-batch as host arrays, one row per (fused) observation; C cameras, D dims."""

    track: np.ndarray  # int64[B]
    start: np.ndarray  # bool[B]
    steps: np.ndarray  # int32[B]
    tod: np.ndarray  # int32[B]
    present: np.ndarray  # bool[B, C]
    zone: np.ndarray  # int32[B, C]
    label: np.ndarray  # int32[B, C]
    score: np.ndarray  # float32[B, C]
    embedding: np.ndarray  # float32[B, C, D]

    def select(self, mask: np.ndarray) -> Rows:
        """The rows where ``mask`` is set."""
        return Rows(*(getattr(self, f.name)[mask] for f in dataclasses.fields(self)))


def _grid(rows: Rows, grid: Layout, n_tracks: int) -> tuple[np.ndarray, np.ndarray]:
    """Scatter the rows into ``[rounds, width]`` cells, packed in two host arrays (ints
    and floats): every host array passed to a jitted call costs tens of microseconds to
    hand over, more than the filter step of a small batch. Empty cells are padding
    (track = N, dropped by the core's step)."""
    b, c = rows.present.shape
    ints = np.zeros((grid.rounds, grid.width, 4 + 3 * c), np.int32)
    ints[..., 0] = n_tracks
    ints[..., 4] = 1  # padding rows need one camera present to be well formed
    width = c + rows.embedding.shape[1] * rows.embedding.shape[2]
    floats = np.zeros((grid.rounds, grid.width, width), np.float32)
    if b:
        r, col = grid.round, grid.column
        ints[r, col] = np.concatenate(
            [
                rows.track[:, None],
                rows.start[:, None],
                rows.steps[:, None],
                rows.tod[:, None],
                rows.present,
                rows.zone,
                rows.label,
            ],
            axis=1,
        )
        floats[r, col] = np.concatenate([rows.score, rows.embedding.reshape(b, -1)], axis=1)
    return ints, floats


def _unpack(ints: jax.Array, floats: jax.Array, cameras: int, dim: int) -> core.ObsBatch:
    c = cameras
    present = ints[..., 4 : 4 + c] != 0
    return core.ObsBatch(
        track=ints[..., 0],
        start=ints[..., 1] != 0,
        steps=ints[..., 2],
        tod=ints[..., 3],
        present=present,
        silent=jnp.zeros_like(present),
        zone=ints[..., 4 + c : 4 + 2 * c],
        label=ints[..., 4 + 2 * c : 4 + 3 * c],
        score=floats[..., :c],
        embedding=floats[..., c:].reshape((*floats.shape[:-1], c, dim)),
    )


def _run(
    p: core.Params,
    state: core.FilterState,
    ints: jax.Array,
    floats: jax.Array,
    losses: jax.Array,
    live: jax.Array,
    target: jax.Array,
    protected: jax.Array,
    *,
    cameras: int,
    dim: int,
) -> tuple[core.FilterState, jax.Array]:
    obs = _unpack(ints, floats, cameras, dim)

    def body(s: core.FilterState, row: core.ObsBatch) -> tuple[core.FilterState, None]:
        return core.step(p, s, row), None

    state, _ = jax.lax.scan(body, state, obs)
    belief = state.belief
    decisions = jax.vmap(lambda loss: core.decide_joint(belief, loss, live))(losses)
    # P(at least one live track is a target / a protected class in the trap's zone)
    p_t = jnp.einsum("nkz,tkz->tn", belief, target)
    p_p = jnp.einsum("nkz,tkz->tn", belief, protected)
    any_t = 1.0 - jnp.prod(jnp.where(live[None, :], 1.0 - p_t, 1.0), axis=1)
    any_p = 1.0 - jnp.prod(jnp.where(live[None, :], 1.0 - p_p, 1.0), axis=1)
    # one [T, 5] array (action, two expected losses, two probabilities): one transfer
    summary = jnp.concatenate(
        [
            decisions.action[:, None].astype(jnp.float32),
            decisions.expected_loss,
            any_t[:, None],
            any_p[:, None],
        ],
        axis=1,
    )
    return state, summary


_run_jit = jax.jit(_run, static_argnames=("cameras", "dim"))


class Kernel:
    """The filter state and parameters of one learner, and its compiled batch step."""

    def __init__(
        self, dims: core.Dims, params: core.Params, n_tracks: int, traps: Sequence[TrapLoss]
    ) -> None:
        self.dims = dims
        self.n_tracks = n_tracks
        self.params = params
        self.state = core.init(params, n_tracks)
        k1, z = dims.states
        tables, target, protected = [], np.zeros((0, k1, z)), np.zeros((0, k1, z))
        target_masks, protected_masks = [], []
        for trap in traps:
            tables.append(
                core.trap_loss(
                    dims, trap_zone=trap.zone, targets=trap.targets, protected=trap.protected
                )
            )
            t = np.zeros((k1, z), np.float32)
            t[list(trap.targets), trap.zone] = 1.0
            q = np.zeros((k1, z), np.float32)
            q[list(trap.protected), trap.zone] = 1.0
            target_masks.append(t)
            protected_masks.append(q)
        if tables:
            target, protected = np.stack(target_masks), np.stack(protected_masks)
        self._losses = jnp.stack(tables) if tables else jnp.zeros((0, 2, k1, z), jnp.float32)
        self._target = jnp.asarray(target, jnp.float32)
        self._protected = jnp.asarray(protected, jnp.float32)

    def run(
        self, rows: Rows, grid: Layout, live: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Filter the rows and decide every trap: ``(actions [T], expected losses [T, 2],
        P(target in trap) [T], P(protected in trap) [T])`` as host arrays.

        More than :data:`MAX_ROUNDS` rounds run as several calls of that many, so the
        set of compiled shapes stays small."""
        while grid.round.size and int(grid.round.max()) >= MAX_ROUNDS:
            head = grid.round < MAX_ROUNDS
            first = Layout(MAX_ROUNDS, grid.width, grid.round[head], grid.column[head])
            self._call(rows.select(head), first, live)
            rows = rows.select(~head)
            rest = grid.round[~head] - MAX_ROUNDS
            grid = Layout(
                bucket(int(rest.max()) + 1, ROUND_BASE), grid.width, rest, grid.column[~head]
            )
        return self._call(rows, grid, live)

    def _call(
        self, rows: Rows, grid: Layout, live: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        ints, floats = _grid(rows, grid, self.n_tracks)
        self.state, summary = _run_jit(
            self.params,
            self.state,
            ints,
            floats,
            self._losses,
            live,
            self._target,
            self._protected,
            cameras=self.dims.cameras,
            dim=self.dims.dim,
        )
        host = np.asarray(summary)
        return host[:, 0].astype(np.int32), host[:, 1:3], host[:, 3], host[:, 4]

    def warm(self, shapes: Sequence[tuple[int, int]]) -> None:
        """Compile the batch step for each ``(rounds, width)`` now, with rows that change
        nothing (padding only), so no event waits for a compilation."""
        c, d = self.dims.cameras, self.dims.dim
        empty = Rows(
            track=np.zeros(0, np.int64),
            start=np.zeros(0, bool),
            steps=np.zeros(0, np.int32),
            tod=np.zeros(0, np.int32),
            present=np.zeros((0, c), bool),
            zone=np.zeros((0, c), np.int32),
            label=np.zeros((0, c), np.int32),
            score=np.zeros((0, c), np.float32),
            embedding=np.zeros((0, c, d), np.float32),
        )
        live = np.zeros(self.n_tracks, bool)
        for rounds, width in shapes:
            grid = Layout(rounds, width, np.zeros(0, np.int64), np.zeros(0, np.int64))
            self.run(empty, grid, live)

    def belief(self) -> np.ndarray:
        """Every track's belief ``[N, K1, Z]`` on the host."""
        return np.asarray(jax.device_get(self.state.belief))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Parameters and filter state as host arrays, for a snapshot."""
        arrays = {f"params.{k}": np.asarray(v) for k, v in self.params._asdict().items()}
        arrays["state.belief"] = np.asarray(self.state.belief)
        arrays["state.log_evidence"] = np.asarray(self.state.log_evidence)
        return arrays

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`to_arrays` saved."""
        fields = core.Params._fields
        params = core.Params(**{k: jnp.asarray(arrays[f"params.{k}"]) for k in fields})
        state = core.FilterState(
            belief=jnp.asarray(arrays["state.belief"]),
            log_evidence=jnp.asarray(arrays["state.log_evidence"]),
        )
        if state.belief.shape != self.state.belief.shape:
            msg = f"snapshot belief {state.belief.shape}, this learner {self.state.belief.shape}"
            raise ValueError(msg)
        self.params, self.state = params, state

    def adopt(self, params: core.Params) -> None:
        """Use new parameters from the next batch on (same shapes: no recompilation)."""
        self.params = params
