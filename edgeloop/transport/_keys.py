"""CurveZMQ key files: one pair per node or device, the secret half never leaves its machine.

``NAME.key`` (public, mode 0644) is handed to whoever must trust the holder;
``NAME.key_secret`` (secret, mode 0600) stays where it was made. Both are ZeroMQ's
certificate format (``zmq.auth.create_certificates``). Keys are written in a private
staging directory and linked into place, so an existing pair is never overwritten
without ``force``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Final

import structlog
import zmq
import zmq.auth
from zmq.utils import z85

from edgeloop.errors import ConfigError
from edgeloop.transport._config import check_peer_id

__all__ = [
    "KeyPair",
    "generate_keypair",
    "keys_generate",
    "load_secret",
    "load_public",
    "is_z85_key",
]

_log = structlog.get_logger("edgeloop.transport.security")

_Z85_KEY_LENGTH: Final = 40
_Z85_CHARS: Final = frozenset(z85.Z85CHARS.decode("ascii"))
_SECRET_MODE: Final = 0o600
_PUBLIC_MODE: Final = 0o644


def is_z85_key(value: object) -> bool:
    """Whether ``value`` is a 40-character Z85 string that encodes a 32-byte key."""
    if not isinstance(value, str) or len(value) != _Z85_KEY_LENGTH:
        return False
    if not _Z85_CHARS.issuperset(value):
        return False
    # Each 5-character group encodes one 32-bit word; '#####' and friends overflow it.
    for start in range(0, _Z85_KEY_LENGTH, 5):
        word = 0
        for char in value[start : start + 5]:
            word = word * 85 + z85.Z85MAP[ord(char)]
        if word >= 1 << 32:
            return False
    return True


@dataclasses.dataclass(frozen=True, slots=True)
class KeyPair:
    """One node's or device's CurveZMQ identity: Z85 public and secret keys.

    The secret is left out of ``repr`` so that it never lands in a log line.
    """

    public: str
    secret: str = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        if not is_z85_key(self.public):
            raise ConfigError("public", "expected a 40-character Z85 public key")
        if not is_z85_key(self.secret):
            raise ConfigError("secret", "expected a 40-character Z85 secret key")
        if zmq.curve_public(self.secret.encode("ascii")).decode("ascii") != self.public:
            raise ConfigError("secret", "the secret key does not belong to the public key")

    @classmethod
    def generate(cls) -> KeyPair:
        """A fresh random key pair (not written anywhere)."""
        public, secret = zmq.curve_keypair()
        return cls(public.decode("ascii"), secret.decode("ascii"))


def generate_keypair(directory: Path, name: str, *, force: bool = False) -> tuple[Path, Path]:
    """Write a new key pair as ``directory/NAME.key`` (public) and ``NAME.key_secret``.

    The files are ZeroMQ certificates (:func:`zmq.auth.create_certificates`), readable by
    czmq and every ZeroMQ binding. The secret file gets mode 0600 inside a private (0700)
    staging directory before it is moved into place, so no other user can ever open it.
    Existing files are kept unless
    ``force`` is true. Returns ``(public_path, secret_path)``.
    """
    problem = check_peer_id(name)
    if problem is not None:
        raise ConfigError("name", f"{problem}; the key files are named after the node or device")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError("directory", f"{directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError("directory", f"cannot create {directory}: {error.strerror}") from None
    public_path = directory / f"{name}.key"
    secret_path = directory / f"{name}.key_secret"
    if not force:
        for path in (public_path, secret_path):
            if path.exists():
                raise ConfigError(
                    "",
                    f"{path} already exists: keep it, or pass --force to replace the pair "
                    "(every peer that lists the old public key will then refuse this one "
                    "until it lists the new NAME.key)",
                )
    try:
        # A private (0700) staging directory beside the targets: the certificates are
        # written and chmod'ed there, then moved into place on the same filesystem.
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=directory))
    except OSError as error:
        raise ConfigError("directory", f"cannot write to {directory}: {error.strerror}") from None
    try:
        staged_public, staged_secret = (
            Path(p) for p in zmq.auth.create_certificates(staging, name, metadata={"name": name})
        )
        staged_secret.chmod(_SECRET_MODE)
        staged_public.chmod(_PUBLIC_MODE)
        _place(staged_secret, secret_path, force=force)
        try:
            _place(staged_public, public_path, force=force)
        except BaseException:
            secret_path.unlink(missing_ok=True)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _log.info("keys_generated", name=name, public_key_file=str(public_path))
    return public_path, secret_path


def _place(source: Path, target: Path, *, force: bool) -> None:
    """Move ``source`` to ``target``; without ``force``, never replace an existing file."""
    if force:
        os.replace(source, target)
        return
    try:
        os.link(source, target)  # fails if target exists, atomically
    except FileExistsError:
        raise ConfigError(
            "", f"{target} appeared while the keys were generated: pass --force to replace it"
        ) from None
    except OSError:  # a filesystem without hard links
        if target.exists():
            raise ConfigError("", f"{target} already exists: pass --force to replace it") from None
        os.replace(source, target)


def keys_generate(name: str, directory: Path = Path("."), force: bool = False) -> tuple[Path, Path]:
    """``edgeloop keys generate NAME [--dir DIR] [--force]``: write NAME's key pair.

    Returns ``(public_path, secret_path)``. Share the public file with the nodes that must
    admit NAME (their ``node.security.allowed``); keep the secret file where NAME runs.
    Every problem is a :class:`ConfigError` whose message says what to do.
    """
    return generate_keypair(Path(directory), name, force=force)


def _read_certificate(path: Path, key: str) -> tuple[str, str | None]:
    """The Z85 public and (if present) secret key of a ZeroMQ certificate file."""
    if not path.exists():
        raise ConfigError(key, f"no key file at {path}")
    if path.is_dir():
        raise ConfigError(
            key, f"{path} is a directory; expected a NAME.key or NAME.key_secret file"
        )
    try:
        public, secret = zmq.auth.load_certificate(path)
    except ValueError:
        raise ConfigError(
            key,
            f"{path} is not a ZeroMQ certificate (no public-key line): "
            "use a file written by `edgeloop keys generate`",
        ) from None
    except OSError as error:
        raise ConfigError(key, f"cannot read {path}: {error.strerror or error}") from None
    public_text = public.decode("ascii", "replace")
    if not is_z85_key(public_text):
        raise ConfigError(key, f"{path}: the public-key is not a 40-character Z85 key")
    if secret is None:
        return public_text, None
    secret_text = secret.decode("ascii", "replace")
    if not is_z85_key(secret_text):
        raise ConfigError(key, f"{path}: the secret-key is not a 40-character Z85 key")
    return public_text, secret_text


def load_secret(path: str | Path, *, key: str = "node.security.secret_key") -> KeyPair:
    """This node's (or device's) key pair from its ``NAME.key_secret`` file.

    Refused with a :class:`ConfigError` naming the file when it is missing, readable by
    other users (like ssh, a secret that others can read is treated as leaked), holds only
    a public key, or its two keys do not belong together.
    """
    file = Path(path)
    if not file.exists():
        raise ConfigError(
            key,
            f"no secret key file at {file}: create one with "
            "`edgeloop keys generate NAME --dir DIR` and set this to DIR/NAME.key_secret",
        )
    if os.name == "posix" and file.is_file():
        mode = stat.S_IMODE(file.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                key,
                f"{file} can be read by other users (mode {mode:04o}): run `chmod 600 {file}`; "
                "anyone holding a secret key can pose as its owner",
            )
    public, secret = _read_certificate(file, key)
    if secret is None:
        raise ConfigError(
            key,
            f"{file} holds only a public key: point this at the NAME.key_secret file "
            "that `edgeloop keys generate` wrote next to it",
        )
    if zmq.curve_public(secret.encode("ascii")).decode("ascii") != public:
        raise ConfigError(
            key,
            f"{file}: its secret key does not belong to its public key (the file was edited "
            "or damaged): generate a new pair with `edgeloop keys generate NAME --force`",
        )
    return KeyPair(public, secret)


def load_public(value: str | Path, *, key: str = "node.security.allowed") -> str:
    """A Z85 public key from a ``NAME.key`` file or given as a 40-character Z85 string.

    A :class:`~pathlib.Path` is always a file. A string is a file if one exists at that
    path, else a Z85 key if it is one, else an error naming both readings. A secret key
    file is refused: list the public ``NAME.key`` file, and keep the secret with its owner.
    """
    if isinstance(value, str):
        if not value:
            raise ConfigError(key, "expected a key file path or a 40-character Z85 key, got ''")
        if not os.path.exists(value):
            if is_z85_key(value):
                return value
            raise ConfigError(
                key,
                f"{value!r} is neither an existing key file nor a 40-character Z85 public key: "
                "give the path of the peer's NAME.key file or the key itself",
            )
        value = Path(value)
    elif not isinstance(value, Path):
        raise ConfigError(
            key, f"expected a key file path or a Z85 key string, got {type(value).__name__}"
        )
    public, secret = _read_certificate(value, key)
    if secret is not None:
        raise ConfigError(
            key,
            f"{value} is a secret key file: list the public file (NAME.key) instead, and keep "
            "the secret file on its owner's machine only",
        )
    return public
