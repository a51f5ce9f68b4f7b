"""Track association and the round layout, on plain arrays."""

from __future__ import annotations

import numpy as np

from edgeloop.learning._seqs import SeqLedger
from edgeloop.learning._tracks import TrackTable, bucket, layout

ADJ = np.eye(3, dtype=bool) | np.eye(3, k=1, dtype=bool) | np.eye(3, k=-1, dtype=bool)
CAT = np.array([40.0, -40.0, 0.0, 0.0])
SKUNK = np.array([-40.0, 40.0, 0.0, 0.0])


def test_two_animals_keep_their_tracks_across_batches() -> None:
    """A cat and a skunk, seen in turns over three batches, stay on two tracks."""
    table = TrackTable(16, 4, ADJ, gate=10.0, tick=1.0)
    tracks = []
    for t0 in (0.0, 3.0, 6.0):
        ts = np.array([t0, t0 + 0.5, t0 + 1.0, t0 + 1.5])
        zone = np.array([0, 2, 1, 2])
        emb = np.stack([CAT, SKUNK, CAT + 3, SKUNK - 3])
        got = table.assign(ts, zone, emb)
        tracks.append(got.track)
        if t0 == 0.0:
            assert got.start.tolist() == [True, True, False, False]
            assert got.steps.tolist() == [0, 0, 1, 1]
        else:
            assert not got.start.any()
    cat, skunk = tracks[0][0], tracks[0][1]
    assert cat != skunk
    for batch in tracks:
        assert batch.tolist() == [cat, skunk, cat, skunk]
    assert table.started == 2


def test_a_track_out_of_the_gate_or_zone_is_not_continued() -> None:
    """Too long unseen, or too far away: a new track."""
    table = TrackTable(16, 4, ADJ, gate=5.0)
    first = table.assign(np.array([0.0]), np.array([0]), CAT[None])
    far = table.assign(np.array([1.0]), np.array([2]), CAT[None])  # zone 2 is not next to 0
    late = table.assign(np.array([30.0]), np.array([0]), CAT[None])
    assert far.start[0]
    assert late.start[0]
    assert len({int(first.track[0]), int(far.track[0]), int(late.track[0])}) == 3


def test_rounds_hold_each_track_once() -> None:
    """The layout puts the r-th observation by time of each track in round r."""
    table = TrackTable(16, 4, ADJ)
    ts = np.array([2.0, 0.0, 1.0, 0.5])
    got = table.assign(ts, np.array([0, 0, 0, 2]), np.stack([CAT, CAT, CAT, SKUNK]))
    grid = layout(got, ts, least_width=1)
    assert grid.round.tolist() == [2, 0, 1, 0]
    cells = set(zip(grid.round.tolist(), grid.column.tolist(), strict=True))
    assert len(cells) == 4
    assert (grid.rounds, grid.width) == (4, 2)  # least_width=1: widths 1, 2, 4, ...
    assert [bucket(n) for n in (0, 1, 3, 8, 9)] == [1, 1, 4, 8, 16]
    assert [bucket(n, 4, 8) for n in (1, 9, 16, 17)] == [16, 16, 16, 64]


def test_the_ledger_takes_each_sequence_number_once_in_any_order() -> None:
    """Floor plus the numbers above it; round trip through JSON."""
    ledger = SeqLedger()
    assert [ledger.take("a", s) for s in (1, 3, 2, 3, 1, 5)] == [
        True,
        True,
        True,
        False,
        False,
        True,
    ]
    assert ledger.floor("a") == 3
    assert ledger.last() == {"a": 5}
    again = SeqLedger.from_json(ledger.to_json())
    assert again.floor("a") == 3
    assert not again.take("a", 5)
    assert again.take("a", 4)
    assert again.floor("a") == 5
