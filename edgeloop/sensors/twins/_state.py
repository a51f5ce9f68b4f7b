"""A twin's state and counters as plain values: what ``GetState`` answers and what
``edgeloop node status`` shows per device."""

from __future__ import annotations

import dataclasses
from typing import Any

from edgeloop.messages import Params

__all__ = ["TwinState", "Versioned"]


@dataclasses.dataclass(frozen=True, slots=True)
class Versioned:
    """One side of desired vs reported: a version and its settings (``None`` when only
    the version is known, from an event) and, reported, why a desired one was refused."""

    version: int
    settings: Params | None = None
    error: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class TwinState:
    """A snapshot of one twin, as device twins in IoT hubs show it: what the node wants
    the device to run (``desired_*``), what the device says it runs (``reported_*``,
    from its last ``ConfigReported``/``HeadAck`` and from every event), and the counters.

    ``in_sync`` is true when the device has reported the desired config in effect (every
    desired setting has its value in a ``ConfigReported``) and runs the desired head; a
    refused desired config is not in sync (``reported_config.error`` says why).
    """

    device: str
    kind: str
    connected: bool
    desired_config: Versioned | None
    reported_config: Versioned | None
    desired_head: int | None
    reported_head: int | None
    delivered_seq: int | None
    counters: dict[str, int]
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def in_sync(self) -> bool:
        desired, reported = self.desired_config, self.reported_config
        config_ok = desired is None or (
            reported is not None
            and reported.error is None
            and reported.settings is not None
            and all(reported.settings.get(k) == v for k, v in (desired.settings or {}).items())
        )
        head_ok = self.desired_head is None or self.reported_head == self.desired_head
        return config_ok and head_ok

    def to_json(self) -> dict[str, Any]:
        """Builtins only (for ``node status`` and ``--json``)."""
        out = dataclasses.asdict(self)
        out["in_sync"] = self.in_sync
        return out
