"""TraceFiles: the files of one recording, opened, split and finished as records come.

Shared by the recorder's writer thread and the writer process (``_sink``), so a recording
splits and describes itself the same way wherever it is written.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgeloop.messages import PROTOCOL_VERSION, FrameRef
from edgeloop.trace._writer import Columns, TapLike, TraceWriter

if TYPE_CHECKING:
    from edgeloop.trace._recorder import RecorderConfig

__all__ = ["TraceFiles", "SLICE", "file_info"]

SLICE = 512
"""Records written between two checks of the file's size (fewer for small files: about
one per kilobyte of ``max_bytes``), so a file overshoots its size by at most that many."""


class TraceFiles:
    """Writes records into ``config.out_dir``'s ``<name>_0000.mcap``, ``..._0001``, ...

    ``info()`` gives the recording's metadata when a file opens (node, clock start);
    ``totals()`` gives the recorder's counters (``recorded_total``, ``dropped_total``,
    ``frames_skipped_total``) for each file's closing metadata; ``opened`` hears of every
    file as it is created. Not thread-safe: one writer owns it.
    """

    def __init__(
        self,
        config: RecorderConfig,
        info: Callable[[], Mapping[str, str]],
        totals: Callable[[], Mapping[str, int]],
        opened: Callable[[Path], None] | None = None,
    ) -> None:
        self.config = config
        self._info = info
        self._totals = totals
        self._opened = opened
        self._writer: TraceWriter | None = None
        self._index = itertools.count()
        self.files: list[Path] = []
        self.slice = (
            SLICE if config.max_bytes is None else max(8, min(SLICE, config.max_bytes // 1024))
        )

    def write_records(self, records: Sequence[TapLike]) -> None:
        """Write tapped records (encoding their messages)."""

        def write(writer: TraceWriter, begin: int, end: int) -> None:
            writer.write_records(records[begin:end])

        self._write(len(records), lambda index: records[index].ts, write)

    def write_columns(self, columns: Columns) -> None:
        """Write records whose messages are already encoded."""

        def write(writer: TraceWriter, begin: int, end: int) -> None:
            writer.write_columns(columns.slice(begin, end))

        self._write(len(columns), columns.times.__getitem__, write)

    def write_frame(self, device: str, ref: FrameRef, data: bytes, ts: float) -> None:
        self._file_for(ts).write_frame(device, ref, data, ts)

    def finish(self) -> None:
        """Finish the open file (its summary, index and footer), if any."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close({"messages": writer.messages, **self._totals()})

    def _write(
        self,
        count: int,
        ts_at: Callable[[int], float],
        write: Callable[[TraceWriter, int, int], None],
    ) -> None:
        """Write records ``0..count`` (``write(writer, begin, end)``), opening files as
        their size or time span says (a size split looks once per slice)."""
        limit = self.config.max_seconds
        for begin in range(0, count, self.slice):
            stop = min(count, begin + self.slice)
            writer = self._file_for(ts_at(begin))
            if limit is None:
                write(writer, begin, stop)
                continue
            first = writer.first_ts if writer.first_ts is not None else ts_at(begin)
            start = begin
            for index in range(begin, stop):
                ts = ts_at(index)
                if ts - first >= limit:  # this record opens the next file
                    if index > start:
                        write(writer, start, index)
                    self.finish()
                    writer = self._file_for(ts)
                    first, start = ts, index
            write(writer, start, stop)

    def _file_for(self, ts: float) -> TraceWriter:
        writer = self._writer
        config = self.config
        if writer is not None and (
            (config.max_bytes is not None and writer.size >= config.max_bytes)
            or (
                config.max_seconds is not None
                and writer.first_ts is not None
                and ts - writer.first_ts >= config.max_seconds
            )
        ):
            self.finish()
            writer = None
        if writer is None:
            index = next(self._index)
            path = config.out_dir / f"{config.name}_{index:04d}.mcap"
            chunk = config.chunk_size
            if config.max_bytes is not None:
                chunk = max(1024, min(chunk, config.max_bytes // 8))
            writer = TraceWriter(
                path, compression=config.compression, chunk_size=chunk, info=self.info(split=index)
            )
            self._writer = writer
            self.files.append(path)
            if self._opened is not None:
                self._opened(path)
        return writer

    def info(self, **extra: object) -> dict[str, str]:
        """A file's leading metadata: the recording's, the wall clock now, and ``extra``."""
        return file_info(self._info(), **extra)


def file_info(base: Mapping[str, str], **extra: object) -> dict[str, str]:
    """``base`` (node, clock_start, ...) with the protocol, the wall clock and ``extra``."""
    info: dict[str, str] = {
        "wall_start": datetime.datetime.now(datetime.UTC).isoformat(),
        "protocol_version": str(PROTOCOL_VERSION),
        **base,
    }
    info.update({k: repr(v) if isinstance(v, float) else str(v) for k, v in extra.items()})
    return info
