"""The device's durable state besides the outbox: its boot count, configuration and head.

One small MessagePack file, rewritten whole into a temporary file and renamed over the
old one (atomic on POSIX), so after a crash the device comes back with exactly the
configuration and head it last acknowledged, and a boot count one higher (frame ids are
``boot << 32 | n``, so they never repeat across restarts). Without a data directory the
state lives in memory only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from edgeloop.errors import JournalError

__all__ = ["DeviceState", "StateFile"]


class DeviceState(msgspec.Struct, kw_only=True):
    """What a device keeps across restarts."""

    boot: int = 0
    config_version: int = 0
    settings: dict[str, Any] = {}
    head_version: int = 0
    head: bytes = b""


class StateFile:
    """Loads and saves a :class:`DeviceState` at ``path`` (``None``: memory only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> DeviceState:
        if self.path is None or not self.path.exists():
            return DeviceState()
        try:
            return msgspec.msgpack.decode(self.path.read_bytes(), type=DeviceState)
        except (OSError, msgspec.DecodeError) as error:
            raise JournalError(
                f"cannot read the device state {str(self.path)!r}: {error}; remove the file "
                "to start the device afresh (it then asks its node for configuration again)"
            ) from error

    def save(self, state: DeviceState) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(msgspec.msgpack.encode(state))
            os.replace(tmp, self.path)
        except OSError as error:
            raise JournalError(
                f"cannot save the device state {str(self.path)!r}: {error}"
            ) from error
