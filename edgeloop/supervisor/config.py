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
from typing import TYPE_CHECKING, Any, TypeVar

from edgeloop.actors import Actor, MailboxConfig
from edgeloop.errors import ActorStartError, ConfigError
from edgeloop.supervisor._supervisor import resolve_start
from edgeloop.supervisor.spec import Backoff, ChildSpec, ChildType, SupervisorFlags

if TYPE_CHECKING:
    # edgeloop.transport imports zmq: it is imported only when an app file has links.
    from edgeloop.transport import LinkConfig, PeerAddress
    from edgeloop.transport._security import SecurityConfig

__all__ = ["NodeConfig", "AppConfig", "load_app", "parse_app", "check_starts"]

T = TypeVar("T")

SUPERVISOR_START = "edgeloop.supervisor:Supervisor"

_NODE_KEYS = {"name", "seed", "listen", "peers", "link", "security"}
_LINK_KEYS = {
    "heartbeat_interval",
    "liveness_timeout",
    "handshake_timeout",
    "close_timeout",
    "queue_limit",
    "overflow",
    "backoff",
}
_LINK_BACKOFF_KEYS = {"min", "max", "random_factor"}
_PEER_KEYS = {"address", "server_key"}
_SCHEMES = ("tcp", "ipc")
_FLAG_KEYS = {"strategy", "intensity", "period", "backoff", "children"}
_CHILD_KEYS = {"id", "start", "args", "restart", "shutdown", "start_timeout", "type", "mailbox"}
_BACKOFF_KEYS = {f.name for f in dataclasses.fields(Backoff)}
_MAILBOX_KEYS = {f.name for f in dataclasses.fields(MailboxConfig)}


@dataclasses.dataclass(frozen=True, slots=True)
class NodeConfig:
    """The ``[node]`` table: the node's name, the seed of its random generator, and its links.

    ``listen`` are the ZeroMQ endpoints the node binds (``tcp://127.0.0.1:5555``,
    ``ipc:///run/edge-a.sock``), ``peers`` the nodes it connects to. ``link`` holds the
    ``[node.link]`` timing and queue bounds (``None``: the defaults) and ``security`` the
    ``[node.security]`` CurveZMQ settings, key paths resolved against the app file's folder
    (``None``: mode ``auto`` without keys, enough for loopback and ipc). A node with
    ``listen`` or ``peers`` uses its ``name`` as its id on the links.
    """

    name: str = "edgeloop"
    seed: int | None = None
    listen: tuple[str, ...] = ()
    peers: tuple[PeerAddress, ...] = ()
    link: LinkConfig | None = None
    security: SecurityConfig | None = None

    @property
    def linked(self) -> bool:
        """Whether the node opens links: it listens or has peers."""
        return bool(self.listen or self.peers)


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
    node = _node(node_table, name, seed, source)
    if "supervisor" not in data:
        raise ConfigError("supervisor", "missing: an app needs a [supervisor] table")
    root = _table(data["supervisor"], "supervisor")
    _only(root, _FLAG_KEYS, "supervisor")
    flags = _flags(root, "supervisor")
    children = _children(root.get("children", []), "supervisor.children")
    return AppConfig(node, flags, children, source)


def _node(table: Mapping[str, Any], name: str, seed: int | None, source: str) -> NodeConfig:
    """The ``[node]`` table; the link keys import edgeloop.transport (and zmq) only if set."""
    if not any(key in table for key in ("listen", "peers", "link", "security")):
        return NodeConfig(name, seed)
    base = Path(source).parent if source != "<app>" else None
    listen = _listen(table.get("listen", []))
    peers = _peers(table.get("peers", []), base)
    linked = bool(listen or peers)
    link: LinkConfig | None = link_config(name, table.get("link"), linked=linked)
    if not linked and "link" not in table:
        link = None
    security = None
    if "security" in table:
        from edgeloop.transport._security import SecurityConfig

        security = SecurityConfig.from_table(_table(table["security"], "node.security"), base=base)
    return NodeConfig(name, seed, listen, peers, link, security)


def _listen(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(
            "node.listen",
            f"expected an array of endpoints such as ['tcp://127.0.0.1:5555'], got {value!r}",
        )
    endpoints: list[str] = []
    for index, item in enumerate(value):
        where = f"node.listen[{index}]"
        endpoint = check_endpoint(item, where, listening=True)
        if endpoint in endpoints:
            raise ConfigError(
                where, f"{endpoint!r} is already node.listen[{endpoints.index(endpoint)}]"
            )
        endpoints.append(endpoint)
    return tuple(endpoints)


def _peers(value: Any, base: Path | None = None) -> tuple[PeerAddress, ...]:
    """The ``peers`` array; a relative ``server_key`` file path is taken relative to ``base``
    (the app file's folder), as the ``[node.security]`` paths are."""
    if not isinstance(value, list):
        raise ConfigError(
            "node.peers",
            f"expected an array of addresses or {{address, server_key}} tables, got {value!r}",
        )
    if not value:
        return ()
    from edgeloop.transport import PeerAddress
    from edgeloop.transport._security import is_z85_key

    peers: list[PeerAddress] = []
    for index, item in enumerate(value):
        where = f"node.peers[{index}]"
        if isinstance(item, str):
            peers.append(PeerAddress(check_endpoint(item, where, listening=False)))
            continue
        peer = _table(item, where)
        _only(peer, _PEER_KEYS, where)
        if "address" not in peer:
            raise ConfigError(f"{where}.address", "missing: give the peer's endpoint")
        address = check_endpoint(peer["address"], f"{where}.address", listening=False)
        key = peer.get("server_key")
        if key is not None and (not isinstance(key, str) or not key):
            raise ConfigError(
                f"{where}.server_key",
                f"expected the peer's public key (a NAME.key file or a Z85 string), got {key!r}",
            )
        if key is not None and base is not None and not Path(key).is_absolute():
            candidate = base / key
            if candidate.exists() or not is_z85_key(key):  # as for [node.security] paths
                key = str(candidate)
        peers.append(PeerAddress(address, key))
    return tuple(peers)


def check_endpoint(value: Any, key: str, *, listening: bool) -> str:
    """``value`` if it is a ZeroMQ endpoint a node can bind (``listening``) or connect to."""
    example = "such as 'tcp://127.0.0.1:5555' or 'ipc:///tmp/edge-a.sock'"
    if not isinstance(value, str):
        raise ConfigError(key, f"expected an endpoint {example}, got {value!r}")
    scheme, separator, rest = value.partition("://")
    if not separator or scheme not in _SCHEMES:
        raise ConfigError(key, f"expected a tcp:// or ipc:// endpoint {example}, got {value!r}")
    if not rest or rest.strip() != rest:
        raise ConfigError(key, f"{value!r} names no host or path after {scheme}://")
    if scheme == "tcp":
        host, colon, port = rest.rpartition(":")
        wildcard = port == "*" and listening
        if not colon or not host:
            raise ConfigError(key, f"expected tcp://HOST:PORT, got {value!r}")
        if not wildcard and not (port.isdigit() and 0 < int(port) <= 65535):
            allowed = "a port 1-65535 or '*' (any free port)" if listening else "a port 1-65535"
            raise ConfigError(key, f"expected {allowed} in {value!r}, got {port!r}")
    return value


def link_config(name: str, table: Any = None, *, linked: bool = True) -> LinkConfig:
    """The LinkConfig of node ``name`` from a ``[node.link]`` table (``None``: defaults).

    Errors name ``node.link.<key>``, and ``node.name`` when the name cannot be a link id.
    """
    from edgeloop.transport import LinkConfig, ReconnectBackoff

    kwargs: dict[str, Any] = {}
    if table is not None:
        link = _table(table, "node.link")
        _only(link, _LINK_KEYS, "node.link")
        kwargs.update(link)
        if "backoff" in link:
            backoff = _table(link["backoff"], "node.link.backoff")
            _only(backoff, _LINK_BACKOFF_KEYS, "node.link.backoff")
            kwargs["backoff"] = _build(ReconnectBackoff, backoff, "node")
    try:
        identity = LinkConfig(id=name)
    except ConfigError as error:
        if linked:
            raise ConfigError(
                "node.name", f"{error.problem} (a linked node's name is its id on its links)"
            ) from None
        identity = LinkConfig(id="edgeloop")  # checked only for the other keys' sake
    return _build(lambda **kw: dataclasses.replace(identity, **kw), kwargs, "node")


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
        k: table[k] for k in ("id", "restart", "shutdown", "start_timeout", "type") if k in table
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
