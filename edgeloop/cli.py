"""The ``edgeloop`` console script: parse, configure logging, call. Nothing else lives here."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import signal
import sys
import threading
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import structlog
import typer
from rich.console import Console

from edgeloop import __version__
from edgeloop.errors import ConfigError, EdgeloopError

__all__ = ["app", "main", "configure_logging"]

app = typer.Typer(
    name="edgeloop",
    help="A runtime for intelligent real-time IoT at the cloud edge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
node_app = typer.Typer(help="Run and inspect a supervisor node.", no_args_is_help=True)
demo_app = typer.Typer(help="Run the demos that ship with edgeloop.", no_args_is_help=True)
keys_app = typer.Typer(help="CurveZMQ key pairs for nodes and devices.", no_args_is_help=True)
app.add_typer(node_app, name="node")
app.add_typer(keys_app, name="keys")
app.add_typer(demo_app, name="demo")

_err = Console(stderr=True)

# Options every client of a running node takes (node status, record, knowledge).
_ServerKey = Annotated[
    str | None, typer.Option(help="The node's public key (file or Z85) for CurveZMQ.")
]
_ClientKey = Annotated[
    Path | None, typer.Option(help="This client's secret key file, for CurveZMQ.")
]
_NodeTimeout = Annotated[float, typer.Option(help="Seconds to wait for the node.")]


class LogFormat(StrEnum):
    console = "console"
    json = "json"


def configure_logging(fmt: LogFormat = LogFormat.console, level: int = logging.INFO) -> None:
    """Route structlog to stderr: one JSON object a line, or a readable console line."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if fmt is LogFormat.json:
        shared.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeloop {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """edgeloop: supervised actors, ZeroMQ links, a zero-copy bulk lane, a Bayesian learner."""


def control_dir() -> Path:
    """Where `node start` puts each node's local control socket (ipc)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/edgeloop-{os.getuid()}"
    return Path(base) / "edgeloop"


def control_address(name: str) -> str:
    return f"ipc://{control_dir() / name}.ipc"


def _claim_control(name: str) -> int:
    """Lock NAME.lock in the control directory for this node's lifetime, so a second node
    of the same name cannot take over the first one's control socket (binding an ipc path
    silently replaces it). Returns the locked file descriptor."""
    directory = control_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = directory.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        _err.print(
            f"[red]error:[/] {directory} must belong to you with mode 0700 (it holds control "
            "sockets); fix it or set XDG_RUNTIME_DIR"
        )
        raise typer.Exit(2)
    fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        _err.print(
            f"[red]error:[/] a node named {name!r} is already running on this machine; stop "
            "it, or give this one another --name"
        )
        raise typer.Exit(2) from None
    return fd


@node_app.command("start")
def node_start(
    app_file: Annotated[Path, typer.Argument(help="The app file (TOML) to run.")],
    name: Annotated[str | None, typer.Option(help="Node name (overrides [node] name).")] = None,
    log_format: Annotated[LogFormat, typer.Option(help="Log lines as text or JSON.")] = (
        LogFormat.console
    ),
    path: Annotated[
        list[Path] | None,
        typer.Option(help="Extra directory to import actor modules from (repeatable)."),
    ] = None,
    control: Annotated[
        bool,
        typer.Option(help="Listen on a local ipc socket so `edgeloop node status` finds it."),
    ] = True,
    record: Annotated[
        Path | None,
        typer.Option(help="Record the device boundary into this directory (MCAP traces)."),
    ] = None,
) -> None:
    """Run APP_FILE's supervision tree in the foreground; SIGINT/SIGTERM stop it in order."""
    from edgeloop.supervisor import Node, load_app

    configure_logging(log_format)
    for directory in [*(path or []), Path.cwd()]:
        entry = str(directory.resolve())
        if entry not in sys.path:
            sys.path.insert(0, entry)
    lock: int | None = None
    try:
        config = load_app(app_file)
        if control:
            node_name = name or config.node.name
            lock = _claim_control(node_name)
            listen = (*config.node.listen, control_address(node_name))
            config = dataclasses.replace(
                config, node=dataclasses.replace(config.node, listen=listen)
            )
        node = Node.from_app(config, name=name)
    except ConfigError as error:
        _err.print(f"[red]error:[/] {app_file}: {error}")
        raise typer.Exit(2) from None

    # Built before the node starts, attached right after: its links open at the end of
    # start(), and nothing slow may stand between them and the recorder's tap.
    tracing = _prepare_tracing(record, node.name)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    # Handlers go in before the tree starts: a signal during start-up stops it right after.
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        node.start()
    except EdgeloopError as error:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if tracing is not None:
            tracing.close()
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None

    def watch_root() -> None:
        node.wait()
        stop.set()

    try:
        recorder = _start_tracing(node, tracing)
    except EdgeloopError as error:
        node.stop()
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    watcher = threading.Thread(target=watch_root, name="edgeloop-node-watch", daemon=True)
    watcher.start()
    try:
        stop.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    reason = node.stop()
    if recorder is not None:
        stats = recorder.close()
        _err.print(f"recorded {stats.recorded} messages, dropped {stats.dropped}: {record}")
    if lock is not None:
        # ZeroMQ leaves an ipc socket file behind; `node status` would find a dead node.
        Path(control_address(node.name).removeprefix("ipc://")).unlink(missing_ok=True)
        os.close(lock)
    if reason.abnormal:
        _err.print(f"[red]node {node.name!r} stopped:[/] root supervisor escalated: {reason}")
        raise typer.Exit(1)


@node_app.command("status")
def node_status(
    connect: Annotated[
        str | None,
        typer.Option(help="The node's address (tcp://host:port or ipc://path)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="A node started here with `node start` (its name).")
    ] = None,
    server_key: _ServerKey = None,
    key: _ClientKey = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    timeout: _NodeTimeout = 5.0,
) -> None:
    """The live supervision tree, peers and their liveness, and rejected-input counters."""
    from edgeloop.supervisor import fetch_status

    configure_logging(LogFormat.console, level=logging.ERROR)
    address = connect or _local_control(name)
    try:
        status = fetch_status(address, server_key=server_key, secret_key=key, timeout=timeout)
    except EdgeloopError as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(status))
    else:
        render_status(status, Console() if sys.stdout.isatty() else Console(width=132))


def render_status(status: dict[str, Any], console: Console) -> None:
    """The status as a tree of actors, a table of peers and the rejection counters."""
    from rich.table import Table
    from rich.tree import Tree

    uptime = status.get("uptime_s")
    tree = Tree(f"[bold]{status['node']}[/] (up {uptime} s, dead letters {status['dead_letters']})")
    branches: dict[str, Tree] = {"/": tree}
    for actor in status["actors"]:
        path = actor["path"]
        parent = path.rsplit("/", 1)[0] or "/"
        label = (
            f"{path if path == '/' else path.rsplit('/', 1)[1]}  restarts={actor['restarts']} "
            f"queue={actor['queue_depth']}/{actor['capacity']} handled={actor['processed']}"
        )
        if path == "/":
            tree.label = f"{tree.label}  {label}"
            continue
        branches[path] = branches.get(parent, tree).add(label)
    console.print(tree)
    if status["peers"]:
        table = Table(title="peers")
        for column in ("peer", "address", "side", "state", "last seen", "sent", "received"):
            table.add_column(column)
        for peer in status["peers"]:
            seen = peer["last_seen_s_ago"]
            table.add_row(
                str(peer["peer"]),
                peer["address"],
                peer["side"],
                peer["state"],
                "-" if seen is None else f"{seen:.2f} s ago",
                str(peer["sent"]),
                str(peer["received"]),
            )
        console.print(table)
    devices = status.get("devices") or {}
    if devices.get("registered"):
        counters = devices.get("counters") or {}
        console.print(
            f"devices: {len(devices['registered'])} registered, "
            f"{len(devices.get('connected', []))} connected; "
            + ", ".join(f"{k}={v}" for k, v in sorted(counters.items()))
        )
    twins = status.get("twins") or {}
    if twins:
        table = Table(title="device twins")
        columns = sorted({key for state in twins.values() for key in state if _scalar(state[key])})
        table.add_column("device")
        for column in columns:
            table.add_column(column)
        for device, state in twins.items():
            table.add_row(device, *(str(state.get(column, "")) for column in columns))
        console.print(table)
    knowledge = status.get("knowledge")
    if isinstance(knowledge, dict) and "cycles" in knowledge:
        from edgeloop.learning.cycle_client import knowledge_table

        console.print(knowledge_table(knowledge))
    rejected = status.get("rejected") or {}
    console.print(
        "rejected input: "
        + (", ".join(f"{k}={v}" for k, v in sorted(rejected.items())) if rejected else "none")
    )


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _local_control(name: str | None) -> str:
    """The control socket of a node started on this machine, by name or the only one."""
    if name is not None:
        return control_address(name)
    sockets = sorted(control_dir().glob("*.ipc")) if control_dir().exists() else []
    if len(sockets) == 1:
        return f"ipc://{sockets[0]}"
    found = ", ".join(s.stem for s in sockets) or "none"
    _err.print(f"[red]error:[/] pass --connect ADDR or --name NAME (nodes started here: {found})")
    raise typer.Exit(2)


@keys_app.command("generate")
def keys_generate(
    name: Annotated[str, typer.Argument(help="The node or device id the keys are for.")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to write NAME.key and NAME.key_secret.")
    ] = Path(),
    force: Annotated[bool, typer.Option(help="Overwrite existing key files.")] = False,
) -> None:
    """Write a CurveZMQ key pair: NAME.key (public, share it) and NAME.key_secret (0600)."""
    from edgeloop.transport import keys_generate as generate

    configure_logging(LogFormat.console, level=logging.WARNING)
    try:
        public, secret = generate(name, directory, force)
    except EdgeloopError as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    typer.echo(f"public key: {public}")
    typer.echo(f"secret key: {secret}  (keep it on this machine only)")


@demo_app.command("supervision")
def demo_supervision(
    seconds: Annotated[float, typer.Option(help="How long to run before stopping.")] = 6.0,
    log_format: Annotated[LogFormat, typer.Option(help="Log lines as text or JSON.")] = (
        LogFormat.console
    ),
) -> None:
    """Sensors crash, supervisors restart them, one escalates, the node stops in order."""
    from edgeloop.apps.supervision import run_demo

    configure_logging(log_format)
    raise typer.Exit(run_demo(seconds))


@demo_app.command("yard")
def demo_yard(
    seconds: Annotated[
        float | None, typer.Option(help="Stop after this many wall seconds (default: the end).")
    ] = None,
    scenario: Annotated[str, typer.Option(help="A shipped scenario's name or a TOML file.")] = (
        "calm"
    ),
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second.")] = 20.0,
    seed: Annotated[int | None, typer.Option(help="World seed (default: the scenario's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the yard app with a scenario's devices as processes; show it, then score it."""
    from edgeloop.apps.yard_demo import run_demo

    configure_logging(level=logging.WARNING)
    try:
        run_demo(seconds=seconds, scenario=scenario, speed=speed, seed=seed, as_json=as_json)
    except ConfigError as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None


@app.command("bench")
def bench(
    suite: Annotated[str, typer.Argument(help="The suite to run, such as 'actors'.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    quick: Annotated[bool, typer.Option(help="Small sizes, for CI and smoke runs.")] = False,
    fuzz: Annotated[
        int | None,
        typer.Option(help="link only: send N hostile messages at a live endpoint instead."),
    ] = None,
    minutes: Annotated[
        float | None, typer.Option(help="chaos only: play the busy yard over M minutes.")
    ] = None,
) -> None:
    """Measure edgeloop against its anchor in the same run and report the ratios."""
    from edgeloop import bench as benchmarks

    configure_logging(LogFormat.console, level=logging.ERROR if fuzz else logging.WARNING)
    if fuzz is not None:
        if suite != "link":
            _err.print("[red]error:[/] --fuzz applies to the link suite only")
            raise typer.Exit(2)
        from edgeloop.bench.link import run_fuzz

        report = run_fuzz(fuzz)
        if as_json:
            typer.echo(json.dumps(report))
        else:
            typer.echo(
                f"tried {report['tried']}, rejected {report['rejected_total']} "
                f"({report['rejected']}), unaccounted {report['unaccounted']}, "
                f"crashes {report['crashes']}"
            )
        raise typer.Exit(1 if report["crashes"] or report["unaccounted"] else 0)
    if minutes is not None and suite != "chaos":
        _err.print("[red]error:[/] --minutes applies to the chaos suite only")
        raise typer.Exit(2)
    try:
        if minutes is not None:
            from edgeloop.bench.chaos import run_chaos

            result = run_chaos(quick, minutes=minutes)
        else:
            result = benchmarks.run(suite, quick=quick)
    except ConfigError as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    except KeyError as error:
        _err.print(f"[red]error:[/] {error.args[0]}")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    else:
        # Piped output gets a fixed width, so the table is not squeezed to 80 columns.
        benchmarks.print_table(result, Console() if sys.stdout.isatty() else Console(width=132))


# -- devices and the simulated yard (edgeloop.sensors) ------------------------------------

device_app = typer.Typer(help="Run a device agent (a camera or a trap).", no_args_is_help=True)
sim_app = typer.Typer(help="Run simulated devices against a node.", no_args_is_help=True)
app.add_typer(device_app, name="device")
app.add_typer(sim_app, name="sim")


def _until_signal() -> tuple[threading.Event, dict[signal.Signals, Any]]:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    return stop, previous


@device_app.command("run")
def device_run(
    device_file: Annotated[Path, typer.Argument(help="The device file (TOML) to run.")],
    log_format: Annotated[LogFormat, typer.Option(help="Log lines as text or JSON.")] = (
        LogFormat.console
    ),
    start_at: Annotated[
        float | None,
        typer.Option(help="Wall time (Unix seconds) of source time 0; a runner passes it."),
    ] = None,
) -> None:
    """Run the device DEVICE_FILE describes until SIGINT/SIGTERM."""
    from edgeloop.sensors.device import build_agent, load_device, run_agent

    configure_logging(log_format)
    try:
        agent = build_agent(load_device(device_file), start_at=start_at)
    except ConfigError as error:
        _err.print(f"[red]error:[/] {device_file}: {error}")
        raise typer.Exit(2) from None
    stop, previous = _until_signal()
    try:
        code = run_agent(agent, stop)
    except EdgeloopError as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    raise typer.Exit(code)


@sim_app.command("yard")
def sim_yard(
    scenario: Annotated[str, typer.Option(help="A shipped scenario's name or a TOML file.")],
    connect: Annotated[str, typer.Option(help="The node's address (tcp://host:port).")],
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second.")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="World seed (default: the scenario's).")] = None,
    processes: Annotated[
        bool,
        typer.Option("--processes/--in-process", help="One process per device, or one for all."),
    ] = True,
    run_dir: Annotated[
        Path | None, typer.Option(help="Where device files, journals and catches go.")
    ] = None,
    node_key: Annotated[
        str | None, typer.Option(help="The node's public key (file or Z85), for CurveZMQ.")
    ] = None,
    keys: Annotated[
        Path | None, typer.Option(help="Directory of each device's NAME.key_secret (CurveZMQ).")
    ] = None,
    restart: Annotated[
        bool, typer.Option(help="Start a device process again when it dies (processes only).")
    ] = True,
    log_format: Annotated[LogFormat, typer.Option(help="Log lines as text or JSON.")] = (
        LogFormat.console
    ),
) -> None:
    """Run every camera and trap of a yard scenario against the node at --connect."""
    from edgeloop.sensors._runner import YardRunner

    configure_logging(log_format)
    if not speed > 0:
        _err.print(f"[red]error:[/] --speed must be > 0, got {speed}")
        raise typer.Exit(2)
    try:
        runner = YardRunner.from_scenario(
            scenario,
            connect=connect,
            mode="processes" if processes else "in-process",
            seed=seed,
            speed=speed,
            run_dir=run_dir,
            node_key=node_key,
            keys=keys,
            restart=restart,
        )
    except ConfigError as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    stop, previous = _until_signal()
    try:
        runner.start()

        def played() -> None:
            runner.wait()  # the scenario's last second (or a stop)
            stop.set()

        watcher = threading.Thread(target=played, name="edgeloop-yard-watch", daemon=True)
        watcher.start()
        stop.wait()
    except EdgeloopError as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        codes = runner.stop()
    caught = runner.catches()
    _err.print(f"yard {scenario!r}: {len(runner.configs)} devices, run dir {runner.run_dir}")
    for catch in caught:
        _err.print(f"  {catch['trap']} closed at t={catch['t']}: {catch['caught'] or 'empty'}")
    failed = [name for name, code in codes.items() if code not in (None, 0, -15)]
    raise typer.Exit(1 if failed else 0)


# -- traces: record, replay, inspect (bodies in edgeloop.trace._commands) ----------------

trace_app = typer.Typer(help="Inspect and export recorded traces (MCAP).", no_args_is_help=True)
app.add_typer(trace_app, name="trace")


FRAME_BUDGET = 64 * 1024 * 1024
"""Bytes of full frames `node start --record` keeps (offered by actors, see the trace docs)."""


def _prepare_tracing(record: Path | None, name: str) -> Any:
    """The recorder for `node start --record` (its writer waits for the node's records)."""
    from edgeloop.trace import Recorder, RecorderConfig

    if record is None:
        return None
    try:
        return Recorder(RecorderConfig(record, frame_budget=FRAME_BUDGET), node=name)
    except EdgeloopError as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None


def _start_tracing(node: Any, recorder: Any) -> Any:
    """Tap the boundary into ``recorder``, and serve it to `edgeloop record` (nodes with
    links: the server sits at /_trace, outside the tree)."""
    from edgeloop.trace import RECORDER_SERVICE, serve_trace

    if recorder is not None:
        recorder.clock_start = node.system.clock.now()
        recorder.attach(node.devices)
        node.system.services[RECORDER_SERVICE] = recorder  # actors offer frames to it
    if node.endpoint is not None:
        serve_trace(node.system, node.devices)
    return recorder


def _open_trace(path: Path, salvage: bool) -> Any:
    from edgeloop.trace import open_trace

    try:
        return open_trace(path, salvage=salvage)
    except EdgeloopError as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None


_Salvage = Annotated[
    bool, typer.Option(help="Use the readable part of a truncated or damaged trace.")
]


@trace_app.command("info")
def trace_info(
    trace: Annotated[Path, typer.Argument(help="A trace file or a recorder's directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    salvage: _Salvage = False,
) -> None:
    """Channels, message counts, duration, schemas, size and what the recorder dropped."""
    from edgeloop.trace._commands import show_info

    configure_logging(LogFormat.console, level=logging.WARNING)
    console = Console() if sys.stdout.isatty() else Console(width=132)
    raise typer.Exit(show_info(_open_trace(trace, salvage), console, as_json=as_json))


@trace_app.command("export")
def trace_export(
    trace: Annotated[Path, typer.Argument(help="A trace file or a recorder's directory.")],
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per message.")] = False,
    topics: Annotated[
        str | None, typer.Option(help="Only topics matching this regular expression.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    salvage: _Salvage = False,
) -> None:
    """Export the messages of a trace (JSON lines; bytes as base64)."""
    configure_logging(LogFormat.console, level=logging.WARNING)
    if not jsonl:
        _err.print("[red]error:[/] choose an export format: --jsonl")
        raise typer.Exit(2)
    opened = _open_trace(trace, salvage)
    try:
        if out is None:
            count = opened.export_jsonl(sys.stdout, topics=topics)
        else:
            with out.open("w") as stream:
                count = opened.export_jsonl(stream, topics=topics)
    except EdgeloopError as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    _err.print(f"exported {count} messages")


@app.command("replay")
def replay_trace(
    trace: Annotated[Path, typer.Argument(help="A trace file or a recorder's directory.")],
    app_file: Annotated[Path, typer.Option("--app", help="The app file (TOML) to replay into.")],
    rate: Annotated[float, typer.Option(help="Trace seconds per wall second.")] = 1.0,
    fast: Annotated[bool, typer.Option(help="As fast as the node settles (no pacing).")] = False,
    loop: Annotated[bool, typer.Option(help="Start over at the end, until Ctrl-C.")] = False,
    topics: Annotated[
        str | None, typer.Option(help="Replay only inbound topics matching this regex.")
    ] = None,
    start_offset: Annotated[float, typer.Option(help="Skip this many seconds of trace.")] = 0.0,
    check: Annotated[
        bool, typer.Option(help="Compare the node's decisions with the recorded ones.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar or summary.")] = False,
    settle_timeout: Annotated[
        float, typer.Option(help="Seconds the node may take to settle after each message.")
    ] = 60.0,
    salvage: _Salvage = False,
    path: Annotated[
        list[Path] | None,
        typer.Option(help="Extra directory to import actor modules from (repeatable)."),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(help="Record the replay into this directory (a reference for --check)."),
    ] = None,
) -> None:
    """Feed a trace's inbound messages into APP's node under a virtual clock."""
    from edgeloop.clock import VirtualClock
    from edgeloop.supervisor import Node, load_app
    from edgeloop.trace import RecorderConfig, ReplayOptions
    from edgeloop.trace._commands import run_replay

    configure_logging(LogFormat.console, level=logging.WARNING)
    _add_import_paths(path)
    try:
        config = load_app(app_file)
        options = ReplayOptions(
            rate=None if fast else rate,
            topics=topics,
            start_offset=start_offset,
            loop=loop,
            settle_timeout=settle_timeout,
            record=None if record is None else RecorderConfig(record),
        )
    except (ConfigError, ValueError) as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None

    def node_factory(clock: VirtualClock) -> Node:
        # No links: the player's sink stands in for the devices.
        return Node(
            config.node.name, config.flags, config.children, clock=clock, seed=config.node.seed
        )

    opened = _open_trace(trace, salvage)
    try:
        code = run_replay(opened, node_factory, options, check=check, quiet=quiet, console=_err)
    except (EdgeloopError, ValueError) as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2 if isinstance(error, ValueError) else 1) from None
    raise typer.Exit(code)


@app.command("record")
def record_node(
    connect: Annotated[
        str, typer.Option(help="The node's address (tcp://host:port or ipc://path).")
    ],
    out: Annotated[Path, typer.Option(help="The directory to write the trace into.")],
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
    max_bytes: Annotated[int | None, typer.Option(help="Start a new file at this size.")] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Start a new file after this many seconds.")
    ] = None,
    server_key: _ServerKey = None,
    key: _ClientKey = None,
    timeout: _NodeTimeout = 5.0,
) -> None:
    """Record a running node's device boundary (it must run `edgeloop node start`)."""
    from edgeloop.supervisor import Node
    from edgeloop.trace import RecorderConfig
    from edgeloop.trace._commands import probe_name, run_record
    from edgeloop.transport import PeerAddress, SecurityConfig

    configure_logging(LogFormat.console, level=logging.WARNING)
    try:
        config = RecorderConfig(out, max_bytes=max_bytes, max_seconds=max_seconds)
    except ValueError as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    security = SecurityConfig(secret_key=key) if key is not None else None
    probe = Node(probe_name(), peers=[PeerAddress(connect, server_key)], security=security)
    try:
        code = run_record(probe, connect, config, duration=duration, timeout=timeout, console=_err)
    except EdgeloopError as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    raise typer.Exit(code)


knowledge_app = typer.Typer(help="The open-world knowledge cycle of a node.", no_args_is_help=True)
app.add_typer(knowledge_app, name="knowledge")


@knowledge_app.command("name")
def knowledge_name(
    old: Annotated[str, typer.Argument(help="The learnt class, such as species-4.")],
    new: Annotated[str, typer.Argument(help="Its name, such as opossum.")],
    connect: Annotated[str, typer.Option(help="The node's address (tcp://host:port).")],
    path: Annotated[str, typer.Option(help="The cycle actor's path.")] = "/knowledge",
    server_key: _ServerKey = None,
    key: _ClientKey = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    timeout: _NodeTimeout = 5.0,
) -> None:
    """Name a class the cycle learnt; the cameras get a head with the new name."""
    from edgeloop.learning.cycle_client import name_class

    configure_logging(LogFormat.console, level=logging.ERROR)
    try:
        record = name_class(
            connect, old, new, path=path, server_key=server_key, secret_key=key, timeout=timeout
        )
    except EdgeloopError as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(record))
    else:
        typer.echo(f"{old} is now {new}: head v{record['head_version']} going to the cameras")


@knowledge_app.command("status")
def knowledge_status(
    connect: Annotated[str, typer.Option(help="The node's address (tcp://host:port).")],
    path: Annotated[str, typer.Option(help="The cycle actor's path.")] = "/knowledge",
    server_key: _ServerKey = None,
    key: _ClientKey = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    timeout: _NodeTimeout = 5.0,
) -> None:
    """What the cycle knows, and every cycle's stages in ms."""
    from edgeloop.learning.cycle_client import ask_cycle, knowledge_table

    configure_logging(LogFormat.console, level=logging.ERROR)
    try:
        section = ask_cycle(
            connect,
            {"op": "cycles"},
            path=path,
            server_key=server_key,
            secret_key=key,
            timeout=timeout,
        )
    except EdgeloopError as error:
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(section))
    else:
        Console(width=132).print(knowledge_table(section))


def _add_import_paths(paths: list[Path] | None) -> None:
    for directory in [*(paths or []), Path.cwd()]:
        entry = str(directory.resolve())
        if entry not in sys.path:
            sys.path.insert(0, entry)


def main() -> None:
    """Entry point of the ``edgeloop`` console script."""
    from edgeloop.learning.compile_cache import default_compile_cache

    default_compile_cache()  # before anything imports JAX: a node's start loads, not compiles
    app()
