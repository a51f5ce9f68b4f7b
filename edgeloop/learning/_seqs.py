"""Which events of each device the learner has taken in: exactly once, in any order.

Events reach the learner through fusion groups (which may release one device's reports
out of sequence order, a late one alone before an earlier one still in a group) and, after
a restart, again from the twins. So a device's record is a *floor* (every sequence number
up to it was taken) plus the few taken above it; the twins are asked for everything above
the floor, and whatever was taken already is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["SeqLedger"]


class SeqLedger:
    """Per device: the sequence numbers taken, as a floor and a set above it."""

    __slots__ = ("_above", "_floor")

    def __init__(self) -> None:
        self._floor: dict[str, int] = {}
        self._above: dict[str, set[int]] = {}

    def take(self, device: str, seq: int) -> bool:
        """Record ``seq`` of ``device``; ``False`` if it was taken before (a duplicate)."""
        floor = self._floor.get(device, 0)
        if seq <= floor:
            return False
        if seq == floor + 1:
            above = self._above.get(device)
            floor = seq
            if above:
                while floor + 1 in above:
                    floor += 1
                    above.discard(floor)
            self._floor[device] = floor
            return True
        above = self._above.setdefault(device, set())
        if seq in above:
            return False
        above.add(seq)
        return True

    def floor(self, device: str) -> int:
        """Every event of ``device`` up to this sequence number was taken."""
        return self._floor.get(device, 0)

    def last(self) -> dict[str, int]:
        """The highest sequence number taken per device."""
        result = dict(self._floor)
        for device, above in self._above.items():
            if above:
                result[device] = max(above)
        return result

    def to_json(self) -> dict[str, list[int]]:
        """``{device: [floor, *taken above it]}``, for a snapshot."""
        devices = set(self._floor) | set(self._above)
        return {
            d: [self._floor.get(d, 0), *sorted(self._above.get(d, ()))] for d in sorted(devices)
        }

    @classmethod
    def from_json(cls, data: Mapping[str, list[int]]) -> SeqLedger:
        """The ledger :meth:`to_json` wrote."""
        ledger = cls()
        for device, numbers in data.items():
            ledger._floor[device] = int(numbers[0])
            if len(numbers) > 1:
                ledger._above[device] = {int(n) for n in numbers[1:]}
        return ledger
