"""CurveZMQ keys, loopback detection, the security config and the guard's key sets."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st

from edgeloop.errors import AuthenticationError, ConfigError
from edgeloop.transport._security import (
    CurveSecurity,
    KeyGuard,
    KeyPair,
    SecurityConfig,
    curve_required,
    generate_keypair,
    is_loopback,
    is_z85_key,
    keys_generate,
    load_public,
    load_secret,
    secure_client,
    secure_server,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    """A private ZeroMQ context, terminated after the test."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.term()


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """A key pair written as edge-a.key / edge-a.key_secret."""
    return generate_keypair(tmp_path / "keys", "edge-a")


# ----------------------------------------------------------------------------- keys


def test_generate_writes_zeromq_certificates(pair: tuple[Path, Path]) -> None:
    """generate_keypair writes NAME.key and NAME.key_secret that pyzmq itself can load."""
    public_file, secret_file = pair
    assert public_file.name == "edge-a.key"
    assert secret_file.name == "edge-a.key_secret"
    public, no_secret = zmq.auth.load_certificate(public_file)
    same_public, secret = zmq.auth.load_certificate(secret_file)
    assert no_secret is None
    assert public == same_public
    assert secret is not None
    assert zmq.curve_public(secret) == public


@posix_only
def test_generate_makes_secret_owner_only(pair: tuple[Path, Path]) -> None:
    """The secret file is mode 0600, whatever the umask, and no staging directory is left."""
    public_file, secret_file = pair
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(public_file.stat().st_mode) == 0o644
    assert sorted(p.name for p in secret_file.parent.iterdir()) == [
        "edge-a.key",
        "edge-a.key_secret",
    ]


def test_load_round_trip(pair: tuple[Path, Path]) -> None:
    """The secret file loads as a KeyPair whose public key equals the public file's."""
    public_file, secret_file = pair
    keypair = load_secret(secret_file)
    assert load_public(public_file) == keypair.public
    assert load_public(str(public_file)) == keypair.public
    assert load_public(keypair.public) == keypair.public


def test_keypair_repr_hides_secret() -> None:
    """A KeyPair never shows its secret key in repr (so it never reaches a log line)."""
    keypair = KeyPair.generate()
    assert keypair.secret not in repr(keypair)
    assert keypair.public in repr(keypair)


def test_keypair_rejects_mismatched_halves() -> None:
    """A KeyPair whose secret does not derive its public key is refused."""
    one, two = KeyPair.generate(), KeyPair.generate()
    with pytest.raises(ConfigError, match="does not belong"):
        KeyPair(one.public, two.secret)


def test_generate_refuses_to_overwrite(pair: tuple[Path, Path]) -> None:
    """A second generate for the same name fails, names the file and suggests --force."""
    public_file, secret_file = pair
    before = secret_file.read_bytes()
    with pytest.raises(ConfigError, match=r"edge-a\.key already exists.*--force"):
        generate_keypair(public_file.parent, "edge-a")
    assert secret_file.read_bytes() == before


def test_generate_refuses_when_only_secret_exists(tmp_path: Path) -> None:
    """A leftover secret file alone is enough to refuse without force."""
    (tmp_path / "cam-01.key_secret").write_text("x")
    with pytest.raises(ConfigError, match=r"cam-01\.key_secret already exists"):
        generate_keypair(tmp_path, "cam-01")


def test_generate_force_replaces_pair(pair: tuple[Path, Path]) -> None:
    """force=True writes a new, different pair over the old files."""
    public_file, secret_file = pair
    old = load_secret(secret_file)
    generate_keypair(public_file.parent, "edge-a", force=True)
    new = load_secret(secret_file)
    assert new.public != old.public
    assert load_public(public_file) == new.public


def test_generate_rejects_bad_names(tmp_path: Path) -> None:
    """Names are node or device ids: no path separators, no leading dot."""
    for name in ("../evil", "a/b", "", ".hidden"):
        with pytest.raises(ConfigError, match="key files are named after"):
            generate_keypair(tmp_path, name)


def test_generate_creates_directory_but_not_over_a_file(tmp_path: Path) -> None:
    """A missing directory is created; a file where the directory should be is an error."""
    public_file, _ = generate_keypair(tmp_path / "a" / "b", "n1")
    assert public_file.exists()
    (tmp_path / "plain").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        generate_keypair(tmp_path / "plain", "n1")


def test_keys_generate_is_the_cli_verb(tmp_path: Path) -> None:
    """keys_generate(name, directory, force) returns the public and secret paths."""
    public_file, secret_file = keys_generate("cam-02", tmp_path, False)
    assert (public_file, secret_file) == (tmp_path / "cam-02.key", tmp_path / "cam-02.key_secret")
    with pytest.raises(ConfigError, match="--force"):
        keys_generate("cam-02", tmp_path, False)
    assert keys_generate("cam-02", tmp_path, True) == (public_file, secret_file)


def test_load_secret_missing_file_says_how_to_create(tmp_path: Path) -> None:
    """A missing secret file names the path and the command that creates one."""
    with pytest.raises(ConfigError, match="edgeloop keys generate") as caught:
        load_secret(tmp_path / "nope.key_secret")
    assert caught.value.key == "node.security.secret_key"
    assert "nope.key_secret" in str(caught.value)


@posix_only
def test_load_secret_refuses_readable_by_others(pair: tuple[Path, Path]) -> None:
    """A secret file others can read is refused with the chmod that fixes it."""
    _, secret_file = pair
    secret_file.chmod(0o644)
    with pytest.raises(ConfigError, match=r"chmod 600 .*edge-a\.key_secret"):
        load_secret(secret_file)


def test_load_secret_refuses_public_file(pair: tuple[Path, Path]) -> None:
    """Pointing secret_key at NAME.key says to use NAME.key_secret."""
    public_file, _ = pair
    public_file.chmod(0o600)
    with pytest.raises(ConfigError, match="only a public key"):
        load_secret(public_file)


def test_load_secret_detects_tampering(pair: tuple[Path, Path]) -> None:
    """A secret file whose public line was swapped for another key is refused."""
    _, secret_file = pair
    original = load_secret(secret_file)
    other = KeyPair.generate()
    secret_file.write_text(secret_file.read_text().replace(original.public, other.public))
    with pytest.raises(ConfigError, match="does not belong to its public key"):
        load_secret(secret_file)


def test_load_rejects_files_that_are_not_certificates(tmp_path: Path) -> None:
    """A file without a public-key line is not a ZeroMQ certificate."""
    junk = tmp_path / "junk.key"
    junk.write_text("hello\n")
    junk.chmod(0o600)
    with pytest.raises(ConfigError, match="not a ZeroMQ certificate"):
        load_public(junk)
    with pytest.raises(ConfigError, match="not a ZeroMQ certificate"):
        load_secret(junk)


def test_load_public_refuses_secret_file(pair: tuple[Path, Path]) -> None:
    """Listing a secret file as an allowed key is refused: secrets stay with their owner."""
    _, secret_file = pair
    with pytest.raises(ConfigError, match="is a secret key file") as caught:
        load_public(secret_file, key="node.security.allowed[0]")
    assert caught.value.key == "node.security.allowed[0]"


def test_load_public_rejects_neither_file_nor_key(tmp_path: Path) -> None:
    """A string that is no file and no Z85 key names both readings; a Path must exist."""
    with pytest.raises(ConfigError, match="neither an existing key file nor"):
        load_public("keys/missing.key")
    with pytest.raises(ConfigError, match="no key file at"):
        load_public(tmp_path / "missing.key")
    with pytest.raises(ConfigError, match="is a directory"):
        load_public(tmp_path)
    with pytest.raises(ConfigError, match="got ''"):
        load_public("")


def test_is_z85_key_shapes() -> None:
    """Only 40 Z85 characters whose 5-character groups fit 32 bits are keys."""
    key = KeyPair.generate().public
    assert is_z85_key(key)
    assert not is_z85_key(key[:-1])
    assert not is_z85_key(key + "0")
    assert not is_z85_key(key[:-1] + " ")
    assert not is_z85_key("#" * 40)  # every group overflows 2**32
    assert not is_z85_key(b"0" * 40)


# ------------------------------------------------------------------------ endpoints

ports = st.integers(min_value=1, max_value=65535).map(str) | st.just("*")


def test_loopback_examples() -> None:
    """The documented loopback shapes are loopback; wildcards and real hosts are not."""
    assert is_loopback("ipc:///tmp/edgeloop.sock")
    assert is_loopback("ipc://@abstract")
    assert is_loopback("inproc://node")
    assert is_loopback("tcp://127.0.0.1:5555")
    assert is_loopback("tcp://127.8.9.10:*")
    assert is_loopback("tcp://localhost:5555")
    assert is_loopback("tcp://[::1]:5555")
    for endpoint in (
        "tcp://*:5555",
        "tcp://0.0.0.0:5555",
        "tcp://10.0.0.7:5555",
        "tcp://[::]:5555",
        "tcp://eth0:5555",
        "tcp://lo:5555",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:99999",
        "tcp://127.0.0.1:0;10.0.0.7:5555",
        "tcp://localhost.example.com:5555",
        "udp://127.0.0.1:5555",
        "ws://127.0.0.1:5555",
        "ipc://",
        "127.0.0.1:5555",
        "",
    ):
        assert not is_loopback(endpoint), endpoint


@given(
    st.tuples(*(st.integers(0, 255),) * 3),
    ports,
)
def test_loopback_ipv4_127(octets: tuple[int, int, int], port: str) -> None:
    """Every tcp://127.a.b.c:port is loopback."""
    host = "127." + ".".join(map(str, octets))
    assert is_loopback(f"tcp://{host}:{port}")


@given(st.ip_addresses(v=4), ports)
def test_loopback_ipv4_any(address: ipaddress.IPv4Address, port: str) -> None:
    """A tcp IPv4 endpoint is loopback exactly when its address is in 127.0.0.0/8."""
    assert is_loopback(f"tcp://{address}:{port}") == (
        address in ipaddress.ip_network("127.0.0.0/8")
    )


@given(st.ip_addresses(v=6), ports)
def test_loopback_ipv6_any(address: ipaddress.IPv6Address, port: str) -> None:
    """A bracketed tcp IPv6 endpoint is loopback exactly when it is ::1."""
    assert is_loopback(f"tcp://[{address}]:{port}") == (address == ipaddress.IPv6Address("::1"))


@given(st.sampled_from(["localhost", "LOCALHOST", "LocalHost"]), ports)
def test_loopback_localhost_any_case(host: str, port: str) -> None:
    """localhost counts in any letter case (DNS names are case-insensitive)."""
    assert is_loopback(f"tcp://{host}:{port}")


@given(st.sampled_from(["ipc", "inproc"]), st.text(min_size=1))
def test_loopback_local_transports(scheme: str, path: str) -> None:
    """ipc:// and inproc:// endpoints never leave the host, whatever their path."""
    assert is_loopback(f"{scheme}://{path}")


@given(st.text())
def test_loopback_is_total(endpoint: str) -> None:
    """is_loopback answers every string without raising, and never for a non-tcp network."""
    result = is_loopback(endpoint)
    if result:
        assert endpoint.startswith(("ipc://", "inproc://", "tcp://"))


@pytest.mark.parametrize(
    ("endpoint", "mode", "expected"),
    [
        ("tcp://10.0.0.7:5555", "auto", True),
        ("tcp://127.0.0.1:5555", "auto", False),
        ("ipc:///tmp/x", "auto", False),
        ("tcp://10.0.0.7:5555", "on", True),
        ("tcp://127.0.0.1:5555", "on", True),
        ("ipc:///tmp/x", "on", True),
        ("inproc://x", "on", False),
        ("tcp://127.0.0.1:5555", "off", False),
        ("ipc:///tmp/x", "off", False),
    ],
)
def test_curve_required_table(endpoint: str, mode: str, expected: bool) -> None:
    """auto is on off-host and off on loopback, on is on (inproc has no handshake), off is off."""
    assert curve_required(endpoint, mode) is expected  # type: ignore[arg-type]


def test_curve_off_off_host_is_refused() -> None:
    """mode 'off' on an endpoint that leaves the host is a ConfigError explaining the risk."""
    with pytest.raises(ConfigError, match=r"CurveZMQ is\s+mandatory off-host") as caught:
        curve_required("tcp://*:5555", "off")
    assert caught.value.key == "node.security.mode"
    assert "plaintext" in str(caught.value)


def test_curve_required_rejects_unknown_mode() -> None:
    """A mode other than auto, on, off is a ConfigError listing the three."""
    with pytest.raises(ConfigError, match="'auto', 'on', 'off'"):
        curve_required("tcp://127.0.0.1:1", "yes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- config


def test_config_defaults_and_coercion(tmp_path: Path) -> None:
    """The default is auto with no keys; a string secret_key becomes a Path."""
    config = SecurityConfig()
    assert (config.mode, config.secret_key, config.allowed, config.revoked) == (
        "auto",
        None,
        (),
        (),
    )
    assert SecurityConfig(secret_key=str(tmp_path)).secret_key == tmp_path  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.mode = "on"  # type: ignore[misc]


def test_config_errors_name_the_key() -> None:
    """Every shape error names its dotted key, down to the list index."""
    with pytest.raises(ConfigError) as caught:
        SecurityConfig(mode="always")  # type: ignore[arg-type]
    assert caught.value.key == "node.security.mode"
    with pytest.raises(ConfigError) as caught:
        SecurityConfig(allowed="keys/a.key")  # type: ignore[arg-type]
    assert caught.value.key == "node.security.allowed"
    with pytest.raises(ConfigError) as caught:
        SecurityConfig(revoked=("keys/a.key", 3))  # type: ignore[arg-type]
    assert caught.value.key == "node.security.revoked[1]"
    with pytest.raises(ConfigError) as caught:
        SecurityConfig(secret_key=7)  # type: ignore[arg-type]
    assert caught.value.key == "node.security.secret_key"


def test_config_from_table_resolves_against_base(tmp_path: Path) -> None:
    """Relative paths resolve against the app file's directory; Z85 strings stay keys."""
    public_file, _ = generate_keypair(tmp_path / "keys", "edge-b")
    generate_keypair(tmp_path / "keys", "edge-a")
    literal = KeyPair.generate().public
    config = SecurityConfig.from_table(
        {
            "mode": "on",
            "secret_key": "keys/edge-a.key_secret",
            "allowed": ["keys/edge-b.key", literal],
            "revoked": [],
        },
        base=tmp_path,
    )
    assert config.secret_key == tmp_path / "keys" / "edge-a.key_secret"
    assert config.allowed == (tmp_path / "keys" / "edge-b.key", literal)
    assert config.allowed_keys() == {load_public(public_file), literal}
    assert config.keypair().public == load_public(tmp_path / "keys" / "edge-a.key")
    config.check()


def test_config_from_table_unknown_key_suggests() -> None:
    """A misspelt key is refused with the closest known key."""
    with pytest.raises(ConfigError, match="did you mean 'allowed'") as caught:
        SecurityConfig.from_table({"allowd": []})
    assert caught.value.key == "node.security.allowd"


def test_config_file_errors_name_index(tmp_path: Path) -> None:
    """A bad entry in allowed is reported as node.security.allowed[i]."""
    good = KeyPair.generate().public
    config = SecurityConfig(allowed=(good, tmp_path / "gone.key"))
    with pytest.raises(ConfigError, match="no key file at") as caught:
        config.allowed_keys()
    assert caught.value.key == "node.security.allowed[1]"


def test_config_curve_needs_secret_key() -> None:
    """An endpoint that needs CurveZMQ without a secret key says how to make one."""
    config = SecurityConfig()
    assert config.curve_for("tcp://127.0.0.1:5555") is False
    with pytest.raises(ConfigError, match="edgeloop keys generate") as caught:
        config.curve_for("tcp://10.1.2.3:5555")
    assert caught.value.key == "node.security.secret_key"
    with pytest.raises(ConfigError, match="not set"):
        config.keypair()


# ---------------------------------------------------------------------------- guard


def test_guard_key_sets(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    """admits() follows allowed minus revoked; allow() lifts a revocation."""
    friend, stranger = KeyPair.generate().public, KeyPair.generate().public
    guard = KeyGuard(context, allowed=[friend])
    assert guard.admits(friend)
    assert not guard.admits(stranger)
    assert not guard.admits(None)
    guard.revoke(friend)
    assert not guard.admits(friend)
    stats = guard.statistics()
    assert (stats.allowed_keys, stats.revoked_keys, stats.running) == (0, 1, False)
    guard.allow(friend)
    assert guard.admits(friend)
    guard.allow(stranger)
    assert guard.statistics().allowed_keys == 2


def test_guard_rejects_bad_keys(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    """allow/revoke and the constructor take Z85 keys or key files, nothing else."""
    with pytest.raises(ConfigError, match="neither an existing key file"):
        KeyGuard(context, allowed=["not-a-key"])
    guard = KeyGuard(context)
    with pytest.raises(ConfigError):
        guard.revoke("short")


def test_guard_start_stop_joins_thread(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    """start() runs one ZAP thread, stop() joins it, and both are idempotent."""
    guard = KeyGuard(context)
    with guard:
        assert guard.running
        guard.start()
        assert guard.statistics().running
    assert not guard.running
    guard.stop()


def test_one_guard_per_context(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    """A second guard on the same context is refused and leaves nothing behind."""
    with KeyGuard(context), pytest.raises(ConfigError, match="one KeyGuard per context"):
        KeyGuard(context).start()


def test_secure_after_bind_is_refused(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    """Securing a socket that already bound would leave earlier connections in plaintext."""
    socket = context.socket(zmq.ROUTER)
    try:
        socket.bind("inproc://bound")
        with pytest.raises(ConfigError, match="before bind"):
            secure_server(socket, KeyPair.generate())
        with pytest.raises(ConfigError, match="before bind"):
            secure_client(socket, KeyPair.generate(), KeyPair.generate().public)
    finally:
        socket.close(linger=0)


def test_secure_client_checks_server_key(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    """A server key that is no key and no file is a ConfigError naming the peer key."""
    socket = context.socket(zmq.DEALER)
    try:
        with pytest.raises(ConfigError, match="neither an existing key file") as caught:
            secure_client(socket, KeyPair.generate(), "nope")
        assert caught.value.key == "node.peers.server_key"
    finally:
        socket.close(linger=0)


def test_screen_without_key_raises(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    """A frame from a plaintext socket has no key: screen() drops it as missing_key."""
    server, client = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    try:
        server.bind("inproc://plain")
        client.connect("inproc://plain")
        client.send(b"hi")
        assert server.poll(5000)
        frame = server.recv(copy=False)
        guard = KeyGuard(context, allowed=[KeyPair.generate().public])
        with pytest.raises(AuthenticationError, match="without a CurveZMQ key"):
            guard.screen(frame)
        assert guard.statistics().dropped["missing_key"] == 1
    finally:
        server.close(linger=0)
        client.close(linger=0)


@dataclasses.dataclass(frozen=True)
class _Peer:
    address: str
    server_key: str | None = None


def test_curve_security_needs_peer_server_key(
    context: zmq.Context[zmq.Socket[bytes]], pair: tuple[Path, Path]
) -> None:
    """An off-host peer without a server_key is a ConfigError; loopback peers need none."""
    security = CurveSecurity(SecurityConfig(secret_key=pair[1]))
    security.start(context)
    socket = context.socket(zmq.DEALER)
    try:
        security.client(socket, _Peer("tcp://127.0.0.1:5555"))
        assert socket.getsockopt(zmq.MECHANISM) == zmq.NULL
        with pytest.raises(ConfigError, match="needs a server_key") as caught:
            security.client(socket, _Peer("tcp://10.0.0.7:5555"))
        assert caught.value.key == "node.peers"
    finally:
        socket.close(linger=0)
        security.stop()
