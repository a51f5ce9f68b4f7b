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
    s = Sequencer()
    assert [seqs(s.offer(event(n)).deliver) for n in (1, 2, 3)] == [[1], [2], [3]]
    assert s.delivered == 3
    assert s.counters.delivered == 3


def test_duplicates_are_dropped_and_flagged_for_an_ack() -> None:
    s = Sequencer()
    s.offer(event(1))
    s.offer(event(2))
    offer = s.offer(event(1))
    assert offer.deliver == ()
    assert offer.duplicate
    assert s.counters.duplicates == 1


def test_events_ahead_of_a_gap_wait_until_it_fills() -> None:
    s = Sequencer()
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
    s = Sequencer()
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


def test_a_fresh_sequencer_starts_where_the_device_resends() -> None:
    s = Sequencer()
    assert seqs(s.offer(event(301)).deliver) == [301]
    assert s.started_at == 301
    assert s.offer(event(300)).duplicate


def test_the_hold_is_bounded() -> None:
    s = Sequencer(reorder_limit=2)
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
    some point; the link may swap neighbours. The twin delivers 1..n exactly once."""
    stream = list(range(1, n + 1))
    for start in resend_from:
        stream += list(range(min(start, n), n + 1))
    for i in swaps:
        j = i % max(1, len(stream) - 1)
        if j + 1 < len(stream):
            stream[j], stream[j + 1] = stream[j + 1], stream[j]
    s = Sequencer(reorder_limit=len(stream) + 1)
    out: list[int] = []
    first = stream[0]
    for seq in stream:
        out += seqs(s.offer(event(seq)).deliver)
    # A fresh twin starts at the first event it sees: everything from there arrives.
    assert out == list(range(first, n + 1))
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
