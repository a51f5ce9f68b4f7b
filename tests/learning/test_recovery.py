"""A learner crash mid-stream, under a real supervisor: the restarted learner loads its
last snapshot from the store, asks the twins for the events since, and ends up with
every event exactly once and the beliefs of a learner that never crashed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeloop.actors import ActorRef, ActorSystem
from edgeloop.clock import VirtualClock
from edgeloop.learning import EventsSince, GetBelief, GetStatistics, Learner
from edgeloop.store import Store
from edgeloop.supervisor import ChildSpec, Supervisor, SupervisorFlags
from tests.helpers import WAIT, wait_for
from tests.learning.twins import HoldingTwin, Publish
from tests.learning.yard import config, sighting, warm

DEVICES = {"cam-a": ("skunk", "lawn"), "cam-b": ("cat", "porch")}


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    warm(config())


def publish(twins: dict[str, ActorRef], seqs: range) -> None:
    for seq in seqs:
        for device, (species, zone) in DEVICES.items():
            twins[device].tell(Publish(sighting(device, seq, seq + 0.1, species, zone)))


def by_species(belief: np.ndarray, live: np.ndarray) -> dict[int, np.ndarray]:
    """Each live track's belief, keyed by its likeliest species."""
    return {int(belief[t].sum(axis=1).argmax()): belief[t] for t in np.flatnonzero(live)}


def test_a_crashed_learner_recovers_every_event_from_snapshot_and_twins(
    virtual_system: ActorSystem, clock: VirtualClock, tmp_path: Path
) -> None:
    system = virtual_system
    cfg = config(
        store=str(tmp_path / "learner.db"),
        snapshot_every=10.0,
        sources={device: f"/twins/{device}" for device in DEVICES},
    )
    twins = {
        d: system.spawn(
            HoldingTwin, f"/twins/{d}", args={"device": d, "subscriber": "/yard/learner"}
        )
        for d in DEVICES
    }
    flags = SupervisorFlags(intensity=3, period=60.0)
    system.spawn(
        Supervisor,
        "/yard",
        args={"flags": flags, "children": [ChildSpec("learner", Learner, args={"config": cfg})]},
    )

    def learner() -> ActorRef:
        ref = system.lookup("/yard/learner")
        assert ref is not None
        return ref

    def stats():
        return learner().ask(GetStatistics()).get(WAIT)

    publish(twins, range(1, 101))
    wait_for(lambda: stats().seq == {"cam-a": 100, "cam-b": 100}, what="the first 100 of each")
    clock.advance(10.0)  # the snapshot is due
    wait_for(lambda: stats().snapshots == 1, what="a snapshot")

    first = learner()
    publish(twins, range(101, 151))
    first.kill()  # mid-stream: what it held and what waits in its mailbox is gone
    wait_for(lambda: system.lookup("/yard/learner") not in (None, first), what="a restart")
    publish(twins, range(151, 201))

    wait_for(
        lambda: stats().seq == {"cam-a": 200, "cam-b": 200},
        what="every event after the restart",
    )
    after = stats()
    assert after.events == 400  # every event exactly once: 200 in the snapshot, 200 since
    assert after.restored_version == 1
    for device, twin in twins.items():
        asks = [m for m in twin.ask("replays").get(WAIT) if isinstance(m, EventsSince)]
        assert [(m.device, m.after_seq) for m in asks] == [(device, 0), (device, 100)]

    # a learner that never crashed, fed the same events, believes the same
    reference = system.spawn(Learner, "/ref/learner", args={"config": config()}, start_timeout=60)
    for seq in range(1, 201):
        for device, (species, zone) in DEVICES.items():
            reference.tell(sighting(device, seq, seq + 0.1, species, zone))
    want = by_species(*reference.ask(GetBelief()).get(WAIT))
    got = by_species(*learner().ask(GetBelief()).get(WAIT))
    assert sorted(got) == sorted(want) == [0, 1]
    for species in want:
        np.testing.assert_allclose(got[species], want[species], atol=1e-5)


def test_a_learner_starts_afresh_from_an_unreadable_snapshot(
    system: ActorSystem, tmp_path: Path
) -> None:
    """Bytes in the store that are not a snapshot: logged, counted, and the prior is used."""
    path = tmp_path / "learner.db"
    with Store(path) as store:
        store.put("learner", b"not a snapshot", 1.0)
    cfg = config(store=str(path), snapshot_every=None, keep_snapshots=1)
    learner = system.spawn(Learner, "/yard/learner", args={"config": cfg}, start_timeout=60)
    learner.tell(sighting("cam-a", 1, 1.0, "skunk", "lawn"))
    stats = learner.ask(GetStatistics()).get(WAIT)
    assert stats.restored_version is None
    assert stats.events == 1
    learner.stop()
    assert learner.wait_stopped(WAIT)
    with Store(path) as store:  # the orderly stop left a good snapshot, and only that
        assert [r.version for r in store.history("learner")] == [2]
