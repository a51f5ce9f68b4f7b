"""A small test twin for the device agent's tests: it registers for its device on a real
Node, records what arrives, keeps events exactly once and in order (by seq, skipping the
gaps a DeviceStatus declares lost) and acks cumulatively. The real twins are
edgeloop.sensors.twins; this one only serves the device side's tests."""

from __future__ import annotations

import threading
from typing import Any

from edgeloop.actors import Actor
from edgeloop.messages import DeviceStatus, Event, EventAck, Message
from edgeloop.supervisor import DeviceDown, DeviceMessage, DeviceUp, device_port


class Record:
    """What one device's twin saw; shared with the test (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[Event] = []  # delivered: exactly once, in order
        self.duplicates = 0
        self.lost = 0
        self.received: list[Message] = []
        self.ups: list[DeviceUp] = []
        self.downs: list[DeviceDown] = []
        self.acked = 0

    def of(self, kind: type) -> list[Any]:
        with self.lock:
            return [m for m in self.received if isinstance(m, kind)]

    def seqs(self) -> list[int]:
        with self.lock:
            return [e.seq for e in self.events]

    def count(self) -> int:
        with self.lock:
            return len(self.events)


RECORDS: dict[str, Record] = {}


class RecordingTwin(Actor):
    """Registers for ``device``; records into ``RECORDS[device]``; acks if ``ack``."""

    def __init__(self, device: str, ack: bool = True) -> None:
        super().__init__()
        self.device = device
        self.ack = ack
        self.record = RECORDS.setdefault(device, Record())

    def on_start(self) -> None:
        device_port(self.system).register(self.device, self.ref)

    def on_receive(self, message: Any) -> Any:
        record = self.record
        if isinstance(message, DeviceUp):
            with record.lock:
                record.ups.append(message)
        elif isinstance(message, DeviceDown):
            with record.lock:
                record.downs.append(message)
        elif isinstance(message, DeviceMessage):
            inner = message.message
            with record.lock:
                record.received.append(inner)
                if isinstance(inner, Event):
                    if inner.seq == record.acked + 1:
                        record.events.append(inner)
                        record.acked = inner.seq
                    else:
                        record.duplicates += inner.seq <= record.acked
                elif isinstance(inner, DeviceStatus) and inner.oldest_seq > record.acked + 1:
                    record.lost += inner.oldest_seq - 1 - record.acked
                    record.acked = inner.oldest_seq - 1
                acked = record.acked
            if self.ack and isinstance(inner, Event | DeviceStatus) and acked:
                device_port(self.system).send(self.device, EventAck(device=self.device, seq=acked))
        return None
