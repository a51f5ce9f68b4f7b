"""The configuration a camera runs, as the node desires it and the device reports it.

A ``ConfigDesired`` is a patch: the keys it names replace the ones in effect, the others
stay. The result is validated as a whole before anything changes; a bad value rejects the
whole patch with a reason naming the key, and the configuration in effect stays (the
device answers ``ConfigReported`` with it and the reason). Settings:

========================  ==========================================================
``zones``                 list of zone names the camera points at (its pan); each one
                          of the zones the camera can reach
``exposure``              float in [0.05, 1.0]: more light, less noise; the world
                          source turns it into the frame's noise level
``threshold``             float in [0, 1]: events are sent for observations whose
                          head score reaches it (and for every novel one)
``report_mode``           ``thumbnails`` (events with an embedding and a frame ref:
                          the default), ``full`` (the frame too, pushed over the bulk
                          lane) or ``off`` (no events; frames still kept and served)
``frame_rate``            frames a second the camera captures, in (0, 60]
========================  ==========================================================
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from typing import Any, Literal, get_args

from edgeloop.errors import ConfigError

__all__ = ["CameraSettings", "ReportMode", "REPORT_MODES", "SETTING_KEYS"]

ReportMode = Literal["thumbnails", "full", "off"]
REPORT_MODES: tuple[str, ...] = get_args(ReportMode)
SETTING_KEYS = ("zones", "exposure", "threshold", "report_mode", "frame_rate")


def _number(key: str, value: object, low: float, high: float, *, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(key, f"expected a number, got {value!r}")
    if value > high or value < low or (open_low and value == low):
        bracket = "(" if open_low else "["
        raise ConfigError(key, f"expected a number in {bracket}{low}, {high}], got {value}")
    return float(value)


@dataclasses.dataclass(frozen=True, slots=True)
class CameraSettings:
    """A camera's configuration (see the module docstring for each setting)."""

    zones: tuple[str, ...]
    exposure: float = 0.5
    threshold: float = 0.0
    report_mode: ReportMode = "thumbnails"
    frame_rate: float = 10.0

    def to_params(self) -> dict[str, Any]:
        """The settings as a ``ConfigReported.settings`` map."""
        return {
            "zones": list(self.zones),
            "exposure": self.exposure,
            "threshold": self.threshold,
            "report_mode": self.report_mode,
            "frame_rate": self.frame_rate,
        }

    def patched(self, desired: Mapping[str, object], reachable: frozenset[str]) -> CameraSettings:
        """These settings with ``desired`` applied, or ConfigError naming the bad key."""
        for key in desired:
            if key not in SETTING_KEYS:
                close = difflib.get_close_matches(key, SETTING_KEYS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (known: {SETTING_KEYS})"
                raise ConfigError(key, f"unknown setting{hint}")
        merged = {**self.to_params(), **desired}
        return CameraSettings.check(merged, reachable)

    @classmethod
    def check(cls, values: Mapping[str, Any], reachable: frozenset[str]) -> CameraSettings:
        """Settings from a complete map, validated; ConfigError names the bad key."""
        zones = values["zones"]
        if isinstance(zones, str) or not isinstance(zones, list | tuple) or not zones:
            raise ConfigError("zones", f"expected a non-empty list of zone names, got {zones!r}")
        for index, zone in enumerate(zones):
            if not isinstance(zone, str) or (reachable and zone not in reachable):
                raise ConfigError(
                    f"zones[{index}]",
                    f"this camera cannot point at {zone!r}; it reaches {sorted(reachable)}",
                )
        if len(set(zones)) != len(zones):
            raise ConfigError("zones", f"a zone is listed twice: {list(zones)}")
        mode = values["report_mode"]
        if mode not in REPORT_MODES:
            raise ConfigError("report_mode", f"expected one of {REPORT_MODES}, got {mode!r}")
        return cls(
            zones=tuple(zones),
            exposure=_number("exposure", values["exposure"], 0.05, 1.0),
            threshold=_number("threshold", values["threshold"], 0.0, 1.0),
            report_mode=mode,
            frame_rate=_number("frame_rate", values["frame_rate"], 0.0, 60.0, open_low=True),
        )
