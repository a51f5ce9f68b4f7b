"""The outbox: numbering, cumulative acks, the window, resends, and counted overflow."""

from __future__ import annotations

import pytest

from edgeloop.errors import ConfigError
from edgeloop.messages import Event
from edgeloop.sensors.device import Outbox


def make(seq: int) -> Event:
    return Event(
        device="cam-1",
        seq=seq,
        ts=float(seq),
        zone="porch",
        label="cat",
        score=0.5,
        embedding=b"\x01",
        head_version=1,
        config_version=1,
    )


def fill(outbox: Outbox, n: int) -> list[Event | None]:
    return [outbox.add(make).event for _ in range(n)]


def test_events_are_numbered_from_one_and_sent_in_order_within_the_window() -> None:
    outbox = Outbox(100, window=3)
    fill(outbox, 5)
    assert [e.seq for e in outbox.due(0.0)] == [1, 2, 3]
    assert outbox.due(0.1) == [], "the window is full until acks come"
    assert outbox.ack(2) == 2
    assert [e.seq for e in outbox.due(0.2)] == [4, 5]
    assert outbox.statistics().in_flight == 3


def test_a_missing_ack_resends_everything_in_flight_from_the_oldest() -> None:
    outbox = Outbox(100, ack_timeout=1.0)
    fill(outbox, 3)
    assert len(outbox.due(0.0)) == 3
    assert outbox.next_deadline() == 1.0
    assert outbox.due(0.5) == []
    assert [e.seq for e in outbox.due(1.0)] == [1, 2, 3]
    assert outbox.statistics().resent == 3


def test_a_reconnect_resends_what_was_in_flight_and_acks_are_cumulative() -> None:
    outbox = Outbox(100)
    fill(outbox, 4)
    outbox.due(0.0)
    outbox.ack(1)
    outbox.unsend()
    assert [e.seq for e in outbox.due(0.1)] == [2, 3, 4]
    assert outbox.ack(1) == 0, "an old ack changes nothing"
    assert outbox.ack(4) == 3
    assert len(outbox) == 0
    assert outbox.oldest_seq == outbox.next_seq == 5


def test_an_ack_beyond_what_was_numbered_is_counted_and_ignored() -> None:
    outbox = Outbox(100)
    fill(outbox, 2)
    assert outbox.ack(9) == 0
    assert outbox.statistics().bad_acks == 1
    assert len(outbox) == 2


def test_drop_newest_refuses_new_events_without_a_number() -> None:
    outbox = Outbox(3)
    assert fill(outbox, 5)[3:] == [None, None]
    stats = outbox.statistics()
    assert stats.dropped == 2
    assert stats.next_seq == 4, "no gap: refused events take no number"
    assert [e.seq for e in outbox.pending()] == [1, 2, 3]


def test_drop_oldest_makes_room_and_moves_oldest_seq() -> None:
    outbox = Outbox(3, overflow="drop_oldest")
    fill(outbox, 3)
    outbox.due(0.0)
    added = outbox.add(make)
    assert added.event is not None
    assert added.event.seq == 4
    assert [e.seq for e in added.dropped] == [1]
    assert outbox.oldest_seq == 2
    assert outbox.dropped == 1
    assert outbox.statistics().in_flight == 2


def test_restore_continues_numbering_after_recovered_events() -> None:
    outbox = Outbox(100, next_seq=8, acked=5)
    outbox.restore([make(7), make(6), make(5)])
    assert [e.seq for e in outbox.pending()] == [6, 7]
    assert outbox.add(make).event.seq == 8  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"limit": 0}, "device.outbox.limit"),
        ({"overflow": "drop_middle"}, "device.outbox.overflow"),
        ({"window": 0}, "device.outbox.window"),
        ({"ack_timeout": 0}, "device.outbox.ack_timeout"),
    ],
)
def test_bad_bounds_are_refused_naming_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        Outbox(**kwargs)
    assert error.value.key == key
