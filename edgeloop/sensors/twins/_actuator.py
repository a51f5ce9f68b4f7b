"""ActuatorTwin: the twin of a trap (or any device that moves something).

A :class:`SensorTwin` (a trap also reports events: what it caught) that adds the
mechanism's reported state, taken from whatever the device says: a command's result, its
reported configuration, or an event's ``extra``. While the device reports a fault, the
twin refuses to send ``open``/``close`` (a typed ``DeviceRefusedError``, at once) rather
than let a decision wait for a timeout; other commands (``status``, clearing the fault)
still go through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgeloop.errors import DeviceError, DeviceRefusedError
from edgeloop.messages import CommandResult, ConfigReported, DeviceStatus, Event, Message
from edgeloop.sensors.twins._twin import SensorTwin

__all__ = ["ActuatorTwin", "MOVES"]

MOVES = frozenset({"open", "close"})
"""The commands a trap in fault refuses."""

_STATE_KEYS = ("state", "position")


def reported_state(value: Any) -> tuple[str | None, str | None]:
    """``(state, fault)`` a device reported in a result, settings or extra, if any.

    A state is a string under ``state`` (or ``position``), or the value itself when it is
    a string; a fault is a non-empty ``fault`` string (or ``fault = true``) when the state
    is ``fault`` or absent.
    """
    if isinstance(value, str):
        return value, ("fault" if value == "fault" else None)
    if not isinstance(value, Mapping):
        return None, None
    state = next((value[k] for k in _STATE_KEYS if isinstance(value.get(k), str)), None)
    fault = value.get("fault")
    if fault is True:
        fault = "fault"
    elif not isinstance(fault, str) or not fault:
        fault = None
    if state == "fault" and fault is None:
        fault = "fault"
    if state is not None and state != "fault":
        fault = None
    return state, fault


class ActuatorTwin(SensorTwin):
    """The twin of a trap: open/close commands, the reported position, refusal in fault."""

    kind = "trap"

    def __init__(self, device: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(device, *args, **kwargs)
        self.position: str | None = None
        self.fault: str | None = None

    def refuse_command(self, name: str, args: Mapping[str, Any]) -> DeviceError | None:
        if name in MOVES and self.fault is not None:
            return DeviceRefusedError(
                self.device,
                f"trap {self.device} reports a fault ({self.fault}), so it will not {name}; "
                "clear the fault first (fix the mechanism; a simulated trap takes the command "
                "'fault' with on=false)",
                self.fault,
            )
        return None

    def on_device_message(self, message: Message) -> None:
        if isinstance(message, DeviceStatus):
            self._note({"state": message.state, "fault": message.detail})
        elif isinstance(message, CommandResult):
            state, _ = reported_state(message.result)
            if state == "fault":
                self._note({"state": state, "fault": message.detail or "fault"})
            elif message.ok:
                self._note(message.result)
        elif isinstance(message, ConfigReported):
            self._note(dict(message.settings))

    def on_receive(self, message: Any) -> Any:
        answer = super().on_receive(message)
        inner = getattr(message, "message", None)
        if isinstance(inner, Event) and inner.device == self.device and inner.extra:
            self._note(dict(inner.extra))
        return answer

    def _note(self, value: Any) -> None:
        state, fault = reported_state(value)
        if state is None and fault is None:
            return
        if state is not None and state != "fault":
            self.position = state  # a device that reports a position is out of its fault
        self.fault = fault

    def extra_state(self) -> dict[str, Any]:
        return {"position": self.position, "fault": self.fault}
