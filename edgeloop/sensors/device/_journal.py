"""The on-device journal: the outbox survives a crash (``kill -9``) of the agent.

An append-only file of length-prefixed, CRC-checked MessagePack records: every event as it
is numbered, every cumulative ack, every overflow drop. Each record is one ``write`` on an
unbuffered file, so once :meth:`Journal.event` returns the record is in the kernel's page
cache and survives the death of the process (a power cut needs ``fsync=True``, which costs
a disk flush per record). On start, :meth:`Journal.open` reads the file back: the events
not yet acknowledged become the outbox again and numbering continues after the highest
number ever handed out, so a restarted device never reuses a sequence number (the twin
would drop the new event as a duplicate).

A record cut short by a crash in the middle of a write can only be the last one; it fails
its length or CRC check, and the file is truncated there (logged as
``journal_truncated``). When the file has grown past ``compact_bytes`` it is rewritten
with just the state and the events still held, into a new file renamed over the old one
(atomic on POSIX), so it stays about as large as the outbox.

One agent at a time: the journal holds a lock on ``journal.bin.lock`` (``flock``) while
it is open, which the kernel drops when the process dies, so a second agent started on the
same data directory is refused instead of interleaving its records.

Record layout (little-endian): ``u32 length``, ``u32 crc32(body)``, ``body``; the body is
a MessagePack map tagged by ``kind``: ``event`` (an Event, as on the wire), ``j_ack``
(``seq``), ``j_drop`` (``dropped``, ``oldest``) or ``j_state`` (``next_seq``, ``acked``,
``dropped``; the first record of a compacted file).
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import struct
import zlib
from pathlib import Path
from typing import Final

import msgspec
import structlog

from edgeloop.errors import JournalError
from edgeloop.messages import Event

__all__ = ["Journal", "Recovered"]

_log = structlog.get_logger("edgeloop.sensors.device")

_PREFIX: Final = struct.Struct("<II")
_MAX_RECORD: Final = 1 << 20  # an event is a few hundred bytes; a larger length is damage


class _Ack(msgspec.Struct, frozen=True, tag_field="kind", tag="j_ack"):
    seq: int


class _Drop(msgspec.Struct, frozen=True, tag_field="kind", tag="j_drop"):
    dropped: int
    oldest: int


class _State(msgspec.Struct, frozen=True, tag_field="kind", tag="j_state"):
    next_seq: int
    acked: int
    dropped: int


_Record = Event | _Ack | _Drop | _State
_ENCODER = msgspec.msgpack.Encoder()
_DECODER: msgspec.msgpack.Decoder[_Record] = msgspec.msgpack.Decoder(_Record)


@dataclasses.dataclass(frozen=True, slots=True)
class Recovered:
    """What a journal held: events not yet acknowledged (oldest first), the next number
    to hand out, the highest acknowledged, the overflow drops so far, and how many bytes of
    a damaged tail were cut off (0 for a clean file)."""

    events: list[Event]
    next_seq: int
    acked: int
    dropped: int
    truncated: int


class Journal:
    """An append-only record of a device's outbox (see the module docstring)."""

    def __init__(
        self, path: Path, recovered: Recovered, *, fsync: bool, compact_bytes: int, lock: int
    ) -> None:
        self.path = path
        self.recovered = recovered
        self.fsync = fsync
        self.compact_bytes = compact_bytes
        self._lock = lock  # held while this journal is open (see _claim)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size

    @classmethod
    def open(
        cls, path: Path | str, *, fsync: bool = False, compact_bytes: int = 4 << 20
    ) -> Journal:
        """Open (or create) the journal at ``path`` and read back what it holds
        (:attr:`recovered`). JournalError if the file cannot be read or written."""
        path = Path(path)
        lock = -1
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = _claim(path)  # before reading: another agent may be writing
            data = path.read_bytes() if path.exists() else b""
            recovered, good = _replay(data)
            if good < len(data):
                with open(path, "r+b") as handle:
                    handle.truncate(good)
                _log.warning(
                    "journal_truncated",
                    path=str(path),
                    offset=good,
                    cut_bytes=len(data) - good,
                )
            return cls(path, recovered, fsync=fsync, compact_bytes=compact_bytes, lock=lock)
        except OSError as error:
            if lock >= 0:
                os.close(lock)
            raise JournalError(
                f"cannot use the device journal {str(path)!r}: {error}; check that the "
                "device's data_dir exists and is writable"
            ) from error

    # -- appending ---------------------------------------------------------------------

    def event(self, event: Event) -> None:
        """Record a newly numbered event (before it is first sent)."""
        self._append(_ENCODER.encode(event))

    def ack(self, seq: int) -> None:
        """Record a cumulative ack."""
        self._append(_ENCODER.encode(_Ack(seq)))

    def drop(self, dropped: int, oldest: int) -> None:
        """Record an overflow: ``dropped`` in all so far; nothing below ``oldest`` is held."""
        self._append(_ENCODER.encode(_Drop(dropped, oldest)))

    def should_compact(self) -> bool:
        return self._size >= self.compact_bytes

    def compact(self, pending: list[Event], *, next_seq: int, acked: int, dropped: int) -> None:
        """Rewrite the file as the state plus ``pending`` (atomically: a new file, renamed)."""
        records = [_ENCODER.encode(_State(next_seq, acked, dropped))]
        records += [_ENCODER.encode(event) for event in pending]
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as handle:
                for body in records:
                    handle.write(_frame(body))
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            self._size = os.fstat(self._fd).st_size
        except OSError as error:
            msg = f"cannot compact the device journal {str(self.path)!r}: {error}"
            raise JournalError(msg) from error
        # A larger outbox than compact_bytes would compact on every record: grow the bar.
        self.compact_bytes = max(self.compact_bytes, 2 * self._size)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            os.close(self._lock)  # releases the claim
            self._fd = -1

    def _append(self, body: bytes) -> None:
        record = _frame(body)
        try:
            os.write(self._fd, record)
            if self.fsync:
                os.fsync(self._fd)
        except OSError as error:
            raise JournalError(
                f"cannot append to the device journal {str(self.path)!r}: {error}"
            ) from error
        self._size += len(record)


def _claim(path: Path) -> int:
    """Lock ``path``'s ``.lock`` file for this process (released when it is closed or the
    process dies, even by SIGKILL); JournalError if another agent holds it."""
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JournalError(
            f"another agent is using the journal {str(path)!r}: run one agent per device "
            "and data_dir (stop the other one, or give this one its own data_dir)"
        ) from None
    return fd


def _frame(body: bytes) -> bytes:
    return _PREFIX.pack(len(body), zlib.crc32(body)) + body


def _replay(data: bytes) -> tuple[Recovered, int]:
    """What ``data`` holds, and how many of its bytes are sound records."""
    events: dict[int, Event] = {}
    next_seq, acked, dropped, oldest = 1, 0, 0, 1
    offset = 0
    while offset + _PREFIX.size <= len(data):
        length, crc = _PREFIX.unpack_from(data, offset)
        start = offset + _PREFIX.size
        if length > _MAX_RECORD or start + length > len(data):
            break
        body = data[start : start + length]
        if zlib.crc32(body) != crc:
            break
        try:
            record = _DECODER.decode(body)
        except msgspec.DecodeError:
            break
        offset = start + length
        if isinstance(record, Event):
            events[record.seq] = record
            next_seq = max(next_seq, record.seq + 1)
        elif isinstance(record, _Ack):
            acked = max(acked, record.seq)
        elif isinstance(record, _Drop):
            dropped, oldest = max(dropped, record.dropped), max(oldest, record.oldest)
        else:
            next_seq, acked, dropped = record.next_seq, record.acked, record.dropped
            events.clear()
    floor = max(acked, oldest - 1)
    held = [events[seq] for seq in sorted(events) if seq > floor]
    return Recovered(held, next_seq, acked, dropped, len(data) - offset), offset
