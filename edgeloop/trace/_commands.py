"""The bodies of ``edgeloop trace info``, ``edgeloop replay`` and ``edgeloop record``.

The console script only parses and configures logging; what it runs lives here. Nodes
come from a factory the script passes in (``edgeloop.supervisor`` is a sibling layer that
this package does not import). Each body returns the process's exit code.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from edgeloop.actors import ActorRefLike, ActorSystem
from edgeloop.clock import VirtualClock
from edgeloop.errors import EdgeloopError
from edgeloop.trace._format import TRACE_METADATA
from edgeloop.trace._player import ReplayNode, ReplayOptions, replay
from edgeloop.trace._reader import Trace, TraceInfo
from edgeloop.trace._recorder import Recorder, RecorderConfig
from edgeloop.trace._serve import SUBSCRIBER_PATH, TRACE_PATH, TraceSubscriber

__all__ = ["show_info", "render_info", "run_replay", "run_record", "ProbeNode", "probe_name"]


def show_info(trace: Trace, console: Console, *, as_json: bool = False) -> int:
    """Print channels, counts, duration, schemas, size and recorder counters."""
    info = trace.info()
    if as_json:
        import json

        console.out(json.dumps(info.to_json()), highlight=False)
        return 0
    render_info(info, console)
    return 0


def render_info(info: TraceInfo, console: Console) -> None:
    meta = info.metadata.get(TRACE_METADATA, {})
    files = ", ".join(str(p) for p in info.paths)
    console.print(f"[bold]trace[/] {files}")
    console.print(
        f"node {meta.get('node') or '?'}  messages {info.messages}  duration "
        f"{info.duration:.3f} s  size {_size(info.size)}  compression "
        f"{', '.join(info.compression) or 'none'}  format {meta.get('format_version', '?')}"
    )
    if "wall_start" in meta:
        console.print(
            f"recorded from {meta['wall_start']} (node clock {meta.get('clock_start', '?')})"
        )
    if "snapshot" in meta:
        console.print(f"snapshot, triggered by: {meta['snapshot']}")
    table = Table(title="channels")
    for column in ("topic", "direction", "device", "kind", "count", "schema"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for channel in info.channels:
        table.add_row(
            channel.topic,
            channel.direction,
            channel.device,
            channel.kind,
            str(channel.count),
            channel.schema,
        )
    console.print(table)
    recorder = info.metadata.get("edgeloop.recorder")
    if recorder:
        console.print("recorder: " + ", ".join(f"{k}={v}" for k, v in sorted(recorder.items())))
    for damage in info.damage:
        console.print(f"[red]damaged:[/] {damage}")


def run_replay(
    trace: Trace,
    node_factory: Callable[[VirtualClock], ReplayNode],
    options: ReplayOptions,
    *,
    check: bool,
    quiet: bool,
    console: Console,
) -> int:
    """Replay with a progress bar (rate and ETA); 1 if ``check`` found a divergence."""
    stop = threading.Event()
    total = sum(1 for _ in trace.records(direction="in", topics=options.topics))
    columns = (
        TextColumn("[bold]replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]:>8.0f} msg/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=console, disable=quiet, transient=False)
    task = progress.add_task("replay", total=total or None, rate=0.0)
    began = time.monotonic()

    def advance(done: int, count: int) -> None:
        elapsed = time.monotonic() - began
        progress.update(task, completed=done, total=count, rate=done / elapsed if elapsed else 0)

    with _stop_on_signals(stop), progress:
        result = replay(trace, node_factory, options, check=check, progress=advance, stop=stop)
    if not quiet:
        console.print(
            f"replayed {result.injected} messages in {result.loops} loop(s): "
            f"{result.virtual_seconds:.3f} s of trace in {result.wall_seconds:.3f} s "
            f"({result.rate:.0f} msg/s); the node sent {len(result.outbound)} messages",
            soft_wrap=True,
        )
    unknown = result.port_counters.get("unknown_device", 0)
    if unknown:
        console.print(
            f"[yellow]warning:[/] {unknown} replayed messages were for devices the app does "
            "not serve (rejected as unknown_device): is this the app that was recorded?"
        )
    if check:
        if result.divergence is not None:
            # Messages are JSON: their brackets are not markup, and scripts want one line.
            text = Text.assemble(("check failed: ", "red"), result.divergence.describe())
            console.print(text, soft_wrap=True)
            return 1
        console.print(f"check passed: {len(result.outbound)} outbound messages match the recording")
    return 0


class ProbeNode(Protocol):
    """What ``edgeloop record`` needs of its short-lived node (a ``Node`` with a peer)."""

    name: str

    @property
    def system(self) -> ActorSystem: ...
    def start(self) -> Any: ...
    def stop(self, timeout: float | None = None) -> Any: ...
    def peers(self) -> list[str]: ...
    def ref(self, address: str) -> ActorRefLike: ...


def run_record(
    probe: ProbeNode,
    address: str,
    config: RecorderConfig,
    *,
    duration: float | None,
    timeout: float,
    console: Console,
) -> int:
    """Subscribe to the node at ``address`` and record until Ctrl-C, ``duration`` or the
    node goes away."""
    stop = threading.Event()
    probe.start()
    try:
        deadline = time.monotonic() + timeout
        while not probe.peers():
            if time.monotonic() >= deadline:
                console.print(f"[red]error:[/] no node answered at {address} within {timeout} s")
                return 1
            stop.wait(0.02)
        target = probe.peers()[0]
        server = f"{target}:{TRACE_PATH}"
        recorder = Recorder(config, node=target)
        report: dict[str, int] = {"remote_dropped": 0, "malformed": 0}
        subscriber_ref = probe.system.spawn(
            TraceSubscriber,
            SUBSCRIBER_PATH,
            args={"recorder": recorder, "server": server, "done": stop, "report": report},
        )
        request = {"op": "subscribe", "address": f"{probe.name}:{SUBSCRIBER_PATH}"}
        try:
            answer = probe.ref(server).ask(request, timeout=timeout).get()
        except EdgeloopError as error:
            recorder.close()
            console.print(
                f"[red]error:[/] node {target!r} does not serve its boundary at {TRACE_PATH} "
                f"({error}); start it with `edgeloop node start`"
            )
            return 1
        if answer.get("error"):
            recorder.close()
            console.print(f"[red]error:[/] node {target!r} refused to stream: {answer['error']}")
            return 1
        recorder.clock_start = float(answer["clock"])
        console.print(f"recording node {target!r} into {config.out_dir} (Ctrl-C stops)")
        with _stop_on_signals(stop):
            stop.wait(duration)
        try:
            request["op"] = "unsubscribe"
            probe.ref(server).ask(request, timeout=1.0).get()
        except EdgeloopError:
            pass  # the node is gone: nothing to unsubscribe from
        subscriber_ref.stop()
        subscriber_ref.wait_stopped(5.0)
        stats = recorder.close()
        console.print(
            f"recorded {stats.recorded} messages into {len(stats.files)} file(s); dropped "
            f"{stats.dropped} here and {report['remote_dropped']} at the node"
        )
        return 0
    finally:
        probe.stop()


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (main thread only) instead of raising mid-write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def probe_name() -> str:
    """The name ``edgeloop record`` gives its short-lived node."""
    return f"record-{os.getpid()}"
