"""CurveZMQ for links that leave the host: the policy, the allowlist, and ZAP (key files are
in :mod:`edgeloop.transport._keys`).

Every node and device holds one key pair. The secret half stays in its ``NAME.key_secret``
file (mode 0600) on its own machine; the public half (``NAME.key``) is handed to whoever
must trust it. A node's app file names its own secret key file and lists the public keys
(files or 40-character Z85 strings) of the peers it admits, and of those it revokes::

    [node.security]
    mode = "auto"                       # "auto" | "on" | "off"
    secret_key = "keys/edge-a.key_secret"
    allowed = ["keys/edge-b.key", "keys/cam-01.key", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"]
    revoked = ["keys/cam-07.key"]

A listening socket under CurveZMQ (:func:`secure_server`) asks the ZAP handler of its
``zmq.Context`` about every client key during the handshake; :class:`KeyGuard` is that
handler: it admits ``allowed - revoked`` and counts each refusal by reason. The server
socket is also set to *enforce* its ZAP domain, so that if no guard is running every
CurveZMQ client is refused: the default in libzmq is to admit anyone who knows the
server's public key when no ZAP handler is bound, which fails open.

A peer refused in the handshake never gets a single message through: ZeroMQ drops the
connection before any message frame is read. ZAP only ever sees peers that completed the
CURVE handshake; a plaintext (NULL) client, or one that used the wrong server key, fails
earlier, inside libzmq, and is not counted here (a socket monitor sees it as
``EVENT_HANDSHAKE_FAILED_PROTOCOL`` / ``EVENT_HANDSHAKE_FAILED_NO_DETAIL``).

Revoking a key refuses its next handshake; it does not cut a connection that is already
up (ZeroMQ has no call to drop one ROUTER peer). Every message received on a secured
socket carries its sender's key as the ``User-Id`` frame property, so the receiving side
runs :meth:`KeyGuard.screen` on it and drops what a revoked key sent.

See ``docs/link-security.md`` for the whole model and what it does not protect.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, Protocol, Self, TypeAlias, get_args

import structlog
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from edgeloop.clock import Clock
from edgeloop.errors import AuthenticationError, ConfigError
from edgeloop.transport._keys import (
    KeyPair,
    generate_keypair,
    is_z85_key,
    keys_generate,
    load_public,
    load_secret,
)

__all__ = [
    "ZAP_DOMAIN",
    "CurveMode",
    "CURVE_MODES",
    "KeyPair",
    "generate_keypair",
    "keys_generate",
    "load_secret",
    "load_public",
    "is_z85_key",
    "is_loopback",
    "curve_required",
    "SecurityConfig",
    "KeyGuard",
    "KeyGuardStatistics",
    "HANDSHAKE_REFUSALS",
    "MESSAGE_REFUSALS",
    "secure_server",
    "secure_client",
    "peer_key",
    "CurveSecurity",
]

_log = structlog.get_logger("edgeloop.transport.security")

ZAP_DOMAIN: Final = "edgeloop"
"""The ZAP domain of every socket edgeloop secures; the guard answers for it alone."""

CurveMode: TypeAlias = Literal["auto", "on", "off"]
"""``auto``: CurveZMQ on every endpoint that leaves the host, off on loopback;
``on``: everywhere; ``off``: nowhere, which is refused for an endpoint off the host."""

CURVE_MODES: Final[tuple[str, ...]] = get_args(CurveMode)

HANDSHAKE_REFUSALS: Final = ("unknown_key", "revoked_key")
"""Why :class:`KeyGuard` refused a CurveZMQ handshake (``statistics().refused``)."""

MESSAGE_REFUSALS: Final = ("unknown_key", "revoked_key", "missing_key")
"""Why :meth:`KeyGuard.screen` dropped a message (``statistics().dropped``)."""

_TCP_PORT = re.compile(r"[0-9]{1,5}|\*")
_SECURITY_KEYS: Final = ("mode", "secret_key", "allowed", "revoked")


# ---------------------------------------------------------------------- endpoints


def is_loopback(endpoint: str) -> bool:
    """Whether a ZeroMQ endpoint stays on this host.

    ``ipc://`` and ``inproc://`` do, and ``tcp://`` to ``127.x.x.x``, ``localhost`` or
    ``[::1]`` with a port (or ``*``). Anything else is treated as leaving the host,
    including ``tcp://*:port`` (every interface), interface names, the ``source;dest``
    form and unknown transports: when in doubt, CurveZMQ.
    """
    scheme, separator, rest = endpoint.partition("://")
    if not separator or not rest:
        return False
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp" or ";" in rest:
        return False
    host, colon, port = rest.rpartition(":")
    if not colon or not _TCP_PORT.fullmatch(port) or (port != "*" and int(port) > 65535):
        return False
    if host.startswith("[") and host.endswith("]"):
        try:
            return ipaddress.IPv6Address(host[1:-1]).is_loopback
        except ValueError:
            return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        return False


def _check_mode(mode: object, key: str) -> CurveMode:
    if mode == "auto":
        return "auto"
    if mode == "on":
        return "on"
    if mode == "off":
        return "off"
    choices = ", ".join(repr(m) for m in CURVE_MODES)
    raise ConfigError(key, f"expected one of {choices}, got {mode!r}")


def curve_required(
    endpoint: str, mode: CurveMode = "auto", *, key: str = "node.security.mode"
) -> bool:
    """Whether ``endpoint`` must use CurveZMQ under ``mode``.

    ``auto``: on for every endpoint that leaves the host, off on loopback. ``on``: always,
    except ``inproc://``, which never runs a security handshake (ZeroMQ hands its messages
    from thread to thread inside one process). ``off``: never, and refused
    (:class:`ConfigError`) for an endpoint that leaves the host.
    """
    checked = _check_mode(mode, key)
    loopback = is_loopback(endpoint)
    if checked == "on":
        return not endpoint.startswith("inproc://")
    if checked == "auto":
        return not loopback
    if loopback:
        return False
    raise ConfigError(
        key,
        f"'off' is only allowed on loopback endpoints (ipc://, inproc://, tcp://127.x.x.x, "
        f"localhost, [::1]), but {endpoint!r} leaves the host: its messages would cross the "
        "network in plaintext and anyone who reaches the port could send them. CurveZMQ is "
        "mandatory off-host: use mode 'auto' (the default) or 'on' and set "
        "node.security.secret_key",
    )


# ------------------------------------------------------------------------- config


def _key_sources(value: object, key: str) -> tuple[str | Path, ...]:
    if isinstance(value, str | Path):
        raise ConfigError(key, f"expected a list of key files or Z85 keys, got {value!r}")
    if not isinstance(value, Iterable):
        raise ConfigError(key, f"expected a list of key files or Z85 keys, got {value!r}")
    items = tuple(value)
    for index, item in enumerate(items):
        if isinstance(item, Path) or (isinstance(item, str) and item):
            continue
        raise ConfigError(
            f"{key}[{index}]", f"expected a key file path or a Z85 key string, got {item!r}"
        )
    return items


@dataclasses.dataclass(frozen=True, slots=True)
class SecurityConfig:
    """The ``[node.security]`` table: CurveZMQ mode, this node's key, whom it admits.

    ``secret_key`` is this node's ``NAME.key_secret`` file (needed as soon as one endpoint
    uses CurveZMQ). ``allowed`` and ``revoked`` hold public keys as ``NAME.key`` files or
    Z85 strings; a key in both is refused. The fields are checked for shape here; the key
    files are read by :meth:`keypair`, :meth:`allowed_keys` and :meth:`revoked_keys`
    (or :meth:`check`, all at once), so errors name ``node.security.allowed[2]`` and so on.
    """

    mode: CurveMode = "auto"
    secret_key: Path | None = None
    allowed: tuple[str | Path, ...] = ()
    revoked: tuple[str | Path, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", _check_mode(self.mode, "node.security.mode"))
        secret: object = self.secret_key
        if secret is not None:
            if isinstance(secret, str) and secret:
                object.__setattr__(self, "secret_key", Path(secret))
            elif not isinstance(secret, Path):
                raise ConfigError(
                    "node.security.secret_key",
                    f"expected the path of a NAME.key_secret file, got {secret!r}",
                )
        for name in ("allowed", "revoked"):
            value = _key_sources(getattr(self, name), f"node.security.{name}")
            object.__setattr__(self, name, value)

    @classmethod
    def from_table(cls, table: Mapping[str, Any], *, base: Path | None = None) -> SecurityConfig:
        """Validate a ``[node.security]`` table parsed from TOML.

        Relative file paths are taken relative to ``base`` (the app file's directory);
        a string that names no file there but is a Z85 key is kept as a key.
        """
        if not isinstance(table, Mapping):
            raise ConfigError("node.security", f"expected a table, got {table!r}")
        for name in table:
            if name not in _SECURITY_KEYS:
                close = difflib.get_close_matches(name, _SECURITY_KEYS, n=1)
                hint = (
                    f"; did you mean {close[0]!r}?" if close else f"; known keys: {_SECURITY_KEYS}"
                )
                raise ConfigError(f"node.security.{name}", f"unknown key{hint}")
        root = base if base is not None else Path(".")
        secret: Any = table.get("secret_key")
        if isinstance(secret, str) and secret:
            secret = root / secret
        lists: dict[str, tuple[str | Path, ...]] = {}
        for name in ("allowed", "revoked"):
            items = _key_sources(table.get(name, ()), f"node.security.{name}")
            lists[name] = tuple(_locate(item, root) for item in items)
        return cls(
            mode=table.get("mode", "auto"),
            secret_key=secret,
            allowed=lists["allowed"],
            revoked=lists["revoked"],
        )

    def curve_for(self, endpoint: str) -> bool:
        """Whether ``endpoint`` uses CurveZMQ; a :class:`ConfigError` if it needs a key
        this config lacks, or if ``off`` would expose it."""
        needed = curve_required(endpoint, self.mode)
        if needed and self.secret_key is None:
            raise ConfigError(
                "node.security.secret_key",
                f"{endpoint!r} uses CurveZMQ (mode {self.mode!r}) but no secret key is set: "
                "run `edgeloop keys generate NAME --dir keys` and set this to "
                "keys/NAME.key_secret",
            )
        return needed

    def keypair(self) -> KeyPair:
        """This node's key pair, read from ``secret_key``."""
        if self.secret_key is None:
            raise ConfigError(
                "node.security.secret_key",
                "not set: run `edgeloop keys generate NAME --dir keys` and set this to "
                "keys/NAME.key_secret",
            )
        return load_secret(self.secret_key)

    def allowed_keys(self) -> frozenset[str]:
        """The Z85 public keys listed in ``allowed`` (before revocation)."""
        return _load_all(self.allowed, "node.security.allowed")

    def revoked_keys(self) -> frozenset[str]:
        """The Z85 public keys listed in ``revoked``."""
        return _load_all(self.revoked, "node.security.revoked")

    def check(self) -> None:
        """Read every key file now, so that a node refuses to start on a bad one."""
        if self.secret_key is not None:
            self.keypair()
        self.allowed_keys()
        self.revoked_keys()


def _locate(item: str | Path, root: Path) -> str | Path:
    if isinstance(item, Path):
        return item if item.is_absolute() else root / item
    candidate = root / item
    if candidate.exists() or not is_z85_key(item):
        return candidate
    return item


def _load_all(items: Iterable[str | Path], key: str) -> frozenset[str]:
    return frozenset(load_public(item, key=f"{key}[{i}]") for i, item in enumerate(items))


# -------------------------------------------------------------------------- guard


@dataclasses.dataclass(frozen=True, slots=True)
class KeyGuardStatistics:
    """A :class:`KeyGuard`'s counters at one moment.

    ``admitted`` and ``refused`` count CurveZMQ handshakes (``refused`` by reason, see
    :data:`HANDSHAKE_REFUSALS`); ``dropped`` counts messages :meth:`KeyGuard.screen`
    refused on connections that were already up (see :data:`MESSAGE_REFUSALS`).
    Plaintext clients and clients with the wrong server key never reach the guard.
    """

    running: bool
    admitted: int
    refused: Mapping[str, int]
    dropped: Mapping[str, int]
    allowed_keys: int
    revoked_keys: int

    @property
    def refused_total(self) -> int:
        """Handshakes refused, whatever the reason."""
        return sum(self.refused.values())

    @property
    def dropped_total(self) -> int:
        """Messages dropped by :meth:`KeyGuard.screen`, whatever the reason."""
        return sum(self.dropped.values())


class _CredentialsProvider:
    """What pyzmq's authenticator calls (in its thread) for each CURVE client key."""

    def __init__(self, guard: KeyGuard) -> None:
        self._guard = guard

    def callback(self, domain: str, key: bytes) -> bool:
        return self._guard._decide(domain, key)


class KeyGuard:
    """The ZAP handler of one ``zmq.Context``: admits ``allowed - revoked`` client keys.

    It runs :class:`zmq.auth.thread.ThreadAuthenticator` with a credentials provider
    (``configure_curve_callback``) for :data:`ZAP_DOMAIN`, so the key sets live here and
    :meth:`allow` and :meth:`revoke` take effect on the next handshake. Only one ZAP
    handler can serve a context. Start it before secured sockets bind; stop it (it joins
    its thread) before the context is terminated, or use it as a context manager.

    Refused handshakes are counted by reason and logged at most once per ``log_interval``
    seconds per reason (a refused client may retry, and every retry asks again).
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        *,
        allowed: Iterable[str | Path] = (),
        revoked: Iterable[str | Path] = (),
        domain: str = ZAP_DOMAIN,
        clock: Clock | None = None,
        log_interval: float = 10.0,
    ) -> None:
        if not zmq.has("curve"):
            raise ConfigError("", "this libzmq was built without CURVE: reinstall pyzmq's wheel")
        self._context = context
        self._domain = domain
        self._now = clock.now if clock is not None else time.monotonic
        self._log_interval = log_interval
        self._lock = threading.Lock()
        self._allowed = _load_all(
            _key_sources(allowed, "node.security.allowed"), "node.security.allowed"
        )
        self._revoked = _load_all(
            _key_sources(revoked, "node.security.revoked"), "node.security.revoked"
        )
        self._admitted = 0
        self._refused = dict.fromkeys(HANDSHAKE_REFUSALS, 0)
        self._dropped = dict.fromkeys(MESSAGE_REFUSALS, 0)
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._authenticator: ThreadAuthenticator | None = None

    @classmethod
    def from_config(
        cls, context: zmq.Context[Any], config: SecurityConfig, **options: Any
    ) -> KeyGuard:
        """A guard for ``context`` with the config's allowed and revoked keys."""
        return cls(
            context,
            allowed=config.allowed_keys(),
            revoked=config.revoked_keys(),
            **options,
        )

    # -- lifecycle

    @property
    def running(self) -> bool:
        """Whether the ZAP thread is serving the context."""
        return self._authenticator is not None and self._authenticator.is_alive()

    def start(self) -> None:
        """Bind the context's ZAP handler and start its thread; a no-op if running."""
        if self._authenticator is not None:
            return
        authenticator = ThreadAuthenticator(self._context)
        authenticator.configure_curve_callback(self._domain, _CredentialsProvider(self))
        try:
            authenticator.start()
        except zmq.ZMQError as error:
            if authenticator.zap_socket is not None:
                authenticator.zap_socket.close(linger=0)
                authenticator.zap_socket = None  # type: ignore[assignment]
            raise ConfigError(
                "",
                "another ZAP handler (a KeyGuard or a zmq.auth authenticator) already serves "
                f"this zmq.Context ({error}): use one KeyGuard per context",
            ) from None
        self._authenticator = authenticator
        _log.debug("zap_started", domain=self._domain, allowed=len(self._allowed))

    def stop(self) -> None:
        """Stop the ZAP thread and wait for it to end; a no-op if not running.

        Until a new guard starts, CurveZMQ servers secured by :func:`secure_server` refuse
        every client (they enforce their ZAP domain).
        """
        authenticator, self._authenticator = self._authenticator, None
        if authenticator is None:
            return
        thread = authenticator.thread
        authenticator.stop()
        if thread is not None:
            thread.join()
        _log.debug("zap_stopped", domain=self._domain)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the key sets

    def allow(self, key: str | Path) -> None:
        """Admit ``key`` (a Z85 string or a ``NAME.key`` file) from the next handshake on;
        an explicit allow also lifts an earlier revocation."""
        public = load_public(key, key="allow")
        with self._lock:
            self._allowed = self._allowed | {public}
            self._revoked = self._revoked - {public}
        _log.info("key_allowed", key=public)

    def revoke(self, key: str | Path) -> None:
        """Refuse ``key`` from the next handshake on, and drop its messages in :meth:`screen`.

        A connection that is already up stays up at the ZeroMQ level (it has no call to
        drop one peer); :meth:`screen` is what keeps its messages out.
        """
        public = load_public(key, key="revoke")
        with self._lock:
            self._revoked = self._revoked | {public}
        _log.info("key_revoked", key=public)

    def admits(self, key: str | None) -> bool:
        """Whether ``key`` (Z85) would be admitted now."""
        return self._reason(key) is None

    def _reason(self, key: str | None) -> str | None:
        if key is None:
            return "missing_key"
        with self._lock:
            if key in self._revoked:
                return "revoked_key"
            if key not in self._allowed:
                return "unknown_key"
        return None

    def screen(self, frame: zmq.Frame) -> str:
        """The sender's key of a received frame, or :class:`AuthenticationError` if the
        guard no longer admits it (revoked since the connection came up, say).

        Receive with ``copy=False`` to get frames; any frame of the message will do.
        The refusal is counted in ``statistics().dropped`` by reason.
        """
        key = peer_key(frame)
        reason = self._reason(key)
        if reason is None:
            assert key is not None
            return key
        with self._lock:
            self._dropped[reason] += 1
        if key is None:
            raise AuthenticationError(
                "message dropped: it came without a CurveZMQ key (a plaintext socket, or a "
                "socket not secured with secure_server)"
            )
        what = "was revoked" if reason == "revoked_key" else "is not in node.security.allowed"
        raise AuthenticationError(f"message dropped: the sender's key {key} {what}")

    # -- ZAP (runs in the authenticator's thread)

    def _decide(self, domain: str, key: bytes) -> bool:
        try:
            public = key.decode("ascii")
            reason = self._reason(public)
            now = self._now()
            with self._lock:
                if reason is None:
                    self._admitted += 1
                    return True
                self._refused[reason] = self._refused.get(reason, 0) + 1
                last = self._last_logged.get(reason)
                if last is not None and now - last < self._log_interval:
                    self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
                    return False
                self._last_logged[reason] = now
                suppressed = self._suppressed.pop(reason, 0)
            _log.warning(
                "handshake_refused", reason=reason, key=public, domain=domain, suppressed=suppressed
            )
            return False
        except Exception:  # noqa: BLE001 - a raise here would kill the ZAP thread; fail closed
            with self._lock:
                self._refused["error"] = self._refused.get("error", 0) + 1
            _log.exception("zap_decision_failed", domain=domain)
            return False

    def statistics(self) -> KeyGuardStatistics:
        """The counters now (a snapshot; later handshakes do not change it)."""
        with self._lock:
            return KeyGuardStatistics(
                running=self.running,
                admitted=self._admitted,
                refused=MappingProxyType(dict(self._refused)),
                dropped=MappingProxyType(dict(self._dropped)),
                allowed_keys=len(self._allowed - self._revoked),
                revoked_keys=len(self._revoked),
            )


# ------------------------------------------------------------------------ sockets


def _check_fresh(socket: zmq.Socket[Any]) -> None:
    if socket.getsockopt(zmq.LAST_ENDPOINT):
        raise ConfigError(
            "",
            "secure the socket before bind() or connect(): connections made earlier "
            "would stay in plaintext",
        )


def secure_server(socket: zmq.Socket[Any], keypair: KeyPair, *, domain: str = ZAP_DOMAIN) -> None:
    """Make ``socket`` a CurveZMQ server with this node's key, checked by ZAP.

    Call before ``bind``. The socket asks its context's ZAP handler (a :class:`KeyGuard`)
    about every client key, and *enforces* the domain: with no handler running, every
    client is refused rather than every client admitted.
    """
    _check_fresh(socket)
    socket.setsockopt(zmq.CURVE_SECRETKEY, keypair.secret.encode("ascii"))
    socket.setsockopt(zmq.CURVE_PUBLICKEY, keypair.public.encode("ascii"))
    socket.setsockopt(zmq.CURVE_SERVER, 1)
    socket.setsockopt(zmq.ZAP_DOMAIN, domain.encode("utf-8"))
    socket.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)


def secure_client(
    socket: zmq.Socket[Any],
    keypair: KeyPair,
    server_public: str | Path,
    *,
    key: str = "node.peers.server_key",
) -> None:
    """Make ``socket`` a CurveZMQ client that presents ``keypair`` and accepts only the
    server holding the secret of ``server_public`` (a Z85 key or a ``NAME.key`` file).

    Call before ``connect``. With the wrong server key the handshake fails and nothing
    is ever sent.
    """
    server = load_public(server_public, key=key)
    _check_fresh(socket)
    socket.setsockopt(zmq.CURVE_SERVER, 0)
    socket.setsockopt(zmq.CURVE_SERVERKEY, server.encode("ascii"))
    socket.setsockopt(zmq.CURVE_PUBLICKEY, keypair.public.encode("ascii"))
    socket.setsockopt(zmq.CURVE_SECRETKEY, keypair.secret.encode("ascii"))


def peer_key(frame: zmq.Frame) -> str | None:
    """The Z85 key the sender of ``frame`` authenticated with, or ``None`` (plaintext).

    ZAP returns the client's Z85 key as its User-Id and ZeroMQ attaches it to every
    message of that connection.
    """
    try:
        user_id = frame.get("User-Id")
    except zmq.ZMQError:
        return None
    return user_id if isinstance(user_id, str) and is_z85_key(user_id) else None


# ----------------------------------------------------------------- socket adapter


class _PeerLike(Protocol):
    @property
    def address(self) -> str: ...

    @property
    def server_key(self) -> str | None: ...


class CurveSecurity:
    """A :class:`SecurityConfig` applied to an endpoint's sockets.

    ``start(context)``, ``server(socket, endpoint)``, ``client(socket, peer)``, ``stop()``:
    the shape the ZeroMQ endpoint asks for. Each socket gets CurveZMQ when
    :func:`curve_required` says so for its endpoint; the :class:`KeyGuard` starts with the
    first secured server. Key files are read once, by :meth:`start`.
    """

    def __init__(self, config: SecurityConfig, **guard_options: Any) -> None:
        self.config = config
        self._guard_options = guard_options
        self._context: zmq.Context[Any] | None = None
        self._keypair: KeyPair | None = None
        self.guard: KeyGuard | None = None
        """The running guard, once a secured server exists (for revoke and statistics)."""

    def start(self, context: zmq.Context[Any]) -> None:
        """Remember the context and read the key files."""
        self.config.check()
        self._context = context
        if self.config.secret_key is not None:
            self._keypair = self.config.keypair()

    def _pair(self, endpoint: str) -> KeyPair | None:
        if not self.config.curve_for(endpoint):
            return None
        if self._keypair is None:
            self._keypair = self.config.keypair()
        return self._keypair

    def server(self, socket: zmq.Socket[Any], endpoint: str) -> None:
        """Secure a socket that will bind ``endpoint`` (if CurveZMQ applies there)."""
        pair = self._pair(endpoint)
        if pair is None:
            return
        if self.guard is None:
            if self._context is None:
                raise ConfigError("", "CurveSecurity.start(context) must run before server()")
            guard = KeyGuard.from_config(self._context, self.config, **self._guard_options)
            guard.start()
            self.guard = guard
        secure_server(socket, pair)

    def client(self, socket: zmq.Socket[Any], peer: _PeerLike) -> None:
        """Secure a socket that will connect to ``peer`` (if CurveZMQ applies there)."""
        pair = self._pair(peer.address)
        if pair is None:
            return
        if peer.server_key is None:
            raise ConfigError(
                "node.peers",
                f"{peer.address!r} uses CurveZMQ, so the peer needs a server_key: its "
                "public key (the NAME.key that `edgeloop keys generate` wrote for it)",
            )
        secure_client(socket, pair, peer.server_key)

    def stop(self) -> None:
        """Stop the guard, if one started (joins its thread)."""
        guard, self.guard = self.guard, None
        if guard is not None:
            guard.stop()
