"""The ``edgeloop`` console script: parse, configure logging, call. Nothing else lives here."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

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
node_app = typer.Typer(help="Run a supervisor node.", no_args_is_help=True)
demo_app = typer.Typer(help="Run the demos that ship with edgeloop.", no_args_is_help=True)
keys_app = typer.Typer(help="CurveZMQ key pairs for nodes and devices.", no_args_is_help=True)
app.add_typer(node_app, name="node")
app.add_typer(keys_app, name="keys")
app.add_typer(demo_app, name="demo")

_err = Console(stderr=True)


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
) -> None:
    """Run APP_FILE's supervision tree in the foreground; SIGINT/SIGTERM stop it in order."""
    from edgeloop.supervisor import Node

    configure_logging(log_format)
    for directory in [*(path or []), Path.cwd()]:
        entry = str(directory.resolve())
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        node = Node.from_app(app_file, name=name)
    except ConfigError as error:
        _err.print(f"[red]error:[/] {app_file}: {error}")
        raise typer.Exit(2) from None

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
        _err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None

    def watch_root() -> None:
        node.wait()
        stop.set()

    watcher = threading.Thread(target=watch_root, name="edgeloop-node-watch", daemon=True)
    watcher.start()
    try:
        stop.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    reason = node.stop()
    if reason.abnormal:
        _err.print(f"[red]node {node.name!r} stopped:[/] root supervisor escalated: {reason}")
        raise typer.Exit(1)


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


@app.command("bench")
def bench(
    suite: Annotated[str, typer.Argument(help="The suite to run, such as 'actors'.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    quick: Annotated[bool, typer.Option(help="Small sizes, for CI and smoke runs.")] = False,
) -> None:
    """Measure edgeloop against its anchor in the same run and report the ratios."""
    from edgeloop import bench as benchmarks

    configure_logging(LogFormat.console, level=logging.WARNING)
    try:
        result = benchmarks.run(suite, quick=quick)
    except KeyError as error:
        _err.print(f"[red]error:[/] {error.args[0]}")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    else:
        # Piped output gets a fixed width, so the table is not squeezed to 80 columns.
        benchmarks.print_table(result, Console() if sys.stdout.isatty() else Console(width=132))


def main() -> None:
    """Entry point of the ``edgeloop`` console script."""
    app()
