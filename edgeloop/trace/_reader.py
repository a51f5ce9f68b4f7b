"""Reading traces: open one (a file or a recorder's directory), iterate typed messages,
filter by topic, direction and time, get columns for plotting, export JSON lines.

Every file is scanned once when it is opened, record by record, so that damage is found
up front and named by its byte offset: a truncated file (a recorder killed mid-chunk) or
a damaged chunk raises :class:`~edgeloop.errors.TraceCorruptError`, and with
``salvage=True`` everything before the damage is still read (finished chunks stay intact,
which is why the recorder writes small ones).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec
from mcap.exceptions import InvalidMagic
from mcap.records import Channel, Chunk, Header, McapRecord, Metadata, Schema
from mcap.records import Message as McapMessage
from mcap.stream_reader import StreamReader, breakup_chunk

from edgeloop.errors import DecodeError, TraceCorruptError, TraceError, TraceFormatError
from edgeloop.messages import KINDS, decode, decode_body, kind_of
from edgeloop.trace._format import (
    MESSAGE_ENCODING,
    PROFILE,
    TRACE_METADATA,
    Direction,
    Frame,
    FrameRecord,
    TraceRecord,
    from_ns,
    parse_frame_topic,
    parse_topic,
)

__all__ = ["Trace", "TraceInfo", "ChannelInfo", "open_trace", "trace_files"]

SNAPSHOT_MARK = "_snapshot_"
"""Snapshot files carry this in their name; opening a directory skips them."""


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelInfo:
    """One topic of a trace: who, which way, which kind, how many messages."""

    topic: str
    direction: str
    device: str
    kind: str
    schema: str
    count: int


@dataclasses.dataclass(frozen=True, slots=True)
class TraceInfo:
    """What ``edgeloop trace info`` prints."""

    paths: tuple[Path, ...]
    size: int
    messages: int
    start: float | None
    end: float | None
    channels: tuple[ChannelInfo, ...]
    schemas: tuple[str, ...]
    compression: tuple[str, ...]
    metadata: dict[str, dict[str, str]]
    damage: tuple[str, ...]

    @property
    def duration(self) -> float:
        return 0.0 if self.start is None or self.end is None else self.end - self.start

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["paths"] = [str(p) for p in self.paths]
        data["duration"] = self.duration
        return data


@dataclasses.dataclass
class _Channel:
    topic: str
    kind: str  # "" for frames
    direction: Direction | None
    device: str
    schema: str


@dataclasses.dataclass
class _FileScan:
    path: Path
    size: int
    header: Header | None = None
    channels: dict[int, _Channel] = dataclasses.field(default_factory=dict)
    counts: Counter[int] = dataclasses.field(default_factory=Counter)
    schemas: dict[int, str] = dataclasses.field(default_factory=dict)
    metadata: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    compression: set[str] = dataclasses.field(default_factory=set)
    first_ns: int | None = None
    last_ns: int | None = None
    damage: TraceCorruptError | None = None


def trace_files(path: str | Path) -> list[Path]:
    """The files of a trace: the file itself, or a directory's split files in order
    (snapshot files are opened one by one, by their own path)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.mcap") if SNAPSHOT_MARK not in p.name)
        if not files:
            msg = f"{path} holds no trace files (*.mcap, snapshots aside); record one first"
            raise TraceError(msg)
        return files
    if not path.exists():
        msg = f"no trace at {path}: pass an .mcap file or a recorder's directory"
        raise TraceError(msg)
    return [path]


def open_trace(path: str | Path, *, salvage: bool = False) -> Trace:
    """Open the trace at ``path`` (an ``.mcap`` file or a recorder's directory).

    Raises :class:`~edgeloop.errors.TraceFormatError` for a file that is not an edgeloop
    trace and :class:`~edgeloop.errors.TraceCorruptError` (naming the byte offset) for a
    damaged or truncated one, unless ``salvage``: then the readable part is used and
    :attr:`Trace.damage` says what was lost.
    """
    scans = [_scan(file) for file in trace_files(path)]
    if not salvage:
        for scan in scans:
            if scan.damage is not None:
                raise scan.damage
    return Trace(scans, salvage=salvage)


class Trace:
    """An opened trace: iterate it, filter it, tabulate it. Reading is lazy and repeatable."""

    def __init__(self, scans: list[_FileScan], *, salvage: bool = False) -> None:
        self._scans = scans
        self.salvage = salvage
        self.paths = tuple(s.path for s in scans)
        self.skipped = 0
        """Messages a salvaging read could not decode (and left out)."""

    @property
    def damage(self) -> tuple[TraceCorruptError, ...]:
        """The damage found in each file (empty for an intact trace)."""
        return tuple(s.damage for s in self._scans if s.damage is not None)

    @property
    def metadata(self) -> dict[str, dict[str, str]]:
        """The files' metadata records by name (the first file's win on a clash)."""
        merged: dict[str, dict[str, str]] = {}
        for scan in reversed(self._scans):
            merged.update(scan.metadata)
        return merged

    @property
    def start(self) -> float | None:
        """The node clock at the first message (or when recording started, if earlier)."""
        starts = [from_ns(s.first_ns) for s in self._scans if s.first_ns is not None]
        clock = self.metadata.get(TRACE_METADATA, {}).get("clock_start")
        if clock is not None:
            starts.append(float(clock))
        return min(starts) if starts else None

    @property
    def end(self) -> float | None:
        ends = [from_ns(s.last_ns) for s in self._scans if s.last_ns is not None]
        return max(ends) if ends else None

    def info(self) -> TraceInfo:
        counts: Counter[str] = Counter()
        channels: dict[str, _Channel] = {}
        schemas: set[str] = set()
        compression: set[str] = set()
        for scan in self._scans:
            for channel_id, channel in scan.channels.items():
                channels.setdefault(channel.topic, channel)
                counts[channel.topic] += scan.counts[channel_id]
            schemas.update(scan.schemas.values())
            compression.update(scan.compression)
        rows = tuple(
            ChannelInfo(
                topic=topic,
                direction=channel.direction or "frames",
                device=channel.device,
                kind=channel.kind or "frame",
                schema=channel.schema,
                count=counts[topic],
            )
            for topic, channel in sorted(channels.items())
        )
        return TraceInfo(
            paths=self.paths,
            size=sum(s.size for s in self._scans),
            messages=sum(counts.values()),
            start=self.start,
            end=self.end,
            channels=rows,
            schemas=tuple(sorted(schemas)),
            compression=tuple(sorted(compression)),
            metadata=self.metadata,
            damage=tuple(str(d) for d in self.damage),
        )

    def records(
        self,
        *,
        topics: str | re.Pattern[str] | None = None,
        direction: Direction | None = None,
        kinds: Iterable[str] | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> Iterator[TraceRecord]:
        """The boundary messages in file order (the order the node's taps saw them),
        typed; ``topics`` is a regular expression searched in each topic
        (``/in/cam-1/event``), ``start``/``end`` bound the node-clock time (inclusive)."""
        pattern = re.compile(topics) if isinstance(topics, str) else topics
        wanted = frozenset(kinds) if kinds is not None else None

        def keep(channel: _Channel) -> bool:
            return (
                channel.direction is not None
                and (direction is None or channel.direction == direction)
                and (wanted is None or channel.kind in wanted)
                and (pattern is None or pattern.search(channel.topic) is not None)
            )

        for channel, record, where in self._messages(keep, start, end):
            try:
                message = decode(record.data)
            except DecodeError as error:
                at = f" at {error.field}" if error.field else ""
                self._undecodable(channel, where, f"does not decode{at} ({error})")
                continue
            if kind_of(message) != channel.kind:
                self._undecodable(channel, where, f"holds a {kind_of(message)!r}")
                continue
            assert channel.direction is not None
            yield TraceRecord(channel.direction, channel.device, message, from_ns(record.log_time))

    def frames(
        self, *, device: str | None = None, start: float | None = None, end: float | None = None
    ) -> Iterator[FrameRecord]:
        """The full frames the recorder kept (within its frame budget)."""

        def keep(channel: _Channel) -> bool:
            return channel.direction is None and (device is None or channel.device == device)

        for channel, record, where in self._messages(keep, start, end):
            try:
                frame = decode_body(record.data, Frame)
            except DecodeError as error:
                self._undecodable(channel, where, f"does not decode ({error})")
                continue
            yield FrameRecord(channel.device, frame, from_ns(record.log_time))

    def columns(
        self,
        kind: str,
        *,
        topics: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> dict[str, list[Any]]:
        """Messages of one ``kind`` as columns, ready for ``pandas.DataFrame(...)`` or a
        plot: ``log_time`` (node clock, s), ``direction``, ``topic`` and each field."""
        table: dict[str, list[Any]] = {"log_time": [], "direction": [], "topic": []}
        for record in self.records(topics=topics, kinds=(kind,), start=start, end=end):
            fields = msgspec.structs.asdict(record.message)
            if len(table) == 3:
                table.update({name: [] for name in fields})
            table["log_time"].append(record.ts)
            table["direction"].append(record.direction)
            table["topic"].append(record.topic)
            for name, value in fields.items():
                table[name].append(value)
        return table

    def export_jsonl(self, out: IO[str], **filters: Any) -> int:
        """Write one JSON object per message (bytes as base64); returns how many."""
        count = 0
        for record in self.records(**filters):
            line = {
                "ts": record.ts,
                "topic": record.topic,
                "direction": record.direction,
                "device": record.device,
                "kind": record.kind,
                "message": msgspec.to_builtins(record.message),
            }
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
            count += 1
        return count

    def __iter__(self) -> Iterator[TraceRecord]:
        return self.records()

    def __repr__(self) -> str:
        return f"<Trace {', '.join(str(p) for p in self.paths)}>"

    # -- internals ---------------------------------------------------------------------

    def _messages(
        self, keep: Callable[[_Channel], bool], start: float | None, end: float | None
    ) -> Iterator[tuple[_Channel, McapMessage, str]]:
        low = None if start is None else round(start * 1e9)
        high = None if end is None else round(end * 1e9)
        for scan in self._scans:
            stop = scan.damage.offset if scan.damage is not None else None
            for offset, record in _walk(scan.path, stop=stop):
                if not isinstance(record, McapMessage):
                    continue
                channel = scan.channels.get(record.channel_id)
                if channel is None or not keep(channel):
                    continue
                if (low is not None and record.log_time < low) or (
                    high is not None and record.log_time > high
                ):
                    continue
                yield channel, record, f"{scan.path} byte {offset}"

    def _undecodable(self, channel: _Channel, where: str, problem: str) -> None:
        if not self.salvage:
            msg = (
                f"a message on {channel.topic} ({where}) {problem}; the file is damaged or "
                "was written by another program; read it with salvage=True to skip it"
            )
            raise TraceFormatError(msg)
        self.skipped += 1


def _walk(path: Path, *, stop: int | None = None) -> Iterator[tuple[int, McapRecord]]:
    """Every record of one file with the offset of the top-level record holding it (a
    chunk's records share the chunk's); stops before ``stop``. Raises TraceCorruptError
    at the first record that cannot be read, TraceFormatError if it is not MCAP at all."""
    with open(path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        reader = StreamReader(stream, emit_chunks=True, record_size_limit=max(size, 1))
        offset = 0
        try:
            for record in reader.records:
                if stop is not None and offset >= stop:
                    return
                end = stream.tell()
                if isinstance(record, Chunk):
                    try:
                        inner = breakup_chunk(record, validate_crc=True)
                    except Exception as error:
                        raise TraceCorruptError(
                            str(path), offset, f"a damaged chunk ({_describe(error)})"
                        ) from error
                    yield offset, record
                    for item in inner:
                        yield offset, item
                else:
                    yield offset, record
                offset = end
        except TraceError:
            if stop is not None and offset >= stop:
                return  # the damage the scan found: the readable part is done
            raise
        except InvalidMagic as error:
            if offset == 0:
                msg = f"{path} is not an MCAP file (it does not start with the MCAP magic)"
                raise TraceFormatError(msg) from error
            raise TraceCorruptError(str(path), offset, "a damaged end of file") from error
        except Exception as error:
            if stop is not None and offset >= stop:
                return
            if stream.tell() >= size:
                problem = (
                    "the file ends early, without its MCAP footer (truncated: was the "
                    "recorder stopped abruptly?)"
                )
            else:
                problem = f"an unreadable record ({_describe(error)})"
            raise TraceCorruptError(str(path), offset, problem) from error


def _scan(path: Path) -> _FileScan:
    """Read a file once: its channels, counts, times and metadata, and where damage starts."""
    scan = _FileScan(path, path.stat().st_size)
    try:
        for _offset, record in _walk(path):
            if isinstance(record, McapMessage):
                scan.counts[record.channel_id] += 1
                ns = record.log_time
                scan.first_ns = ns if scan.first_ns is None else min(scan.first_ns, ns)
                scan.last_ns = ns if scan.last_ns is None else max(scan.last_ns, ns)
            elif isinstance(record, Channel):
                scan.channels[record.id] = _check_channel(path, record, scan.schemas)
            elif isinstance(record, Schema):
                scan.schemas[record.id] = record.name
            elif isinstance(record, Header):
                scan.header = record
            elif isinstance(record, Metadata):
                scan.metadata[record.name] = dict(record.metadata)
            elif isinstance(record, Chunk):
                scan.compression.add(record.compression or "none")
    except TraceCorruptError as error:
        scan.damage = error
    return scan


def _check_channel(path: Path, record: Channel, schemas: dict[int, str]) -> _Channel:
    if record.message_encoding != MESSAGE_ENCODING:
        msg = (
            f"{path}: channel {record.topic!r} is encoded as {record.message_encoding!r}; "
            f"edgeloop traces use {MESSAGE_ENCODING!r} (profile {PROFILE!r}, written by "
            "`edgeloop record` or `node start --record`): read this file with the mcap tools"
        )
        raise TraceFormatError(msg)
    schema = schemas.get(record.schema_id, "")
    parsed = parse_topic(record.topic)
    if parsed is not None:
        direction, device, kind = parsed
        if kind not in KINDS:
            msg = (
                f"{path}: channel {record.topic!r} carries {kind!r}, a message kind this "
                f"edgeloop does not know; upgrade edgeloop to read this trace"
            )
            raise TraceFormatError(msg)
        return _Channel(record.topic, kind, direction, device, schema)
    frame_device = parse_frame_topic(record.topic)
    if frame_device is not None:
        return _Channel(record.topic, "", None, frame_device, schema)
    msg = (
        f"{path}: channel {record.topic!r} is not an edgeloop trace topic "
        "(/in/<device>/<kind>, /out/<device>/<kind> or /frames/<device>)"
    )
    raise TraceFormatError(msg)


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text
