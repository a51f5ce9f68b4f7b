"""The learner: a pure JAX core (:mod:`edgeloop.learning.core`) and its actor shells
(FusionGroup, Learner, GibbsRepair).

JAX and NumPyro are imported only inside this package, and only when a learning module
that needs them is imported: importing this package does not load them; the Learner and
GibbsRepair import the core when they start, off the event path.
"""

from __future__ import annotations

from edgeloop.learning._association import Associator, AssociatorCounts, FusionConfig
from edgeloop.learning._config import LearnerConfig, TrapConfig
from edgeloop.learning._fusion import FusionGroup, FusionStatistics
from edgeloop.learning._learner import Learner, LearnerStatistics
from edgeloop.learning._messages import (
    Action,
    Decision,
    EventsSince,
    FusedObservation,
    GetBelief,
    GetStatistics,
    ParamsUpdate,
    RepairRequest,
)
from edgeloop.learning._repair import GibbsRepair, RepairStatistics
from edgeloop.learning.cycle import KnowledgeCycle
from edgeloop.learning.cycle_config import CycleConfig, Knowledge
from edgeloop.learning.cycle_messages import ClassLearned, Fleet, GetCycles, NameClass

__all__ = [
    # actors
    "FusionGroup",
    "Learner",
    "GibbsRepair",
    # configuration
    "FusionConfig",
    "LearnerConfig",
    "TrapConfig",
    # messages
    "FusedObservation",
    "EventsSince",
    "Decision",
    "Action",
    "GetStatistics",
    "GetBelief",
    "RepairRequest",
    "ParamsUpdate",
    # statistics and the pure association core
    "FusionStatistics",
    "LearnerStatistics",
    "RepairStatistics",
    "Associator",
    "AssociatorCounts",
    # the knowledge cycle
    "KnowledgeCycle",
    "CycleConfig",
    "Knowledge",
    "Fleet",
    "ClassLearned",
    "NameClass",
    "GetCycles",
]
