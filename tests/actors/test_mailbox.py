"""Bounded mailboxes: overflow policies, system messages, signals, configuration."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeloop.actors import ActorRef, ActorSystem, Down, MailboxConfig, Overflow
from edgeloop.actors._mailbox import Envelope, Mailbox
from edgeloop.errors import ActorDeadError, ConfigError, MailboxFull
from tests.actors.helpers import WAIT, Probe, get, spy_on_blocking, sync
from tests.helpers import wait_for


def busy_actor(
    system: ActorSystem,
    gate: threading.Event,
    path: str = "/busy",
    **config: Any,
) -> tuple[ActorRef, Probe]:
    """Spawn a Probe with the given mailbox config and park it inside a blocking handler,
    so that everything told to it afterwards stays in its mailbox."""
    entered = threading.Event()
    ref = system.spawn(
        Probe, path, args={"gate": gate, "entered": entered}, mailbox=MailboxConfig(**config)
    )
    ref.tell("block")
    assert entered.wait(WAIT)
    probe = ref._cell.actor
    assert isinstance(probe, Probe)
    return ref, probe


def tell_in_thread(ref: ActorRef, message: Any) -> tuple[threading.Thread, list[BaseException]]:
    """Tell ``message`` from a new thread (which may block on a full mailbox); the list
    collects what that tell raised."""
    errors: list[BaseException] = []

    def send() -> None:
        try:
            ref.tell(message)
        except BaseException as error:  # noqa: BLE001 - reported by the caller's assertion
            errors.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    return sender, errors


# -- block -------------------------------------------------------------------------------


def test_block_raises_mailbox_full_after_the_timeout(
    system: ActorSystem, gate: threading.Event
) -> None:
    """Under block, a sender to a full mailbox waits block_timeout, then gets MailboxFull."""
    ref, _ = busy_actor(system, gate, capacity=2, overflow="block", block_timeout=0.1)
    ref.tell("one")
    ref.tell("two")
    started = time.monotonic()
    with pytest.raises(MailboxFull, match=r"stayed full for 0\.1 s"):
        ref.tell("three")
    waited = time.monotonic() - started
    assert 0.09 <= waited < WAIT
    assert ref.statistics().queue_depth == 2
    assert ref.statistics().dropped == 0


def test_block_ask_raises_mailbox_full_after_the_timeout(
    system: ActorSystem, gate: threading.Event
) -> None:
    """An ask to a full mailbox under block also raises MailboxFull once the timeout passes."""
    ref, _ = busy_actor(system, gate, capacity=1, overflow="block", block_timeout=0.02)
    ref.tell("one")
    with pytest.raises(MailboxFull):
        ref.ask("two")


def test_block_false_never_waits_on_a_full_mailbox(
    system: ActorSystem, gate: threading.Event
) -> None:
    """tell/ask with block=False raise MailboxFull at once, however long block_timeout is."""
    ref, _ = busy_actor(system, gate, capacity=1, overflow="block", block_timeout=60.0)
    ref.tell("one")
    with pytest.raises(MailboxFull, match="is full"):
        ref.tell("two", block=False)
    with pytest.raises(MailboxFull, match="is full"):
        ref.ask("three", block=False)
    assert ref.statistics().queue_depth == 1


def test_block_sender_goes_on_when_room_appears(system: ActorSystem, gate: threading.Event) -> None:
    """A sender blocked on a full mailbox delivers its message once the actor takes one."""
    ref, probe = busy_actor(system, gate, capacity=1, overflow="block", block_timeout=WAIT)
    blocking = spy_on_blocking(ref._mailbox)
    ref.tell("one")
    sender, errors = tell_in_thread(ref, "two")
    assert blocking.wait(WAIT), "the sender never waited for room"
    assert sender.is_alive()
    gate.set()
    sender.join(WAIT)
    assert not sender.is_alive()
    assert errors == []
    assert get(probe.out) == "one"
    assert get(probe.out) == "two"


def test_blocked_sender_is_released_when_the_actor_stops(
    system: ActorSystem, gate: threading.Event
) -> None:
    """A sender blocked on a full mailbox returns when the actor stops; its message is a
    dead letter."""
    ref, _ = busy_actor(system, gate, capacity=1, overflow="block", block_timeout=WAIT)
    blocking = spy_on_blocking(ref._mailbox)
    ref.tell("one")
    sender, errors = tell_in_thread(ref, "two")
    assert blocking.wait(WAIT)
    ref.stop()
    gate.set()
    sender.join(WAIT)
    assert not sender.is_alive()
    assert errors == []
    assert ref.wait_stopped(WAIT)
    letters = {letter.message: letter.reason for letter in system.dead_letters.recent()}
    assert letters == {"one": "stopped before handling it", "two": "stopped before it arrived"}


# -- drop_newest -------------------------------------------------------------------------


def test_drop_newest_turns_the_new_message_into_a_dead_letter(
    system: ActorSystem, gate: threading.Event
) -> None:
    """Under drop_newest, a full mailbox drops the new message to dead letters and counts it."""
    ref, probe = busy_actor(system, gate, capacity=2, overflow="drop_newest")
    for message in ("one", "two", "three", "four"):
        ref.tell(message)
    stats = ref.statistics()
    assert stats.dropped == 2
    assert stats.queue_depth == 2
    assert [(d.message, d.reason) for d in system.dead_letters.recent()] == [
        ("three", "mailbox full (overflow=drop_newest)"),
        ("four", "mailbox full (overflow=drop_newest)"),
    ]
    gate.set()
    assert [get(probe.out), get(probe.out)] == ["one", "two"]


def test_drop_newest_ask_fails_with_mailbox_full_at_once(
    system: ActorSystem, gate: threading.Event
) -> None:
    """An ask dropped by drop_newest comes back already failed with MailboxFull."""
    ref, _ = busy_actor(system, gate, capacity=1, overflow="drop_newest")
    ref.tell("one")
    future = ref.ask("two", timeout=WAIT)
    assert future.done()
    with pytest.raises(MailboxFull, match="drop_newest"):
        future.get()
    assert ref.statistics().dropped == 1
    assert system.dead_letters.count == 1


@pytest.mark.usefixtures("fast_switching")
def test_drop_newest_counts_every_drop_under_concurrent_senders(
    system: ActorSystem, gate: threading.Event
) -> None:
    """Many threads overflowing one mailbox: every dropped message is counted exactly once."""
    ref, _ = busy_actor(system, gate, capacity=10, overflow="drop_newest")
    senders, per_sender = 8, 2_000

    def send() -> None:
        for i in range(per_sender):
            ref.tell(i)

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 4)
    stats = ref.statistics()
    assert stats.queue_depth == 10
    assert stats.dropped == senders * per_sender - 10
    assert system.dead_letters.count == stats.dropped


# -- fail --------------------------------------------------------------------------------


def test_fail_raises_mailbox_full_at_once(system: ActorSystem, gate: threading.Event) -> None:
    """Under fail, a tell or ask to a full mailbox raises MailboxFull without waiting."""
    ref, _ = busy_actor(system, gate, capacity=1, overflow="fail", block_timeout=WAIT)
    ref.tell("one")
    started = time.monotonic()
    with pytest.raises(MailboxFull, match=r"/busy is full \(1 messages, overflow=fail\)"):
        ref.tell("two")
    with pytest.raises(MailboxFull):
        ref.ask("three")
    assert time.monotonic() - started < WAIT / 2
    stats = ref.statistics()
    assert (stats.queue_depth, stats.dropped) == (1, 0)
    assert system.dead_letters.count == 0


# -- what always gets through ------------------------------------------------------------


@pytest.mark.parametrize("overflow", list(Overflow))
def test_stop_gets_through_a_full_mailbox(
    system: ActorSystem, gate: threading.Event, overflow: Overflow
) -> None:
    """stop() is a system message: it reaches an actor whose mailbox is full, ahead of the
    waiting messages, which become dead letters."""
    ref, probe = busy_actor(system, gate, capacity=2, overflow=overflow, block_timeout=0.01)
    ref.tell("one")
    ref.tell("two")
    ref.stop()
    gate.set()
    assert ref.wait_stopped(WAIT)
    assert probe.out.empty()
    assert [d.message for d in system.dead_letters.recent()] == ["one", "two"]


def test_down_gets_through_a_full_mailbox(system: ActorSystem, gate: threading.Event) -> None:
    """A Down signal is queued even when the watcher's mailbox is full, and never dropped."""
    watcher, probe = busy_actor(system, gate, capacity=1, overflow="drop_newest")
    watched = system.spawn(Probe, "/watched")
    watched._cell.add_watcher(watcher)
    watcher.tell("filler")
    watched.stop()
    assert watched.wait_stopped(WAIT)
    gate.set()
    assert get(probe.out) == "filler"
    down = get(probe.out)
    assert isinstance(down, Down)
    assert down.ref is watched
    assert watcher.statistics().dropped == 0


def test_mailbox_signal_ignores_the_bound() -> None:
    """Mailbox.put_signal queues past capacity, while put refuses under drop_newest."""
    mailbox = Mailbox(MailboxConfig(capacity=1, overflow="drop_newest"))
    assert mailbox.put(Envelope("a"))
    assert not mailbox.put(Envelope("b"))
    assert mailbox.put_signal(Envelope("signal"))
    assert len(mailbox) == 2


def test_mailbox_hands_out_system_messages_first() -> None:
    """get() returns system messages before ordinary ones, each queue in FIFO order."""
    mailbox = Mailbox(MailboxConfig(capacity=10))
    mailbox.put(Envelope("m1"))
    mailbox.put_system(Envelope("s1"))
    mailbox.put(Envelope("m2"))
    mailbox.put_system(Envelope("s2"))
    order = [mailbox.get() for _ in range(4)]
    assert [e.message for e in order if e is not None] == ["s1", "s2", "m1", "m2"]


def test_closed_mailbox_refuses_and_drains() -> None:
    """close() returns the waiting ordinary messages; later puts fail and get() says done."""
    mailbox = Mailbox(MailboxConfig(capacity=10))
    mailbox.put(Envelope("m1"))
    mailbox.put_system(Envelope("s1"))
    leftovers = mailbox.close()
    assert [e.message for e in leftovers] == ["m1"]
    assert mailbox.closed
    assert not mailbox.put(Envelope("m2"))
    assert not mailbox.put_signal(Envelope("d"))
    assert not mailbox.put_system(Envelope("s2"))
    assert mailbox.get() is None


@given(
    capacity=st.integers(1, 5),
    overflow=st.sampled_from([Overflow.DROP_NEWEST, Overflow.FAIL, Overflow.BLOCK]),
    operations=st.lists(st.sampled_from(["put", "get"]), max_size=60),
)
def test_mailbox_never_exceeds_capacity_and_keeps_fifo(
    capacity: int, overflow: Overflow, operations: list[str]
) -> None:
    """Under any sequence of puts and gets, an ordinary mailbox holds at most capacity
    messages, refuses exactly those beyond it, and hands out the rest in FIFO order."""
    mailbox = Mailbox(MailboxConfig(capacity=capacity, overflow=overflow, block_timeout=0))
    model: deque[int] = deque()
    for n, operation in enumerate(operations):
        if operation == "put":
            full = len(model) >= capacity
            try:
                accepted = mailbox.put(Envelope(n))
            except MailboxFull:
                assert overflow is not Overflow.DROP_NEWEST
                accepted = False
            assert accepted is not full
            if accepted:
                model.append(n)
        elif model:
            envelope = mailbox.get()
            assert envelope is not None
            assert envelope.message == model.popleft()
        assert len(mailbox) == len(model) <= capacity


@given(st.lists(st.integers() | st.text(max_size=5), max_size=40))
def test_tells_from_one_sender_arrive_in_order(messages: list[Any]) -> None:
    """An actor handles the tells of one sender in the order they were sent."""
    system = ActorSystem("fifo")
    try:
        ref = system.spawn(Probe, "/fifo", mailbox=MailboxConfig(capacity=8, block_timeout=WAIT))
        probe = ref._cell.actor
        assert isinstance(probe, Probe)
        for message in messages:
            ref.tell(("msg", message))  # tagged, so no text reads as a Probe command
        sync(ref)
        assert [probe.out.get_nowait()[1] for _ in messages] == messages
        assert probe.out.empty()
    finally:
        assert system.close() == []


# -- statistics ----------------------------------------------------------------------------


def test_statistics_report_depth_processed_failed_and_dropped(
    system: ActorSystem, gate: threading.Event
) -> None:
    """statistics() reports queue depth, capacity, processed, failed, dropped and liveness."""
    ref, probe = busy_actor(system, gate, capacity=3, overflow="drop_newest")
    for i in range(5):
        ref.tell(i)
    stats = ref.statistics()
    assert (stats.path, stats.queue_depth, stats.capacity) == ("/busy", 3, 3)
    assert (stats.processed, stats.failed, stats.dropped, stats.restarts) == (0, 0, 2, 0)
    assert stats.alive
    gate.set()
    assert [get(probe.out) for _ in range(3)] == [0, 1, 2]
    sync(ref)
    stats = ref.statistics()
    # "block", three numbers and the sync ask.
    assert (stats.queue_depth, stats.processed, stats.failed) == (0, 5, 0)
    ref.tell(("raise", RuntimeError("boom")))
    assert ref.wait_stopped(WAIT)
    stats = ref.statistics()
    assert (stats.processed, stats.failed, stats.alive) == (5, 1, False)


def test_counters_are_shared_across_incarnations(system: ActorSystem) -> None:
    """Incarnations spawned with one Counters object add to the same processed and restarts."""
    from edgeloop.actors import Counters

    counters = Counters()
    first = system.spawn(Probe, "/child", counters=counters)
    sync(first)
    first.stop()
    assert first.wait_stopped(WAIT)
    counters.restarts += 1
    second = system.spawn(Probe, "/child", counters=counters)
    sync(second)
    stats = second.statistics()
    assert (stats.processed, stats.restarts) == (2, 1)


# -- configuration ---------------------------------------------------------------------------


def test_default_mailbox_config() -> None:
    """The default mailbox holds 10 000 messages and blocks a sender up to 1 s."""
    config = MailboxConfig()
    assert (config.capacity, config.overflow, config.block_timeout) == (10_000, "block", 1.0)


def test_overflow_accepts_its_string_names() -> None:
    """overflow may be given as its string name and becomes the Overflow member."""
    config = MailboxConfig(overflow="drop_newest")  # type: ignore[arg-type]
    assert config.overflow is Overflow.DROP_NEWEST


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"capacity": 0}, "mailbox.capacity"),
        ({"capacity": -5}, "mailbox.capacity"),
        ({"capacity": True}, "mailbox.capacity"),
        ({"capacity": 2.0}, "mailbox.capacity"),
        ({"capacity": "10"}, "mailbox.capacity"),
        ({"overflow": "drop_oldest"}, "mailbox.overflow"),
        ({"overflow": None}, "mailbox.overflow"),
        ({"block_timeout": -0.1}, "mailbox.block_timeout"),
        ({"block_timeout": True}, "mailbox.block_timeout"),
        ({"block_timeout": "1"}, "mailbox.block_timeout"),
        ({"block_timeout": math.nan}, "mailbox.block_timeout"),
    ],
)
def test_invalid_mailbox_config_names_the_key(kwargs: dict[str, Any], key: str) -> None:
    """An invalid mailbox setting raises ConfigError (a ValueError) naming its key."""
    with pytest.raises(ConfigError) as info:
        MailboxConfig(**kwargs)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")
    assert isinstance(info.value, ValueError)


def test_overflow_error_lists_the_choices() -> None:
    """The overflow ConfigError lists every valid policy."""
    with pytest.raises(ConfigError, match="'block', 'drop_newest', 'fail'"):
        MailboxConfig(overflow="lifo")  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [math.inf, 1e12])
def test_block_accepts_a_very_long_timeout(
    system: ActorSystem, gate: threading.Event, timeout: float
) -> None:
    """A huge or infinite block_timeout blocks the sender until room appears, without error."""
    ref, probe = busy_actor(system, gate, capacity=1, overflow="block", block_timeout=timeout)
    blocking = spy_on_blocking(ref._mailbox)
    ref.tell("one")
    sender, errors = tell_in_thread(ref, "two")
    assert blocking.wait(WAIT)
    gate.set()
    sender.join(WAIT)
    assert errors == []
    assert [get(probe.out), get(probe.out)] == ["one", "two"]


def test_ask_to_a_closed_mailbox_fails_with_actor_dead(system: ActorSystem) -> None:
    """An ask to a stopped actor's closed mailbox fails with ActorDeadError, not MailboxFull."""
    ref = system.spawn(Probe, "/p", mailbox=MailboxConfig(capacity=1, overflow="fail"))
    ref.stop()
    assert ref.wait_stopped(WAIT)
    with pytest.raises(ActorDeadError):
        ref.ask("late").get()
    assert ref.statistics().dropped == 0


def test_send_signal_passes_a_full_mailbox(system: ActorSystem, gate: threading.Event) -> None:
    """send_signal queues past the bound and in order, where tell would be dropped."""
    from edgeloop.actors import send_signal

    ref, probe = busy_actor(system, gate, capacity=1, overflow="drop_newest")
    ref.tell("one")
    ref.tell("dropped")
    assert send_signal(ref, "signal")
    assert ref.statistics().queue_depth == 2
    gate.set()
    assert get(probe.out) == "one"
    assert get(probe.out) == "signal"


def test_an_actor_is_idle_only_while_it_waits_with_nothing_queued(system: ActorSystem) -> None:
    """is_idle: False while handling or with messages queued; True when it waits."""
    gate = threading.Event()
    ref, _ = busy_actor(system, gate)
    assert not ref.is_idle(), "handling a message"
    ref.tell("queued")
    gate.set()
    wait_for(ref.is_idle, what="the actor drained its mailbox and waits")
    assert ref.statistics().queue_depth == 0
