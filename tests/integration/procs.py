"""Subprocesses for the integration tests: their stderr (JSON log lines) read on a thread, so
a test can wait on an event with a timeout and never sleeps."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["ROOT", "Process", "free_tcp_ports", "run_script"]


def run_script(
    script: str, env: dict[str, str] | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """``python -c script`` from the repository's root, to its end, its output captured
    (``env`` replaces the environment when given)."""
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Process:
    """``python -m MODULE ARGS`` (``edgeloop`` by default) as a subprocess.

    Its stderr lines are read by a thread, stamped with ``time.monotonic()`` on arrival, so
    tests can wait for a JSON log event and measure when it came. ``prefix`` goes before the
    interpreter (``ip netns exec NS``); ``env`` adds to the environment; ``stdin=True`` gives
    the process a pipe to write to, and its stdout is then read line by line as well.
    """

    def __init__(
        self,
        *args: str,
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
        module: str = "edgeloop",
        stdin: bool = False,
    ) -> None:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", module, *args],
            cwd=cwd,
            env=environment,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.seen: list[str] = []
        self.arrived: list[float] = []
        """When each line of ``seen`` arrived (``time.monotonic()``)."""
        self.out: queue.Queue[str] | None = queue.Queue() if stdin else None
        assert self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self.lines), daemon=True)
        ]
        if self.out is not None:
            assert self.proc.stdout is not None
            self._readers.append(
                threading.Thread(target=self._read_out, args=(self.proc.stdout,), daemon=True)
            )
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str], lines: queue.Queue[tuple[float, str]]) -> None:
        for line in stream:
            lines.put((time.monotonic(), line))

    def _read_out(self, stream: IO[str]) -> None:
        assert self.out is not None
        for line in stream:
            self.out.put(line)

    def _take(self, timeout: float) -> bool:
        """Move one arrived line into ``seen``; ``False`` if none came within ``timeout``."""
        try:
            arrived, line = self.lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return False
        self.seen.append(line)
        self.arrived.append(arrived)
        return True

    def wait_for_event(
        self, event: str, timeout: float = 20.0, *, after: int = 0, **fields: Any
    ) -> dict[str, Any]:
        """The first JSON log record (from line ``after`` on) whose ``event`` and ``fields``
        match, waiting up to ``timeout`` seconds for it; fails the test otherwise.

        The record gets ``_arrived`` (monotonic seconds) and ``_line`` (its index in
        ``seen``) added.
        """
        deadline = time.monotonic() + timeout
        index = after
        while True:
            while index < len(self.seen):
                record = _record(self.seen[index])
                if (
                    record is not None
                    and record.get("event") == event
                    and all(record.get(k) == v for k, v in fields.items())
                ):
                    return {**record, "_arrived": self.arrived[index], "_line": index}
                index += 1
            if not self._take(deadline - time.monotonic()):
                wanted = f"{event!r} {fields}" if fields else repr(event)
                pytest.fail(f"no {wanted} within {timeout} s; saw: {self.seen[-8:]}")

    def mark(self) -> int:
        """The index of the next line: pass it as ``after`` to wait only for what comes next."""
        while self._take(0):
            pass
        return len(self.seen)

    def send(self, **command: Any) -> None:
        """Write ``command`` as one JSON line to the process's stdin (``stdin=True``)."""
        assert self.proc.stdin is not None, "start the process with stdin=True"
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def answer(self, timeout: float = 20.0) -> Any:
        """The next JSON line on the process's stdout, parsed; fails after ``timeout``."""
        assert self.out is not None, "start the process with stdin=True"
        try:
            line = self.out.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no answer within {timeout} s; stderr: {self.seen[-8:]}")
        return json.loads(line)

    def request(self, *, wait: float = 20.0, **command: Any) -> Any:
        """Send ``command``, wait up to ``wait`` seconds for its answer and return the answer's
        ``ok`` part (fail the test on an ``error``)."""
        self.send(**command)
        reply = self.answer(wait)
        assert "ok" in reply, f"{command['op']} failed: {reply}"
        return reply["ok"]

    def finish(self, timeout: float = 20.0) -> tuple[int, str]:
        """Wait for the process to exit (kill it after ``timeout``); its code and stdout."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._reap()
            pytest.fail("the process did not exit in time")
        out = self.proc.stdout.read() if self.out is None and self.proc.stdout else ""
        self._reap()
        return self.proc.returncode, out

    def kill(self) -> None:
        """SIGKILL the process (if it still runs), reap it and close its pipes."""
        self._reap()

    def _reap(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for reader in self._readers:
            reader.join(5)
        while self._take(0):
            pass
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log record seen so far."""
        while self._take(0):
            pass
        return [r for r in map(_record, self.seen) if r is not None]


def _record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def free_tcp_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports that were free on ``host`` a moment ago (bound to port 0)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()
