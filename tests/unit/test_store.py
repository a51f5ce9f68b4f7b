"""The versioned store on real SQLite files: versions, time travel, compaction, threads,
bad input, and the files it must refuse (damaged, foreign, locked)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from edgeloop.errors import (
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreInputError,
    StoreLockedError,
)
from edgeloop.store import Record, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "state.db") as opened:
        yield opened


def test_versions_count_per_key_and_reads_by_version_and_time(store: Store) -> None:
    """Each key counts its own versions; get reads the latest, a version, or as of a time."""
    assert store.put("a", b"a1", 10.0) == 1
    assert store.put("a", b"a2", 20.0) == 2
    assert store.put("b", b"b1", 15.0) == 1
    assert store.put("a", bytearray(b"a3"), 30.0) == 3
    assert store.get("a") == Record("a", 3, 30.0, b"a3")
    assert store.get("a", version=1) == Record("a", 1, 10.0, b"a1")
    assert store.get("a", as_of=25.0) == Record("a", 2, 20.0, b"a2")
    assert store.get("a", as_of=20.0) == Record("a", 2, 20.0, b"a2")
    assert store.get("a", as_of=9.9) is None
    assert store.get("a", version=7) is None
    assert store.get("missing") is None
    assert store.keys() == ["a", "b"]
    assert store.keys(prefix="b") == ["b"]


def test_history_is_oldest_first_after_a_version(store: Store) -> None:
    """history() lists the versions after since_version, oldest first, up to limit."""
    for i in range(5):
        store.put("k", bytes([i]), float(i))
    assert [r.version for r in store.history("k")] == [1, 2, 3, 4, 5]
    assert [r.version for r in store.history("k", since_version=2)] == [3, 4, 5]
    assert [r.value for r in store.history("k", since_version=2, limit=2)] == [b"\x02", b"\x03"]


def test_a_reopened_file_has_every_version(tmp_path: Path) -> None:
    """What was put survives closing and reopening the file, and versions go on from there."""
    path = tmp_path / "state.db"
    with Store(path) as first:
        first.put("learner", b"one", 1.0)
        first.put("learner", b"two", 2.0)
    with Store(path) as second:
        assert second.get("learner") == Record("learner", 2, 2.0, b"two")
        assert second.put("learner", b"three", 3.0) == 3


def test_compaction_keeps_every_answer_from_its_cutoff_on(store: Store) -> None:
    """compact(before=t) drops only versions superseded by t: reads as of t or later agree."""
    for version, ts in enumerate([1.0, 2.0, 3.0, 4.0, 5.0], start=1):
        store.put("k", f"v{version}".encode(), ts)
    store.put("other", b"only", 1.0)
    answers = {t: store.get("k", as_of=t) for t in (3.0, 3.5, 4.0, 9.0)}
    assert store.compact(before=3.0) == 2  # v1 and v2 were superseded by v3 at t=3
    assert {t: store.get("k", as_of=t) for t in answers} == answers
    assert store.get("k", version=2) is None
    assert store.get("other") == Record("other", 1, 1.0, b"only")
    assert store.compact(keep_last=2) == 1  # v3 goes; v4 and v5 stay
    assert [r.version for r in store.history("k")] == [4, 5]
    assert store.statistics().removed == 3


def test_compaction_of_one_key_leaves_the_others(store: Store) -> None:
    """compact(key=...) touches that key only: a store may be shared."""
    for ts in (1.0, 2.0, 3.0):
        store.put("mine", b"m", ts)
        store.put("theirs", b"t", ts)
    assert store.compact(key="mine") == 2
    assert len(store.history("mine")) == 1
    assert len(store.history("theirs")) == 3


def test_versions_are_never_reused(store: Store) -> None:
    """After compaction or deletion a key's next version still counts up."""
    store.put("k", b"1", 1.0)
    store.put("k", b"2", 2.0)
    store.compact()
    assert store.delete("k") == 1
    assert store.get("k") is None
    assert store.put("k", b"3", 3.0) == 3


def test_threads_and_connections_get_distinct_versions(tmp_path: Path) -> None:
    """Puts from several threads, over two connections to one file, never share a version."""
    path = tmp_path / "shared.db"
    with Store(path) as one, Store(path) as two:
        versions: list[int] = []
        lock = threading.Lock()

        def writer(target: Store) -> None:
            mine = [target.put("k", b"x", 1.0) for _ in range(50)]
            with lock:
                versions.extend(mine)

        threads = [threading.Thread(target=writer, args=(s,)) for s in (one, two, one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(versions) == list(range(1, 201))
        assert len(one.history("k")) == 200


@pytest.mark.parametrize(
    ("call", "names"),
    [
        (lambda s: s.put("", b"x", 1.0), "key"),
        (lambda s: s.put(3, b"x", 1.0), "key"),
        (lambda s: s.put("k" * 300, b"x", 1.0), "key"),
        (lambda s: s.put("k", "text", 1.0), "value"),
        (lambda s: s.put("k", b"x", float("nan")), "ts"),
        (lambda s: s.put("k", b"x", True), "ts"),
        (lambda s: s.get("k", version=0), "version"),
        (lambda s: s.get("k", version=1, as_of=1.0), "version or as_of"),
        (lambda s: s.get("k", as_of=float("inf")), "as_of"),
        (lambda s: s.history("k", limit=1.5), "limit"),
        (lambda s: s.compact(keep_last=0), "keep_last"),
        (lambda s: s.compact(before="now"), "before"),
    ],
)
def test_bad_input_is_refused_named_and_counted(store: Store, call: object, names: str) -> None:
    """Each bad argument raises StoreInputError naming it; it is counted; the store goes on."""
    store.put("k", b"kept", 1.0)
    with pytest.raises(StoreInputError, match=names):
        call(store)  # type: ignore[operator]
    assert store.statistics().rejected == 1
    assert store.get("k") == Record("k", 1, 1.0, b"kept")


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    """Random bytes where the store should be: StoreCorruptError naming the path."""
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreCorruptError, match="move it aside") as caught:
        Store(path)
    assert caught.value.path == str(path)


def test_a_damaged_store_is_refused(tmp_path: Path) -> None:
    """A store whose header was overwritten is reported as damaged, not as a crash."""
    path = tmp_path / "state.db"
    with Store(path) as store:
        store.put("k", b"x" * 5000, 1.0)
    with sqlite3.connect(path) as db:  # fold the WAL into the main file first
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    data[0:16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError):
        Store(path)


def test_a_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    """An SQLite file of some other program is not taken over."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    db.close()
    with pytest.raises(StoreCorruptError, match="not an edgeloop store"):
        Store(path)


def test_a_locked_file_times_out_with_a_typed_error(tmp_path: Path) -> None:
    """A writer that holds the file past the timeout: StoreLockedError; reads go on (WAL)."""
    path = tmp_path / "state.db"
    with Store(path, timeout=0.05) as store:
        store.put("k", b"before", 1.0)
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StoreLockedError, match="longer timeout"):
                store.put("k", b"during", 2.0)
            assert store.get("k") == Record("k", 1, 1.0, b"before")
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert store.put("k", b"after", 3.0) == 2


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    """Calls after close() raise StoreClosedError; close() twice is fine."""
    store = Store(tmp_path / "state.db")
    store.close()
    store.close()
    assert store.closed
    with pytest.raises(StoreClosedError, match="open a new Store"):
        store.get("k")
    assert issubclass(StoreClosedError, StoreError)


def test_an_unwritable_place_is_a_store_error(tmp_path: Path) -> None:
    """A path in a folder that does not exist fails with a StoreError naming it."""
    with pytest.raises(StoreError, match="missing"):
        Store(tmp_path / "missing" / "state.db")
