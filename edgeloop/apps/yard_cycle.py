"""The knowledge cycle in the yard: its way to the cameras and its starting knowledge.

``learning`` may not import the twins (they are siblings), so the app joins them:
:class:`TwinFleet` pushes heads and pulls frames through each camera's
:class:`~edgeloop.sensors.TwinClient`, and :func:`yard_knowledge` fits the open-world
model of a scenario's known species from the frozen extractor's gallery and calibrates
it on a day of the yard's own detections of those species (what a deployed node would
have gathered; calibrated on the first 120 ticks only, which are mostly daylight, the
calm yard's nights gave 5% false alarms instead of 1%). :class:`YardCycle` is the actor
``yard.toml`` starts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgeloop.errors import EdgeloopError
from edgeloop.learning.cycle import KnowledgeCycle
from edgeloop.learning.cycle_config import CycleConfig, Knowledge
from edgeloop.messages import FrameRef
from edgeloop.sensors import TwinClient
from edgeloop.sensors.world import World, load_scenario

__all__ = ["TwinFleet", "twin_fleet", "yard_knowledge", "YardCycle"]


class TwinFleet:
    """The cameras, as their twins under ``devices_at`` in ``system`` (a ``Fleet``)."""

    def __init__(self, system: Any, devices_at: str = "/devices") -> None:
        self.system = system
        self.devices_at = devices_at

    def _client(self, device: str) -> TwinClient | None:
        ref = self.system.lookup(f"{self.devices_at}/{device}")
        return None if ref is None else TwinClient(ref, device)

    def push_head(
        self,
        device: str,
        head: bytes,
        version: int,
        timeout: float,
        done: Callable[[BaseException | None], None],
    ) -> None:
        client = self._client(device)
        if client is None:
            done(EdgeloopError(f"no twin for {device} under {self.devices_at}"))
            return

        def answered(future: Any) -> None:
            try:
                future.get(0)
            except Exception as error:  # noqa: BLE001 (typed DeviceError, passed on)
                done(error)
            else:
                done(None)

        client.push_head(head, timeout=timeout, version=version).add_done_callback(answered)

    def pull_frame(
        self, ref: FrameRef, timeout: float, done: Callable[[int, BaseException | None], None]
    ) -> None:
        client = self._client(ref.device)
        if client is None:
            done(0, EdgeloopError(f"no twin for {ref.device} under {self.devices_at}"))
            return

        def answered(future: Any) -> None:
            try:
                frame = future.get(0)
            except Exception as error:  # noqa: BLE001 (typed FrameError, passed on)
                done(0, error)
                return
            try:
                nbytes = int(frame.nbytes)
            finally:
                frame.release()
            done(nbytes, None)

        client.pull_frame(ref, timeout=timeout).add_done_callback(answered)


def twin_fleet(system: Any) -> TwinFleet:
    """The default ``fleet`` factory: the twins under ``/devices``."""
    return TwinFleet(system)


def yard_knowledge(scenario: str, seed: int | None = None, fpr: float = 0.01) -> Knowledge:
    """The cycle's starting knowledge for ``scenario`` (module docstring)."""
    from edgeloop.learning.core import openworld

    world = World(scenario, seed)
    loaded = world.scenario
    names = {s.digit: s.name for s in loaded.species}
    novel = {s.name for s in loaded.species if s.novel}
    x, y = world.extractor.gallery()
    model = openworld.fit_known(x, [names[int(c)] for c in y])
    rows = [
        d.embedding
        for tick in range(world.ticks)
        for observation in world.observe(tick, render=False)
        for d in observation.detections
        if d.species not in novel
    ]
    held_out = np.stack(rows).astype(np.float64) if len(rows) * fpr >= 1.0 else x.astype(float)
    model = openworld.calibrate_threshold(model, held_out, fpr=fpr)
    head = world.initial_head()
    return Knowledge(model, held_out, world.extractor.id, head.version)


class YardCycle(KnowledgeCycle):
    """The KnowledgeCycle over ``scenario``'s cameras, telling ``announce_to`` (the trap
    relays) what it learnt. Other keywords are :class:`CycleConfig` fields."""

    def __init__(
        self,
        scenario: str,
        seed: int | None = None,
        announce_to: Sequence[str] = (),
        fleet: str = "edgeloop.apps.yard_cycle:twin_fleet",
        **options: Any,
    ) -> None:
        loaded = load_scenario(scenario)

        def knowledge() -> Knowledge:
            return yard_knowledge(scenario, seed)

        config = CycleConfig(
            cameras=tuple(c.id for c in loaded.cameras),
            knowledge=knowledge,
            fleet=fleet,
            announce_to=tuple(announce_to),
            **options,
        )
        super().__init__(config)
