"""Exactly once, in order: a device's at-least-once event stream made into a clean one.

Pure and single-threaded (the twin's own thread drives it). A device numbers its events
1, 2, 3, ... and resends the ones not yet acknowledged after a reconnect, so the twin sees
duplicates and, when a device's outbox overflowed, gaps. :class:`Sequencer` drops the
duplicates, holds events that arrive ahead of a gap (up to ``reorder_limit`` of them), and
releases everything that became deliverable, in order. A gap that does not fill is given
up on by the shell (:meth:`Sequencer.skip_gap`, after the gap timeout or when the hold is
full): its sequence numbers are counted as lost, never silently.

A fresh sequencer (a new twin, or a restarted node) knows nothing of earlier acks, so it
is *unanchored*: it holds what arrives until it learns where the stream starts
(:meth:`Sequencer.anchor`): from the device's ``DeviceStatus`` (its oldest unacknowledged
event), or, failing that, at the lowest number held once the shell stops waiting. Taking
the first event seen as the start would drop, as duplicates, the lower-numbered events a
device resends a moment later (those a crashed twin had not acknowledged).
"""

from __future__ import annotations

import dataclasses

from edgeloop.messages import Event

__all__ = ["Sequencer", "SequencerCounters", "Offer"]


@dataclasses.dataclass(slots=True)
class SequencerCounters:
    """What the sequencer has seen: ``received`` events, ``delivered`` in order,
    ``duplicates`` dropped, ``lost`` sequence numbers given up on, in ``gaps`` gaps."""

    received: int = 0
    delivered: int = 0
    duplicates: int = 0
    lost: int = 0
    gaps: int = 0


class Offer:
    """What one offered event did: the events that are now deliverable (in order), and
    whether the offered one was a duplicate (the device needs an ack) or opened a gap.

    A plain slotted class, not a frozen dataclass: one is built per event, and a frozen
    dataclass's ``__init__`` costs several times as much. Treat it as read-only.
    """

    __slots__ = ("deliver", "duplicate", "opened_gap")

    def __init__(
        self, deliver: tuple[Event, ...], duplicate: bool = False, opened_gap: bool = False
    ) -> None:
        self.deliver = deliver
        self.duplicate = duplicate
        self.opened_gap = opened_gap


_NOTHING = Offer(())
_DUPLICATE = Offer((), duplicate=True)


class Sequencer:
    """Dedupe and reorder one device's events by sequence number."""

    __slots__ = ("_held", "counters", "delivered", "reorder_limit", "started_at")

    def __init__(self, reorder_limit: int = 1024, delivered: int | None = None) -> None:
        if reorder_limit < 1:
            msg = f"reorder_limit must be >= 1, got {reorder_limit}"
            raise ValueError(msg)
        self.reorder_limit = reorder_limit
        self.delivered: int | None = delivered
        """Highest sequence number delivered in order (``None`` before the first event)."""
        self.started_at: int | None = None if delivered is None else delivered + 1
        """The first sequence number this sequencer delivered or expected."""
        self._held: dict[int, Event] = {}
        self.counters = SequencerCounters()

    @property
    def held(self) -> int:
        """Events waiting behind a gap."""
        return len(self._held)

    @property
    def missing(self) -> tuple[int, int] | None:
        """The gap being waited for, as ``(first, last)`` sequence numbers, or ``None``."""
        if not self._held or self.delivered is None:
            return None
        return self.delivered + 1, min(self._held) - 1

    @property
    def full(self) -> bool:
        """Whether the hold is full: the shell should give the gap up now."""
        return len(self._held) >= self.reorder_limit

    def offer(self, event: Event) -> Offer:
        """Take one event; returns what became deliverable."""
        self.counters.received += 1
        seq = event.seq
        if self.delivered is None:  # unanchored: hold until the start is known
            if seq in self._held:
                self.counters.duplicates += 1
                return _DUPLICATE
            self._held[seq] = event
            return Offer((), opened_gap=len(self._held) == 1)
        expected = self.delivered + 1
        if seq < expected or seq in self._held:
            self.counters.duplicates += 1
            return _DUPLICATE
        if seq > expected:
            opened = not self._held
            self._held[seq] = event
            return Offer((), opened_gap=opened) if opened else _NOTHING
        self.delivered = seq
        self.counters.delivered += 1
        if not self._held:
            return Offer((event,))
        return Offer((event, *self._release()))

    def skip_gap(self) -> tuple[tuple[int, int] | None, tuple[Event, ...]]:
        """Give up on the current gap: count it lost and release what waited behind it.

        Returns the gap (``(first, last)``, or ``None`` if there was none) and the events
        now deliverable; a later gap among the held events stays open.
        """
        gap = self.missing
        if gap is None:
            return None, ()
        first, last = gap
        self.counters.lost += last - first + 1
        self.counters.gaps += 1
        self.delivered = last
        return gap, self._release()

    @property
    def anchored(self) -> bool:
        """Whether the sequencer knows where the stream starts."""
        return self.delivered is not None

    @property
    def lowest_held(self) -> int | None:
        return min(self._held) if self._held else None

    def anchor(self, first: int) -> tuple[Event, ...]:
        """Start the stream at ``first`` (the device's oldest unacknowledged event); held
        events below it were acknowledged before (duplicates). Returns what is now
        deliverable; does nothing once anchored."""
        if self.delivered is not None:
            return ()
        below = [seq for seq in self._held if seq < first]
        for seq in below:
            del self._held[seq]
        self.counters.duplicates += len(below)
        self.delivered = first - 1
        self.started_at = first
        return self._release()

    def skip_to(self, first_held: int) -> tuple[int, tuple[Event, ...]]:
        """The device holds nothing below ``first_held`` any more: count every missing
        number below it lost; returns how many, and the events now deliverable."""
        if self.delivered is None or first_held <= self.delivered + 1:
            return 0, ()
        below = sorted(seq for seq in self._held if seq < first_held)
        lost = first_held - 1 - self.delivered - len(below)
        out = [self._held.pop(seq) for seq in below]
        self.delivered = first_held - 1
        self.counters.delivered += len(out)
        if lost:
            self.counters.lost += lost
            self.counters.gaps += 1
        return lost, (*out, *self._release())

    def _release(self) -> tuple[Event, ...]:
        out: list[Event] = []
        held = self._held
        assert self.delivered is not None
        nxt = self.delivered + 1
        while nxt in held:
            out.append(held.pop(nxt))
            nxt += 1
        self.delivered = nxt - 1
        self.counters.delivered += len(out)
        return tuple(out)
