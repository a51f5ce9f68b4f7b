"""The GibbsRepair actor: blocked Gibbs over the learner's last window, in the background.

Streaming VB never revisits a window once learnt, so an early wrong species stays in the
counts. A Learner sends its last window and the posterior before it
(:class:`RepairRequest`); this actor runs the core's ``gibbs_run`` (conjugate draws, CRP
species moves, FFBS zones) in its own thread, off the event path, and answers with the
repaired posterior (:class:`ParamsUpdate`), which replaces that window's streaming update.
Randomness is a PRNG key from ``seed``, split once per request, so a replay repeats.

Shapes: ``gibbs_run`` compiles once per window shape, which takes 10-25 s on a busy
2-core machine against well under a second to run. So windows are padded with empty
tracks and rows (which the core leaves out) up to ``tracks`` x ``rows`` (larger ones
to the next power of two), and with a ``warm`` posterior the one common shape is
compiled in ``on_start``, before the actors started after this one (the learner): a
compile beside the running yard slowed every other actor of the process down (its
tracing is Python) and held the first repairs back. A stop waits for the run in hand: a
supervisor must give this actor a ``shutdown`` longer than a run, or a compile of a
shape larger than the common one (an abandoned thread still inside XLA when the
interpreter exits aborts the process).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import structlog

from edgeloop.actors import Actor
from edgeloop.errors import EdgeloopError, ObservationError
from edgeloop.learning._messages import GetStatistics, ParamsUpdate, RepairRequest
from edgeloop.learning._tracks import bucket

__all__ = ["GibbsRepair", "RepairStatistics"]

_log = structlog.get_logger("edgeloop.learning")


@dataclasses.dataclass(frozen=True, slots=True)
class RepairStatistics:
    """Requests answered and refused (by field); tracks resampled and how many of them
    changed species (``changed`` in the last run, ``changed_total`` over all); seconds
    in runs (compiles included) and in the warm-up compile."""

    repairs: int
    rejected: dict[str, int]
    changed: int
    changed_total: int = 0
    tracks: int = 0
    run_s: float = 0.0
    warm_s: float | None = None


class GibbsRepair(Actor):
    """Answers each :class:`RepairRequest` with ``sweeps`` Gibbs sweeps (``burn_in`` of
    them discarded); JAX is imported in ``on_start``. ``tracks`` and ``rows`` pad windows
    to few shapes; ``warm`` (the core's ``Posterior`` the learner starts from, or a
    function that makes it) compiles the ``tracks`` x ``rows`` shape in ``on_start``
    (see the module docstring)."""

    def __init__(
        self,
        seed: int = 0,
        sweeps: int = 20,
        burn_in: int = 5,
        tracks: int = 1,
        rows: int = 1,
        warm: Any = None,
    ) -> None:
        if not 0 <= burn_in < sweeps:
            raise ValueError(f"burn_in ({burn_in}) must lie in [0, sweeps={sweeps})")
        for name, value in (("tracks", tracks), ("rows", rows)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.seed = seed
        self.sweeps = sweeps
        self.burn_in = burn_in
        self.tracks = tracks
        self.rows = rows
        self.warm = warm
        self._key: Any = None
        self._repairs = 0
        self._changed = 0
        self._changed_total = 0
        self._tracks = 0
        self._run_s = 0.0
        self._warm_s: float | None = None
        self._rejected: dict[str, int] = {}

    def on_start(self) -> None:
        import jax

        self._key = jax.random.PRNGKey(self.seed)
        if self.warm is not None:
            self._warm_up()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RepairRequest):
            return self._repair(message)
        if isinstance(message, GetStatistics):
            return RepairStatistics(
                self._repairs,
                dict(self._rejected),
                self._changed,
                self._changed_total,
                self._tracks,
                round(self._run_s, 3),
                self._warm_s,
            )
        return self._reject(
            "message", f"a GibbsRepair takes RepairRequest, not {type(message).__name__}"
        )

    def _padded(self, window: Any, assign: np.ndarray) -> tuple[Any, np.ndarray]:
        """``window`` and ``assign`` padded with empty tracks and rows to the shape of
        the class docstring (the core leaves tracks without a report out)."""
        m, t = np.shape(window.start)
        tm = self.tracks if m <= self.tracks else bucket(m)
        tt = self.rows if t <= self.rows else bucket(t)
        if (tm, tt) == (m, t):
            return window, assign

        def pad(a: Any) -> Any:
            a = np.asarray(a)
            return np.pad(a, [(0, tm - m), (0, tt - t)] + [(0, 0)] * (a.ndim - 2))

        return type(window)(*(pad(a) for a in window)), np.pad(assign, (0, tm - m))

    def _warm_up(self) -> None:
        """Compile the common shape on an empty window (every track padding)."""
        import jax

        from edgeloop.learning import core

        began = time.perf_counter()
        given = self.warm() if callable(self.warm) else self.warm
        base = jax.tree.map(lambda a: jax.numpy.asarray(np.asarray(a)), given)
        (k1, z), (c, _, outcomes) = np.shape(base.init_conc), np.shape(base.label_conc)
        d = np.shape(base.niw_mean)[1]
        dims = core.Dims(
            classes=k1 - 1,
            zones=z,
            cameras=c,
            tod_bins=np.shape(base.trans_conc)[1],
            score_bins=outcomes // k1,
            dim=d,
        )
        m, t = self.tracks, self.rows
        window = core.padding_obs_seq(dims, m, t)
        result = core.gibbs_run(
            jax.random.PRNGKey(0),
            base,
            window,
            jax.numpy.zeros(m, jax.numpy.int32),
            sweeps=self.sweeps,
            burn_in=self.burn_in,
        )
        np.asarray(result.assign)  # waits for the result: the compile is done
        self._warm_s = round(time.perf_counter() - began, 3)
        _log.info("gibbs_repair_warm", path=self.path, shape=(m, t), seconds=self._warm_s)

    def _repair(self, request: RepairRequest) -> ObservationError | None:
        import jax

        from edgeloop.learning import core

        self._key, key = jax.random.split(self._key)
        began = time.perf_counter()
        try:
            given = np.asarray(request.assign, np.int32)
            window, assign = self._padded(request.window, given)
            result = core.gibbs_run(
                key,
                request.base,
                jax.tree.map(jax.numpy.asarray, window),
                jax.numpy.asarray(assign),
                sweeps=self.sweeps,
                burn_in=self.burn_in,
            )
            after = np.asarray(result.assign)[: len(given)]
            real = np.asarray(window.present)[: len(given)].any(axis=(1, 2))
        except (TypeError, ValueError, AttributeError, EdgeloopError) as error:
            return self._reject("window", f"cannot resample it: {type(error).__name__}: {error}")
        self._run_s += time.perf_counter() - began
        self._repairs += 1
        self._changed = int(np.sum((after != given) & real))
        self._changed_total += self._changed
        self._tracks += int(real.sum())
        update = ParamsUpdate(
            base_version=request.version, posterior=result.posterior, sweeps=self.sweeps
        )
        self.system.tell(request.reply_to, update)
        _log.info("gibbs_repair", path=self.path, changed=self._changed, version=request.version)
        return None

    def _reject(self, field: str, problem: str) -> ObservationError:
        self._rejected[field] = self._rejected.get(field, 0) + 1
        _log.warning("repair_rejected", path=self.path, field=field, problem=problem)
        return ObservationError(field, problem)
