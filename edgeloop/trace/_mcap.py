"""A chunked MCAP writer whose per-message cost is one ``struct.pack``.

The ``mcap`` package's :class:`mcap.writer.Writer` builds several Python objects per
message (about 17 µs each here); a recorder sharing the GIL with the node it records
cannot afford that on every boundary crossing. This writer packs message records straight
into the open chunk and keeps its message index as plain lists; everything that is rare
(header, schemas, channels, chunks, indexes, summary, footer) is written with the
``mcap`` package's own record classes, so the layout is the library's. Files it writes
are read by ``mcap.reader`` (tests check that, CRCs included).

Schemas and channels go into the chunk that first uses them, so every finished chunk of
a file that was cut short is readable on its own.
"""

from __future__ import annotations

import struct
import zlib
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from itertools import accumulate, chain, repeat
from typing import IO, TYPE_CHECKING

import numpy as np
from mcap.data_stream import RecordBuilder
from mcap.opcode import Opcode
from mcap.records import (
    Channel,
    Chunk,
    ChunkIndex,
    DataEnd,
    Footer,
    Header,
    McapRecord,
    Metadata,
    MetadataIndex,
    Schema,
    Statistics,
    SummaryOffset,
)

if TYPE_CHECKING:
    from msgspec import Raw

__all__ = ["McapWriter", "MAGIC", "MESSAGE_HEAD", "load_codec"]

MAGIC = b"\x89MCAP0\r\n"

MESSAGE_HEAD = struct.Struct("<BQHIQQ")
"""A message record's head: opcode, length, channel, sequence, log and publish time."""
_MESSAGE = MESSAGE_HEAD
_MESSAGE_FIXED = 2 + 4 + 8 + 8
_HEAD_SIZE = _MESSAGE.size
_INDEX_HEAD = struct.Struct("<BQHI")  # opcode, length, channel, byte length of the pairs


def _compressor(compression: str) -> tuple[str, object]:
    if compression == "zstd":
        import zstandard

        return "zstd", zstandard.ZstdCompressor()
    if compression == "lz4":
        import lz4.frame  # type: ignore[import-untyped]

        return "lz4", lz4.frame
    return "", None


def load_codec(compression: str) -> None:
    """Import ``compression``'s library now (a writer imports it with its first file)."""
    _compressor(compression)


class McapWriter:
    """Writes one MCAP file to ``stream`` (which it does not close)."""

    def __init__(self, stream: IO[bytes], *, chunk_size: int, compression: str) -> None:
        self._stream = stream
        self.chunk_size = chunk_size
        self._compression, self._codec = _compressor(compression)
        self.chunk = bytearray()
        self.index: dict[int, list[int]] = defaultdict(list)  # channel -> [time, offset, ...]
        self._schemas: list[Schema] = []
        self._channels: list[Channel] = []
        self.chunk_indexes: list[ChunkIndex] = []
        self._metadata_indexes: list[MetadataIndex] = []
        self._counts: dict[int, int] = defaultdict(int)
        self._message_count = 0
        self._start_time: int | None = None
        self._end_time = 0
        self.chunk_count = 0
        self._metadata_count = 0

    def start(self, profile: str, library: str) -> None:
        self._stream.write(MAGIC)
        self._stream.write(_bytes_of(Header(profile=profile, library=library)))

    def register_schema(self, name: str, encoding: str, data: bytes) -> int:
        schema = Schema(id=len(self._schemas) + 1, name=name, encoding=encoding, data=data)
        self._schemas.append(schema)
        self.chunk += _bytes_of(schema)
        return schema.id

    def register_channel(
        self, topic: str, message_encoding: str, schema_id: int, metadata: dict[str, str]
    ) -> int:
        channel = Channel(
            id=len(self._channels) + 1,
            topic=topic,
            message_encoding=message_encoding,
            schema_id=schema_id,
            metadata=metadata,
        )
        self._channels.append(channel)
        self.chunk += _bytes_of(channel)
        return channel.id

    def add_message(self, channel_id: int, log_time: int, data: bytes) -> None:
        """Append one message to the open chunk (counts and times are taken from the
        chunk's index when it is written, not per message)."""
        chunk = self.chunk
        index = self.index[channel_id]
        index.append(log_time)
        index.append(len(chunk))
        chunk += _MESSAGE.pack(
            5, _MESSAGE_FIXED + len(data), channel_id, 0, log_time, log_time
        )  # 5: Opcode.MESSAGE
        chunk += data
        if len(chunk) >= self.chunk_size:
            self.flush_chunk()

    def add_messages(
        self, channels: Sequence[int], times: Sequence[int], datas: Sequence[bytes | Raw]
    ) -> None:
        """Append many messages (equal-length columns) as :meth:`add_message` would, one
        C-level pass per column instead of a Python loop: the writer process's path."""
        begin, count = 0, len(datas)
        while begin < count:
            chunk = self.chunk
            lengths = list(map(len, datas[begin:]))
            # starts[k]: where message k begins in the chunk; starts[-1]: the end
            starts = list(accumulate(map(_HEAD_SIZE.__add__, lengths), initial=len(chunk)))
            end = min(bisect_left(starts, self.chunk_size, 1), len(lengths))  # fills it
            stop = begin + end
            ids, stamps = channels[begin:stop], times[begin:stop]
            heads = map(
                _MESSAGE.pack,
                repeat(5),  # Opcode.MESSAGE
                map(_MESSAGE_FIXED.__add__, lengths[:end]),
                ids,
                repeat(0),
                stamps,
                stamps,
            )
            chunk += b"".join(chain.from_iterable(zip(heads, datas[begin:stop], strict=True)))
            self._index_many(ids, stamps, starts[:end])
            if len(chunk) >= self.chunk_size:
                self.flush_chunk()
            begin = stop

    def _index_many(
        self, channels: Sequence[int], times: Sequence[int], offsets: Sequence[int]
    ) -> None:
        """Add (time, offset) pairs to each channel's index, grouped with numpy."""
        ids = np.asarray(channels, dtype=np.int64)
        order = np.argsort(ids, kind="stable")  # chunk order within each channel
        pairs = np.empty((len(ids), 2), dtype=np.int64)
        pairs[:, 0] = np.asarray(times, dtype=np.int64)[order]
        pairs[:, 1] = np.asarray(offsets, dtype=np.int64)[order]
        flat: list[int] = pairs.ravel().tolist()
        counts = np.bincount(ids)
        present = np.flatnonzero(counts)
        ends = np.cumsum(counts[present]).tolist()
        for channel, size, end in zip(
            present.tolist(), counts[present].tolist(), ends, strict=True
        ):
            self.index[channel].extend(flat[2 * (end - size) : 2 * end])

    def add_metadata(self, name: str, data: dict[str, str]) -> None:
        self.flush_chunk()
        offset = self._stream.tell()
        record = _bytes_of(Metadata(name=name, metadata=data))
        self._stream.write(record)
        self._metadata_indexes.append(MetadataIndex(offset=offset, length=len(record), name=name))
        self._metadata_count += 1

    @property
    def pending(self) -> int:
        """Bytes of the open chunk, uncompressed."""
        return len(self.chunk)

    def flush_chunk(self) -> None:
        """Compress and write the open chunk with its message index."""
        if not self.chunk:
            return
        raw = bytes(self.chunk)
        if self._compression == "zstd" or self._compression == "lz4":
            data = self._codec.compress(raw)  # type: ignore[attr-defined]
        else:
            data = raw
        times = [t for flat in self.index.values() for t in flat[0::2]]
        start, end = (min(times), max(times)) if times else (0, 0)
        for channel_id, flat in self.index.items():
            self._counts[channel_id] += len(flat) // 2
        self._message_count += len(times)
        chunk = Chunk(
            compression=self._compression,
            data=data,
            message_start_time=start,
            message_end_time=end,
            uncompressed_crc=zlib.crc32(raw),
            uncompressed_size=len(raw),
        )
        chunk_offset = self._stream.tell()
        chunk_bytes = _bytes_of(chunk)
        self._stream.write(chunk_bytes)
        index_offset = self._stream.tell()
        offsets: dict[int, int] = {}
        indexes = bytearray()
        for channel_id, flat in self.index.items():
            offsets[channel_id] = index_offset + len(indexes)
            size = 8 * len(flat)  # (log time, offset) pairs of two u64 each
            indexes += _INDEX_HEAD.pack(Opcode.MESSAGE_INDEX, 2 + 4 + size, channel_id, size)
            indexes += struct.pack(f"<{len(flat)}Q", *flat)
        self._stream.write(indexes)
        self.chunk_indexes.append(
            ChunkIndex(
                message_start_time=chunk.message_start_time,
                message_end_time=chunk.message_end_time,
                chunk_start_offset=chunk_offset,
                chunk_length=len(chunk_bytes),
                message_index_offsets=offsets,
                message_index_length=len(indexes),
                compression=self._compression,
                compressed_size=len(data),
                uncompressed_size=len(raw),
            )
        )
        if times:
            self._start_time = start if self._start_time is None else min(self._start_time, start)
            self._end_time = max(self._end_time, end)
        self.chunk_count += 1
        self.chunk = bytearray()
        self.index = defaultdict(list)

    def finish(self) -> None:
        """Write the last chunk, the summary section and the footer."""
        self.flush_chunk()
        self._stream.write(_bytes_of(DataEnd(data_section_crc=0)))
        summary_start = self._stream.tell()
        summary = bytearray()
        groups: list[SummaryOffset] = []

        def group(opcode: Opcode, records: list[McapRecord]) -> None:
            if not records:
                return
            begin = len(summary)
            for record in records:
                summary.extend(_bytes_of(record))
            groups.append(SummaryOffset(opcode, summary_start + begin, len(summary) - begin))

        group(Opcode.SCHEMA, list(self._schemas))
        group(Opcode.CHANNEL, list(self._channels))
        statistics = Statistics(
            message_count=self._message_count,
            schema_count=len(self._schemas),
            channel_count=len(self._channels),
            attachment_count=0,
            metadata_count=self._metadata_count,
            chunk_count=self.chunk_count,
            message_start_time=self._start_time or 0,
            message_end_time=self._end_time,
            channel_message_counts=dict(self._counts),
        )
        group(Opcode.STATISTICS, [statistics])
        group(Opcode.CHUNK_INDEX, list(self.chunk_indexes))
        group(Opcode.METADATA_INDEX, list(self._metadata_indexes))
        offsets_start = summary_start + len(summary)
        for offset in groups:
            summary.extend(_bytes_of(offset))
        crc = zlib.crc32(summary)
        crc = zlib.crc32(
            struct.pack("<BQQQ", Opcode.FOOTER, 8 + 8 + 4, summary_start, offsets_start), crc
        )
        self._stream.write(summary)
        self._stream.write(
            _bytes_of(
                Footer(
                    summary_start=summary_start, summary_offset_start=offsets_start, summary_crc=crc
                )
            )
        )
        self._stream.write(MAGIC)


def _bytes_of(record: McapRecord) -> bytes:
    builder = RecordBuilder()
    record.write(builder)
    data: bytes = builder.end()  # type: ignore[no-untyped-call]
    return data
