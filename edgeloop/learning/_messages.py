"""The messages the learner's actors exchange with each other and with the device twins.

They are msgspec Structs like :mod:`edgeloop.messages`, so they can cross a link as a
``Tell`` body (:func:`edgeloop.messages.encode_body`); they are not link-level kinds.
:class:`EventsSince` is the one a twin must understand: a restarted learner asks each
twin for the events it may have missed, and the twin tells them again, in order.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from edgeloop.messages import Event, EventsSince

__all__ = [
    "FusedObservation",
    "EventsSince",
    "Decision",
    "Action",
    "GetStatistics",
    "GetBelief",
    "RepairRequest",
    "ParamsUpdate",
]

Action = Literal["open", "close"]
"""What a trap should do."""


class FusedObservation(msgspec.Struct, frozen=True, kw_only=True, tag="fused_observation"):
    """The reports of one occurrence, one per camera at most, as a FusionGroup grouped
    them: they are fused by multiplying their likelihoods in one filter update.

    ``ts`` is the earliest report's time; ``late`` marks a report that arrived after the
    fusion window had closed and so travels alone rather than being lost.
    """

    group: Annotated[int, Meta(ge=0)]
    ts: float
    reports: Annotated[tuple[Event, ...], Meta(min_length=1)]
    late: bool = False


class Decision(msgspec.Struct, frozen=True, kw_only=True, tag="decision"):
    """What the learner decided for one trap after one batch, and why.

    ``p_target`` is the posterior probability that the target species is in the trap's
    zone; ``p_protected`` that a protected one (a cat) is; ``expected_loss`` is of the
    chosen action. ``seq`` is the last event (per device) the batch included.
    """

    trap: str
    action: Action
    p_target: float
    p_protected: float
    expected_loss: float
    ts: float
    batch: int
    seq: dict[str, int] = {}


# -- between the learner's own actors, in one node (they carry arrays, not wire data) --


@dataclasses.dataclass(frozen=True, slots=True)
class GetStatistics:
    """Ask a learning actor for its counters (a ``LearnerStatistics`` or the like)."""


@dataclasses.dataclass(frozen=True, slots=True)
class GetBelief:
    """Ask a Learner for every track slot's belief ``[N, K1, Z]`` (host numpy) and which
    slots are live, as a ``(belief, live)`` pair; pending events are applied first."""


@dataclasses.dataclass(frozen=True, slots=True)
class RepairRequest:
    """From a Learner to its GibbsRepair: resample the tracks of ``window`` (the core's
    ``ObsSeq`` [M, T]) from ``base`` (the posterior before the window), starting from the
    species ``assign`` [M] the streaming learner gave them, and answer ``reply_to`` with
    a :class:`ParamsUpdate`. ``version`` is the learner's parameter version it was cut at."""

    version: int
    base: Any
    window: Any
    assign: Any
    reply_to: str


@dataclasses.dataclass(frozen=True, slots=True)
class ParamsUpdate:
    """From a GibbsRepair to its Learner: the repaired ``posterior`` (the core's
    ``Posterior``) of the window cut at ``base_version``; a learner that has learnt since
    drops it as stale (bounded staleness)."""

    base_version: int
    posterior: Any
    sweeps: int = 0
