"""The outbox: events numbered, held until the node acknowledges them, resent until then.

Pure (no I/O, no clock): the agent passes ``now`` in and sends what :meth:`Outbox.due`
returns. At-least-once, as DESIGN.md §5 asks: every event gets the next sequence number,
stays here until a cumulative ``EventAck`` covers it, and is sent again after a reconnect
(:meth:`Outbox.unsend`) or when no ack came within ``ack_timeout`` (go-back-N from the
oldest). At most ``window`` events are in flight at once.

The outbox is bounded (``limit`` events). When it is full, ``overflow`` decides:
``drop_newest`` refuses the new event before it gets a number, so the stream the node sees
has no gaps; ``drop_oldest`` drops the oldest unacknowledged event to make room, and the
node learns from ``DeviceStatus.oldest_seq`` that the numbers below it will never come.
Either way the loss is counted (``dropped``), never silent.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from typing import Literal

from edgeloop.errors import ConfigError
from edgeloop.messages import Event

__all__ = ["Outbox", "OutboxStatistics", "Overflow", "Added"]

Overflow = Literal["drop_newest", "drop_oldest"]


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxStatistics:
    """Depth and bounds, the next and oldest sequence numbers, and the counters."""

    depth: int
    limit: int
    in_flight: int
    next_seq: int
    oldest_seq: int
    acked: int
    dropped: int
    resent: int
    bad_acks: int


@dataclasses.dataclass(frozen=True, slots=True)
class Added:
    """What :meth:`Outbox.add` did: the event it numbered (``None``: refused), and the
    events it dropped to make room (``drop_oldest``)."""

    event: Event | None
    dropped: tuple[Event, ...] = ()


class _Entry:
    __slots__ = ("event", "sent_at")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.sent_at: float | None = None


class Outbox:
    """Numbered events awaiting acknowledgement (see the module docstring)."""

    def __init__(
        self,
        limit: int = 10_000,
        *,
        overflow: Overflow = "drop_newest",
        window: int = 256,
        ack_timeout: float = 2.0,
        next_seq: int = 1,
        acked: int = 0,
        dropped: int = 0,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError("device.outbox.limit", f"expected an integer >= 1, got {limit!r}")
        if overflow not in ("drop_newest", "drop_oldest"):
            raise ConfigError(
                "device.outbox.overflow",
                f"expected 'drop_newest' or 'drop_oldest', got {overflow!r}",
            )
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError("device.outbox.window", f"expected an integer >= 1, got {window!r}")
        if not ack_timeout > 0:
            raise ConfigError(
                "device.outbox.ack_timeout", f"expected seconds > 0, got {ack_timeout!r}"
            )
        self.limit = limit
        self.overflow: Overflow = overflow
        self.window = window
        self.ack_timeout = ack_timeout
        self._entries: collections.deque[_Entry] = collections.deque()
        self._next_seq = max(1, next_seq)
        self._acked = acked
        self._dropped = dropped
        self._resent = 0
        self._bad_acks = 0
        self._in_flight = 0

    # -- filling -----------------------------------------------------------------------

    def add(self, build: Callable[[int], Event]) -> Added:
        """Number a new event (``build(seq)`` makes it) and hold it; see ``overflow``."""
        dropped: list[Event] = []
        if len(self._entries) >= self.limit:
            self._dropped += 1
            if self.overflow == "drop_newest":
                return Added(None)
            oldest = self._entries.popleft()
            if oldest.sent_at is not None:
                self._in_flight -= 1
            dropped.append(oldest.event)
        event = build(self._next_seq)
        if event.seq != self._next_seq:
            raise ValueError(f"build() made seq {event.seq}, expected {self._next_seq}")
        self._next_seq += 1
        self._entries.append(_Entry(event))
        return Added(event, tuple(dropped))

    def restore(self, events: list[Event]) -> None:
        """Hold ``events`` again (recovered from the journal after a restart), in order."""
        for event in sorted(events, key=lambda e: e.seq):
            if event.seq > self._acked:
                self._entries.append(_Entry(event))
                self._next_seq = max(self._next_seq, event.seq + 1)

    # -- acknowledgements and sending --------------------------------------------------

    def ack(self, seq: int) -> int:
        """A cumulative ack: drop every event with a number ``<= seq``; how many went.

        An ack for a number never handed out is counted as ``bad_acks`` and ignored (a
        confused or restarted node; resending is always safe).
        """
        if seq >= self._next_seq:
            self._bad_acks += 1
            return 0
        if seq <= self._acked:
            return 0
        self._acked = seq
        removed = 0
        entries = self._entries
        while entries and entries[0].event.seq <= seq:
            if entries.popleft().sent_at is not None:
                self._in_flight -= 1
            removed += 1
        return removed

    def due(self, now: float) -> list[Event]:
        """The events to send now, in order: unsent ones within the window, and, when the
        oldest in flight waited ``ack_timeout`` for its ack, everything in flight again."""
        entries = self._entries
        if not entries:
            return []
        oldest = entries[0]
        if oldest.sent_at is not None and now - oldest.sent_at >= self.ack_timeout:
            for entry in entries:
                if entry.sent_at is None:
                    break
                entry.sent_at = None
                self._resent += 1
            self._in_flight = 0
        out: list[Event] = []
        budget = self.window - self._in_flight
        if budget <= 0:
            return out
        for entry in entries:
            if entry.sent_at is not None:
                continue
            entry.sent_at = now
            out.append(entry.event)
            budget -= 1
            if budget == 0:
                break
        self._in_flight += len(out)
        return out

    def unsend(self) -> None:
        """The link went down: whatever was in flight goes again once it is back."""
        resend = 0
        for entry in self._entries:
            if entry.sent_at is not None:
                entry.sent_at = None
                resend += 1
        self._resent += resend
        self._in_flight = 0

    def next_deadline(self) -> float | None:
        """When :meth:`due` may next resend on its own (the oldest in flight times out)."""
        if not self._entries or self._entries[0].sent_at is None:
            return None
        return self._entries[0].sent_at + self.ack_timeout

    # -- what it holds -----------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def oldest_seq(self) -> int:
        """The lowest number still held (``next_seq`` when empty)."""
        return self._entries[0].event.seq if self._entries else self._next_seq

    @property
    def acked(self) -> int:
        return self._acked

    @property
    def dropped(self) -> int:
        return self._dropped

    def pending(self) -> list[Event]:
        """Every event held, oldest first."""
        return [entry.event for entry in self._entries]

    def __len__(self) -> int:
        return len(self._entries)

    def statistics(self) -> OutboxStatistics:
        return OutboxStatistics(
            depth=len(self._entries),
            limit=self.limit,
            in_flight=self._in_flight,
            next_seq=self._next_seq,
            oldest_seq=self.oldest_seq,
            acked=self._acked,
            dropped=self._dropped,
            resent=self._resent,
            bad_acks=self._bad_acks,
        )
