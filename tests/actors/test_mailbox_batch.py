"""Batched sends (``ActorRef.tell_many`` / ``Mailbox.put_batch``) and the mailbox's
bare-lock wake-up: order, bounds, overflow policies, stopped actors, no lost wake-ups."""

from __future__ import annotations

import threading

from edgeloop.actors import ActorSystem
from edgeloop.actors._mailbox import Envelope, Mailbox, MailboxConfig
from tests.actors.helpers import WAIT, Probe, get
from tests.actors.test_mailbox import busy_actor
from tests.helpers import wait_for


def test_tell_many_delivers_in_order_behind_what_was_queued(
    system: ActorSystem, gate: threading.Event
) -> None:
    ref, probe = busy_actor(system, gate)
    ref.tell("first")
    assert ref.tell_many(["a", "b", "c"]) == []
    assert ref.statistics().queue_depth == 4
    gate.set()
    assert [get(probe.out) for _ in range(4)] == ["first", "a", "b", "c"]


def test_tell_many_to_an_idle_actor_wakes_it(system: ActorSystem) -> None:
    """The reader sleeps on the wake-up lock; one batch wakes it and it takes all."""
    ref = system.spawn(Probe, "/idle")
    probe = ref._cell.actor
    assert isinstance(probe, Probe)
    for round_ in range(50):
        batch = [(round_, i) for i in range(3)]
        assert ref.tell_many(batch) == []
        assert [get(probe.out) for _ in range(3)] == batch


def test_tell_many_leaves_what_does_not_fit_to_the_caller_under_block_and_fail(
    system: ActorSystem, gate: threading.Event
) -> None:
    for overflow, path in (("block", "/b"), ("fail", "/f")):
        ref, _ = busy_actor(system, gate, path=path, capacity=3, overflow=overflow)
        ref.tell("x")
        assert ref.tell_many(["a", "b", "c", "d"]) == ["c", "d"]
        assert ref.statistics().queue_depth == 3
        assert ref.statistics().dropped == 0
    assert system.dead_letters.recent() == []


def test_tell_many_under_drop_newest_makes_dead_letters_of_the_rest(
    system: ActorSystem, gate: threading.Event
) -> None:
    ref, probe = busy_actor(system, gate, capacity=2, overflow="drop_newest")
    assert ref.tell_many(["one", "two", "three"]) == []
    assert ref.statistics().dropped == 1
    assert [(d.message, d.reason) for d in system.dead_letters.recent()] == [
        ("three", "mailbox full (overflow=drop_newest)")
    ]
    gate.set()
    assert [get(probe.out), get(probe.out)] == ["one", "two"]


def test_tell_many_to_a_stopped_actor_makes_dead_letters_of_them_all(
    system: ActorSystem,
) -> None:
    ref = system.spawn(Probe, "/gone")
    ref.stop()
    assert ref.wait_stopped(WAIT)
    assert ref.tell_many(["a", "b"]) == []
    assert [d.message for d in system.dead_letters.recent()] == ["a", "b"]


def test_put_batch_on_a_closed_or_full_mailbox() -> None:
    mailbox = Mailbox(MailboxConfig(capacity=2))
    assert mailbox.put_batch([Envelope(1)]) == 1
    assert mailbox.put_batch([Envelope(2), Envelope(3)]) == 1
    assert mailbox.put_batch([Envelope(4)]) == 0
    mailbox.close()
    assert mailbox.put_batch([Envelope(5)]) is None


def test_no_wake_up_is_lost_between_many_writers_and_one_reader() -> None:
    """Writers on several threads, single puts and batches mixed, against a reader that
    sleeps whenever the queue runs dry: every message arrives, each writer's in order."""
    mailbox = Mailbox(MailboxConfig(capacity=100_000))
    writers, per_writer = 4, 2_000
    got: list[tuple[int, int]] = []

    def read() -> None:
        while True:
            envelope = mailbox.get()
            if envelope is None:
                return
            got.append(envelope.message)

    def write(writer: int) -> None:
        seq = 0
        while seq < per_writer:
            if seq % 3 == 0:
                mailbox.put(Envelope((writer, seq)))
                seq += 1
            else:
                n = min(3, per_writer - seq)
                mailbox.put_batch([Envelope((writer, seq + i)) for i in range(n)])
                seq += n

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    wait_for(lambda: len(got) == writers * per_writer, what="every message read")
    mailbox.close()
    reader.join(WAIT)
    assert len(got) == writers * per_writer
    for writer in range(writers):
        assert [seq for w, seq in got if w == writer] == list(range(per_writer))
