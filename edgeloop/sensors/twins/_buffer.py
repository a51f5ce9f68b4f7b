"""The twin's memory of recent events: what a restarted learner asks for again.

A bounded ring of delivered events in sequence order. When it is full the oldest event
goes, and that is counted (``evicted``), so a query for events that are no longer held
says so (``EventsBatch.complete`` is false) instead of returning a silently short answer.
"""

from __future__ import annotations

import bisect
from collections import deque

from edgeloop.messages import Event

__all__ = ["EventBuffer"]


class EventBuffer:
    """The last ``capacity`` delivered events of one device, oldest first."""

    __slots__ = ("_events", "capacity", "evicted", "evicted_through")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            msg = f"an event buffer holds at least 1 event, got capacity={capacity}"
            raise ValueError(msg)
        self.capacity = capacity
        self._events: deque[Event] = deque()
        self.evicted = 0
        """Events pushed out by newer ones since the twin started."""
        self.evicted_through = 0
        """The highest sequence number evicted (0: none)."""

    def __len__(self) -> int:
        return len(self._events)

    @property
    def oldest_seq(self) -> int | None:
        return self._events[0].seq if self._events else None

    @property
    def newest_seq(self) -> int | None:
        return self._events[-1].seq if self._events else None

    def append(self, event: Event) -> Event | None:
        """Keep ``event`` (the next delivered one); returns the event evicted, if any."""
        events = self._events
        events.append(event)
        if len(events) > self.capacity:
            old = events.popleft()
            self.evicted += 1
            self.evicted_through = old.seq
            return old
        return None

    def clear(self) -> None:
        """Forget every event (the device renumbered its events: old numbers mean
        nothing now); counted as evicted."""
        if self._events:
            self.evicted += len(self._events)
            self.evicted_through = self._events[-1].seq
            self._events.clear()

    def after_seq(self, seq: int, limit: int) -> list[Event]:
        """Up to ``limit`` events with a sequence number above ``seq``, in order."""
        events = self._events
        if not events or events[-1].seq <= seq:
            return []
        # Sequence numbers rise along the ring (gaps allowed), so bisect by seq.
        start = bisect.bisect_right(_SeqView(events), seq)
        return [events[i] for i in range(start, min(len(events), start + limit))]

    def since_time(self, ts: float, limit: int) -> list[Event]:
        """Up to ``limit`` events stamped at or after ``ts`` (device time), in order."""
        return [e for e in self._events if e.ts >= ts][:limit]


class _SeqView:
    """A read-only sequence of the ring's sequence numbers, for :mod:`bisect`."""

    __slots__ = ("_events",)

    def __init__(self, events: deque[Event]) -> None:
        self._events = events

    def __len__(self) -> int:
        return len(self._events)

    def __getitem__(self, index: int) -> int:
        return self._events[index].seq
