"""The Learner actor on the simulated yard (digits appearance, three overlapping cameras,
ground truth): it never closes the trap on a cat, and it does catch skunks."""

from __future__ import annotations

import numpy as np

from edgeloop.actors import ActorSystem
from edgeloop.bench import _yard as yard
from edgeloop.bench._yard_eval import _model
from edgeloop.learning import Decision, GetStatistics, Learner, LearnerConfig, TrapConfig
from edgeloop.messages import Event
from tests.helpers import WAIT
from tests.learning.twins import Inbox

CAMERAS = ("cam-0", "cam-1", "cam-2")
LABELS = (*yard.SPECIES, "unknown")


def reports(eps: yard.Episodes, e: int, t: int, seq: dict[str, int], gap: float) -> list[Event]:
    """The camera reports of episode ``e`` at tick ``t``, as the twins would deliver them."""
    out = []
    for c, device in enumerate(CAMERAS):
        if eps.present[e, t, c]:
            seq[device] += 1
            out.append(
                Event(
                    device=device,
                    seq=seq[device],
                    ts=e * gap + t,
                    zone=yard.ZONES[eps.zone[e, t, c]],
                    label=LABELS[eps.label[e, t, c]],
                    score=float(eps.score[e, t, c]),
                    embedding=eps.embedding[e, t, c].astype(np.int8).tobytes(),
                    head_version=1,
                    config_version=1,
                )
            )
    return out


def test_the_learner_never_closes_on_a_cat_and_catches_skunks(system: ActorSystem) -> None:
    """Forty simulated episodes, tick by tick: every decision taken while a cat is in the
    trap is 'open'; some skunk in the trap is caught."""
    world = yard.make_world(1, label_acc=0.85, zone_acc=0.85, emb_noise=1.0)
    eps = yard.simulate(world, 2, episodes=40)
    dims, params = _model(world)
    config = LearnerConfig(
        spec=params,
        dims=dims,
        cameras=CAMERAS,
        zones=yard.ZONES,
        labels=yard.SPECIES,
        adjacency={"away": ["lawn"], "lawn": ["near"], "near": ["trap"]},
        traps=(TrapConfig(device="trap-1", zone="trap", twin="/yard/trap"),),
        decisions_to=("/yard/decisions",),
        embedding_scale=world.quant,
        snapshot_every=None,
        warm_shapes=((1, 16), (2, 16), (4, 16)),
    )
    system.spawn(Inbox, "/yard/trap")
    decisions = system.spawn(Inbox, "/yard/decisions")
    learner = system.spawn(Learner, "/yard/learner", args={"config": config}, start_timeout=120)
    seq = dict.fromkeys(CAMERAS, 0)
    cat_closes = skunk_catches = cat_ticks = sent = seen = 0
    for e in range(len(eps.species)):
        for t in range(yard.TICKS):
            events = reports(eps, e, t, seq, gap=100.0)
            if not events:
                continue
            for event in events:
                learner.tell(event)
            sent += len(events)
            learner.ask(GetStatistics(), timeout=60).get()  # applied, decided
            told = decisions.ask("messages").get(WAIT)
            new, seen = told[seen:], len(told)
            assert new, "every batch ends in a decision"
            closes = any(isinstance(d, Decision) and d.action == "close" for d in new)
            in_trap = eps.zones[e, t] == yard.TRAP
            if eps.species[e] == 1 and in_trap:
                cat_ticks += 1
                cat_closes += closes
            if eps.species[e] == 0 and in_trap:
                skunk_catches += closes
    stats = learner.ask(GetStatistics()).get(WAIT)
    assert stats.events == sent
    assert stats.rejected == {}
    assert cat_ticks > 0  # the episodes did put cats in the trap
    assert cat_closes == 0
    assert skunk_catches > 0
