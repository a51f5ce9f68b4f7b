"""A versioned, time-indexed key-value store, on SQLite by default.

Every ``put(key, value, ts)`` adds a new version of ``key`` (1, 2, 3, ... per key, never
reused) stamped with ``ts``; nothing is overwritten. Reads take the latest version, a
given version, or the version in effect *as of* a time: the newest version whose ``ts`` is
at or before it. :meth:`Store.compact` drops versions nobody can ask for any more.

Why SQLite: one file, transactions that survive a crash of the process mid-write (the
learner's snapshot is either all there or not there), readers that do not wait for a
writer (WAL), and locking between processes, all in the standard library. A store is
safe to share between threads (one connection behind a lock) and between processes on
the same file (SQLite's own locks, waited on for ``timeout`` seconds).

Bad input (an empty key, a value that is not bytes, a NaN time) raises
:class:`~edgeloop.errors.StoreInputError` and is counted; a file that is not a store, or a
damaged one, raises :class:`~edgeloop.errors.StoreCorruptError`; a file another writer
keeps locked past the timeout raises :class:`~edgeloop.errors.StoreLockedError`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

from edgeloop.errors import (
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreInputError,
    StoreLockedError,
)

__all__ = ["Store", "Record", "StoreStatistics", "FORMAT", "SCHEMA_VERSION", "MAX_KEY_LENGTH"]

FORMAT = "edgeloop-store"
"""What the ``meta`` table of every store file says it is."""
SCHEMA_VERSION = 1
"""The table layout this module writes and reads."""
MAX_KEY_LENGTH = 256
"""Longest key, in characters."""

_T = TypeVar("_T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # The next version of each key lives apart from the records, so versions are never
    # reused after compaction or deletion.
    "CREATE TABLE IF NOT EXISTS heads (key TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    " WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS records (key TEXT NOT NULL, version INTEGER NOT NULL,"
    " ts REAL NOT NULL, value BLOB NOT NULL, PRIMARY KEY (key, version)) WITHOUT ROWID",
)
_COLUMNS = "key, version, ts, value"


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """One version of one key: its bytes and the time it was stamped with."""

    key: str
    version: int
    ts: float
    value: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class StoreStatistics:
    """What a store has done since it was opened (``rejected``: calls with bad input)."""

    path: str
    puts: int
    reads: int
    rejected: int
    removed: int


class Store:
    """A versioned, time-indexed key-value store in one SQLite file (``":memory:"`` for
    one that lives as long as the object).

    Use it as a context manager or call :meth:`close`. ``timeout`` is how many seconds a
    call waits for another process's lock before :class:`StoreLockedError`.
    """

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *, timeout: float = 5.0) -> None:
        self.path = os.fspath(path)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
            raise StoreInputError(f"timeout must be seconds >= 0, got {timeout!r}", path=self.path)
        self._lock = threading.Lock()
        self._puts = self._reads = self._rejected = self._removed = 0
        try:
            self._db: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise self._translate(error, "open") from error
        try:
            self._guarded("open", self._prepare)
        except BaseException:
            self._db.close()
            self._db = None
            raise

    # -- writing ---------------------------------------------------------------------

    def put(self, key: str, value: bytes | bytearray | memoryview, ts: float) -> int:
        """Store ``value`` as the next version of ``key``, stamped ``ts``; its version."""
        self._check_key(key)
        if not isinstance(value, bytes | bytearray | memoryview):
            self._reject(f"value for {key!r} must be bytes, got {type(value).__name__}")
        stamp = self._check_ts(ts, "ts")
        blob = bytes(value)

        def write(db: sqlite3.Connection) -> int:
            with _transaction(db, immediate=True):
                row = db.execute(
                    "INSERT INTO heads (key, version) VALUES (?, 1) ON CONFLICT (key) "
                    "DO UPDATE SET version = version + 1 RETURNING version",
                    (key,),
                ).fetchone()
                version = int(row[0])
                db.execute(
                    "INSERT INTO records (key, version, ts, value) VALUES (?, ?, ?, ?)",
                    (key, version, stamp, blob),
                )
            self._puts += 1
            return version

        return self._guarded("put", write)

    def delete(self, key: str) -> int:
        """Remove every version of ``key``; how many were removed. Versions are not reused."""
        self._check_key(key)

        def remove(db: sqlite3.Connection) -> int:
            count = db.execute("DELETE FROM records WHERE key = ?", (key,)).rowcount
            self._removed += count
            return int(count)

        return self._guarded("delete", remove)

    def compact(
        self, *, keep_last: int = 1, before: float | None = None, key: str | None = None
    ) -> int:
        """Drop versions nobody can ask for any more; how many were dropped.

        A version goes when it is not among the newest ``keep_last`` of its key and, if
        ``before`` is given, a newer version was stamped at or before ``before``. So every
        ``get(key, as_of=t)`` with ``t >= before`` answers as it did, and the newest
        ``keep_last`` versions of every key stay readable by number. ``key`` limits it to
        one key (a store may be shared).
        """
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
            self._reject(f"keep_last must be an integer >= 1, got {keep_last!r}")
        if key is not None:
            self._check_key(key)
        # With no ``before``, any newer version supersedes: the cutoff is the largest time.
        cutoff = 1e308 if before is None else self._check_ts(before, "before")

        def drop(db: sqlite3.Connection) -> int:
            with _transaction(db, immediate=True):
                count = db.execute(
                    "DELETE FROM records AS r WHERE"
                    " (SELECT count(*) FROM records AS n WHERE n.key = r.key"
                    "  AND n.version > r.version) >= ?"
                    " AND EXISTS (SELECT 1 FROM records AS n WHERE n.key = r.key"
                    "  AND n.version > r.version AND n.ts <= ?)"
                    " AND (? IS NULL OR r.key = ?)",
                    (keep_last, cutoff, key, key),
                ).rowcount
            self._removed += count
            return int(count)

        return self._guarded("compact", drop)

    # -- reading ---------------------------------------------------------------------

    def get(
        self, key: str, *, version: int | None = None, as_of: float | None = None
    ) -> Record | None:
        """The latest version of ``key``, or version ``version``, or the newest version
        stamped at or before ``as_of``; ``None`` when there is no such version."""
        self._check_key(key)
        if version is not None and as_of is not None:
            self._reject("get() takes version or as_of, not both")
        if version is not None:
            self._check_version(version)
            sql = f"SELECT {_COLUMNS} FROM records WHERE key = ? AND version = ?"
            args: tuple[Any, ...] = (key, version)
        elif as_of is not None:
            sql = (
                f"SELECT {_COLUMNS} FROM records WHERE key = ? AND ts <= ?"
                " ORDER BY version DESC LIMIT 1"
            )
            args = (key, self._check_ts(as_of, "as_of"))
        else:
            sql = f"SELECT {_COLUMNS} FROM records WHERE key = ? ORDER BY version DESC LIMIT 1"
            args = (key,)

        def read(db: sqlite3.Connection) -> Record | None:
            row = db.execute(sql, args).fetchone()
            self._reads += 1
            return None if row is None else _record(row)

        return self._guarded("get", read)

    def history(
        self, key: str, *, since_version: int = 0, limit: int | None = None
    ) -> list[Record]:
        """The versions of ``key`` newer than ``since_version``, oldest first (at most
        ``limit`` of them)."""
        self._check_key(key)
        if since_version != 0:
            self._check_version(since_version)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            self._reject(f"limit must be an integer or None, got {limit!r}")
        bound = -1 if limit is None else max(0, limit)

        def read(db: sqlite3.Connection) -> list[Record]:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM records WHERE key = ? AND version > ?"
                " ORDER BY version LIMIT ?",
                (key, since_version, bound),
            ).fetchall()
            self._reads += 1
            return [_record(row) for row in rows]

        return self._guarded("history", read)

    def keys(self, prefix: str = "") -> list[str]:
        """Every key with at least one version, sorted; only those starting with ``prefix``."""
        if not isinstance(prefix, str):
            self._reject(f"prefix must be a str, got {type(prefix).__name__}")

        def read(db: sqlite3.Connection) -> list[str]:
            rows = db.execute("SELECT DISTINCT key FROM records ORDER BY key").fetchall()
            self._reads += 1
            return [str(row[0]) for row in rows if str(row[0]).startswith(prefix)]

        return self._guarded("keys", read)

    def statistics(self) -> StoreStatistics:
        """Counters since the store was opened."""
        return StoreStatistics(
            path=self.path,
            puts=self._puts,
            reads=self._reads,
            rejected=self._rejected,
            removed=self._removed,
        )

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close the file; later calls raise :class:`StoreClosedError`. Idempotent."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @property
    def closed(self) -> bool:
        return self._db is None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {self.path} {'closed' if self.closed else 'open'}>"

    # -- internals -------------------------------------------------------------------

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Check the file is a store of this schema (or empty), then create the tables."""
        if self.path != ":memory:":
            db.execute("PRAGMA journal_mode = WAL")  # readers never wait for the writer
        tables = {
            str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if tables and "meta" not in tables:
            raise StoreCorruptError(
                f"{self.path} is an SQLite file but not an edgeloop store (tables: "
                f"{', '.join(sorted(tables))}); pass the path of a store or of a new file",
                path=self.path,
            )
        with _transaction(db, immediate=True):
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('format', ?), ('schema', ?)",
                (FORMAT, str(SCHEMA_VERSION)),
            )
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        if meta.get("format") != FORMAT or meta.get("schema") != str(SCHEMA_VERSION):
            raise StoreCorruptError(
                f"{self.path} says it is format {meta.get('format')!r} schema "
                f"{meta.get('schema')!r}; this edgeloop reads {FORMAT!r} schema "
                f"{SCHEMA_VERSION}: use a matching edgeloop or a new file",
                path=self.path,
            )

    def _guarded(self, operation: str, work: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            if self._db is None:
                raise StoreClosedError(
                    f"store {self.path} is closed; open a new Store to {operation}", path=self.path
                )
            try:
                return work(self._db)
            except sqlite3.Error as error:
                raise self._translate(error, operation) from error

    def _translate(self, error: sqlite3.Error, operation: str) -> StoreError:
        text = str(error)
        lowered = text.lower()
        if "locked" in lowered or "busy" in lowered:
            return StoreLockedError(
                f"{operation} on {self.path}: the file stayed locked by another connection "
                f"({text}); stop the other writer or open with a longer timeout",
                path=self.path,
            )
        if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
            return StoreCorruptError(
                f"{operation} on {self.path}: the file is damaged or not a store ({text}); "
                "move it aside and start from a new file",
                path=self.path,
            )
        return StoreError(f"{operation} on {self.path} failed: {text}", path=self.path)

    def _reject(self, message: str) -> NoReturn:
        self._rejected += 1
        raise StoreInputError(message, path=self.path)

    def _check_key(self, key: object) -> None:
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH or "\x00" in key:
            self._reject(
                f"key must be a str of 1 to {MAX_KEY_LENGTH} characters without NUL, "
                f"got {key!r:.80}"
            )

    def _check_ts(self, ts: object, name: str) -> float:
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            self._reject(f"{name} must be a finite number of seconds, got {ts!r}")
        return float(ts)

    def _check_version(self, version: object) -> None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            self._reject(f"version must be an integer >= 1, got {version!r}")


def _record(row: tuple[Any, ...]) -> Record:
    return Record(key=str(row[0]), version=int(row[1]), ts=float(row[2]), value=bytes(row[3]))


@contextmanager
def _transaction(db: sqlite3.Connection, *, immediate: bool) -> Iterator[None]:
    """One transaction: committed if the block returns, rolled back if it raises."""
    db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back already (a full disk, say)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
