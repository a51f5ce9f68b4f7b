"""The pure cores: exactly-once in-order sequencing and the recent-event buffer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeloop.messages import Event
from edgeloop.sensors.twins import EventBuffer, Sequencer


def event(seq: int, ts: float | None = None) -> Event:
    return Event(
        device="cam-1",
        seq=seq,
        ts=float(seq) if ts is None else ts,
        zone="z1",
        label="cat",
        score=0.5,
        embedding=b"\x00",
        head_version=1,
        config_version=1,
    )


def seqs(events: tuple[Event, ...]) -> list[int]:
    return [e.seq for e in events]


def test_in_order_events_pass_straight_through() -> None:
    s = Sequencer(delivered=0)
    assert [seqs(s.offer(event(n)).deliver) for n in (1, 2, 3)] == [[1], [2], [3]]
    assert s.delivered == 3
    assert s.counters.delivered == 3


def test_duplicates_are_dropped_and_flagged_for_an_ack() -> None:
    s = Sequencer(delivered=0)
    s.offer(event(1))
    s.offer(event(2))
    offer = s.offer(event(1))
    assert offer.deliver == ()
    assert offer.duplicate
    assert s.counters.duplicates == 1


def test_events_ahead_of_a_gap_wait_until_it_fills() -> None:
    s = Sequencer(delivered=0)
    s.offer(event(1))
    first = s.offer(event(3))
    assert first.opened_gap
    assert first.deliver == ()
    assert not s.offer(event(4)).opened_gap
    assert s.missing == (2, 2)
    assert s.offer(event(4)).duplicate, "a held event offered again is a duplicate"
    assert seqs(s.offer(event(2)).deliver) == [2, 3, 4]
    assert s.held == 0
    assert s.missing is None


def test_a_gap_given_up_on_is_counted_lost_and_the_rest_released() -> None:
    s = Sequencer(delivered=0)
    s.offer(event(1))
    for n in (5, 6, 9):
        s.offer(event(n))
    gap, released = s.skip_gap()
    assert gap == (2, 4)
    assert seqs(released) == [5, 6]
    assert s.counters.lost == 3
    assert s.missing == (7, 8), "the next gap stays open"
    assert s.skip_gap() == ((7, 8), (event(9),))
    assert s.counters.lost == 5
    assert s.counters.gaps == 2
    assert s.skip_gap() == (None, ())


def test_a_fresh_sequencer_holds_everything_until_it_is_anchored() -> None:
    s = Sequencer()
    assert not s.anchored
    first = s.offer(event(50))  # a live event, before the resend of what a crash lost
    assert first.deliver == ()
    assert first.opened_gap
    for seq in (40, 41, 50):
        s.offer(event(seq))
    assert s.counters.duplicates == 1
    assert s.lowest_held == 40
    assert s.missing is None, "no gap before the start is known"
    assert seqs(s.anchor(40)) == [40, 41], "the device's oldest unacknowledged is 40"
    assert s.started_at == 40
    assert s.missing == (42, 49)
    assert s.anchor(1) == (), "anchoring happens once"


def test_anchoring_above_held_events_counts_them_as_duplicates() -> None:
    s = Sequencer()
    for seq in (3, 4, 5):
        s.offer(event(seq))
    assert seqs(s.anchor(5)) == [5]
    assert s.counters.duplicates == 2


def test_the_hold_is_bounded() -> None:
    s = Sequencer(reorder_limit=2, delivered=0)
    s.offer(event(1))
    s.offer(event(3))
    assert not s.full
    s.offer(event(4))
    assert s.full
    with pytest.raises(ValueError, match="reorder_limit"):
        Sequencer(reorder_limit=0)


@given(
    n=st.integers(1, 60),
    resend_from=st.lists(st.integers(1, 60), max_size=6),
    swaps=st.lists(st.integers(0, 200), max_size=20),
)
def test_any_resend_and_local_reordering_delivers_each_event_once_in_order(
    n: int, resend_from: list[int], swaps: list[int]
) -> None:
    """A device streams 1..n, and after each of several reconnects resends everything from
    some point; the link may swap neighbours; the twin learns where the stream starts
    midway. It delivers 1..n exactly once, in order."""
    stream = list(range(1, n + 1))
    for start in resend_from:
        stream += list(range(min(start, n), n + 1))
    for i in swaps:
        j = i % max(1, len(stream) - 1)
        if j + 1 < len(stream):
            stream[j], stream[j + 1] = stream[j + 1], stream[j]
    s = Sequencer(reorder_limit=len(stream) + 1)
    out: list[int] = []
    for seq in stream[: len(stream) // 2]:  # some arrive before the start is known
        out += seqs(s.offer(event(seq)).deliver)
    assert out == []
    out += seqs(s.anchor(1))  # the device's status: its oldest unacknowledged is 1
    for seq in stream[len(stream) // 2 :]:
        out += seqs(s.offer(event(seq)).deliver)
    assert out == list(range(1, n + 1))
    assert s.counters.lost == 0


def test_the_buffer_keeps_the_newest_and_counts_what_it_evicts() -> None:
    buffer = EventBuffer(3)
    for n in (1, 2, 4, 5):
        buffer.append(event(n, ts=10.0 * n))
    assert len(buffer) == 3
    assert buffer.evicted == 1
    assert buffer.evicted_through == 1
    assert (buffer.oldest_seq, buffer.newest_seq) == (2, 5)
    assert [e.seq for e in buffer.after_seq(2, 10)] == [4, 5]
    assert [e.seq for e in buffer.after_seq(0, 2)] == [2, 4]
    assert buffer.after_seq(5, 10) == []
    assert [e.seq for e in buffer.since_time(40.0, 10)] == [4, 5]
    with pytest.raises(ValueError, match="at least 1"):
        EventBuffer(0)
