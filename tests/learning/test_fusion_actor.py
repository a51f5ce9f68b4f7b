"""The FusionGroup actor between twins and a learner: groups reach the learner fused,
time moves on without reports, bad reports are refused and counted."""

from __future__ import annotations

import threading

import pytest

from edgeloop.actors import Actor, ActorSystem, MailboxConfig
from edgeloop.clock import VirtualClock
from edgeloop.errors import ObservationError
from edgeloop.learning import (
    FusedObservation,
    FusionConfig,
    FusionGroup,
    GetStatistics,
    Learner,
)
from tests.helpers import WAIT, wait_for
from tests.learning.twins import Inbox
from tests.learning.yard import config, sighting, warm

CONFIG = FusionConfig(
    cameras=("cam-a", "cam-b"),
    window=0.5,
    lateness=0.5,
    adjacency={"lawn": ["porch"], "porch": ["trap"]},
    dim=4,
)


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    warm(config())


def test_reports_of_one_occurrence_reach_the_learner_as_one_observation(
    virtual_system: ActorSystem, clock: VirtualClock
) -> None:
    """Two cameras see the skunk at once: one fused observation, one filter row."""
    inbox = virtual_system.spawn(Inbox, "/yard/out")
    fusion = virtual_system.spawn(
        FusionGroup, "/yard/fusion", args={"config": CONFIG, "downstream": "/yard/out"}
    )
    fusion.tell(sighting("cam-a", 1, 10.0, "skunk", "porch"))
    fusion.tell(sighting("cam-b", 1, 10.1, "skunk", "trap", jitter=3))
    assert inbox.ask("messages").get(WAIT) == []  # held: the window is still open

    def emitted() -> bool:
        clock.advance(0.5)  # no more reports: the clock moves event time on
        return bool(inbox.ask("messages").get(WAIT))

    wait_for(emitted, what="a fused observation")
    (observation,) = inbox.ask("messages").get(WAIT)
    assert isinstance(observation, FusedObservation)
    assert [(r.device, r.seq) for r in observation.reports] == [("cam-a", 1), ("cam-b", 1)]
    stats = fusion.ask(GetStatistics()).get(WAIT)
    assert (stats.counts.fused, stats.pending) == (1, 0)


def test_fused_observations_drive_the_learner(
    virtual_system: ActorSystem, clock: VirtualClock
) -> None:
    """Fusion in front of a learner: both reports of each occurrence land on one track."""
    learner = virtual_system.spawn(
        Learner, "/yard/learner", args={"config": config()}, start_timeout=60
    )
    fusion = virtual_system.spawn(
        FusionGroup, "/yard/fusion", args={"config": CONFIG, "downstream": "/yard/learner"}
    )
    for seq in range(1, 6):
        fusion.tell(sighting("cam-a", seq, seq * 2.0, "skunk", "trap"))
        fusion.tell(sighting("cam-b", seq, seq * 2.0 + 0.1, "skunk", "trap", jitter=2))

    def settled() -> bool:
        clock.advance(0.5)  # the group's timer moves event time on, tick by tick
        return learner.ask(GetStatistics()).get(WAIT).events == 10

    wait_for(settled, what="all ten reports")
    stats = learner.ask(GetStatistics()).get(WAIT)
    assert stats.observations == 5
    assert stats.tracks_started == 1


def test_bad_reports_are_refused_and_counted(virtual_system: ActorSystem) -> None:
    """An unknown camera or a wrong embedding size: a typed error, counted, nothing held."""
    fusion = virtual_system.spawn(
        FusionGroup, "/yard/fusion", args={"config": CONFIG, "downstream": "/yard/out"}
    )
    stranger = fusion.ask(sighting("cam-z", 1, 1.0, "skunk", "lawn")).get(WAIT)
    assert isinstance(stranger, ObservationError)
    assert stranger.field == "device"
    short = sighting("cam-a", 1, 1.0, "skunk", "lawn")
    short = short.__class__(
        **{**{f: getattr(short, f) for f in short.__struct_fields__}, "embedding": b"\x01"}
    )
    assert fusion.ask(short).get(WAIT).field == "embedding"
    assert fusion.ask("hello").get(WAIT).field == "message"
    stats = fusion.ask(GetStatistics()).get(WAIT)
    assert stats.rejected == {"device": 1, "embedding": 1, "message": 1}
    assert stats.pending == 0
    assert fusion.is_alive()


class Stuck(Actor):
    """Holds its first message until ``release`` is set, so its mailbox fills."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def on_receive(self, message: object) -> None:
        self.release.wait(WAIT)


def test_a_full_downstream_mailbox_is_counted_not_fatal(virtual_system: ActorSystem) -> None:
    """The learner's mailbox refuses: the group counts what it could not hand over."""
    release = threading.Event()
    stuck = virtual_system.spawn(
        Stuck,
        "/yard/out",
        args={"release": release},
        mailbox=MailboxConfig(capacity=1, overflow="fail"),
    )
    stuck.tell("hold")  # handled: blocks
    wait_for(lambda: stuck.statistics().queue_depth == 0, what="the first message taken")
    stuck.tell("fill")  # queued: the mailbox is now full
    fusion = virtual_system.spawn(
        FusionGroup, "/yard/fusion", args={"config": CONFIG, "downstream": "/yard/out"}
    )
    for seq in range(1, 4):
        fusion.tell(sighting("cam-a", seq, seq * 10.0, "skunk", "lawn"))
    stats = fusion.ask(GetStatistics()).get(WAIT)
    release.set()
    assert fusion.is_alive()
    assert stats.counts.groups == 2
    assert stats.undelivered == 2
