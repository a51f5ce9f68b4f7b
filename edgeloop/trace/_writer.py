"""TraceWriter: one MCAP file of boundary messages, schemas and channels added as they appear."""

from __future__ import annotations

import importlib.metadata
import io
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from mcap.writer import CompressionType, Writer

from edgeloop.errors import TraceError
from edgeloop.messages import FrameRef, Message, encode, encode_body, kind_of
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
    topic_for,
)

__all__ = ["TraceWriter", "Compression", "DEFAULT_CHUNK_SIZE"]

Compression = Literal["zstd", "lz4", "none"]

DEFAULT_CHUNK_SIZE = 256 * 1024
"""Uncompressed bytes per MCAP chunk. Smaller than mcap's 1 MiB default, so a recorder
that is killed loses at most this much: every finished chunk stays readable."""


def _library() -> str:
    # Not ``edgeloop.__version__``: importing the top package pulls in layers above this one.
    try:
        return f"edgeloop {importlib.metadata.version('edgeloop')}"
    except importlib.metadata.PackageNotFoundError:
        return "edgeloop"


_COMPRESSION = {
    "zstd": CompressionType.ZSTD,
    "lz4": CompressionType.LZ4,
    "none": CompressionType.NONE,
}


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
        self._writer = Writer(
            self._stream, chunk_size=chunk_size, compression=_COMPRESSION[compression]
        )
        self._writer.start(profile=PROFILE, library=_library())
        self._writer.add_metadata(
            TRACE_METADATA,
            {"format_version": FORMAT_VERSION, **{k: str(v) for k, v in (info or {}).items()}},
        )
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self.messages = 0
        self._flushed_at = 0
        self._pending = 0
        self._summary = 1024  # footer, statistics, indexes: grows with schemas and channels
        self.first_ts: float | None = None
        self.closed = False

    @property
    def size(self) -> int:
        """Bytes the file holds so far: finished chunks on disk plus, uncompressed, the
        messages of the open chunk (what splitting by size compares with its limit)."""
        written = self._stream.tell()
        if written != self._flushed_at:
            self._flushed_at, self._pending = written, 0
        return written + self._pending + self._summary

    def write(self, direction: Direction, device: str, message: Message, ts: float) -> None:
        """Write one boundary message (encoded as on the wire)."""
        self.write_encoded(direction, device, kind_of(message), encode(message), ts)

    def write_encoded(
        self, direction: Direction, device: str, kind: str, data: bytes, ts: float
    ) -> None:
        """Write a message already encoded with :func:`edgeloop.messages.encode`."""
        topic = topic_for(direction, device, kind)
        channel = self._channels.get(topic)
        if channel is None:
            schema = self._schema(kind)
            channel = self._writer.register_channel(
                topic,
                MESSAGE_ENCODING,
                schema,
                {"direction": direction, "device": device, "kind": kind},
            )
            self._channels[topic] = channel
            self._grow(128 + len(topic))
        self._add(channel, data, ts)

    def write_frame(self, device: str, ref: FrameRef, data: bytes, ts: float) -> None:
        """Write a full frame on ``/frames/<device>``."""
        topic = frame_topic(device)
        channel = self._channels.get(topic)
        if channel is None:
            channel = self._writer.register_channel(
                topic, MESSAGE_ENCODING, self._schema(FRAME_SCHEMA), {"device": device}
            )
            self._channels[topic] = channel
            self._grow(128 + len(topic))
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
            self._writer.finish()  # type: ignore[no-untyped-call]
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

    def _schema(self, kind: str) -> int:
        schema = self._schemas.get(kind)
        if schema is None:
            name = FRAME_SCHEMA if kind == FRAME_SCHEMA else schema_name(kind)
            schema = self._writer.register_schema(name, SCHEMA_ENCODING, schema_bytes(kind))
            self._schemas[kind] = schema
            self._grow(len(schema_bytes(kind)) + len(name) + 32)
        return schema

    def _grow(self, record: int) -> None:
        """A schema or channel: written in the open chunk, and again in the summary."""
        self._pending += record
        self._summary += record

    def _add(self, channel: int, data: bytes, ts: float) -> None:
        ns = to_ns(ts)
        self._writer.add_message(channel, log_time=ns, data=data, publish_time=ns)
        self.messages += 1
        self._pending += len(data) + 31 + 16  # record header and fields, its index entry
        if self.first_ts is None:
            self.first_ts = ts
