"""What the knowledge cycle is asked, tells, and tells itself.

:class:`ClassLearned` crosses links (a msgspec Struct, as a ``Tell`` body); the rest stay
inside the node. A remote client (``edgeloop knowledge name``) sends plain tables, which
:func:`remote_request` turns into the typed requests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from edgeloop.errors import KnowledgeError
from edgeloop.messages import EventsBatch, FrameRef

__all__ = [
    "ClassLearned",
    "NameClass",
    "GetCycles",
    "Fleet",
    "FleetFactory",
    "remote_request",
]


class ClassLearned(msgspec.Struct, frozen=True, kw_only=True, tag="class_learned"):
    """The cycle added class ``name`` (or renamed ``previous`` to it) and the cameras
    got head ``head_version``, whose labels are ``labels``. Whoever decides (a trap's
    interlock, a learner) treats ``name`` as a species of its own from now on."""

    name: str
    head_version: int
    labels: tuple[str, ...]
    previous: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class NameClass:
    """Ask the cycle: rename learnt class ``old`` (``species-4``) to ``new`` (``opossum``)
    and push the renamed head; answers the rename's cycle record (a table)."""

    old: str
    new: str


@dataclasses.dataclass(frozen=True, slots=True)
class GetCycles:
    """Ask the cycle: its status table (model, labels, every cycle's record)."""


class Fleet(Protocol):
    """How the cycle reaches the cameras: the app gives it one (``learning`` may not
    import the twins). Each call returns at once and calls ``done`` later, from any
    thread, exactly once."""

    def push_head(
        self,
        device: str,
        head: bytes,
        version: int,
        timeout: float,
        done: Callable[[BaseException | None], None],
    ) -> None:
        """Make ``head`` version ``version`` the camera's desired head; ``done(None)``
        once the camera acked it, else with the error (``DeviceRefusedError``: refused)."""

    def pull_frame(
        self, ref: FrameRef, timeout: float, done: Callable[[int, BaseException | None], None]
    ) -> None:
        """Pull the frame ``ref`` names over the bulk lane; ``done(nbytes, None)``."""


FleetFactory = Callable[[Any], Fleet]
"""Builds a :class:`Fleet` from the node's actor system."""


# -- the cycle's own signals -----------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    cycle: int
    device: str
    batch: EventsBatch | None
    error: BaseException | None


@dataclasses.dataclass(frozen=True, slots=True)
class Pulled:
    cycle: int
    device: str
    nbytes: int
    error: BaseException | None


@dataclasses.dataclass(frozen=True, slots=True)
class Pushed:
    cycle: int
    device: str
    version: int
    error: BaseException | None


@dataclasses.dataclass(frozen=True, slots=True)
class Beliefs:
    belief: Any
    live: Any
    error: BaseException | None


@dataclasses.dataclass(frozen=True, slots=True)
class Due:
    what: str
    cycle: int
    device: str = ""


def remote_request(body: Any) -> NameClass | GetCycles:
    """The request in a remote client's table: ``{"op": "name", "old": .., "new": ..}``
    or ``{"op": "cycles"}``; KnowledgeError naming the bad field otherwise."""
    if not isinstance(body, dict):
        msg = f"expected a table with an 'op', got {type(body).__name__}"
        raise KnowledgeError(msg, field="op")
    op = body.get("op")
    if op == "cycles":
        return GetCycles()
    if op != "name":
        raise KnowledgeError(f"unknown op {op!r}; use 'name' or 'cycles'", field="op")
    for key in ("old", "new"):
        value = body.get(key)
        if not isinstance(value, str) or not 0 < len(value) <= 64:
            msg = f"{key!r} must be a class name of 1 to 64 characters, got {value!r}"
            raise KnowledgeError(msg, field=key)
    return NameClass(body["old"], body["new"])
