"""The learner's actor shells: FusionGroup, Learner, GibbsRepair.

Importing this package does not import JAX: the Learner and GibbsRepair import the core
(``edgeloop.learning.core``) when they start.
"""

from edgeloop.learning._association import Associator, AssociatorCounts, FusionConfig
from edgeloop.learning._messages import Action, Decision, EventsSince, FusedObservation

__all__ = [
    "Associator",
    "AssociatorCounts",
    "FusionConfig",
    "FusedObservation",
    "EventsSince",
    "Decision",
    "Action",
]
