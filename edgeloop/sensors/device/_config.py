"""A device's file (``DEVICE.toml``): who it is, where its node is, how it keeps its data.

::

    [device]
    name = "cam-1"                 # its id on the link (letters, digits, _ . @ -)
    kind = "camera"                # or "trap"
    node = "tcp://127.0.0.1:5555"  # the node's ROUTER
    data_dir = "state/cam-1"       # journal + state; leave out to keep them in memory

    [device.security]              # CurveZMQ (needed off-host; optional on loopback)
    mode = "auto"
    secret_key = "keys/cam-1.key_secret"
    node_key = "keys/edge-a.key"   # the node's public key (file or Z85)

    [device.outbox]                # at-least-once delivery (docs/sensors.md)
    limit = 10000
    overflow = "drop_newest"       # or "drop_oldest"
    window = 256
    ack_timeout = 2.0
    fsync = false

    [device.frames]
    budget = 67108864              # bytes of full frames kept on the device

    [device.camera]                # a camera's reach and its configuration at first boot
    reachable = ["porch", "yard"]
    zones = ["porch"]
    threshold = 0.0
    report_mode = "thumbnails"

    [device.source]                # where a camera's observations come from
    kind = "synthetic"             # or "yard" (edgeloop.sensors.world)
    seed = 7
    speed = 1.0

    [device.trap]
    zone = "porch"
    catches = "catches.jsonl"      # what it caught (ground truth), for scoring

Every key is checked when the file is read; errors name it (``device.outbox.limit``).
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from edgeloop.errors import ConfigError
from edgeloop.sensors.device._outbox import Overflow
from edgeloop.sensors.device._settings import CameraSettings
from edgeloop.transport import LinkConfig, curve_required

__all__ = ["DeviceConfig", "OutboxConfig", "SourceConfig", "TrapConfig", "load_device"]

DeviceKind = Literal["camera", "trap"]


def _table(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"expected a table, got {value!r}")
    return value


def _known(table: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    for name in table:
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {list(allowed)}"
            raise ConfigError(f"{key}.{name}", f"unknown key{hint}")


def _int(table: Mapping[str, Any], name: str, key: str, default: int, low: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{key}.{name}", f"expected an integer >= {low}, got {value!r}")
    return value


def _float(table: Mapping[str, Any], name: str, key: str, default: float) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{key}.{name}", f"expected a number > 0, got {value!r}")
    return float(value)


def _str(table: Mapping[str, Any], name: str, key: str, default: str | None = None) -> str:
    value = table.get(name, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}.{name}", f"expected a non-empty string, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxConfig:
    """Bounds of the outbox and its journal (see ``_outbox.py`` and ``_journal.py``)."""

    limit: int = 10_000
    overflow: Overflow = "drop_newest"
    window: int = 256
    ack_timeout: float = 2.0
    fsync: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class SourceConfig:
    """Where a camera's observations come from: ``synthetic`` (seeded noise, for tests
    and benchmarks) or ``yard`` (the simulated yard of a scenario)."""

    kind: Literal["synthetic", "yard"] = "synthetic"
    seed: int | None = None
    """The source's seed (``None``: 0 for a synthetic source, the scenario's for the yard)."""
    speed: float = 1.0
    scenario: str | None = None
    rate: float = 10.0
    """Observations per second of a synthetic source (in source time)."""
    limit: int | None = None
    """Observations a synthetic source makes before it runs dry (None: no end)."""


@dataclasses.dataclass(frozen=True, slots=True)
class TrapConfig:
    """A trap's zone, and the file it writes its catches to (JSON lines)."""

    zone: str = "trap"
    catches: Path | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One device's file, validated (see the module docstring)."""

    name: str
    node: str
    kind: DeviceKind = "camera"
    data_dir: Path | None = None
    security_mode: Literal["auto", "on", "off"] = "auto"
    secret_key: Path | None = None
    node_key: str | None = None
    outbox: OutboxConfig = OutboxConfig()
    frame_budget: int = 64 << 20
    reachable: tuple[str, ...] = ()
    initial: CameraSettings | None = None
    source: SourceConfig = SourceConfig()
    trap: TrapConfig = TrapConfig()
    bulk_provider: Literal["auto", "shm", "zmq", "verbs"] = "auto"
    heartbeat_interval: float = 1.0
    liveness_timeout: float = 3.0
    status_interval: float = 5.0

    def __post_init__(self) -> None:
        try:
            LinkConfig(id=self.name, role="device")
        except ConfigError as error:
            raise ConfigError("device.name", error.problem) from None
        if self.kind not in ("camera", "trap"):
            raise ConfigError("device.kind", f"expected 'camera' or 'trap', got {self.kind!r}")
        if curve_required(self.node, self.security_mode, key="device.security.mode"):
            for key, value in (("secret_key", self.secret_key), ("node_key", self.node_key)):
                if value is None:
                    raise ConfigError(
                        f"device.security.{key}",
                        f"{self.node!r} leaves this host, so the link uses CurveZMQ and needs "
                        "the device's secret key file (`edgeloop keys generate NAME`) and the "
                        "node's public key",
                    )

    @property
    def settings(self) -> CameraSettings:
        """The camera's settings at first boot."""
        if self.initial is not None:
            return self.initial
        zones = self.reachable[:1] or ("zone",)
        return CameraSettings(zones=zones)

    @classmethod
    def from_table(cls, document: Mapping[str, Any], *, base: Path | None = None) -> DeviceConfig:
        """Validate a parsed device file; relative paths are taken from ``base``."""
        root = base if base is not None else Path(".")
        _known(document, "", ("device",))
        device = _table(document.get("device"), "device")
        _known(
            device,
            "device",
            (
                "name",
                "kind",
                "node",
                "data_dir",
                "status_interval",
                "security",
                "outbox",
                "frames",
                "camera",
                "source",
                "trap",
                "link",
                "bulk",
            ),
        )
        kind = device.get("kind", "camera")
        security = _table(device.get("security", {}), "device.security")
        _known(security, "device.security", ("mode", "secret_key", "node_key"))
        node_key = security.get("node_key")
        if node_key is not None:
            node_key = _str(security, "node_key", "device.security")
            candidate = root / node_key
            if candidate.is_file():
                node_key = str(candidate)
        secret = security.get("secret_key")
        outbox = _table(device.get("outbox", {}), "device.outbox")
        _known(outbox, "device.outbox", ("limit", "overflow", "window", "ack_timeout", "fsync"))
        overflow = outbox.get("overflow", "drop_newest")
        if overflow not in ("drop_newest", "drop_oldest"):
            raise ConfigError(
                "device.outbox.overflow",
                f"expected 'drop_newest' or 'drop_oldest', got {overflow!r}",
            )
        fsync = outbox.get("fsync", False)
        if not isinstance(fsync, bool):
            raise ConfigError("device.outbox.fsync", f"expected true or false, got {fsync!r}")
        frames = _table(device.get("frames", {}), "device.frames")
        _known(frames, "device.frames", ("budget",))
        camera = _table(device.get("camera", {}), "device.camera")
        reachable, initial = _camera(camera)
        source = _source(_table(device.get("source", {}), "device.source"))
        trap = _table(device.get("trap", {}), "device.trap")
        _known(trap, "device.trap", ("zone", "catches"))
        catches = trap.get("catches")
        if catches is not None:
            catches = root / _str(trap, "catches", "device.trap")
        link = _table(device.get("link", {}), "device.link")
        _known(link, "device.link", ("heartbeat_interval", "liveness_timeout"))
        bulk = _table(device.get("bulk", {}), "device.bulk")
        _known(bulk, "device.bulk", ("provider",))
        provider = bulk.get("provider", "auto")
        if provider not in ("auto", "shm", "zmq", "verbs"):
            raise ConfigError(
                "device.bulk.provider", f"expected auto, shm, zmq or verbs, got {provider!r}"
            )
        data_dir = device.get("data_dir")
        mode = security.get("mode", "auto")
        if mode not in ("auto", "on", "off"):
            raise ConfigError("device.security.mode", f"expected auto, on or off, got {mode!r}")
        return cls(
            name=_str(device, "name", "device"),
            node=_str(device, "node", "device"),
            kind=kind,
            data_dir=root / _str(device, "data_dir", "device") if data_dir is not None else None,
            security_mode=mode,
            secret_key=root / _str(security, "secret_key", "device.security")
            if secret is not None
            else None,
            node_key=node_key,
            outbox=OutboxConfig(
                limit=_int(outbox, "limit", "device.outbox", 10_000, 1),
                overflow=overflow,
                window=_int(outbox, "window", "device.outbox", 256, 1),
                ack_timeout=_float(outbox, "ack_timeout", "device.outbox", 2.0),
                fsync=fsync,
            ),
            frame_budget=_int(frames, "budget", "device.frames", 64 << 20, 1),
            reachable=reachable,
            initial=initial,
            source=source,
            trap=TrapConfig(zone=_str(trap, "zone", "device.trap", "trap"), catches=catches),
            bulk_provider=provider,
            heartbeat_interval=_float(link, "heartbeat_interval", "device.link", 1.0),
            liveness_timeout=_float(link, "liveness_timeout", "device.link", 3.0),
            status_interval=_float(device, "status_interval", "device", 5.0),
        )


def _camera(camera: Mapping[str, Any]) -> tuple[tuple[str, ...], CameraSettings | None]:
    keys = ("reachable", "zones", "exposure", "threshold", "report_mode", "frame_rate")
    _known(camera, "device.camera", keys)
    reachable = camera.get("reachable", [])
    if isinstance(reachable, str) or not isinstance(reachable, list):
        raise ConfigError("device.camera.reachable", f"expected a list of zones, got {reachable!r}")
    for index, zone in enumerate(reachable):
        if not isinstance(zone, str) or not zone:
            raise ConfigError(f"device.camera.reachable[{index}]", f"expected a zone, got {zone!r}")
    if not camera.keys() - {"reachable"}:
        return tuple(reachable), None
    base = CameraSettings(zones=tuple(reachable[:1]) or ("zone",))
    values = {k: v for k, v in camera.items() if k != "reachable"}
    try:
        return tuple(reachable), base.patched(values, frozenset(reachable))
    except ConfigError as error:
        raise ConfigError(f"device.camera.{error.key}", error.problem) from None


def _source(source: Mapping[str, Any]) -> SourceConfig:
    _known(source, "device.source", ("kind", "seed", "speed", "scenario", "rate", "limit"))
    kind = source.get("kind", "synthetic")
    if kind not in ("synthetic", "yard"):
        raise ConfigError("device.source.kind", f"expected synthetic or yard, got {kind!r}")
    scenario = source.get("scenario")
    if kind == "yard":
        scenario = _str(source, "scenario", "device.source")
    limit = source.get("limit")
    if limit is not None:
        limit = _int(source, "limit", "device.source", 0, 0)
    seed = source.get("seed")
    if seed is not None:
        seed = _int(source, "seed", "device.source", 0, 0)
    return SourceConfig(
        kind=kind,
        seed=seed,
        speed=_float(source, "speed", "device.source", 1.0),
        scenario=scenario,
        rate=_float(source, "rate", "device.source", 10.0),
        limit=limit,
    )


def load_device(path: Path | str) -> DeviceConfig:
    """Read and validate a device file; ConfigError names the bad key (or the file)."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("", f"no device file at {str(path)!r}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("", f"{path} is not valid TOML: {error}") from None
    return DeviceConfig.from_table(document, base=path.parent)
