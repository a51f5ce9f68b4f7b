"""TraceWriter: one MCAP file of boundary messages, schemas and channels added as they appear."""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self

import msgspec

from edgeloop.errors import TraceError
from edgeloop.messages import KINDS, FrameRef, Message, encode, encode_body, kind_of
from edgeloop.trace._format import (
    FORMAT_VERSION,
    FRAME_SCHEMA,
    MESSAGE_ENCODING,
    PROFILE,
    RECORDER_METADATA,
    SCHEMA_ENCODING,
    TRACE_METADATA,
    Direction,
    Frame,
    frame_topic,
    schema_bytes,
    schema_name,
    to_ns,
    to_ns_many,
    topic_for,
)
from edgeloop.trace._mcap import MESSAGE_HEAD as _MESSAGE
from edgeloop.trace._mcap import McapWriter, load_codec

__all__ = ["TraceWriter", "TapLike", "Columns", "Compression", "DEFAULT_CHUNK_SIZE", "warm_up"]

# The wire encoder's bytes (edgeloop.messages.encode adds a type check per call).
_ENCODER = msgspec.msgpack.Encoder()


class TapLike(Protocol):
    """What a tap is handed: the node's ``TapRecord`` (or a :class:`TraceRecord`)."""

    @property
    def direction(self) -> Direction: ...
    @property
    def device(self) -> str: ...
    @property
    def message(self) -> Message: ...
    @property
    def ts(self) -> float: ...


Compression = Literal["zstd", "lz4", "none"]


@dataclasses.dataclass(frozen=True, slots=True)
class Columns:
    """Records as columns of equal length, each message already encoded (``datas``: the
    bytes, or ``msgspec.Raw`` views of them)."""

    directions: Sequence[str]
    devices: Sequence[str]
    kinds: Sequence[str]
    times: Sequence[float]
    datas: Sequence[bytes | msgspec.Raw]

    def __len__(self) -> int:
        return len(self.datas)

    def slice(self, begin: int, end: int) -> Columns:
        return Columns(
            self.directions[begin:end],
            self.devices[begin:end],
            self.kinds[begin:end],
            self.times[begin:end],
            self.datas[begin:end],
        )


DEFAULT_CHUNK_SIZE = 256 * 1024
"""Uncompressed bytes per MCAP chunk. Smaller than mcap's 1 MiB default, so a recorder
that is killed loses at most this much: every finished chunk stays readable."""


@functools.cache
def _library() -> str:
    # Not ``edgeloop.__version__``: importing the top package pulls in layers above this one.
    try:
        return f"edgeloop {importlib.metadata.version('edgeloop')}"
    except importlib.metadata.PackageNotFoundError:
        return "edgeloop"


def warm_up(compression: Compression = "zstd") -> None:
    """Do now what the first file would: import the codec, look the library's name up,
    build the schemas (a few milliseconds in all)."""
    _library()
    load_codec(compression)
    for kind in KINDS:
        schema_bytes(kind)


_COMPRESSION = ("zstd", "lz4", "none")


class TraceWriter:
    """Writes one trace file; not thread-safe (the recorder's writer thread owns it).

    ``info`` goes into the leading ``edgeloop.trace`` metadata record (the node, its clock
    at the start); :meth:`close` writes ``summary`` as the ``edgeloop.recorder`` record.
    """

    def __init__(
        self,
        path: Path,
        *,
        compression: Compression = "zstd",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        info: Mapping[str, str] | None = None,
    ) -> None:
        if compression not in _COMPRESSION:
            msg = f"compression must be one of {', '.join(_COMPRESSION)}, not {compression!r}"
            raise ValueError(msg)
        self.path = path
        try:
            self._stream: io.BufferedWriter = open(path, "wb")  # noqa: SIM115 (closed in close())
        except OSError as error:
            msg = f"cannot write the trace file {path}: {error}; check the directory and space"
            raise TraceError(msg) from error
        self._writer = McapWriter(self._stream, chunk_size=chunk_size, compression=compression)
        self._writer.start(profile=PROFILE, library=_library())
        self._writer.add_metadata(
            TRACE_METADATA,
            {"format_version": FORMAT_VERSION, **{k: str(v) for k, v in (info or {}).items()}},
        )
        self._schemas: dict[str, int] = {}
        self._channels: dict[tuple[str, str, str], int] = {}
        self._by_type: dict[tuple[str, str, type], int] = {}
        self.messages = 0
        self._summary = 1024  # footer, statistics, indexes: grows with schemas and channels
        self.first_ts: float | None = None
        self.closed = False

    @property
    def size(self) -> int:
        """Bytes the file holds so far: finished chunks on disk plus, uncompressed, the
        messages of the open chunk (what splitting by size compares with its limit)."""
        return self._stream.tell() + self._writer.pending + self._summary

    def write(self, direction: Direction, device: str, message: Message, ts: float) -> None:
        """Write one boundary message (encoded as on the wire)."""
        self.write_encoded(direction, device, kind_of(message), encode(message), ts)

    def write_encoded(
        self, direction: Direction, device: str, kind: str, data: bytes, ts: float
    ) -> None:
        """Write a message already encoded with :func:`edgeloop.messages.encode`."""
        channel = self._channel(direction, device, kind)
        self._writer.add_message(channel, to_ns(ts), data)
        self.messages += 1
        if self.first_ts is None:
            self.first_ts = ts

    def write_columns(self, columns: Columns) -> None:
        """Write records given as columns, their messages already encoded (the writer
        process's path: no Python code runs per record but for a new channel)."""
        if not columns.datas:
            return
        keys = list(zip(columns.directions, columns.devices, columns.kinds, strict=True))
        try:
            channels = list(map(self._channels.__getitem__, keys))
        except KeyError:  # a channel this file has not seen yet
            channels = [self._channel(*key) for key in keys]  # type: ignore[arg-type]
        self._writer.add_messages(channels, to_ns_many(columns.times), columns.datas)
        self.messages += len(columns.datas)
        if self.first_ts is None:
            self.first_ts = columns.times[0]

    def write_records(self, records: Sequence[TapLike]) -> None:
        """Write many boundary records: the recorder's hot loop, kept to the bone (it
        appends straight into the open chunk; see :meth:`McapWriter.add_message`)."""
        if not records:
            return
        channels = self._by_type
        encode = _ENCODER.encode
        pack = _MESSAGE.pack
        mcap = self._writer
        limit = mcap.chunk_size
        chunk = mcap.chunk
        index = mcap.index
        for record in records:
            message = record.message
            key = (record.direction, record.device, message.__class__)
            channel = channels.get(key)
            if channel is None:
                channel = self._channel(record.direction, record.device, kind_of(message))
                channels[key] = channel
                chunk = mcap.chunk  # registering wrote into the chunk
            ts = record.ts
            ns = int(ts * 1e9 + 0.5) if ts > 0 else 0
            data = encode(message)
            entries = index[channel]
            entries.append(ns)
            entries.append(len(chunk))
            chunk += pack(5, 22 + len(data), channel, 0, ns, ns)  # 5: MCAP message opcode
            chunk += data
            if len(chunk) >= limit:
                mcap.flush_chunk()
                chunk, index = mcap.chunk, mcap.index
        self.messages += len(records)
        if self.first_ts is None:
            self.first_ts = records[0].ts

    def write_frame(self, device: str, ref: FrameRef, data: bytes, ts: float) -> None:
        """Write a full frame on ``/frames/<device>``."""
        topic = frame_topic(device)
        channel = self._channels.get(("frames", device, ""))
        if channel is None:
            channel = self._writer.register_channel(
                topic, MESSAGE_ENCODING, self._schema(FRAME_SCHEMA), {"device": device}
            )
            self._channels[("frames", device, "")] = channel
            self._summary += 128 + len(topic)
        self._add(channel, encode_body(Frame(ref=ref, data=data)), ts)

    def close(self, summary: Mapping[str, object] | None = None) -> None:
        """Write the summary metadata, the index and the footer, and close the file."""
        if self.closed:
            return
        self.closed = True
        try:
            if summary:
                self._writer.add_metadata(
                    RECORDER_METADATA, {k: str(v) for k, v in summary.items()}
                )
            self._writer.finish()
        finally:
            self._stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _channel(self, direction: Direction, device: str, kind: str) -> int:
        key = (direction, device, kind)
        channel = self._channels.get(key)
        if channel is None:
            topic = topic_for(direction, device, kind)
            channel = self._writer.register_channel(
                topic,
                MESSAGE_ENCODING,
                self._schema(kind),
                {"direction": direction, "device": device, "kind": kind},
            )
            self._channels[key] = channel
            self._summary += 128 + len(topic)
        return channel

    def _schema(self, kind: str) -> int:
        schema = self._schemas.get(kind)
        if schema is None:
            name = FRAME_SCHEMA if kind == FRAME_SCHEMA else schema_name(kind)
            schema = self._writer.register_schema(name, SCHEMA_ENCODING, schema_bytes(kind))
            self._schemas[kind] = schema
            self._summary += len(schema_bytes(kind)) + len(name) + 32
        return schema

    def _add(self, channel: int, data: bytes, ts: float) -> None:
        ns = to_ns(ts)
        self._writer.add_message(channel, ns, data)
        self.messages += 1
        if self.first_ts is None:
            self.first_ts = ts
