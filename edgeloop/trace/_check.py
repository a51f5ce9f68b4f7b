"""Comparing replayed outbound messages with recorded ones: the first divergence.

Messages are compared device by device, in order: one device's messages are sent by the
actors serving it in a deterministic order, while messages to different devices may
interleave differently from run to run (their actors run concurrently), so the order
across devices is not part of a decision. Times are not compared (a live node sends a
little after it received; a replay sends at the virtual time it received), only reported.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence

import msgspec

from edgeloop.trace._format import TraceRecord

__all__ = ["Divergence", "first_divergence"]


@dataclasses.dataclass(frozen=True, slots=True)
class Divergence:
    """Where replayed decisions first differ from recorded ones.

    ``index`` counts the device's outbound messages from 0; ``expected`` is ``None`` when
    the replay sent more than was recorded, ``got`` when it sent less.
    """

    ts: float
    device: str
    index: int
    expected: TraceRecord | None
    got: TraceRecord | None

    def describe(self) -> str:
        def show(record: TraceRecord | None) -> str:
            if record is None:
                return "nothing"
            body = msgspec.json.encode(record.message).decode()
            return f"{record.kind} {body}"

        return (
            f"first divergence at t={self.ts:.6f} s, device {self.device!r}, outbound "
            f"message #{self.index}: expected {show(self.expected)}, got {show(self.got)}"
        )


def first_divergence(
    expected: Sequence[TraceRecord], got: Sequence[TraceRecord]
) -> Divergence | None:
    """The earliest (by time) point where ``got`` departs from ``expected``, per device."""
    wanted: dict[str, list[TraceRecord]] = defaultdict(list)
    seen: dict[str, list[TraceRecord]] = defaultdict(list)
    for record in expected:
        wanted[record.device].append(record)
    for record in got:
        seen[record.device].append(record)
    found: list[Divergence] = []
    for device in sorted(wanted.keys() | seen.keys()):
        mine, theirs = wanted[device], seen[device]
        for index in range(max(len(mine), len(theirs))):
            want = mine[index] if index < len(mine) else None
            have = theirs[index] if index < len(theirs) else None
            if want is not None and have is not None and want.message == have.message:
                continue
            ts = want.ts if want is not None else have.ts if have is not None else 0.0
            found.append(Divergence(ts, device, index, want, have))
            break
    return min(found, key=lambda d: (d.ts, d.device)) if found else None
