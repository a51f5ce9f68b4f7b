"""A trap's mechanism, simulated: open or closed, or jammed in a fault it reports.

Commands (``Command.name``): ``open``, ``close``, ``status`` and, to simulate a failure,
``fault`` with ``args={"on": true, "reason": "..."}`` (``"on": false`` clears it). While
in fault the trap refuses ``open`` and ``close`` with ``ok=False`` and the reason, and
reports ``state="fault"``. Closing records a catch: what the world says was in the trap's
zone at that moment (ground truth, written to the catch log so a demo can be scored; it
is never sent to the node, which must judge from its cameras).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from edgeloop.errors import JournalError

__all__ = ["TrapMechanism", "Catch", "CatchLog", "TrapOutcome", "TRAP_COMMANDS"]

TRAP_COMMANDS = ("open", "close", "status", "fault")


@dataclasses.dataclass(frozen=True, slots=True)
class Catch:
    """The trap closed at source time ``t`` on ``caught`` (ground truth; may be empty)."""

    trap: str
    t: float
    caught: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class TrapOutcome:
    """How a command went: ok, why not, the state after it, and a catch if it closed."""

    ok: bool
    detail: str
    state: str
    catch: Catch | None = None


class TrapMechanism:
    """The open/closed/fault state machine of one trap (pure)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.position: Literal["open", "closed"] = "open"
        self.fault: str | None = None
        self.catches: list[Catch] = []

    @property
    def state(self) -> str:
        """``open``, ``closed`` or ``fault``."""
        return "fault" if self.fault is not None else self.position

    def command(
        self, name: str, args: Mapping[str, Any], t: float, occupants: tuple[str, ...]
    ) -> TrapOutcome:
        """Apply command ``name`` at source time ``t``; ``occupants`` is what the trap's
        zone holds then (used only when it closes)."""
        if name == "status":
            return TrapOutcome(True, self.fault or "", self.state)
        if name == "fault":
            on = args.get("on", True)
            if not isinstance(on, bool):
                return TrapOutcome(
                    False, f"fault: 'on' must be true or false, got {on!r}", self.state
                )
            reason = args.get("reason", "mechanism jammed")
            self.fault = str(reason)[:200] if on else None
            return TrapOutcome(True, self.fault or "fault cleared", self.state)
        if name not in ("open", "close"):
            known = ", ".join(TRAP_COMMANDS)
            return TrapOutcome(False, f"unknown command {name!r}; a trap knows {known}", self.state)
        if self.fault is not None:
            return TrapOutcome(
                False,
                f"trap {self.name} is in fault ({self.fault}); clear the fault before "
                f"commanding it to {name}",
                self.state,
            )
        target: Literal["open", "closed"] = "open" if name == "open" else "closed"
        if self.position == target:
            return TrapOutcome(True, f"already {target}", self.state)
        self.position = target
        catch = None
        if target == "closed":
            catch = Catch(self.name, t, occupants)
            self.catches.append(catch)
        return TrapOutcome(True, target, self.state, catch)


class CatchLog:
    """Appends catches to a JSON-lines file (one object a line), if a path is given."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, catch: Catch) -> None:
        if self.path is None:
            return
        line = json.dumps({"trap": catch.trap, "t": catch.t, "caught": list(catch.caught)})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, open(self.path, "a") as handle:
                handle.write(line + "\n")
        except OSError as error:
            raise JournalError(f"cannot write the catch log {str(self.path)!r}: {error}") from error
