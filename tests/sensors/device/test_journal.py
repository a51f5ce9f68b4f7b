"""The journal: the outbox and its numbering survive a crash; a torn tail is cut off."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from edgeloop.errors import JournalError
from edgeloop.sensors.device import Journal, Outbox, StateFile
from tests.sensors.device.test_outbox import make


def test_unacknowledged_events_and_numbering_come_back(tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    journal = Journal.open(path)
    for seq in range(1, 6):
        journal.event(make(seq))
    journal.ack(3)
    journal.close()
    recovered = Journal.open(path).recovered
    assert [e.seq for e in recovered.events] == [4, 5]
    assert (recovered.next_seq, recovered.acked, recovered.truncated) == (6, 3, 0)
    assert recovered.events[0] == make(4)


def test_a_record_torn_by_a_crash_is_cut_off_and_logged(tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    journal = Journal.open(path)
    journal.event(make(1))
    journal.event(make(2))
    journal.close()
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])  # the second record lost its tail mid-write
    with capture_logs() as logs:
        again = Journal.open(path)
    assert [e.seq for e in again.recovered.events] == [1]
    assert again.recovered.truncated > 0
    assert [entry["event"] for entry in logs] == ["journal_truncated"]
    again.event(make(2))  # appends after the cut, where a reader finds it
    again.close()
    assert [e.seq for e in Journal.open(path).recovered.events] == [1, 2]


def test_drops_are_remembered(tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    journal = Journal.open(path)
    for seq in range(1, 4):
        journal.event(make(seq))
    journal.drop(dropped=2, oldest=3)
    journal.close()
    recovered = Journal.open(path).recovered
    assert [e.seq for e in recovered.events] == [3]
    assert recovered.dropped == 2


def test_compaction_keeps_the_state_and_the_pending_events_only(tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    journal = Journal.open(path, compact_bytes=2000)
    outbox = Outbox(1000)
    for _ in range(40):
        event = outbox.add(make).event
        assert event is not None
        journal.event(event)
    outbox.ack(38)
    journal.ack(38)
    assert journal.should_compact()
    before = path.stat().st_size
    journal.compact(outbox.pending(), next_seq=41, acked=38, dropped=0)
    assert path.stat().st_size < before / 5
    journal.event(make(41))
    journal.close()
    recovered = Journal.open(path).recovered
    assert [e.seq for e in recovered.events] == [39, 40, 41]
    assert (recovered.next_seq, recovered.acked) == (42, 38)


def test_an_unusable_journal_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(JournalError, match="data_dir"):
        Journal.open(blocker / "journal.bin")


def test_a_damaged_state_file_says_how_to_recover(tmp_path: Path) -> None:
    path = tmp_path / "state.msgpack"
    path.write_bytes(b"\xc1 not msgpack")
    with pytest.raises(JournalError, match="remove the file"):
        StateFile(path).load()


def test_a_second_agent_on_the_same_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    first = Journal.open(path)
    with pytest.raises(JournalError, match="another agent"):
        Journal.open(path)
    first.close()
    Journal.open(path).close()
