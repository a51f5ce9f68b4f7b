"""The learner's jitted work: a micro-batch laid out in rounds, filtered, then decided.

This is the one module of the shells that imports JAX; the Learner imports it in
``on_start``, so ``import edgeloop.learning`` stays light and the first compilation
happens there, off the event path. One call to :meth:`Kernel.run` is one dispatch: the
core's ``step_rounds`` (every report's likelihood at once, then a ``lax.scan`` over the
rounds), then each touched track's share of every trap's decision, and one transfer of
those small results back to the host.

Decisions are summed on the host: the kernel keeps, per track slot, its expected losses
and trap probabilities (``[N, T, 4]``), refreshed for the tracks a batch touched; a trap's
joint decision is then a sum over the live slots, a few microseconds of numpy, instead of
evaluating all ``N`` beliefs on the device for every batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from edgeloop.learning import core
from edgeloop.learning._tracks import ROUND_BASE, Layout, bucket, fit_width

__all__ = ["Kernel", "Rows", "TrapLoss", "MAX_ROUNDS", "MAX_PIECES"]

MAX_ROUNDS = 64
"""Most rounds (observations of one track) one compiled call scans over."""
MAX_PIECES = 4
"""Most calls of compiled shapes a batch is split into before its own shape is compiled."""

_INTS = 8  # track, start, steps, tod | report cell, camera, zone, label
_HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True, slots=True)
class TrapLoss:
    """One trap's loss table inputs, as indices of the model."""

    zone: int
    targets: tuple[int, ...]
    protected: tuple[int, ...]


@dataclasses.dataclass(slots=True)
class Rows:
    """A micro-batch as host arrays: ``B`` rows (fused observations) and the ``M``
    camera reports they hold (``row`` says whose), C cameras, D dims."""

    track: np.ndarray  # int64[B]
    start: np.ndarray  # bool[B]
    steps: np.ndarray  # int32[B]
    tod: np.ndarray  # int32[B]
    row: np.ndarray  # int64[M]
    camera: np.ndarray  # int32[M]
    report_zone: np.ndarray  # int32[M]
    report_label: np.ndarray  # int32[M]
    report_score: np.ndarray  # float32[M]
    report_embedding: np.ndarray  # float32[M, D]
    cameras: int

    def select(self, mask: np.ndarray) -> Rows:
        """The rows where ``mask`` is set, with their reports."""
        keep = mask[self.row]
        renumber = np.cumsum(mask) - 1
        return Rows(
            self.track[mask],
            self.start[mask],
            self.steps[mask],
            self.tod[mask],
            renumber[self.row[keep]],
            self.camera[keep],
            self.report_zone[keep],
            self.report_label[keep],
            self.report_score[keep],
            self.report_embedding[keep],
            self.cameras,
        )

    def _slots(self, values: np.ndarray, dtype: type) -> np.ndarray:
        out = np.zeros((len(self.track), self.cameras, *values.shape[1:]), dtype)
        out[self.row, self.camera] = values
        return out

    # One slot per camera, as the core's ObsBatch and the trainer's windows want them.
    @property
    def present(self) -> np.ndarray:
        """bool[B, C]: camera c reported in row b."""
        return self._slots(np.ones(len(self.row), bool), np.bool_)

    @property
    def zone(self) -> np.ndarray:
        """int32[B, C]."""
        return self._slots(self.report_zone, np.int32)

    @property
    def label(self) -> np.ndarray:
        """int32[B, C]."""
        return self._slots(self.report_label, np.int32)

    @property
    def score(self) -> np.ndarray:
        """float32[B, C]."""
        return self._slots(self.report_score, np.float32)

    @property
    def embedding(self) -> np.ndarray:
        """float32[B, C, D]."""
        return self._slots(self.report_embedding, np.float32)


def _grid(rows: Rows, grid: Layout, n_tracks: int) -> tuple[np.ndarray, np.ndarray]:
    """Pack the rows into ``[rounds, width]`` cells and the reports into as many report
    slots, in two host arrays (ints and floats): every array handed to a jitted call
    costs tens of microseconds, more than the filter step of a small batch. Empty cells
    are padding (track = N, dropped by the core); empty report slots name cell R * W."""
    cells = grid.rounds * grid.width
    m = rows.row.shape[0]
    ints = np.zeros((cells, _INTS), np.int32)
    ints[:, 0] = n_tracks
    ints[m:, 4] = cells
    floats = np.zeros((cells, 1 + rows.report_embedding.shape[1]), np.float32)
    if m:
        cell = grid.round * grid.width + grid.column
        ints[cell, 0] = rows.track
        ints[cell, 1] = rows.start
        ints[cell, 2] = rows.steps
        ints[cell, 3] = rows.tod
        ints[:m, 4] = cell[rows.row]
        ints[:m, 5] = rows.camera
        ints[:m, 6] = rows.report_zone
        ints[:m, 7] = rows.report_label
        floats[:m, 0] = rows.report_score
        floats[:m, 1:] = rows.report_embedding
    shape = (grid.rounds, grid.width)
    return ints.reshape(*shape, _INTS), floats.reshape(*shape, -1)


def _run(
    p: core.Params,
    state: core.FilterState,
    ints: jax.Array,
    floats: jax.Array,
    tables: jax.Array,
) -> tuple[core.FilterState, jax.Array]:
    reports = ints.reshape(-1, _INTS)
    values = floats.reshape(-1, floats.shape[-1])
    batch = core.RoundBatch(
        track=ints[..., 0],
        start=ints[..., 1] != 0,
        steps=ints[..., 2],
        tod=ints[..., 3],
        cell=reports[:, 4],
        camera=reports[:, 5],
        zone=reports[:, 6],
        label=reports[:, 7],
        score=values[:, 0],
        embedding=values[:, 1:],
    )
    state = core.step_rounds(p, state, batch)
    touched = state.belief.at[reports[:, 0]].get(mode="fill", fill_value=0.0)
    # per cell: each trap's two expected losses, P(target there), P(protected there)
    return state, _shares(touched, tables)


def _shares(belief: jax.Array, tables: jax.Array) -> jax.Array:
    """``[N, T, 4]``: each track's expected losses (open, close) and P(target in the
    trap), P(protected in the trap), for tables ``[T, 4, K1, Z]``."""
    return jnp.einsum("nkz,tqkz->ntq", belief, tables, precision=_HIGHEST)


_run_jit = jax.jit(_run, donate_argnums=(1,))


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
        tables = []
        for trap in traps:
            loss = np.asarray(
                core.trap_loss(
                    dims, trap_zone=trap.zone, targets=trap.targets, protected=trap.protected
                )
            )
            t = np.zeros((k1, z), np.float32)
            t[list(trap.targets), trap.zone] = 1.0
            q = np.zeros((k1, z), np.float32)
            q[list(trap.protected), trap.zone] = 1.0
            tables.append(np.stack([loss[0], loss[1], t, q]))
        stacked = np.stack(tables) if tables else np.zeros((0, 4, k1, z), np.float32)
        self._tables = jnp.asarray(stacked, jnp.float32)
        self._shares = self._all_shares()
        self._compiled: set[tuple[int, int]] = set()  # (rounds, width) run so far

    def _all_shares(self) -> np.ndarray:
        """Every slot's shares, in numpy (no compilation in ``on_start`` for this)."""
        shares: np.ndarray = np.einsum(
            "nkz,tqkz->ntq", self.belief(), np.asarray(self._tables), dtype=np.float32
        )
        return shares

    def run(
        self, rows: Rows, grid: Layout, live: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Filter the rows and decide every trap over the ``live`` tracks: ``(actions
        [T], expected losses [T, 2], P(target in trap) [T], P(protected in trap) [T])``.

        ``grid`` comes from :func:`~edgeloop.learning._tracks.layout`. Once any shape is
        compiled, a batch no compiled shape holds (a stall let more pile up than
        ``warm_shapes`` expected, or fused observations bring more reports than cells)
        runs as up to :data:`MAX_PIECES` calls of compiled shapes rather than stall for
        seconds compiling a new one on the event path; a batch that would take more
        (a flood the warm shapes did not foresee) compiles its own shape once."""
        plan = list(self._plan(rows, grid))
        if len(plan) > MAX_PIECES:  # a flood past every compiled shape: compile once
            plan = list(self._compile_plan(rows, grid))
        for part, shape in plan:
            self._call(part, shape)
        return self.decide(live)

    def _plan(self, rows: Rows, grid: Layout) -> Iterator[tuple[Rows, Layout]]:
        m = rows.row.shape[0]
        used_r = int(grid.round.max()) + 1 if m else 1
        used_w = int(grid.column.max()) + 1 if m else 1
        cover = [(r, w) for r, w in self._compiled if r >= used_r and w >= used_w and r * w >= m]
        if cover:  # the common case: one call of the smallest compiled shape that fits
            r, w = min(cover, key=lambda shape: shape[0] * shape[1])
            yield rows, Layout(r, w, grid.round, grid.column)
            return
        r, w = max(
            self._compiled or {(0, 0)},
            key=lambda shape: min(shape[0], used_r) * min(shape[1], used_w),
        )
        if w < self.dims.cameras:  # nothing compiled to split into: compile (bucketed)
            yield from self._compile_plan(rows, grid)
            return
        # Blocks of r rounds (in order); within one, blocks of columns from the last to
        # the first: a track's column never grows from one round to the next (columns
        # follow track order and later rounds hold fewer tracks), so every track still
        # takes its observations in time order.
        report_round = grid.round[rows.row]
        report_column = grid.column[rows.row]
        for r0 in range(0, used_r, r):
            in_rounds = (grid.round >= r0) & (grid.round < r0 + r)
            counts = np.bincount(
                report_column[(report_round >= r0) & (report_round < r0 + r)],
                minlength=used_w,
            )
            hi = used_w
            while hi > 0:
                lo, total = hi, 0
                while lo > 0 and hi - lo < w and total + counts[lo - 1] <= r * w:
                    lo -= 1
                    total += int(counts[lo])
                mask = in_rounds & (grid.column >= lo) & (grid.column < hi)
                if mask.any():
                    shape = Layout(r, w, grid.round[mask] - r0, grid.column[mask] - lo)
                    yield rows.select(mask), shape
                hi = lo

    def _compile_plan(self, rows: Rows, grid: Layout) -> Iterator[tuple[Rows, Layout]]:
        """The bucketed shapes of ``grid`` (compiled on first use), more than
        :data:`MAX_ROUNDS` rounds as several calls of that many."""
        while grid.round.size and int(grid.round.max()) >= MAX_ROUNDS:
            head = grid.round < MAX_ROUNDS
            first = rows.select(head)
            width = fit_width(MAX_ROUNDS, grid.width, first.row.shape[0])
            yield first, Layout(MAX_ROUNDS, width, grid.round[head], grid.column[head])
            rows = rows.select(~head)
            rest = grid.round[~head] - MAX_ROUNDS
            grid = Layout(
                bucket(int(rest.max()) + 1, ROUND_BASE), grid.width, rest, grid.column[~head]
            )
        width = fit_width(grid.rounds, grid.width, rows.row.shape[0])
        yield rows, Layout(grid.rounds, width, grid.round, grid.column)

    def _call(self, rows: Rows, grid: Layout) -> None:
        ints, floats = _grid(rows, grid, self.n_tracks)
        self.state, shares = _run_jit(self.params, self.state, ints, floats, self._tables)
        self._compiled.add((grid.rounds, grid.width))
        track = ints[..., 0].reshape(-1)
        real = track < self.n_tracks
        self._shares[track[real]] = np.asarray(shares)[real]

    def decide(self, live: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Each trap's least-expected-loss action over the ``live`` tracks (their losses
        add up), with P(at least one live target / protected animal in the trap)."""
        near = self._shares[live]  # [L, T, 4]
        risks = near[..., :2].sum(axis=0)
        p_target = 1.0 - np.prod(1.0 - near[..., 2], axis=0)
        p_protected = 1.0 - np.prod(1.0 - near[..., 3], axis=0)
        return np.argmin(risks, axis=1).astype(np.int32), risks, p_target, p_protected

    def warm(self, shapes: Sequence[tuple[int, int]]) -> None:
        """Compile the batch step for each ``(rounds, width)`` now, with rows that change
        nothing (padding only), so no event waits for a compilation."""
        empty = Rows(
            track=np.zeros(0, np.int64),
            start=np.zeros(0, bool),
            steps=np.zeros(0, np.int32),
            tod=np.zeros(0, np.int32),
            row=np.zeros(0, np.int64),
            camera=np.zeros(0, np.int32),
            report_zone=np.zeros(0, np.int32),
            report_label=np.zeros(0, np.int32),
            report_score=np.zeros(0, np.float32),
            report_embedding=np.zeros((0, self.dims.dim), np.float32),
            cameras=self.dims.cameras,
        )
        for rounds, width in shapes:
            self._call(empty, Layout(rounds, width, np.zeros(0, np.int64), np.zeros(0, np.int64)))

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
        self._shares = self._all_shares()

    def adopt(self, params: core.Params) -> None:
        """Use new parameters from the next batch on (same shapes: no recompilation)."""
        self.params = params
