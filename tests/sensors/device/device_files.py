"""The device file (TOML) the process tests run `edgeloop device run` with."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def _toml(value: object) -> str:
    return repr(value).replace("'", '"')


def device_file(
    tmp_path: Path,
    name: str,
    address: str,
    *,
    reachable: Sequence[str] = ("porch",),
    zones: Sequence[str] | None = None,
    **outbox: object,
) -> Path:
    """A synthetic camera ``name`` linking to ``address`` with fast link timing; extra
    keyword arguments go into its ``[device.outbox]`` table."""
    lines = [
        "[device]",
        f'name = "{name}"',
        f'node = "{address}"',
        f'data_dir = "{tmp_path / name}"',
        "status_interval = 0.5",
        "[device.link]",
        "heartbeat_interval = 0.1",
        "liveness_timeout = 1.0",
        "[device.camera]",
        f"reachable = {_toml(list(reachable))}",
        *([f"zones = {_toml(list(zones))}"] if zones is not None else []),
        "frame_rate = 60",
        "[device.source]",
        "rate = 50",
        "speed = 2.0",
        "seed = 3",
        "[device.outbox]",
        "ack_timeout = 0.5",
        *(f"{key} = {_toml(value)}" for key, value in outbox.items()),
    ]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
