"""The app file: a node and its supervision tree in TOML, validated before anything starts.

Every error is a :class:`~edgeloop.errors.ConfigError` whose ``key`` is the dotted path of
the offending value (``supervisor.children[1].children[0].restart``), so a user can find
it in the file. Unknown keys are errors too, with the closest known key suggested.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from edgeloop.actors import Actor, MailboxConfig
from edgeloop.errors import ActorStartError, ConfigError
from edgeloop.supervisor._supervisor import resolve_start
from edgeloop.supervisor.spec import Backoff, ChildSpec, ChildType, SupervisorFlags

__all__ = ["NodeConfig", "AppConfig", "load_app", "parse_app", "check_starts"]

T = TypeVar("T")

SUPERVISOR_START = "edgeloop.supervisor:Supervisor"

_NODE_KEYS = {"name", "seed"}
_FLAG_KEYS = {"strategy", "intensity", "period", "backoff", "children"}
_CHILD_KEYS = {"id", "start", "args", "restart", "shutdown", "type", "mailbox"}
_BACKOFF_KEYS = {f.name for f in dataclasses.fields(Backoff)}
_MAILBOX_KEYS = {f.name for f in dataclasses.fields(MailboxConfig)}


@dataclasses.dataclass(frozen=True, slots=True)
class NodeConfig:
    """The ``[node]`` table: the node's name and the seed of its random generator."""

    name: str = "edgeloop"
    seed: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class AppConfig:
    """A whole app file: the node and its root supervisor's flags and children."""

    node: NodeConfig
    flags: SupervisorFlags
    children: tuple[ChildSpec, ...]
    source: str = "<app>"


def load_app(path: str | Path) -> AppConfig:
    """Read and validate an app file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError("", f"cannot read the app file {str(file)!r}: {error.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("", f"{file} is not valid TOML: {error}") from None
    return parse_app(data, source=str(file))


def parse_app(data: Mapping[str, Any], source: str = "<app>") -> AppConfig:
    """Validate an app document already parsed from TOML (or built in Python)."""
    _only(data, {"node", "supervisor"}, "")
    node_table = _table(data.get("node", {}), "node")
    _only(node_table, _NODE_KEYS, "node")
    name = node_table.get("name", "edgeloop")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("node.name", f"expected a non-empty string, got {name!r}")
    seed = node_table.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError("node.seed", f"expected an integer, got {seed!r}")
    if "supervisor" not in data:
        raise ConfigError("supervisor", "missing: an app needs a [supervisor] table")
    root = _table(data["supervisor"], "supervisor")
    _only(root, _FLAG_KEYS, "supervisor")
    flags = _flags(root, "supervisor")
    children = _children(root.get("children", []), "supervisor.children")
    return AppConfig(NodeConfig(name, seed), flags, children, source)


def check_starts(children: Sequence[ChildSpec], key: str = "supervisor.children") -> None:
    """Import every ``start`` and check its ``args`` bind to it, before anything starts."""
    for index, spec in enumerate(children):
        where = f"{key}[{index}]"
        if spec.type is ChildType.SUPERVISOR and spec.start == SUPERVISOR_START:
            check_starts(spec.args["children"], f"{where}.children")
            continue
        try:
            target = resolve_start(spec.start)
        except ActorStartError as error:
            raise ConfigError(f"{where}.start", str(error)) from None
        if inspect.isclass(target) and not issubclass(target, Actor):
            raise ConfigError(
                f"{where}.start",
                f"{spec.start!r} is a class but not an edgeloop.Actor subclass",
            )
        try:
            inspect.signature(target).bind(**spec.args)
        except TypeError as error:
            raise ConfigError(f"{where}.args", f"do not fit {spec.start!r}: {error}") from None
        except ValueError:
            pass  # no introspectable signature (a builtin); the start itself will tell


def _flags(table: Mapping[str, Any], key: str) -> SupervisorFlags:
    kwargs: dict[str, Any] = {
        k: table[k] for k in ("strategy", "intensity", "period") if k in table
    }
    if "backoff" in table:
        backoff = _table(table["backoff"], f"{key}.backoff")
        _only(backoff, _BACKOFF_KEYS, f"{key}.backoff")
        kwargs["backoff"] = _build(Backoff, backoff, key)
    return _build(SupervisorFlags, kwargs, key)


def _children(value: Any, key: str) -> tuple[ChildSpec, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, f"expected an array of tables ([[...children]]), got {value!r}")
    specs: list[ChildSpec] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(value):
        where = f"{key}[{index}]"
        spec = _child(_table(raw, where), where)
        if spec.id in seen:
            raise ConfigError(
                f"{where}.id", f"{spec.id!r} is already the id of {key}[{seen[spec.id]}]"
            )
        seen[spec.id] = index
        specs.append(spec)
    return tuple(specs)


def _child(table: Mapping[str, Any], key: str) -> ChildSpec:
    kind = table.get("type", "worker")
    is_supervisor = kind == ChildType.SUPERVISOR.value
    _only(table, _CHILD_KEYS | (_FLAG_KEYS if is_supervisor else set()), key)
    if "id" not in table:
        raise ConfigError(f"{key}.id", "missing: every child needs an id")
    kwargs: dict[str, Any] = {
        k: table[k] for k in ("id", "restart", "shutdown", "type") if k in table
    }
    if "mailbox" in table:
        mailbox = _table(table["mailbox"], f"{key}.mailbox")
        _only(mailbox, _MAILBOX_KEYS, f"{key}.mailbox")
        kwargs["mailbox"] = _build(MailboxConfig, mailbox, key)
    if is_supervisor:
        if "start" in table:
            raise ConfigError(
                f"{key}.start", "a child of type 'supervisor' is built by edgeloop: drop start"
            )
        kwargs["start"] = SUPERVISOR_START
        kwargs["args"] = {
            "flags": _flags(table, key),
            "children": _children(table.get("children", []), f"{key}.children"),
        }
    else:
        if "start" not in table:
            raise ConfigError(f"{key}.start", "missing: name the actor as 'package.module:Class'")
        kwargs["start"] = table["start"]
        kwargs["args"] = _table(table.get("args", {}), f"{key}.args")
    return _build(ChildSpec, kwargs, key)


def _build(kind: Callable[..., T], kwargs: Mapping[str, Any], key: str) -> T:
    """Construct a validated record, prefixing the error's key with where it sits."""
    try:
        return kind(**kwargs)
    except ConfigError as error:
        raise ConfigError(f"{key}.{error.key}" if error.key else key, error.problem) from None


def _table(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"expected a table, got {type(value).__name__} {value!r}")
    return value


def _only(table: Mapping[str, Any], allowed: set[str], key: str) -> None:
    for name in table:
        if name not in allowed:
            close = difflib.get_close_matches(name, sorted(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {sorted(allowed)}"
            raise ConfigError(f"{key}.{name}" if key else name, f"unknown key{hint}")
