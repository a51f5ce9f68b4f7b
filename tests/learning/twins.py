"""A minimal event source for the shells' tests: it holds what its device sent and tells
it again on EventsSince, as a SensorTwin does (the real twins live in edgeloop.sensors)."""

from __future__ import annotations

import dataclasses
from typing import Any

from edgeloop.actors import Actor
from edgeloop.learning import EventsSince
from edgeloop.messages import Event


@dataclasses.dataclass(frozen=True)
class Publish:
    """From the test: the device sent this event; deliver it to the subscriber."""

    event: Event


class HoldingTwin(Actor):
    """Delivers each published event to ``subscriber`` and keeps it for EventsSince."""

    def __init__(self, device: str, subscriber: str) -> None:
        self.device = device
        self.subscriber = subscriber
        self.held: list[Event] = []
        self.replays: list[EventsSince] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Publish):
            self.held.append(message.event)
            self.system.tell(self.subscriber, message.event)
        elif isinstance(message, EventsSince):
            self.replays.append(message)
            for event in self.held:
                if event.seq > message.after_seq:
                    self.system.tell(message.reply_to, event)
        elif message == "replays":
            return list(self.replays)
        return None


class Inbox(Actor):
    """Keeps every message it is told; ``ask("messages")`` returns them in order."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "messages":
            return list(self.messages)
        self.messages.append(message)
        return None
