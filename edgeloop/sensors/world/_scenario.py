"""Scenario files: the yard's zones, cameras, species and animals in TOML, validated.

Every error is a :class:`~edgeloop.errors.ScenarioError` whose ``key`` is the path of the
offending value (``cameras[1].zones[0]``), so a user can find it in the file. Unknown keys
are errors too, with the closest known key suggested: a typo must not silently fall back
to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from edgeloop.errors import ScenarioError

__all__ = [
    "Zone",
    "Camera",
    "Species",
    "Animal",
    "Arrivals",
    "Scenario",
    "SHIPPED",
    "load_scenario",
    "parse_scenario",
]

Activity = Literal["day", "night", "any"]

SHIPPED = ("calm", "busy", "noisy-cameras", "opossum")
"""The scenarios that ship with edgeloop (``edgeloop/sensors/scenarios/NAME.toml``)."""

_MAX_TICKS = 1_000_000  # the whole trajectory is simulated up front: keep it in memory

SLOT_MARGIN = 8
"""Free pixels around a sprite in its slot of a frame: room for jitter."""


@dataclasses.dataclass(frozen=True, slots=True)
class Zone:
    """A part of the yard. Animals move between ``adjacent`` zones; they enter and leave
    the yard through ``exit`` zones; a ``trap`` zone holds a baited trap."""

    id: str
    adjacent: tuple[str, ...]
    trap: bool = False
    exit: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Camera:
    """A camera: the zones it sees (one band of the frame each), its pixel noise (standard
    deviation as a fraction of full scale), the chance it drops a whole frame, and the
    chance its detector misses an animal that is in view."""

    id: str
    zones: tuple[str, ...]
    noise: float = 0.04
    dropout: float = 0.0
    miss: float = 0.05


@dataclasses.dataclass(frozen=True, slots=True)
class Species:
    """A kind of animal: it looks like digit class ``digit`` of the digits data set.

    Each tick an animal stays in its zone with probability ``stay`` (``rest`` when its
    species is not ``active`` at this time of day), else moves to an adjacent zone, trap
    zones weighted ``1 + bait``. ``novel`` species are unknown to the frozen feature
    extractor and the initial head (the opossum).
    """

    name: str
    digit: int
    stay: float = 0.7
    rest: float = 0.97
    active: Activity = "any"
    bait: float = 0.0
    novel: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Animal:
    """A scripted animal: it enters at ``zone`` at ``enter`` seconds, and from ``leave``
    seconds on (``None``: never) it leaves the yard when it reaches an exit zone."""

    id: str
    species: str
    zone: str
    enter: float = 0.0
    leave: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Arrivals:
    """Random visitors of one species: Poisson arrivals at ``rate`` per simulated second
    between ``start`` and ``end`` (a fifth of it while the species rests), each staying an
    exponential time of mean ``dwell`` seconds before it heads out."""

    species: str
    rate: float
    dwell: float = 120.0
    start: float = 0.0
    end: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    """A whole yard: what the world simulates, deterministically under ``seed``.

    Time is simulated seconds: the world steps every ``tick`` seconds for ``duration``
    seconds; a day lasts ``day_length`` seconds and ``t = 0`` is ``start_hour`` o'clock
    (night is 20:00 to 06:00). Frames are ``frame_size`` pixels square with sprites of
    ``sprite_size``; embeddings have ``embedding_dim`` int8 values.
    """

    name: str
    zones: tuple[Zone, ...]
    cameras: tuple[Camera, ...]
    species: tuple[Species, ...]
    animals: tuple[Animal, ...] = ()
    arrivals: tuple[Arrivals, ...] = ()
    description: str = ""
    seed: int = 0
    duration: float = 600.0
    tick: float = 1.0
    day_length: float = 600.0
    start_hour: float = 18.0
    frame_size: int = 256
    sprite_size: int = 32
    embedding_dim: int = 20

    @property
    def ticks(self) -> int:
        """How many steps the world simulates."""
        return math.ceil(self.duration / self.tick)

    @property
    def known(self) -> tuple[Species, ...]:
        """The species the frozen extractor and the initial head know (not ``novel``)."""
        return tuple(s for s in self.species if not s.novel)

    def zone(self, zone_id: str) -> Zone:
        """The zone called ``zone_id`` (KeyError if there is none)."""
        return self.zones[self.zone_index(zone_id)]

    def zone_index(self, zone_id: str) -> int:
        """The position of zone ``zone_id`` in ``zones``."""
        for i, zone in enumerate(self.zones):
            if zone.id == zone_id:
                return i
        raise KeyError(zone_id)

    def camera(self, camera_id: str) -> Camera:
        """The camera called ``camera_id``, or a ScenarioError naming the known ones."""
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        known = ", ".join(c.id for c in self.cameras)
        raise ScenarioError("cameras", f"no camera {camera_id!r} in {self.name!r} (has {known})")

    def species_named(self, name: str) -> Species:
        """The species called ``name`` (KeyError if there is none)."""
        for species in self.species:
            if species.name == name:
                return species
        raise KeyError(name)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """The scenario shipped as ``name_or_path`` (see :data:`SHIPPED`) or in that TOML file.

    A bare name without a suffix or slash is looked up among the shipped ones first.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, str) and "/" not in text and not text.endswith(".toml"):
        if text not in SHIPPED:
            raise ScenarioError(
                "",
                f"no shipped scenario {text!r}; choose one of {', '.join(SHIPPED)} "
                "or give the path of a .toml file",
            )
        resource = resources.files("edgeloop.sensors") / "scenarios" / f"{text}.toml"
        return parse_scenario(resource.read_text(encoding="utf-8"), default_name=text)
    path = Path(name_or_path)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(
            "", f"cannot read the scenario file {text!r}: {error.strerror}"
        ) from None
    return parse_scenario(source, default_name=path.stem)


def parse_scenario(source: str | Mapping[str, Any], *, default_name: str = "scenario") -> Scenario:
    """The scenario in TOML text (or an already parsed table), or a ScenarioError."""
    if isinstance(source, str):
        try:
            table: Mapping[str, Any] = tomllib.loads(source)
        except tomllib.TOMLDecodeError as error:
            raise ScenarioError("", f"not valid TOML: {error}") from None
    else:
        table = source
    return _Reader(table).scenario(default_name)


_TOP_KEYS = {
    "name",
    "description",
    "seed",
    "duration",
    "tick",
    "day_length",
    "start_hour",
    "frame_size",
    "sprite_size",
    "embedding_dim",
    "zones",
    "cameras",
    "species",
    "animals",
    "arrivals",
}


class _Reader:
    """Reads one parsed TOML table into a Scenario, naming the key of the first problem."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        self.table = table

    def scenario(self, default_name: str) -> Scenario:
        top = self.table
        _no_unknown(top, _TOP_KEYS, "")
        name = _str(top, "name", "", default=default_name)
        seed = _int(top, "seed", "", default=0, low=0, high=2**63 - 1)
        duration = _float(top, "duration", "", default=600.0, low=0.0, open_low=True)
        tick = _float(top, "tick", "", default=1.0, low=0.0, open_low=True)
        if duration / tick > _MAX_TICKS:
            raise ScenarioError("duration", f"{duration / tick:.0f} ticks; keep it <= {_MAX_TICKS}")
        zones = self._zones()
        zone_ids = {z.id for z in zones}
        species = self._species()
        names = {s.name for s in species}
        frame = _int(top, "frame_size", "", default=256, low=32, high=4096)
        sprite = _int(top, "sprite_size", "", default=32, low=8, high=frame)
        if sprite % 8:
            raise ScenarioError("sprite_size", f"{sprite} is not a multiple of 8 (digits are 8x8)")
        cameras = self._cameras(zone_ids, frame, sprite)
        animals = self._animals(zone_ids, names)
        arrivals = self._arrivals(names)
        if not any(z.exit for z in zones) and (arrivals or any(a.leave for a in animals)):
            raise ScenarioError("zones", "animals arrive or leave but no zone has exit = true")
        known = [s for s in species if not s.novel]
        if len(known) < 2:
            raise ScenarioError("species", "the extractor needs at least two known species")
        return Scenario(
            name=name,
            description=_str(top, "description", "", default=""),
            seed=seed,
            duration=duration,
            tick=tick,
            day_length=_float(top, "day_length", "", default=600.0, low=0.0, open_low=True),
            start_hour=_float(top, "start_hour", "", default=18.0, low=0.0, high=24.0),
            frame_size=frame,
            sprite_size=sprite,
            embedding_dim=_int(top, "embedding_dim", "", default=20, low=2, high=32),
            zones=zones,
            cameras=cameras,
            species=species,
            animals=animals,
            arrivals=arrivals,
        )

    def _zones(self) -> tuple[Zone, ...]:
        rows = _tables(self.table, "zones", required=True)
        zones: list[Zone] = []
        for i, row in enumerate(rows):
            where = f"zones[{i}]"
            _no_unknown(row, {"id", "adjacent", "trap", "exit"}, where)
            zones.append(
                Zone(
                    id=_ident(row, "id", where),
                    adjacent=_str_list(row, "adjacent", where),
                    trap=_bool(row, "trap", where, default=False),
                    exit=_bool(row, "exit", where, default=False),
                )
            )
        _distinct([z.id for z in zones], "zones", "id")
        ids = {z.id for z in zones}
        for i, zone in enumerate(zones):
            for j, other in enumerate(zone.adjacent):
                if other not in ids:
                    raise ScenarioError(
                        f"zones[{i}].adjacent[{j}]", f"no zone {other!r}{_closest(other, ids)}"
                    )
                if other == zone.id:
                    raise ScenarioError(
                        f"zones[{i}].adjacent[{j}]", "a zone is not its own neighbour"
                    )
        # adjacency is symmetric: a link named on either side counts both ways
        links = {z.id: set(z.adjacent) for z in zones}
        for zone in zones:
            for other in zone.adjacent:
                links[other].add(zone.id)
        return tuple(
            dataclasses.replace(z, adjacent=tuple(sorted(links[z.id], key=_order(zones))))
            for z in zones
        )

    def _species(self) -> tuple[Species, ...]:
        rows = _tables(self.table, "species", required=True)
        out: list[Species] = []
        for i, row in enumerate(rows):
            where = f"species[{i}]"
            _no_unknown(row, {"name", "digit", "stay", "rest", "active", "bait", "novel"}, where)
            active = _str(row, "active", where, default="any")
            if active not in ("day", "night", "any"):
                raise ScenarioError(
                    f"{where}.active", f"expected day, night or any, got {active!r}"
                )
            out.append(
                Species(
                    name=_ident(row, "name", where),
                    digit=_int(row, "digit", where, low=0, high=9),
                    stay=_prob(row, "stay", where, default=0.7),
                    rest=_prob(row, "rest", where, default=0.97),
                    active=active,  # type: ignore[arg-type]  # checked just above
                    bait=_float(row, "bait", where, default=0.0, low=0.0, high=100.0),
                    novel=_bool(row, "novel", where, default=False),
                )
            )
        _distinct([s.name for s in out], "species", "name")
        _distinct([s.digit for s in out], "species", "digit")
        return tuple(out)

    def _cameras(self, zone_ids: set[str], frame: int, sprite: int) -> tuple[Camera, ...]:
        rows = _tables(self.table, "cameras", required=True)
        out: list[Camera] = []
        for i, row in enumerate(rows):
            where = f"cameras[{i}]"
            _no_unknown(row, {"id", "zones", "noise", "dropout", "miss"}, where)
            zones = _str_list(row, "zones", where)
            if not zones:
                raise ScenarioError(f"{where}.zones", "a camera must see at least one zone")
            for j, zone in enumerate(zones):
                if zone not in zone_ids:
                    raise ScenarioError(
                        f"{where}.zones[{j}]", f"no zone {zone!r}{_closest(zone, zone_ids)}"
                    )
            _distinct(list(zones), f"{where}.zones", None)
            if frame // len(zones) < sprite + SLOT_MARGIN:
                raise ScenarioError(
                    f"{where}.zones",
                    f"{len(zones)} zones leave bands of {frame // len(zones)} px, too narrow for "
                    f"{sprite} px sprites; see fewer zones or raise frame_size",
                )
            out.append(
                Camera(
                    id=_ident(row, "id", where),
                    zones=zones,
                    noise=_float(row, "noise", where, default=0.04, low=0.0, high=1.0),
                    dropout=_prob(row, "dropout", where, default=0.0),
                    miss=_prob(row, "miss", where, default=0.05),
                )
            )
        _distinct([c.id for c in out], "cameras", "id")
        return tuple(out)

    def _animals(self, zone_ids: set[str], names: set[str]) -> tuple[Animal, ...]:
        rows = _tables(self.table, "animals", required=False)
        out: list[Animal] = []
        for i, row in enumerate(rows):
            where = f"animals[{i}]"
            _no_unknown(row, {"id", "species", "zone", "enter", "leave"}, where)
            species = _str(row, "species", where)
            if species not in names:
                raise ScenarioError(
                    f"{where}.species", f"no species {species!r}{_closest(species, names)}"
                )
            zone = _str(row, "zone", where)
            if zone not in zone_ids:
                raise ScenarioError(f"{where}.zone", f"no zone {zone!r}{_closest(zone, zone_ids)}")
            enter = _float(row, "enter", where, default=0.0, low=0.0)
            leave = _float(row, "leave", where, default=None, low=enter) if "leave" in row else None
            out.append(Animal(_ident(row, "id", where), species, zone, enter, leave))
        _distinct([a.id for a in out], "animals", "id")
        return tuple(out)

    def _arrivals(self, names: set[str]) -> tuple[Arrivals, ...]:
        rows = _tables(self.table, "arrivals", required=False)
        out: list[Arrivals] = []
        for i, row in enumerate(rows):
            where = f"arrivals[{i}]"
            _no_unknown(row, {"species", "rate", "dwell", "start", "end"}, where)
            species = _str(row, "species", where)
            if species not in names:
                raise ScenarioError(
                    f"{where}.species", f"no species {species!r}{_closest(species, names)}"
                )
            start = _float(row, "start", where, default=0.0, low=0.0)
            end = _float(row, "end", where, default=None, low=start) if "end" in row else None
            out.append(
                Arrivals(
                    species=species,
                    rate=_float(row, "rate", where, low=0.0, high=10.0),
                    dwell=_float(row, "dwell", where, default=120.0, low=0.0, open_low=True),
                    start=start,
                    end=end,
                )
            )
        return tuple(out)


# -- typed readers: each names the key it read -----------------------------------------

_MISSING: Any = object()


def _key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _get(row: Mapping[str, Any], key: str, where: str, default: Any) -> Any:
    if key in row:
        return row[key]
    if default is _MISSING:
        raise ScenarioError(_key(where, key), "missing")
    return default


def _str(row: Mapping[str, Any], key: str, where: str, default: Any = _MISSING) -> str:
    value = _get(row, key, where, default)
    if not isinstance(value, str):
        raise ScenarioError(_key(where, key), f"expected a string, got {value!r}")
    return value


def _ident(row: Mapping[str, Any], key: str, where: str) -> str:
    value = _str(row, key, where)
    if not value or len(value) > 64 or not all(c.isalnum() or c in "_.-" for c in value):
        raise ScenarioError(
            _key(where, key), f"expected 1 to 64 letters, digits or _ . -, got {value!r}"
        )
    return value


def _bool(row: Mapping[str, Any], key: str, where: str, default: Any = _MISSING) -> bool:
    value = _get(row, key, where, default)
    if not isinstance(value, bool):
        raise ScenarioError(_key(where, key), f"expected true or false, got {value!r}")
    return value


def _int(
    row: Mapping[str, Any],
    key: str,
    where: str,
    *,
    default: Any = _MISSING,
    low: int,
    high: int,
) -> int:
    value = _get(row, key, where, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(_key(where, key), f"expected an integer, got {value!r}")
    if not low <= value <= high:
        raise ScenarioError(_key(where, key), f"expected {low} to {high}, got {value}")
    return value


def _float(
    row: Mapping[str, Any],
    key: str,
    where: str,
    *,
    default: Any = _MISSING,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
) -> Any:
    value = _get(row, key, where, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(_key(where, key), f"expected a finite number, got {value!r}")
    if low is not None and (value < low or (open_low and value == low)):
        bound = f"> {low}" if open_low else f">= {low}"
        raise ScenarioError(_key(where, key), f"expected a number {bound}, got {value}")
    if high is not None and value > high:
        raise ScenarioError(_key(where, key), f"expected a number <= {high}, got {value}")
    return float(value)


def _prob(row: Mapping[str, Any], key: str, where: str, *, default: Any = _MISSING) -> float:
    value: float = _float(row, key, where, default=default, low=0.0, high=1.0)
    return value


def _str_list(row: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = _get(row, key, where, ())
    if not isinstance(value, list | tuple):
        raise ScenarioError(_key(where, key), f"expected an array of strings, got {value!r}")
    for j, item in enumerate(value):
        if not isinstance(item, str):
            raise ScenarioError(f"{_key(where, key)}[{j}]", f"expected a string, got {item!r}")
    return tuple(value)


def _tables(table: Mapping[str, Any], key: str, *, required: bool) -> list[Mapping[str, Any]]:
    value = table.get(key)
    if value is None:
        if required:
            raise ScenarioError(key, f"missing: a scenario needs [[{key}]] tables")
        return []
    if not isinstance(value, list) or not all(isinstance(row, Mapping) for row in value):
        raise ScenarioError(key, f"expected an array of tables ([[{key}]]), got {value!r}")
    if required and not value:
        raise ScenarioError(key, f"a scenario needs at least one [[{key}]] table")
    return value


def _no_unknown(row: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in row:
        if key not in known:
            raise ScenarioError(_key(where, key), f"unknown key{_closest(key, known)}")


def _distinct(values: list[Any], where: str, field: str | None) -> None:
    seen: set[Any] = set()
    for i, value in enumerate(values):
        if value in seen:
            key = f"{where}[{i}].{field}" if field else f"{where}[{i}]"
            raise ScenarioError(key, f"{value!r} appears twice; each must be distinct")
        seen.add(value)


def _closest(word: str, choices: set[str]) -> str:
    match = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _order(zones: list[Zone]) -> Any:
    position = {z.id: i for i, z in enumerate(zones)}
    return position.__getitem__
