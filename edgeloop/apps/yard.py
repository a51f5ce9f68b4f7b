"""The yard application: the actors of :data:`APP_FILE` and the learner's model of a yard.

Tree (``yard.toml``; strategies by what each failure must restart)::

    root (one_for_one)
    ├── devices   YardDevices: one twin per camera and trap (one_for_one: a twin is alone)
    ├── traps     TrapRelay per trap: learner → interlock → the trap's twin (one_for_one)
    ├── repair    YardRepair: Gibbs repair of the learner's last window (alone: its crash
    │              restarts it only, and no other crash stops it in the middle of a run)
    ├── pipeline  (rest_for_one: a stage's crash restarts the stages after it, so the
    │   │          learner restarts and asks every twin for the events it lacks)
    │   ├── functions  EventStage: the app's event functions, before fusion
    │   ├── fusion     YardFusion: a FusionGroup over the scenario's cameras
    │   └── learner    YardLearner: decides every trap, tells its TrapRelay; learns on a
    │                  schedule from :func:`yard_prior` and asks ``/repair`` to resample
    │                  its last window
    └── knowledge YardCycle: the open-world knowledge cycle (new species, new heads)

The repair is a sibling of the pipeline, not a stage in it: under ``rest_for_one`` a
repair before the learner would restart the learner when it crashes, and one after it
would be stopped, mid-run, before every learner restart. Under the root it starts before
the learner and stops after it. The learner asks it (``RepairRequest``) and counts a
request that comes to nothing (``repairs_lost``: refused, crashed, timed out), so a
repair crash costs at most one repair. Both stops wait for JAX work in hand
(``shutdown`` in the app file): an actor abandoned inside XLA aborted the process at
exit ("terminate called ..."), and windows are padded to one shape, compiled in the
learner's and the repair's starts, so that the wait is a run (a fraction of a second),
not a compile. docs/yard.md has the figures.

Every actor takes plain app-file arguments and builds its configuration from the
scenario (``scenario = "calm"``), so the app file stays data.

The knowledge cycle (the opossum) is a child of the root, ``knowledge``
(:class:`~edgeloop.apps.yard_cycle.YardCycle`): it sees every camera event, learns a new
species and pushes new heads through the camera twins under ``/devices``; it tells each
TrapRelay the species it learnt, which the interlock then protects (docs/knowledge-cycle.md).
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeloop.actors import Actor
from edgeloop.apps.yard_functions import FunctionChain, build_chain
from edgeloop.errors import EdgeloopError
from edgeloop.learning import (
    ClassLearned,
    FusionConfig,
    FusionGroup,
    GibbsRepair,
    Learner,
    LearnerConfig,
    TrapConfig,
)
from edgeloop.messages import Command, Event
from edgeloop.sensors import Devices
from edgeloop.sensors.world import Scenario, World, load_scenario

__all__ = [
    "APP_FILE",
    "EventStage",
    "GetLog",
    "TrapRelay",
    "YardDevices",
    "YardFusion",
    "YardLearner",
    "YardRepair",
    "yard_learner_config",
    "yard_model",
    "yard_prior",
]

APP_FILE = Path(__file__).with_name("yard.toml")


class GetLog:
    """Ask an EventStage or a TrapRelay for its timing log and counters."""


def _adjacency(scenario: Scenario) -> dict[str, list[str]]:
    return {zone.id: list(zone.adjacent) for zone in scenario.zones if zone.adjacent}


class YardDevices(Devices):
    """The twins of every camera and trap of ``scenario``; cameras report to ``subscribers``."""

    def __init__(self, scenario: str, subscribers: Sequence[str] = (), **kwargs: Any) -> None:
        loaded = load_scenario(scenario)
        devices: list[dict[str, Any]] = [{"name": camera.id} for camera in loaded.cameras]
        devices += [
            {"name": zone.id, "kind": "trap", "subscribers": []}
            for zone in loaded.zones
            if zone.trap
        ]
        super().__init__(devices, subscribers, **kwargs)


class EventStage(Actor):
    """Runs the app's event functions on each Event and passes survivors ``downstream``.

    Notes each event's arrival (``perf_counter``), so a demo can measure event to
    actuation; ``GetLog`` answers ``{"arrivals": [...], "failures": ..., "dropped": ...}``.
    """

    def __init__(
        self, downstream: str, functions: Sequence[Mapping[str, Any]] = (), keep: int = 100_000
    ) -> None:
        self.downstream = downstream
        self.chain: FunctionChain = build_chain(functions)
        self.arrivals: collections.deque[tuple[float, str, int]] = collections.deque(maxlen=keep)
        self.passed = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Event):
            self.arrivals.append((time.perf_counter(), message.device, message.seq))
            event = self.chain(message)
            if event is not None:
                self.passed += 1
                self.system.tell(self.downstream, event)
            return None
        if isinstance(message, GetLog):
            return {
                "arrivals": list(self.arrivals),
                "passed": self.passed,
                "failures": dict(self.chain.failures),
                "dropped": dict(self.chain.dropped),
            }
        return super().on_receive(message)


class TrapRelay(Actor):
    """Between the learner and a trap's twin, with a safety interlock under the learner.

    Forwards each Command to ``twin`` and notes when it left (``perf_counter``). The
    interlock: a ``close`` is held while a camera has reported a ``protected`` label (a
    cat) in the trap's zone or next to it within the last ``hold`` seconds of source time
    (the relay subscribes to the camera twins' events); it goes out once that clears, if
    the learner still wants it. Why: the learner decides on what it has seen, one fusion
    hold behind the yard, and a cat next door can step in meanwhile.
    """

    def __init__(
        self,
        twin: str,
        scenario: str,
        zone: str,
        protected: Sequence[str] = ("cat",),
        hold: float = 3.0,
    ) -> None:
        loaded = load_scenario(scenario)
        self.twin = twin
        self.guarded = {zone, *_adjacency(loaded).get(zone, [])}
        self.guarded |= {z.id for z in loaded.zones if zone in z.adjacent}
        self.protected = frozenset(protected)
        self.hold = hold
        self.commands: list[tuple[float, str]] = []
        self.failed: list[str] = []
        self.held = 0
        self._latest = -math.inf
        self._protected_at = -math.inf
        self._wanted: Command | None = None  # a close the interlock holds back
        self._learnt_head: int | None = None  # the head that knows the cycle's new classes

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Command):
            self._wanted = None
            if message.name == "close" and not self._clear():
                self._wanted = message
                self.held += 1
                return None
            self._forward(message)
            return None
        if isinstance(message, ClassLearned):
            self._learned(message)
            return None
        if isinstance(message, Event):
            self._latest = max(self._latest, message.ts)
            if self._protects(message) and message.zone in self.guarded:
                self._protected_at = max(self._protected_at, message.ts)
            if self._wanted is not None and self._clear():
                wanted, self._wanted = self._wanted, None
                self._forward(wanted)
            return None
        if isinstance(message, GetLog):
            return {"commands": list(self.commands), "failed": list(self.failed), "held": self.held}
        return super().on_receive(message)

    def _learned(self, message: ClassLearned) -> None:
        """The knowledge cycle learnt (or renamed) a species: it is not a target, so the
        interlock protects it like a cat until a person says otherwise."""
        self.protected = self.protected | {message.name}
        self._learnt_head = max(self._learnt_head or 0, message.head_version)

    def _protects(self, event: Event) -> bool:
        """Whether ``event`` may show a protected animal: a protected label; or a novel
        one nearest a protected class, or from a camera still scoring with a head older
        than the one that knows the learnt species (its ``head_version`` says which)."""
        if event.label in self.protected:
            return True
        learnt = self._learnt_head
        if learnt is None or event.label != "unknown":
            return False
        return event.head_version < learnt or event.extra.get("nearest") in self.protected

    def _clear(self) -> bool:
        return self._latest - self._protected_at > self.hold

    def _forward(self, command: Command) -> None:
        self.commands.append((time.perf_counter(), command.name))
        try:
            self.system.tell(self.twin, command)
        except EdgeloopError as error:  # no twin now: counted, the learner decides again
            self.failed.append(f"{command.name}: {error}")


class YardFusion(FusionGroup):
    """A FusionGroup over ``scenario``'s cameras and zone graph."""

    def __init__(
        self,
        scenario: str,
        downstream: str,
        window: float = 0.2,
        lateness: float = 0.5,
        tick: float | None = 0.05,
    ) -> None:
        loaded = load_scenario(scenario)
        config = FusionConfig(
            cameras=tuple(c.id for c in loaded.cameras),
            window=window,
            lateness=lateness,
            adjacency=_adjacency(loaded),
            dim=loaded.embedding_dim,
        )
        super().__init__(config, downstream, tick=tick)


def yard_model(world: World) -> tuple[Any, Any]:
    """The core's ``(Dims, YardSpec)`` for ``world``'s scenario, from what its owner knows:
    the zone graph, the cameras' coverage and detector miss rate, each known species'
    habits (``stay``, ``bait``), and embeddings from the extractor's gallery (the factory
    data the on-device head was fitted on). The "new" class is a broad Student-t."""
    from edgeloop.learning import core

    scenario = world.scenario
    known = scenario.known
    zones = [z.id for z in scenario.zones]
    k, z, c, d = len(known), len(zones), len(scenario.cameras), scenario.embedding_dim
    k1 = k + 1
    dims = core.Dims(classes=k, zones=z, cameras=c, tod_bins=1, score_bins=1, dim=d)
    index = {zone: i for i, zone in enumerate(zones)}
    near = np.eye(z, dtype=bool)
    for zone in scenario.zones:
        for other in zone.adjacent:
            near[index[zone.id], index[other]] = near[index[other], index[zone.id]] = True
    trap = np.array([zone.trap for zone in scenario.zones])
    trans = np.zeros((k1, 1, z, z))
    habits = [(s.stay, s.bait) for s in known] + [(0.7, 1.0)]
    for cls, (stay, bait) in enumerate(habits):
        for i in range(z):
            weights = (near[i] & (np.arange(z) != i)) * np.where(trap, 1.0 + bait, 1.0)
            row = np.full(z, 1e-3)
            row[i] += stay
            if weights.sum() > 0:
                row += (1.0 - stay) * weights / weights.sum()
            trans[cls, 0, i] = row / row.sum()
    zone_obs = np.zeros((c, z, z))
    detect = np.full((c, z), 1e-3)
    for cam, camera in enumerate(scenario.cameras):
        seen = [index[zone] for zone in camera.zones]
        detect[cam, seen] = (1.0 - camera.miss) * (1.0 - camera.dropout)
        zone_obs[cam] = np.full((z, z), 0.02 / z) + 0.98 * np.eye(z)
    label = np.full((c, k1, k1), 0.1 / k1)
    label[:, np.arange(k1), np.arange(k1)] += 0.9
    label /= label.sum(axis=2, keepdims=True)
    embeddings, classes = world.extractor.gallery()
    rows = embeddings.astype(np.float64)
    loc = np.zeros((k1, d))
    scale = np.zeros((k1, d, d))
    for cls, species in enumerate(known):
        mine = rows[classes == species.digit]
        loc[cls] = mine.mean(axis=0)
        # 2x the factory spread: cameras add pixel noise, night shots are noisier
        scale[cls] = 2.0 * np.cov(mine.T) + 25.0 * np.eye(d)
    scale[k] = 4.0 * np.cov(rows.T) + 100.0 * np.eye(d)
    spec = core.YardSpec(
        class_prior=np.append(np.full(k, 0.97 / k), 0.03),
        init_zone=np.full((k1, z), 1.0 / z),
        trans=trans,
        zone_obs=zone_obs,
        detect=detect,
        label=label,
        emb_loc=loc,
        emb_scale=scale,
        emb_df=np.append(np.full(k, 30.0), 5.0),
        score_edges=np.zeros(0),
    )
    return dims, spec


def yard_prior(world: World, strength: float = 100.0) -> Any:
    """A core ``Posterior`` that says what :func:`yard_model` says, for learning on a
    schedule: ``core.prior(active=0)``, a species slot per known species opened by
    ``add_class`` from its gallery embeddings, then every Dirichlet and Beta row set to the
    model's row times ``strength`` (pseudo-observations per row: how much a window's
    counts move it) and each class's Normal-Inverse-Wishart set so that its predictive is
    the model's Student-t (NEW's too). So the filter starts exactly where the fixed
    model runs, and learning moves it from there."""
    import jax.numpy as jnp

    from edgeloop.learning import core

    dims, spec = yard_model(world)
    k, d = dims.classes, dims.dim
    post = core.prior(dims, active=0)
    embeddings, classes = world.extractor.gallery()
    seen = np.zeros(k + 1)
    for species in world.scenario.known:
        mine = embeddings[classes == species.digit].astype(np.float64)
        post, slot = core.add_class(post, mine)
        seen[slot] = len(mine)
    kappa = np.where(seen > 0, seen, 0.1)  # NEW: a vague mean
    df = np.asarray(spec.emb_df, np.float64)
    scale = np.asarray(spec.emb_scale, np.float64)
    # the NIW predictive is a Student-t with df = nu - d + 1 and scale psi (kappa + 1) /
    # (kappa df): solved for nu and psi
    psi = scale * (kappa * df / (kappa + 1.0))[:, None, None]
    detect = np.asarray(spec.detect, np.float64)
    return post._replace(
        crp=jnp.asarray(np.asarray(spec.class_prior) * strength),
        init_conc=jnp.asarray(np.asarray(spec.init_zone) * strength),
        trans_conc=jnp.asarray(np.asarray(spec.trans) * strength),
        zone_conc=jnp.asarray(np.asarray(spec.zone_obs) * strength),
        detect_conc=jnp.asarray(np.stack([detect, 1.0 - detect], axis=-1) * strength),
        label_conc=jnp.asarray(np.asarray(spec.label) * strength),
        niw_kappa=jnp.asarray(kappa),
        niw_mean=jnp.asarray(np.asarray(spec.emb_loc, np.float64)),
        niw_nu=jnp.asarray(df + d - 1.0),
        niw_psi=jnp.asarray(psi),
    )


def yard_learner_config(
    scenario: str,
    *,
    seed: int | None = None,
    traps_at: str = "/traps",
    devices_at: str = "/devices",
    decisions_to: Sequence[str] = (),
    store: str | None = None,
    tracks: int = 64,
    prior_strength: float | None = None,
    **options: Any,
) -> LearnerConfig:
    """The LearnerConfig of the yard app for ``scenario``: the model of :func:`yard_model`,
    one trap per trap zone (for skunks, never on cats) told through ``traps_at/<zone>``,
    and every camera's twin as a source of missed events after a restart. With
    ``prior_strength`` the learner learns (``learn_every``, ``repair`` and the other
    learning options pass through) from :func:`yard_prior` of that strength."""
    world = World(scenario, seed)
    loaded = world.scenario
    dims, spec = yard_model(world)
    if prior_strength is not None:
        options["prior"] = yard_prior(world, prior_strength)
    labels = tuple(s.name for s in loaded.known)
    targets = tuple(s for s in ("skunk",) if s in labels)
    protected = tuple(s for s in ("cat",) if s in labels)
    traps = tuple(
        TrapConfig(
            device=zone.id,
            zone=zone.id,
            twin=f"{traps_at}/{zone.id}",
            targets=targets,
            protected=protected,
        )
        for zone in loaded.zones
        if zone.trap
    )
    return LearnerConfig(
        spec=spec,
        dims=dims,
        cameras=tuple(c.id for c in loaded.cameras),
        zones=tuple(z.id for z in loaded.zones),
        labels=labels,
        adjacency=_adjacency(loaded),
        sources={c.id: f"{devices_at}/{c.id}" for c in loaded.cameras},
        traps=traps,
        decisions_to=tuple(decisions_to),
        store=store or None,
        tracks=tracks,
        tick=loaded.tick,
        gate=10.0 * loaded.tick,
        **options,
    )


class YardLearner(Learner):
    """The Learner configured for ``scenario`` by :func:`yard_learner_config`.

    Live events reach it fused, after the app's event functions. The events the twins
    replay to it after a restart come straight from their buffers, so it runs
    ``replay_functions`` (the functions stage's list) on them first: an event a function
    dropped stays dropped, and a kept one arrives as the stage would have passed it.
    ``GetLog`` answers what the replays' functions dropped and how often they failed.
    """

    def __init__(
        self,
        scenario: str,
        seed: int | None = None,
        replay_functions: Sequence[Mapping[str, Any]] = (),
        **options: Any,
    ) -> None:
        super().__init__(yard_learner_config(scenario, seed=seed, **options))
        self.replay_chain: FunctionChain = build_chain(replay_functions, "replay_functions")

    def on_receive(self, message: Any) -> Any:
        if message.__class__ is Event:  # a replay: live events come fused
            event = self.replay_chain(message)
            if event is None:
                return None
            message = event
        elif isinstance(message, GetLog):
            chain = self.replay_chain
            return {"replays_dropped": dict(chain.dropped), "failures": dict(chain.failures)}
        return super().on_receive(message)


class YardRepair(GibbsRepair):
    """The GibbsRepair of the yard app for ``scenario``: it pads windows to the learner's
    track table (``tracks``, as :func:`yard_learner_config`) by ``rows`` rows, and warms
    that shape up from :func:`yard_prior` (shapes are all it reads of it), made in its
    ``on_start``, not in the supervisor's thread (JAX's first calls take seconds)."""

    def __init__(
        self,
        scenario: str,
        seed: int = 0,
        sweeps: int = 10,
        burn_in: int = 3,
        tracks: int = 64,
        rows: int = 64,
    ) -> None:
        def warm() -> Any:
            return yard_prior(World(scenario, 0))

        super().__init__(seed, sweeps, burn_in, tracks=tracks, rows=rows, warm=warm)
