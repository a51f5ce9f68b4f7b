"""Recorder: taps a node's device boundary into MCAP files without ever blocking the node.

The tap runs on the node's I/O path (and in every actor that sends), so it only appends
the record to a bounded queue and returns; when the queue is full the record is dropped
and counted. One writer thread drains the queue, splitting files by size or duration; by
default it encodes each batch and pipes it to a writer process that writes the MCAP files
(``trace/_sink.py``), so that building records does not hold the node's GIL.
In snapshot mode nothing is written until :meth:`Recorder.trigger`: the writer keeps the
last ``snapshot_seconds`` of records in memory and writes them to a file of their own::

    recorder = Recorder(RecorderConfig(Path("runs/today")), node="edge").attach(node.devices)
    ...
    stats = recorder.close()       # flushes, finishes the last file, returns the counters
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from itertools import repeat, starmap
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self

import structlog

from edgeloop.clock import Clock
from edgeloop.errors import TraceError
from edgeloop.messages import FrameRef, encode, kind_of
from edgeloop.trace._files import TraceFiles, file_info
from edgeloop.trace._format import Direction
from edgeloop.trace._reader import SNAPSHOT_MARK
from edgeloop.trace._sink import WriterProcess
from edgeloop.trace._writer import DEFAULT_CHUNK_SIZE, Compression, TapLike, TraceWriter

__all__ = [
    "RECORDER_SERVICE",
    "Recorder",
    "RecorderConfig",
    "RecorderStatistics",
    "TapLike",
    "TappablePort",
]

_log = structlog.get_logger("edgeloop.trace")

RECORDER_SERVICE = "trace.recorder"
"""Where a recording node offers its recorder in ``ActorSystem.services``: an actor that
fetched a full frame may keep it in the trace with ``recorder.record_frame(...)``."""

DRAIN_INTERVAL = 0.05
"""Seconds between the writer thread's rounds (it writes everything queued in one go)."""

PIPE_INTERVAL = 0.01
"""The same with a writer process: a round costs the node only an encoder call and a
pipe write, and the process catches up on a short backlog whenever the node goes idle
(a flush waits for it), where the thread's round would take the GIL for longer."""


class TappablePort(Protocol):
    """The part of the node's ``DevicePort`` the recorder uses."""

    def add_tap(self, tap: Callable[[Any], None]) -> Callable[[], None]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class RecorderConfig:
    """Where and how to record.

    ``max_bytes`` / ``max_seconds`` start a new file once the current one is that big (on
    disk, checked per chunk) or spans that much node-clock time; ``queue_size`` bounds the
    records waiting for the writer (beyond it they are dropped and counted);
    ``snapshot_seconds`` switches to snapshot mode; ``frame_budget`` is how many bytes of
    full frames :meth:`Recorder.record_frame` may add in all. ``writer="process"`` writes
    the files in a process of their own, so building MCAP records does not hold the
    node's GIL (the writer thread then only encodes each batch and pipes it there);
    ``"thread"`` writes them in the node's process; ``"auto"`` (the default) is the
    process, except in snapshot mode, whose window lives in the node.
    """

    out_dir: Path
    name: str = "trace"
    max_bytes: int | None = None
    max_seconds: float | None = None
    compression: Compression = "zstd"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    queue_size: int = 65536
    snapshot_seconds: float | None = None
    frame_budget: int = 0
    writer: Literal["auto", "thread", "process"] = "auto"

    def __post_init__(self) -> None:
        checks = [
            (self.max_bytes is None or self.max_bytes > 0, "max_bytes must be > 0"),
            (self.max_seconds is None or self.max_seconds > 0, "max_seconds must be > 0"),
            (self.queue_size > 0, "queue_size must be > 0"),
            (self.chunk_size > 0, "chunk_size must be > 0"),
            (
                self.snapshot_seconds is None or self.snapshot_seconds > 0,
                "snapshot_seconds must be > 0",
            ),
            (self.frame_budget >= 0, "frame_budget must be >= 0"),
            (
                self.compression in ("zstd", "lz4", "none"),
                f"compression must be one of zstd, lz4, none, not {self.compression!r}",
            ),
            (bool(self.name) and "/" not in self.name, "name must be a plain file stem"),
            (
                self.writer in ("auto", "thread", "process"),
                f"writer must be 'auto', 'thread' or 'process', not {self.writer!r}",
            ),
            (
                self.writer != "process" or self.snapshot_seconds is None,
                "snapshot mode keeps its window in the node: use writer='thread' or 'auto'",
            ),
        ]
        for ok, problem in checks:
            if not ok:
                raise ValueError(f"RecorderConfig: {problem}")

    @property
    def uses_writer_process(self) -> bool:
        """Whether a writer process writes the files (``writer``, ``"auto"`` resolved)."""
        if self.writer == "auto":
            return self.snapshot_seconds is None
        return self.writer == "process"


@dataclasses.dataclass(frozen=True, slots=True)
class RecorderStatistics:
    """``recorded`` records written (or held for a snapshot), ``dropped`` lost to a full
    queue, ``frames``/``frames_skipped`` against the budget, and the files written."""

    recorded: int
    dropped: int
    queued: int
    frames: int
    frames_skipped: int
    files: tuple[Path, ...]
    snapshots: tuple[Path, ...]
    writer_cpu: float = 0.0
    """CPU seconds the writer thread spent encoding and writing (what recording costs
    the process, GIL included)."""
    process_cpu: float = 0.0
    """CPU seconds the writer process (``writer="process"``) spent after starting, as of
    the latest :meth:`Recorder.flush`: what recording costs the machine besides
    ``writer_cpu``."""


class _Trigger:
    __slots__ = ("done", "path", "reason")

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.path: Path | None = None
        self.done = threading.Event()


class _FrameItem:
    __slots__ = ("data", "device", "ref", "ts")

    def __init__(self, device: str, ref: FrameRef, data: bytes, ts: float) -> None:
        self.device = device
        self.ref = ref
        self.data = data
        self.ts = ts


class Recorder:
    """Records what a node's taps see; :meth:`tap` is the tap (never blocks).

    ``clock`` is the node's: its reading now is the trace's start (``clock_start`` gives
    it directly, for a node elsewhere); ``trigger_on`` writes a snapshot after each record
    it returns True for (it runs on the writer thread, not on the node's path).
    """

    def __init__(
        self,
        config: RecorderConfig,
        *,
        clock: Clock | None = None,
        node: str = "",
        trigger_on: Callable[[TapLike], bool] | None = None,
        clock_start: float | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._node = node
        self._trigger_on = trigger_on
        self._queue: deque[Any] = deque()
        # Records the queue takes (0 once closing). The writer drains every
        # DRAIN_INTERVAL (PIPE_INTERVAL), so the node's threads hand it the GIL a few
        # times a second, not once per record; the tap wakes it early only when the queue
        # is half full (a small queue_size under a burst), or when it had to drop.
        self._room = config.queue_size
        self._high_water = max(1, config.queue_size // 2)
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._drop_lock = threading.Lock()
        self._dropped = 0
        self._frame_bytes = 0
        self._frames_skipped = 0
        self._recorded = 0
        self._frames = 0
        self._snapshots: list[Path] = []
        self._snapshot_index = itertools.count()
        self._window: deque[tuple[Direction, str, str, bytes, float]] = deque()
        self._closing = False
        self._busy = False
        self._writer_cpu = 0.0
        self._controls = 0  # triggers and frames queued: the drain looks for them
        self._detach: list[Callable[[], None]] = []
        self._error: BaseException | None = None
        try:
            config.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            msg = f"cannot create the trace directory {config.out_dir}: {error}"
            raise TraceError(msg) from error
        self.clock_start = clock.now() if clock is not None else clock_start
        self._process: WriterProcess | None = None
        self._trace_files = TraceFiles(config, self._base_info, self._totals)
        if config.uses_writer_process:
            self._process = WriterProcess(config)
        self._thread = threading.Thread(target=self._run, name="edgeloop-recorder", daemon=True)
        self._thread.start()

    # -- the hot path ------------------------------------------------------------------

    def tap(self, record: TapLike) -> None:
        """Queue ``record`` for the writer, or drop and count it if the queue is full."""
        queue = self._queue
        if len(queue) < self._room:  # no room at all once closing
            queue.append(record)
            if len(queue) == self._high_water:
                self._wake.set()
        else:
            self._drop()

    def _drop(self) -> None:
        with self._drop_lock:
            self._dropped += 1
        if not self._closing and not self._wake.is_set():
            self._wake.set()  # the writer is behind: let it start now

    def record_frame(self, device: str, ref: FrameRef, data: bytes, ts: float) -> bool:
        """Keep a full frame if the frame budget allows (False: skipped and counted)."""
        with self._drop_lock:
            if self._frame_bytes + len(data) > self.config.frame_budget:
                self._frames_skipped += 1
                return False
            self._frame_bytes += len(data)
            self._controls += 1
        self._queue.append(_FrameItem(device, ref, bytes(data), ts))
        self._wake.set()
        return True

    # -- control -----------------------------------------------------------------------

    def attach(self, port: TappablePort) -> Self:
        """Tap ``port`` (a node's ``DevicePort``) until :meth:`close`."""
        self._detach.append(port.add_tap(self.tap))
        _log.info("trace_recording", out_dir=str(self.config.out_dir), node=self._node)
        return self

    def trigger(self, reason: str = "", timeout: float | None = 10.0) -> Path | None:
        """Write the snapshot window now (snapshot mode only); returns its file, or None
        if the window was empty. Everything tapped before the call is in it."""
        if self.config.snapshot_seconds is None:
            msg = "trigger() needs snapshot mode: set RecorderConfig.snapshot_seconds"
            raise TraceError(msg)
        request = _Trigger(reason)
        with self._drop_lock:
            self._controls += 1
        self._queue.append(request)
        self._wake.set()
        if not request.done.wait(timeout):
            msg = f"the recorder did not write its snapshot within {timeout} s"
            raise TraceError(msg)
        return request.path

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every queued record has been written (into the open chunk: on disk
        once the chunk fills or the file is finished), also by a writer process."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            done = self._idle.wait_for(
                lambda: (not self._queue and not self._busy) or self._error is not None, timeout
            )
        if not done or self._error is not None or self._process is None:
            return done
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return self._process.sync(left)
        except TraceError:
            return True  # the writer failed: close() reports it

    def statistics(self) -> RecorderStatistics:
        with self._drop_lock:
            dropped, skipped = self._dropped, self._frames_skipped
        return RecorderStatistics(
            recorded=self._recorded,
            dropped=dropped,
            queued=len(self._queue),
            frames=self._frames,
            frames_skipped=skipped,
            files=tuple(self._files()),
            snapshots=tuple(self._snapshots),
            writer_cpu=self._writer_cpu,
            process_cpu=self._process.cpu if self._process is not None else 0.0,
        )

    def close(self, timeout: float | None = 30.0) -> RecorderStatistics:
        """Stop tapping, write what is queued, finish the file; returns the counters."""
        for remove in self._detach:
            remove()
        self._detach.clear()
        self._closing = True
        self._room = 0
        self._wake.set()
        self._thread.join(timeout)
        stats = self.statistics()
        if stats.dropped:
            _log.warning("recorder_dropped", dropped=stats.dropped, recorded=stats.recorded)
        if self._error is not None:
            msg = f"the recorder failed while writing: {self._error}"
            raise TraceError(msg) from self._error
        return stats

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        interval = DRAIN_INTERVAL if self._process is None else PIPE_INTERVAL
        try:
            while True:
                self._wake.wait(interval)
                self._wake.clear()
                self._drain()
                if self._closing:
                    self._drain()
                    break
        except BaseException as error:  # noqa: BLE001 (reported by close())
            self._error = error
            _log.error("recorder_failed", error=repr(error))
            with self._idle:
                self._idle.notify_all()
        finally:
            try:
                self._finish_file()
            except Exception as error:  # noqa: BLE001 (reported by close())
                self._error = self._error or error
                _log.error("recorder_finish_failed", error=repr(error))

    def _drain(self) -> None:
        began = time.thread_time()
        try:
            self._drain_queue()
        finally:
            self._writer_cpu += time.thread_time() - began
        with self._idle:
            self._busy = False
            self._idle.notify_all()

    def _drain_queue(self) -> None:
        queue = self._queue
        popleft = queue.popleft
        self._busy = True
        while queue:
            batch = list(starmap(popleft, repeat((), len(queue))))  # a C-level loop
            if not self._controls:  # the usual case: records only
                self._write_records(batch)
                continue
            records: list[TapLike] = []
            for item in batch:
                kind = item.__class__
                if kind is _Trigger or kind is _FrameItem:
                    self._write_records(records)
                    records = []
                    with self._drop_lock:
                        self._controls -= 1
                    if kind is _Trigger:
                        self._write_snapshot(item)
                    else:
                        self._write_frame(item)
                else:
                    records.append(item)
            self._write_records(records)

    def _write_records(self, records: list[TapLike]) -> None:
        if not records:
            return
        self._recorded += len(records)
        if self.config.snapshot_seconds is not None:
            self._hold(records)
        elif self._process is not None:
            self._process.records(records, self._base_info(), self._totals())
        else:
            self._trace_files.write_records(records)

    def _hold(self, records: list[TapLike]) -> None:
        """Snapshot mode: keep the window, and snapshot where ``trigger_on`` says so."""
        window = self._window
        seconds = self.config.snapshot_seconds
        assert seconds is not None
        for record in records:
            message = record.message
            window.append(
                (record.direction, record.device, kind_of(message), encode(message), record.ts)
            )
            horizon = record.ts - seconds
            while window and window[0][4] < horizon:
                window.popleft()
            if self._trigger_on is not None and self._trigger_on(record):
                self._write_snapshot(_Trigger("trigger_on"))

    def _write_frame(self, item: _FrameItem) -> None:
        self._frames += 1
        if self.config.snapshot_seconds is not None:
            return  # frames are not part of snapshots
        if self._process is not None:
            self._process.frame(item.device, item.ref, item.data, item.ts)
        else:
            self._trace_files.write_frame(item.device, item.ref, item.data, item.ts)

    def _write_snapshot(self, request: _Trigger) -> None:
        try:
            if not self._window:
                return
            index = next(self._snapshot_index)
            path = self.config.out_dir / f"{self.config.name}{SNAPSHOT_MARK}{index:04d}.mcap"
            writer = TraceWriter(
                path,
                compression=self.config.compression,
                chunk_size=self.config.chunk_size,
                info=file_info(
                    self._base_info(),
                    snapshot=request.reason or "trigger",
                    clock_start=self._window[0][4],
                ),
            )
            for direction, device, kind, data, ts in self._window:
                writer.write_encoded(direction, device, kind, data, ts)
            writer.close({"recorded": len(self._window), "dropped": self._dropped})
            self._snapshots.append(path)
            request.path = path
            _log.info("trace_snapshot_written", path=str(path), records=len(self._window))
        finally:
            request.done.set()

    def _finish_file(self) -> None:
        if self._process is not None:
            self._process.close(self._totals())
        else:
            self._trace_files.finish()

    def _files(self) -> list[Path]:
        return self._process.files if self._process is not None else self._trace_files.files

    def _base_info(self) -> dict[str, str]:
        info = {"node": self._node}
        if self.clock_start is not None:
            info["clock_start"] = repr(self.clock_start)
        return info

    def _totals(self) -> dict[str, int]:
        with self._drop_lock:
            dropped, skipped = self._dropped, self._frames_skipped
        return {
            "recorded_total": self._recorded,
            "dropped_total": dropped,
            "frames_skipped_total": skipped,
        }
