"""The Learner actor with real actors: micro-batching, trap decisions by expected loss,
bad input refused and counted, duplicates dropped, cameras steered to uncertain tracks."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from edgeloop.actors import ActorRef, ActorSystem
from edgeloop.clock import VirtualClock
from edgeloop.errors import ObservationError
from edgeloop.learning import (
    Decision,
    FusedObservation,
    GetBelief,
    GetStatistics,
    Learner,
    LearnerConfig,
)
from edgeloop.messages import Command, ConfigDesired
from tests.helpers import WAIT, wait_for
from tests.learning.twins import Inbox
from tests.learning.yard import config, sighting, warm

START = 60.0  # seconds: the first start of a learner compiles its batch step


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    """Compile the batch step once for the module, so each learner starts in time."""
    warm(config())


def start(system: ActorSystem, cfg: LearnerConfig, path: str = "/yard/learner") -> ActorRef:
    return system.spawn(Learner, path, args={"config": cfg}, start_timeout=START)


@pytest.fixture
def yard(system: ActorSystem) -> Iterator[tuple[ActorSystem, ActorRef, ActorRef]]:
    """A learner, the trap's twin and a decision subscriber (both inboxes)."""
    trap = system.spawn(Inbox, "/yard/trap-1")
    decisions = system.spawn(Inbox, "/yard/decisions")
    learner = start(system, config(decisions_to=("/yard/decisions",)))
    return learner, trap, decisions


def test_a_skunk_in_the_trap_closes_it_in_few_batches(yard) -> None:
    """Events told back to back are applied in micro-batches; the trap is told to close."""
    learner, trap, decisions = yard
    for seq in range(1, 41):
        learner.tell(sighting("cam-a", seq, float(seq), "skunk", "trap"))
        learner.tell(sighting("cam-b", seq, seq + 0.2, "skunk", "trap", jitter=2))
    stats = learner.ask(GetStatistics()).get(WAIT)
    assert stats.events == 80
    assert stats.batches < 80  # micro-batched, not one by one
    assert stats.tracks_started == 1
    assert stats.seq == {"cam-a": 40, "cam-b": 40}
    wait_for(lambda: trap.ask("messages").get(WAIT), what="a command to the trap")
    commands = trap.ask("messages").get(WAIT)
    assert [(c.device, c.name) for c in commands] == [("trap-1", "close")]
    assert isinstance(commands[0], Command)
    wait_for(lambda: decisions.ask("messages").get(WAIT), what="decisions")
    last = decisions.ask("messages").get(WAIT)[-1]
    assert isinstance(last, Decision)
    assert last.action == "close"
    assert last.p_target > 0.99
    assert last.p_protected < 0.01


def test_a_cat_in_the_trap_never_closes_it(yard) -> None:
    """A cat seen in the trap zone by both cameras: every decision is 'open'."""
    learner, trap, decisions = yard
    for seq in range(1, 31):
        learner.tell(sighting("cam-a", seq, float(seq), "cat", "trap"))
        learner.tell(sighting("cam-b", seq, seq + 0.1, "cat", "trap"))
    learner.ask(GetStatistics()).get(WAIT)
    wait_for(lambda: decisions.ask("messages").get(WAIT), what="decisions")
    assert {d.action for d in decisions.ask("messages").get(WAIT)} == {"open"}
    assert trap.ask("messages").get(WAIT) == []


def test_two_animals_get_two_tracks_and_their_beliefs(yard) -> None:
    """A skunk on the lawn and a cat on the porch: two live tracks, each believed right."""
    learner, _, _ = yard
    for seq in range(1, 11):
        learner.tell(sighting("cam-a", seq, float(seq), "skunk", "lawn"))
        learner.tell(sighting("cam-b", seq, seq + 0.5, "cat", "porch"))
    belief, live = learner.ask(GetBelief()).get(WAIT)
    tracks = np.flatnonzero(live)
    assert len(tracks) == 2
    species = sorted(int(belief[t].sum(axis=1).argmax()) for t in tracks)
    assert species == [0, 1]  # skunk, cat
    zones = {
        int(belief[t].sum(axis=1).argmax()): int(belief[t].sum(axis=0).argmax()) for t in tracks
    }
    assert zones == {0: 0, 1: 1}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (sighting("cam-z", 1, 1.0, "skunk", "trap"), "device"),
        (
            sighting("cam-a", 1, 1.0, "skunk", "trap").__class__(
                device="cam-a",
                seq=1,
                ts=1.0,
                zone="garage",
                label="skunk",
                score=0.5,
                embedding=b"\x00" * 4,
                head_version=1,
                config_version=1,
            ),
            "zone",
        ),
        (
            sighting("cam-a", 1, 1.0, "skunk", "trap").__class__(
                device="cam-a",
                seq=1,
                ts=1.0,
                zone="lawn",
                label="skunk",
                score=0.5,
                embedding=b"\x00" * 5,
                head_version=1,
                config_version=1,
            ),
            "embedding",
        ),
        (
            sighting("cam-a", 1, 1.0, "skunk", "trap").__class__(
                device="cam-a",
                seq=1,
                ts=1.0,
                zone="lawn",
                label="skunk",
                score=1.5,
                embedding=b"\x00" * 4,
                head_version=1,
                config_version=1,
            ),
            "score",
        ),
        (sighting("cam-a", 1, float("nan"), "skunk", "trap"), "ts"),
        (
            FusedObservation(
                group=1,
                ts=1.0,
                reports=(
                    sighting("cam-a", 1, 1.0, "skunk", "trap"),
                    sighting("cam-a", 2, 1.1, "skunk", "trap"),
                ),
            ),
            "device",
        ),
        ("close the trap", "message"),
    ],
)
def test_bad_input_is_refused_named_counted_and_harmless(yard, bad: object, field: str) -> None:
    """A bad message gets a typed error naming the field; it is counted; the learner goes on."""
    learner, _, _ = yard
    error = learner.ask(bad).get(WAIT)
    assert isinstance(error, ObservationError)
    assert error.field == field
    learner.tell(sighting("cam-a", 1, 1.0, "skunk", "trap"))
    stats = learner.ask(GetStatistics()).get(WAIT)
    assert stats.rejected == {field: 1}
    assert stats.events == 1
    assert learner.is_alive()


def test_duplicates_are_dropped_and_counted(yard) -> None:
    """The same (device, seq) twice is taken once."""
    learner, _, _ = yard
    for _ in range(3):
        learner.tell(sighting("cam-a", 1, 1.0, "skunk", "lawn"))
    stats = learner.ask(GetStatistics()).get(WAIT)
    assert (stats.events, stats.duplicates) == (1, 2)


def test_an_uncertain_track_gets_a_camera_pointed_at_it(
    virtual_system: ActorSystem, clock: VirtualClock
) -> None:
    """On the reconfigure schedule, the steerable camera is pointed at the likeliest zone
    of the most uncertain track, with a higher report rate."""
    twin = virtual_system.spawn(Inbox, "/yard/twin-b")
    cfg = config(
        sources={"cam-b": "/yard/twin-b"},
        steerable={"cam-b": ("lawn", "porch", "trap")},
        reconfigure_every=1.0,
    )
    learner = start(virtual_system, cfg)
    replay = twin.ask("messages").get(WAIT)
    assert replay[0].device == "cam-b"
    assert replay[0].after_seq == 0
    # two cameras disagree about where the skunk is: porch or trap
    learner.tell(sighting("cam-a", 1, 1.0, "skunk", "porch"))
    learner.tell(sighting("cam-b", 1, 1.0, "skunk", "trap"))
    learner.ask(GetStatistics()).get(WAIT)
    clock.advance(1.0)
    wait_for(lambda: len(twin.ask("messages").get(WAIT)) == 2, what="a reconfiguration")
    desired = twin.ask("messages").get(WAIT)[1]
    assert isinstance(desired, ConfigDesired)
    assert desired.device == "cam-b"
    assert desired.settings["zones"] in (["porch"], ["trap"])
    assert desired.settings["frame_rate"] == cfg.high_rate
    assert learner.ask(GetStatistics()).get(WAIT).reconfigurations == 1
