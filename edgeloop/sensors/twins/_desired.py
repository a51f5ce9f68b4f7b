"""Desired vs reported configuration of one device, as IoT device twins keep it (pure).

The node owns the desired configuration and numbers its versions; the device reports the
version and settings in effect (``ConfigReported``, and the version in every ``Event`` and
``DeviceStatus``). A device refuses a version older than the one it runs, and it keeps its
version across restarts, so a twin that has just started (a restarted node) does not
number a desired configuration until the device has reported its version: until then the
desired one waits. A desired ``settings`` table may be a patch: it is in effect once every
key of it has that value in the reported settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgeloop.messages import ConfigDesired, ConfigReported
from edgeloop.sensors.twins._state import Versioned

__all__ = ["DesiredConfig", "covers"]


def covers(reported: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether ``reported`` settings hold every key of ``desired`` with its value."""
    if reported is None:
        return False
    return all(key in reported and reported[key] == value for key, value in desired.items())


class DesiredConfig:
    """One device's desired and reported configuration, and what to send when."""

    __slots__ = ("desired", "highest", "known", "refused", "reported", "sent")

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        self.desired: Versioned | None = None if initial is None else Versioned(0, dict(initial))
        self.reported: Versioned | None = None
        self.known = False
        """Whether the device has reported its version since this twin started."""
        self.refused: int | None = None
        """The desired version the device refused (not sent again)."""
        self.sent: int | None = None
        """The desired version sent on the current link."""
        self.highest = 0
        """The highest version sent or reported: a new desired one is numbered above it."""

    @property
    def in_effect(self) -> bool:
        """The desired configuration (if any) is what the device runs."""
        desired, reported = self.desired, self.reported
        if desired is None:
            return True
        return (
            reported is not None
            and reported.error is None
            and covers(reported.settings, desired.settings or {})
        )

    def want(self, settings: Mapping[str, Any], at_least: int = 0) -> None:
        """Make ``settings`` the desired configuration (a new version, numbered on send)."""
        self.desired = Versioned(max(0, at_least), dict(settings))
        self.refused = None
        self.sent = None

    def report_version(self, version: int) -> None:
        """An event or status said the device runs configuration ``version``."""
        self.known = True
        self.highest = max(self.highest, version)
        reported = self.reported
        if reported is None or reported.version != version:
            self.reported = Versioned(version)

    def report(self, report: ConfigReported) -> None:
        """The device reported its configuration; an error refuses the desired one."""
        self.known = True
        self.highest = max(self.highest, report.version)
        self.reported = Versioned(report.version, dict(report.settings), report.error)
        if report.error is not None and self.desired is not None:
            self.refused = self.desired.version

    def link_changed(self) -> None:
        """The link went down or came up: what was sent may not have arrived."""
        self.sent = None

    def to_send(self, device: str) -> ConfigDesired | None:
        """The ConfigDesired to send now, if one is due (numbering it, if needed)."""
        desired = self.desired
        if desired is None or not self.known or self.in_effect:
            return None
        if self.refused is not None and self.refused == desired.version:
            return None
        if self.sent is not None and self.sent == desired.version:
            return None
        if desired.version <= self.highest:
            desired = self.desired = Versioned(self.highest + 1, desired.settings)
        self.sent = desired.version
        self.highest = desired.version
        return ConfigDesired(
            device=device, version=desired.version, settings=dict(desired.settings or {})
        )
