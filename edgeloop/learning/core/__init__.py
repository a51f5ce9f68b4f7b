"""The learner's pure core: functions over explicit state, parameters and PRNG keys.

No actors, no I/O, no clocks: the shells (``Learner``, ``FusionGroup``, ``GibbsRepair``)
own time, mailboxes and snapshots and call these. The per-event path is::

    from edgeloop.learning import core

    dims = core.Dims(classes=8, zones=4, cameras=3, dim=16)
    p = core.params(spec)                         # YardSpec -> Params (a pytree)
    state = core.init(p, n_tracks=1024)
    obs = core.make_obs_batch(dims, 1024, track=[3], zone=..., label=..., score=...,
                              embedding=..., present=..., start=[True])
    state = core.step(p, state, obs)              # jitted; new Params never recompile
    d = core.decide(state.belief[obs.track], core.trap_loss(dims, trap_zone=3,
                                                             targets=[0], protected=[1]))

Learning runs beside it, off the event path: ``svb_window`` (streaming VB from the
smoother's expected statistics) per window of tracks, ``svi_quality`` (NumPyro SVI) on a
slower schedule, ``gibbs_run`` in the background repair actor; each returns a new
``Posterior`` whose ``params(spec_of(post))`` the filter adopts without recompiling.
"""

from __future__ import annotations

from edgeloop.learning.core._decide import (
    CLOSE,
    OPEN,
    Decision,
    decide,
    decide_joint,
    expected_loss,
    trap_loss,
)
from edgeloop.learning.core._filter import (
    FilterState,
    ObsBatch,
    RoundBatch,
    filter_update,
    init,
    log_likelihood,
    make_obs_batch,
    step,
    step_rounds,
)
from edgeloop.learning.core._gibbs import GibbsResult, draw_spec, gibbs_run
from edgeloop.learning.core._keys import prng_key, split_key
from edgeloop.learning.core._model import Dims, Params, YardSpec, params, prior_belief
from edgeloop.learning.core._posterior import (
    Posterior,
    SuffStats,
    add_class,
    prior,
    spec_of,
    svb_update,
    zero_stats,
)
from edgeloop.learning.core._smoother import (
    ObsSeq,
    Smoothed,
    expected_stats,
    make_obs_seq,
    padding_obs_seq,
    smooth,
    svb_lagged,
    svb_replay,
    svb_window,
)
from edgeloop.learning.core._svi import (
    Quality,
    quality_log_likelihood,
    quality_model,
    quality_prior,
    svi_quality,
)

__all__ = [
    # the model
    "Dims",
    "YardSpec",
    "Params",
    "params",
    "prior_belief",
    # the filter
    "ObsBatch",
    "RoundBatch",
    "FilterState",
    "make_obs_batch",
    "init",
    "step",
    "step_rounds",
    "filter_update",
    "log_likelihood",
    # the conjugate posterior and streaming VB
    "Posterior",
    "SuffStats",
    "prior",
    "spec_of",
    "svb_update",
    "zero_stats",
    "add_class",
    "ObsSeq",
    "Smoothed",
    "make_obs_seq",
    "padding_obs_seq",
    "smooth",
    "expected_stats",
    "svb_window",
    "svb_lagged",
    "svb_replay",
    # streaming SVI for camera quality (not conjugate)
    "Quality",
    "quality_prior",
    "quality_log_likelihood",
    "quality_model",
    "svi_quality",
    # Gibbs repair over a window
    "GibbsResult",
    "gibbs_run",
    "draw_spec",
    # randomness
    "prng_key",
    "split_key",
    # decisions
    "OPEN",
    "CLOSE",
    "Decision",
    "trap_loss",
    "expected_loss",
    "decide",
    "decide_joint",
]
