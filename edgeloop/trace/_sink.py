"""The writer process: a recorder's files written outside the node's process.

A recorder's writer thread shares the GIL with the node it records, so every microsecond
it spends building MCAP records is a microsecond the node's actors wait. With
``RecorderConfig(writer="process")`` the thread only encodes each batch in one
MessagePack call (the port's ``TapRecord`` structs as they are, each an array of
direction, device, message and time, with the batch's kinds; any other record as
columns) and writes it to this process's stdin, every ``PIPE_INTERVAL``; the process
decodes the messages as raw bytes (``msgspec.Raw``: no parsing, no re-encoding) and
writes the MCAP files with the same :class:`~edgeloop.trace._files.TraceFiles` the thread
would use. Its own CPU is not free on a small machine: about 2.5 µs a record on two
shared cores, against the thread's 2 µs in the node (``docs/trace-format.md``).

Frames on the pipe are a 4-byte little-endian length and a MessagePack array tagged by
its first element. The process answers on stdout, one JSON object a line: ``ready``,
``file`` (a file opened), ``sync`` (everything before it written), ``error`` (it failed:
the message, then it exits 1), ``done``; ``ready`` and ``sync`` carry its CPU seconds.
Closing its stdin finishes the last file, and so does the node's process ending any
other way (its own session keeps the node's signals off it): a killed node leaves a
finished trace. A pipe that fills (the process behind) blocks the writer thread, never
the node: the recorder's queue fills and drops, counted, as with a slow disk.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import operator
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgspec

from edgeloop.errors import TraceError
from edgeloop.messages import KINDS, FrameRef
from edgeloop.trace._writer import Columns, warm_up

if TYPE_CHECKING:
    from edgeloop.trace._recorder import RecorderConfig
    from edgeloop.trace._writer import TapLike

__all__ = ["WriterProcess", "main"]

_LENGTH = struct.Struct("<I")
_PIPE_SIZE = 1 << 20
"""Bytes the pipe to the process holds (Linux's F_SETPIPE_SZ; its default is 64 KiB)."""


class _Open(msgspec.Struct, tag="open", array_like=True):
    config: dict[str, Any]


class _Info(msgspec.Struct, tag="info", array_like=True):
    info: dict[str, str]


class _RecordsOut(msgspec.Struct, tag="records", array_like=True):
    totals: dict[str, int]
    directions: list[str]
    devices: list[str]
    kinds: list[str]
    times: list[float]
    messages: list[Any]  # edgeloop messages: encoded as the link encodes them


class _RecordsIn(msgspec.Struct, tag="records", array_like=True):
    totals: dict[str, int]
    directions: list[str]
    devices: list[str]
    kinds: list[str]
    times: list[float]
    messages: list[msgspec.Raw]  # each message's bytes, as they were encoded


class _Tap(msgspec.Struct, array_like=True, gc=False):
    """A record as the process decodes the node's ``TapRecord`` (an array of its four
    fields), the message's bytes as they were encoded. Not tracked by the collector:
    thousands a frame would otherwise set off collections in the process."""

    direction: str
    device: str
    message: msgspec.Raw
    ts: float


class _Taps(msgspec.Struct, tag="taps", array_like=True):
    """Records sent as the taps' own structs, in one encoder call (the usual frame)."""

    totals: dict[str, int]
    kinds: list[str]
    records: list[_Tap]


class _Frame(msgspec.Struct, tag="frame", array_like=True):
    device: str
    ref: FrameRef
    data: bytes
    ts: float


class _Sync(msgspec.Struct, tag="sync", array_like=True):
    token: int


class _Close(msgspec.Struct, tag="close", array_like=True):
    totals: dict[str, int]


_Incoming = _Open | _Info | _Taps | _RecordsIn | _Frame | _Sync | _Close

_ENCODER = msgspec.msgpack.Encoder()
_KIND_OF = {cls: kind for kind, cls in KINDS.items()}
_DIRECTION_OF = operator.attrgetter("direction")
_DEVICE_OF = operator.attrgetter("device")
_MESSAGE_OF = operator.attrgetter("message")
_TS_OF = operator.attrgetter("ts")


class WriterProcess:
    """The node-side end of a writer process (one per recorder; not thread-safe except
    :meth:`sync`, which may run beside the writer thread's sends)."""

    def __init__(self, config: RecorderConfig, *, ready_timeout: float = 60.0) -> None:
        self._lock = threading.Lock()  # whole frames on the pipe, whoever writes them
        self._answers = threading.Condition()
        self._synced = 0
        self._eof = False  # the reader has seen the end of the process's output
        self.cpu = 0.0  # the process's CPU seconds since it was ready, as of a sync
        self._ready_cpu = 0.0
        self._token = 0
        self._error: str | None = None
        self._ready = False
        self._done = False
        self.files: list[Path] = []
        self._info: dict[str, str] | None = None
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "edgeloop.trace._sink"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                # its own session: a Ctrl-C or SIGTERM for the node's process group must
                # not cut the writer short; it finishes when the node's end of the pipe
                # closes, however the node ended (a SIGKILL included)
                start_new_session=True,
            )
        except OSError as error:
            msg = f"cannot start the trace writer process: {error}"
            raise TraceError(msg) from error
        assert self._process.stdin is not None
        self._pipe = self._process.stdin  # unbuffered: each write is one system call
        with contextlib.suppress(AttributeError, OSError):  # Linux only; a hint
            import fcntl

            fcntl.fcntl(self._pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        self._reader = threading.Thread(
            target=self._read, name="edgeloop-recorder-answers", daemon=True
        )
        self._reader.start()
        with self._answers:
            self._answers.wait_for(lambda: self._ready or self._ended(), ready_timeout)
        if not self._ready:
            self.kill()
            msg = f"the trace writer process did not start: {self._failure()}"
            raise TraceError(msg)
        self._send(_Open(config=_config_dict(config)))

    # -- the writer thread's side -------------------------------------------------------

    def records(
        self, records: Sequence[TapLike], info: Mapping[str, str], totals: Mapping[str, int]
    ) -> None:
        """Hand ``records`` to the process (blocks while its pipe is full)."""
        if info != self._info:
            self._info = dict(info)
            self._send(_Info(info=self._info))
        if all(map(_is_tap_struct, set(map(type, records)))):  # the port's TapRecords
            kinds = list(map(_KIND_OF.__getitem__, map(type, map(_MESSAGE_OF, records))))
            self._write(_ENCODER.encode(("taps", totals, kinds, records)))  # as they are
            return
        messages = list(map(_MESSAGE_OF, records))  # one C-level pass per column
        self._send(
            _RecordsOut(
                totals=dict(totals),
                directions=list(map(_DIRECTION_OF, records)),
                devices=list(map(_DEVICE_OF, records)),
                kinds=list(map(_KIND_OF.__getitem__, map(type, messages))),
                times=list(map(_TS_OF, records)),
                messages=messages,
            )
        )

    def frame(self, device: str, ref: FrameRef, data: bytes, ts: float) -> None:
        self._send(_Frame(device=device, ref=ref, data=data, ts=ts))

    def sync(self, timeout: float | None) -> bool:
        """Wait until the process has written everything sent before this call (False if
        ``timeout`` passed first); raises :class:`TraceError` if the process ended."""
        with self._lock:
            self._token += 1
            token = self._token
        self._send(_Sync(token=token))
        with self._answers:
            self._answers.wait_for(lambda: self._synced >= token or self._ended(), timeout)
            if self._synced >= token:
                return True
            if self._ended():
                raise TraceError(self._failure())
            return False

    def close(self, totals: Mapping[str, int], timeout: float | None = 30.0) -> list[Path]:
        """Finish the last file and end the process; the files it wrote."""
        try:
            # A process that has failed cannot take it: why is reported below, once it
            # has been reaped and its output read (not leaving it a zombie, its pipes open).
            with contextlib.suppress(TraceError):
                self._send(_Close(totals=dict(totals)))
        finally:
            with contextlib.suppress(OSError):
                self._pipe.close()  # the process finishes its last file and exits
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reader.join(timeout)
        try:
            if self._process.returncode != 0 or not self._done:
                raise TraceError(self._failure())
        finally:
            self._close_stderr()
        return list(self.files)

    def kill(self) -> None:
        """End the process now (its open chunk is lost; finished chunks stay readable)."""
        with contextlib.suppress(OSError):
            self._process.kill()
        self._process.wait()
        self._reader.join(5.0)
        with contextlib.suppress(OSError):
            self._pipe.close()
        self._close_stderr()

    def _close_stderr(self) -> None:
        if self._process.stderr is not None:
            with contextlib.suppress(OSError):
                self._process.stderr.close()

    # -- internals ----------------------------------------------------------------------

    def _send(self, frame: msgspec.Struct) -> None:
        self._write(_ENCODER.encode(frame))

    def _write(self, data: bytes) -> None:
        with self._lock:
            try:
                for part in (_LENGTH.pack(len(data)), data):
                    view = memoryview(part)
                    while view:
                        view = view[self._pipe.write(view) or 0 :]
            except (OSError, ValueError) as error:  # the process is gone: why, if it said
                self._reader.join(5.0)
                raise TraceError(self._failure(str(error))) from error

    def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        for line in stdout:
            try:
                answer = json.loads(line)
            except ValueError:
                continue
            with self._answers:
                if "file" in answer:
                    self.files.append(Path(answer["file"]))
                elif "sync" in answer:
                    self._synced = int(answer["sync"])
                    self.cpu = float(answer.get("cpu", 0.0)) - self._ready_cpu
                elif "error" in answer:
                    self._error = str(answer["error"])
                elif "ready" in answer:
                    self._ready = True
                    self._ready_cpu = float(answer.get("cpu", 0.0))
                elif "done" in answer:
                    self._done = True
                self._answers.notify_all()
        with self._answers:
            self._eof = True
            self._answers.notify_all()
        stdout.close()

    def _ended(self) -> bool:
        # Its stdout's end, not only its exit: the last notification comes at the end of
        # the output, when the process may not have been reaped yet.
        return self._eof or self._process.poll() is not None

    def _failure(self, fallback: str = "") -> str:
        if self._error is not None:
            return self._error
        stderr = b""
        if self._process.poll() is not None and self._process.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                stderr = self._process.stderr.read()[-2000:]
        text = stderr.decode(errors="replace").strip()
        code = self._process.returncode
        return (
            f"the trace writer process ended (exit code {code}): {text or fallback or 'no message'}"
        )


@functools.cache
def _is_tap_struct(kind: type) -> bool:
    """Whether msgspec encodes ``kind`` as :class:`_Tap` decodes it (the node's
    ``TapRecord``; other records, a ``TraceRecord`` say, go as columns)."""
    config = getattr(kind, "__struct_config__", None)
    return (
        config is not None
        and config.array_like
        and config.tag is None
        and getattr(kind, "__struct_fields__", ()) == _Tap.__struct_fields__
    )


def _config_dict(config: RecorderConfig) -> dict[str, Any]:
    return {
        "out_dir": str(config.out_dir),
        "name": config.name,
        "max_bytes": config.max_bytes,
        "max_seconds": config.max_seconds,
        "compression": config.compression,
        "chunk_size": config.chunk_size,
    }


# -- the process ------------------------------------------------------------------------


def main(stdin: IO[bytes] | None = None, stdout: IO[str] | None = None) -> int:
    """The writer process: read frames from ``stdin`` until it closes; 1 on failure."""
    from edgeloop.trace._files import TraceFiles
    from edgeloop.trace._recorder import RecorderConfig

    source = stdin or sys.stdin.buffer
    sink = stdout or sys.stdout

    def say(**answer: object) -> None:
        with contextlib.suppress(OSError, ValueError):  # the recorder is gone: write on
            sink.write(json.dumps(answer) + "\n")
            sink.flush()

    decoder: msgspec.msgpack.Decoder[_Incoming] = msgspec.msgpack.Decoder(_Incoming)
    files: TraceFiles | None = None
    info: dict[str, str] = {}  # the latest the recorder sent: each new file reads them
    totals: dict[str, int] = {}
    warm_up()  # imports and look-ups of the first file: not on the first records' time
    gc.freeze()  # what is loaded now stays: collections look at the records' garbage only
    say(ready=True, cpu=time.process_time())
    try:
        for frame in _frames(source, decoder):
            if isinstance(frame, _Taps):
                assert files is not None, "records before the recording opened"
                totals.update(frame.totals)
                files.write_columns(_columns(frame.kinds, frame.records))
            elif isinstance(frame, _RecordsIn):
                assert files is not None, "records before the recording opened"
                totals.update(frame.totals)
                files.write_columns(
                    Columns(
                        frame.directions, frame.devices, frame.kinds, frame.times, frame.messages
                    )
                )
            elif isinstance(frame, _Info):
                info.clear()
                info.update(frame.info)
            elif isinstance(frame, _Frame):
                assert files is not None, "a frame before the recording opened"
                files.write_frame(frame.device, frame.ref, frame.data, frame.ts)
            elif isinstance(frame, _Sync):
                say(sync=frame.token, cpu=time.process_time())
            elif isinstance(frame, _Close):
                totals.update(frame.totals)
            else:
                settings = {**frame.config, "out_dir": Path(frame.config["out_dir"])}
                files = TraceFiles(
                    RecorderConfig(**settings),
                    lambda: info,
                    lambda: totals,
                    opened=lambda path: say(file=str(path)),
                )
        if files is not None:
            files.finish()
    except Exception as error:  # noqa: BLE001 (told to the recorder, which raises it)
        say(error=str(error))
        return 1
    say(done=True)
    return 0


def _columns(kinds: list[str], records: list[_Tap]) -> Columns:
    return Columns(
        list(map(_DIRECTION_OF, records)),
        list(map(_DEVICE_OF, records)),
        kinds,
        list(map(_TS_OF, records)),
        list(map(_MESSAGE_OF, records)),
    )


def _frames(source: IO[bytes], decoder: msgspec.msgpack.Decoder[_Incoming]) -> Iterator[_Incoming]:
    read = source.read
    while True:
        head = read(_LENGTH.size)
        if len(head) < _LENGTH.size:
            return
        (size,) = _LENGTH.unpack(head)
        body = read(size)
        if len(body) < size:
            msg = f"the recorder's pipe ended inside a frame ({len(body)} of {size} bytes)"
            raise TraceError(msg)
        yield decoder.decode(body)


if __name__ == "__main__":
    sys.exit(main())
