"""SensorTwin: exactly-once in-order delivery, acks, gaps, the buffer, bad input."""

from __future__ import annotations

import queue
import threading
from typing import Any

import msgspec
import pytest

from edgeloop.actors import Actor, MailboxConfig
from edgeloop.errors import FrameError
from edgeloop.messages import (
    Command,
    CommandResult,
    ErrorReply,
    EventAck,
    EventsSince,
    FrameRef,
    Message,
)
from edgeloop.sensors import GetState, Subscribe, TwinClient, TwinState, twin_states
from tests.helpers import wait_for
from tests.sensors.twins.conftest import Collector, Yard, event, make_yard, status


def sync(yard: Yard, device: str = "cam-1") -> TwinState:
    """The twin's state once it has handled everything sent to it so far."""
    state: TwinState = yard.twin(device).ask(GetState()).get()
    return state


def acks(yard: Yard) -> list[int]:
    return [m.seq for m in yard.wire.drain() if isinstance(m, EventAck)]


def test_events_reach_subscribers_once_in_order_and_are_acked(yard: Yard) -> None:
    yard.up("cam-1")
    for seq in [1, 2, 3, 2, 1, 4, 5, 5]:
        yard.port.inject("cam-1", event(seq))
    assert [e.seq for e in yard.events(5)] == [1, 2, 3, 4, 5]
    state = sync(yard)
    assert state.delivered_seq == 5
    assert state.counters["duplicates"] == 3
    assert state.counters["received"] == 8
    yard.clock.advance(0.05)  # the ack delay
    sync(yard)
    assert acks(yard)[-1] == 5
    assert yard.seen.empty()


def test_acks_are_cumulative_and_batched(yard: Yard) -> None:
    yard.up("cam-1")
    sync(yard)
    yard.wire.drain()
    for seq in range(1, 70):
        yard.port.inject("cam-1", event(seq))
    sync(yard)
    assert acks(yard) == [32, 64], "one ack per ack_every events"
    yard.clock.advance(0.05)
    sync(yard)
    assert acks(yard) == [69], "the rest after ack_delay"


def test_a_gap_waits_then_is_reported_lost_and_the_stream_goes_on(yard: Yard) -> None:
    yard.up("cam-1")
    for seq in (1, 2, 5, 6):
        yard.port.inject("cam-1", event(seq))
    assert [e.seq for e in yard.events(2)] == [1, 2]
    state = sync(yard)
    assert state.counters["held"] == 2
    assert 2 in acks(yard), "an ack that does not move tells the device where it stopped"
    yard.clock.advance(5.1)  # the gap timeout
    assert [e.seq for e in yard.events(2)] == [5, 6]
    state = sync(yard)
    assert state.counters["lost"] == 2
    assert state.counters["gaps"] == 1
    yard.port.inject("cam-1", event(7))
    assert yard.events(1)[0].seq == 7


def test_a_gap_that_fills_in_time_loses_nothing(yard: Yard) -> None:
    yard.up("cam-1")
    for seq in (1, 3, 4, 2):
        yard.port.inject("cam-1", event(seq))
    assert [e.seq for e in yard.events(4)] == [1, 2, 3, 4]
    yard.clock.advance(10.0)
    assert sync(yard).counters["lost"] == 0


def test_events_since_answers_from_the_buffer_and_says_when_it_is_incomplete() -> None:
    with make_yard([{"name": "cam-1", "buffer_events": 4}]) as yard:
        yard.up("cam-1")
        client = TwinClient(yard.twin("cam-1"))
        for seq in range(1, 4):
            yard.port.inject("cam-1", event(seq))
        batch = client.events_since(1).get()
        assert [e.seq for e in batch.events] == [2, 3]
        assert batch.complete
        assert not batch.more
        for seq in range(4, 9):
            yard.port.inject("cam-1", event(seq))
        batch = client.events_since(2).get()
        assert [e.seq for e in batch.events] == [5, 6, 7, 8]
        assert not batch.complete, "3 and 4 were evicted"
        assert sync(yard).counters["buffer_evicted"] == 4
        limited = client.events_since(4, limit=2).get()
        assert [e.seq for e in limited.events] == [5, 6]
        assert limited.more
        assert limited.complete
        by_time = client.events_since(0, since_ts=1007.0).get()
        assert [e.seq for e in by_time.events] == [7, 8]


def test_events_since_told_with_reply_to_tells_the_events_again(yard: Yard) -> None:
    yard.up("cam-1")
    for seq in (1, 2, 3):
        yard.port.inject("cam-1", event(seq))
    assert [e.seq for e in yard.events(3)] == [1, 2, 3]
    yard.twin("cam-1").tell(EventsSince(device="cam-1", after_seq=1, reply_to="/sink"))
    assert yard.events(2) == [event(2), event(3)]
    assert sync(yard).counters["events_replayed"] == 2


class LearnersEventsSince(msgspec.Struct, frozen=True, kw_only=True, tag="events_since"):
    """Another package's own request, as the learner defines it: the same wire tag."""

    device: str
    after_seq: int
    reply_to: str


def test_an_events_since_of_another_package_is_understood_by_its_tag(yard: Yard) -> None:
    yard.up("cam-1")
    for seq in (1, 2):
        yard.port.inject("cam-1", event(seq))
    yard.events(2)
    yard.twin("cam-1").tell(LearnersEventsSince(device="cam-1", after_seq=0, reply_to="/sink"))
    assert [e.seq for e in yard.events(2)] == [1, 2]


def test_bad_input_is_rejected_counted_answered_and_nothing_else_is_disturbed(
    yard: Yard,
) -> None:
    yard.up("cam-1")
    yard.port.inject("cam-1", event(1))
    yard.port.inject("cam-1", event(2, device="trap-1"))  # another device's event
    yard.port.inject("cam-1", EventAck(device="cam-1", seq=3))  # a kind devices never send
    yard.twin("cam-1").tell("hello")  # not a request
    batch = yard.twin("cam-1").ask(EventsSince(device="cam-9")).get()
    assert batch.events == ()
    assert not batch.complete
    bad = yard.twin("cam-1").ask(EventsSince(device="cam-1", after_seq="soon")).get()  # type: ignore[arg-type]
    assert bad.events == ()
    assert not bad.complete
    yard.port.inject("cam-1", event(2))
    assert [e.seq for e in yard.events(2)] == [1, 2]
    state = sync(yard)
    assert state.counters["wrong_device"] == 2
    assert state.counters["unexpected_kind"] == 1
    assert state.counters["unknown_request"] == 1
    assert state.counters["bad_request"] == 1
    replies = [m for m in yard.wire.drain() if isinstance(m, ErrorReply)]
    assert [r.code for r in replies] == ["wrong_device"]
    assert "trap-1" in replies[0].message
    assert yard.twin("cam-1").statistics().restarts == 0


def test_a_restarted_twin_goes_on_after_what_its_predecessor_delivered(yard: Yard) -> None:
    yard.up("cam-1")
    for seq in (1, 2, 3):
        yard.port.inject("cam-1", event(seq))
    yard.events(3)
    old = yard.twin("cam-1")
    old.kill()
    wait_for(lambda: yard.node.lookup("/devices/cam-1") not in (None, old), what="restart")
    wait_for(lambda: yard.port.route("cam-1") is yard.twin("cam-1"), what="re-registered")
    # Events in flight reach the new twin before the device's status says where its
    # stream starts (3: the old twin had delivered 3 but acked only 2); the device then
    # resends 3 and 4. Nothing is delivered twice, nothing skipped.
    for seq in (5, 6):
        yard.port.inject("cam-1", event(seq))
    yard.port.inject("cam-1", status("cam-1", next_seq=7, oldest_seq=3))
    for seq in (3, 4, 5, 6):
        yard.port.inject("cam-1", event(seq))
    assert [e.seq for e in yard.events(3)] == [4, 5, 6]
    state = sync(yard)
    assert state.delivered_seq == 6
    assert yard.seen.empty()
    assert state.connected, "a twin that registers for a connected device is told DeviceUp"


def test_a_fresh_twin_without_a_device_status_starts_at_the_lowest_event_held(
    yard: Yard,
) -> None:
    yard.port.on_peer("cam-1", True)  # a device that sends no status
    for seq in (12, 10, 11):
        yard.port.inject("cam-1", event(seq))
    sync(yard)
    assert yard.seen.empty(), "held until the start is known"
    yard.clock.advance(5.0)  # gap_timeout: the twin stops waiting for a status
    assert [e.seq for e in yard.events(3)] == [10, 11, 12]


def test_twin_states_show_every_twin(yard: Yard) -> None:
    yard.up("cam-1")
    yard.port.inject("cam-1", event(1))
    yard.events(1)
    sync(yard)
    states = twin_states(yard.node.system)
    assert sorted(states) == ["cam-1", "trap-1"]
    assert states["cam-1"]["counters"]["delivered"] == 1
    assert states["trap-1"]["kind"] == "trap"
    assert states["cam-1"]["connected"] is True
    assert yard.node.system.services["status:twins"]() == twin_states(yard.node.system)


def frame_ref(device: str = "cam-1") -> FrameRef:
    return FrameRef(device=device, frame_id=1, shape=(2,), dtype="|u1", nbytes=2, checksum=0)


def test_a_frame_pull_without_a_lane_fails_typed(yard: Yard) -> None:
    yard.up("cam-1")
    client = TwinClient(yard.twin("cam-1"))
    with pytest.raises(FrameError, match="no link that carries a bulk lane"):
        client.pull_frame(frame_ref()).get()
    with pytest.raises(FrameError, match="belongs to 'trap-1'"):
        client.pull_frame(frame_ref("trap-1")).get()


def test_a_device_status_reports_losses_and_skips_what_the_device_dropped(yard: Yard) -> None:
    yard.up("cam-1")
    for seq in (1, 2):
        yard.port.inject("cam-1", event(seq))
    yard.events(2)
    # The outbox overflowed while the link was down: 3..6 are gone, 7 is the oldest held.
    yard.port.inject("cam-1", status("cam-1", next_seq=9, oldest_seq=7, outbox_dropped=4))
    yard.port.inject("cam-1", event(7))
    yard.port.inject("cam-1", event(8))
    assert [e.seq for e in yard.events(2)] == [7, 8], "no wait for a gap the device reported"
    now = sync(yard)
    assert now.counters["lost"] == 4
    assert now.counters["device_outbox_dropped"] == 4
    batch = TwinClient(yard.twin("cam-1")).events_since(0).get()
    assert not batch.complete, "a learner asking from 0 learns that 3..6 are missing"


def test_a_device_that_lost_its_numbering_is_followed(yard: Yard) -> None:
    yard.up("cam-1")
    for seq in (1, 2, 3):
        yard.port.inject("cam-1", event(seq))
    yard.events(3)
    yard.port.inject("cam-1", status("cam-1", boot=2, next_seq=2, oldest_seq=1))
    yard.port.inject("cam-1", event(1))
    assert yard.events(1)[0].seq == 1, "a renumbered device's events are not duplicates"
    assert sync(yard).counters["device_renumbered"] == 1
    old = yard.twin("cam-1")
    old.kill()  # a restarted twin follows the new numbering too
    wait_for(lambda: yard.port.route("cam-1") not in (None, old), what="restarted")
    yard.port.inject("cam-1", status("cam-1", boot=2, next_seq=3, oldest_seq=2))
    yard.port.inject("cam-1", event(2))
    assert yard.events(1)[0].seq == 2


def test_a_subscriber_by_ref_gets_events_until_it_stops(yard: Yard) -> None:
    seen: queue.Queue[Any] = queue.Queue()
    extra = yard.node.system.spawn(Collector, "/extra", args={"out": seen})
    twin = yard.twin("cam-1")
    twin.tell(Subscribe(extra))
    twin.tell(Subscribe("not an address"))  # refused, counted, nothing else disturbed
    yard.up("cam-1")
    yard.port.inject("cam-1", event(1))
    assert seen.get(timeout=5).seq == 1
    extra.stop()
    assert extra.wait_stopped(5)
    yard.port.inject("cam-1", event(2))
    assert [e.seq for e in yard.events(2)] == [1, 2], "the other subscriber is undisturbed"
    now = sync(yard)
    assert now.counters["bad_subscriber"] == 1
    assert now.counters["delivered"] == 2


class Slow(Actor):
    """A subscriber that holds its thread until released."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate

    def on_receive(self, message: Any) -> Any:
        self.gate.wait(5)
        return None


def test_a_full_subscriber_loses_events_counted_and_the_twin_goes_on(yard: Yard) -> None:
    gate = threading.Event()
    slow = yard.node.system.spawn(
        Slow, "/slow", args={"gate": gate}, mailbox=MailboxConfig(capacity=2, overflow="fail")
    )
    yard.twin("cam-1").tell(Subscribe(slow))
    yard.up("cam-1")
    for seq in range(1, 7):
        yard.port.inject("cam-1", event(seq))
    assert [e.seq for e in yard.events(6)] == [1, 2, 3, 4, 5, 6]
    now = sync(yard)
    gate.set()
    assert now.counters["subscriber_full"] >= 1
    assert now.counters["delivered"] == 6
    slow.stop()
    assert slow.wait_stopped(5)


def test_a_command_told_by_an_actor_is_sent_and_its_outcome_counted(yard: Yard) -> None:
    def trap(name: str, message: Message) -> None:
        if isinstance(message, Command):
            yard.port.inject(
                name, CommandResult(id=message.id, ok=True, result={"state": "closed"})
            )

    yard.wire.respond = trap
    yard.up("trap-1")
    yard.twin("trap-1").tell(Command(id=1, device="trap-1", name="close"))
    wait_for(lambda: sync(yard, "trap-1").counters.get("commands_ok") == 1, what="the result")
    assert sync(yard, "trap-1").extra["position"] == "closed"
