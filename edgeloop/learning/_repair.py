"""The GibbsRepair actor: blocked Gibbs over the learner's last window, in the background.

Streaming VB never revisits a window once learnt, so an early wrong species stays in the
counts. A Learner sends its last window and the posterior before it
(:class:`RepairRequest`); this actor runs the core's ``gibbs_run`` (conjugate draws, CRP
species moves, FFBS zones) in its own thread, off the event path, and answers with the
repaired posterior (:class:`ParamsUpdate`), which replaces that window's streaming update.
Randomness is a PRNG key from ``seed``, split once per request, so a replay repeats.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import structlog

from edgeloop.actors import Actor
from edgeloop.errors import EdgeloopError, ObservationError
from edgeloop.learning._messages import GetStatistics, ParamsUpdate, RepairRequest

__all__ = ["GibbsRepair", "RepairStatistics"]

_log = structlog.get_logger("edgeloop.learning")


@dataclasses.dataclass(frozen=True, slots=True)
class RepairStatistics:
    """Requests answered, requests refused (by field), and the last run's reassignments."""

    repairs: int
    rejected: dict[str, int]
    changed: int


class GibbsRepair(Actor):
    """Answers each :class:`RepairRequest` with ``sweeps`` Gibbs sweeps (``burn_in`` of
    them discarded); JAX is imported in ``on_start``."""

    def __init__(self, seed: int = 0, sweeps: int = 20, burn_in: int = 5) -> None:
        if not 0 <= burn_in < sweeps:
            raise ValueError(f"burn_in ({burn_in}) must lie in [0, sweeps={sweeps})")
        self.seed = seed
        self.sweeps = sweeps
        self.burn_in = burn_in
        self._key: Any = None
        self._repairs = 0
        self._changed = 0
        self._rejected: dict[str, int] = {}

    def on_start(self) -> None:
        import jax

        self._key = jax.random.PRNGKey(self.seed)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RepairRequest):
            return self._repair(message)
        if isinstance(message, GetStatistics):
            return RepairStatistics(self._repairs, dict(self._rejected), self._changed)
        return self._reject(
            "message", f"a GibbsRepair takes RepairRequest, not {type(message).__name__}"
        )

    def _repair(self, request: RepairRequest) -> ObservationError | None:
        import jax
        import numpy as np

        from edgeloop.learning import core

        self._key, key = jax.random.split(self._key)
        try:
            result = core.gibbs_run(
                key,
                request.base,
                request.window,
                jax.numpy.asarray(request.assign),
                sweeps=self.sweeps,
                burn_in=self.burn_in,
            )
        except (TypeError, ValueError, AttributeError, EdgeloopError) as error:
            return self._reject("window", f"cannot resample it: {type(error).__name__}: {error}")
        self._repairs += 1
        self._changed = int(np.sum(np.asarray(result.assign) != np.asarray(request.assign)))
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
