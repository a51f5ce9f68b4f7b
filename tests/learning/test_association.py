"""The association core: time window, zone adjacency, embedding likelihood, reordering
within the lateness bound, late reports passed on alone, duplicates dropped."""

from __future__ import annotations

import pytest

from edgeloop.errors import ConfigError
from edgeloop.learning import Associator, FusionConfig
from edgeloop.learning._messages import FusedObservation
from tests.learning.events import embedding, event

ADJ = {"z0": ["z1"], "z1": ["z2"]}


def groups(observations: list[FusedObservation]) -> list[list[tuple[str, int]]]:
    return [[(r.device, r.seq) for r in o.reports] for o in observations]


def test_reports_of_one_occurrence_are_fused() -> None:
    """Two cameras, adjacent zones, within the window, similar embeddings: one group."""
    assoc = Associator(FusionConfig(window=0.5, lateness=0.2, adjacency=ADJ))
    assert assoc.add(event("cam-a", 1, 10.0, "z0")) == []
    assert assoc.add(event("cam-b", 1, 10.1, "z1")) == []
    out = assoc.add(event("cam-a", 2, 11.0, "z0"))
    assert groups(out) == [[("cam-a", 1), ("cam-b", 1)]]
    assert out[0].ts == 10.0
    assert not out[0].late
    assert assoc.counts.fused == 1


@pytest.mark.parametrize(
    ("second", "why"),
    [
        (event("cam-b", 1, 10.8, "z0"), "outside the window"),
        (event("cam-b", 1, 10.1, "z2"), "zone not adjacent"),
        (event("cam-a", 2, 10.1, "z0"), "same camera twice"),
        (event("cam-b", 1, 10.1, "z0", emb=embedding([-90, 100, -80, 70])), "another animal"),
    ],
)
def test_reports_that_cannot_be_one_occurrence_stay_apart(second: object, why: str) -> None:
    """Each gate alone keeps two reports apart."""
    assoc = Associator(FusionConfig(window=0.5, lateness=0.0, adjacency=ADJ))
    out = assoc.add(event("cam-a", 1, 10.0, "z0"))
    out += assoc.add(second)  # type: ignore[arg-type]
    out += assoc.flush()
    assert [len(o.reports) for o in out] == [1, 1], why


def test_out_of_order_reports_within_the_bound_are_reordered() -> None:
    """A report that arrives after a later one, but within lateness, is grouped in order."""
    assoc = Associator(FusionConfig(window=0.6, lateness=1.0))
    assoc.add(event("cam-a", 1, 10.5))
    assoc.add(event("cam-b", 1, 10.0))  # earlier, arrives second
    assoc.add(event("cam-c", 1, 10.2))
    out = assoc.advance(20.0)
    assert groups(out) == [[("cam-b", 1), ("cam-c", 1), ("cam-a", 1)]]
    assert assoc.counts.reordered == 2


def test_a_report_past_the_bound_is_passed_on_alone() -> None:
    """Later than the lateness bound: not lost, emitted alone and marked late."""
    assoc = Associator(FusionConfig(window=0.2, lateness=0.5))
    assoc.add(event("cam-a", 1, 10.0))
    closed = assoc.add(event("cam-a", 2, 12.0))
    assert groups(closed) == [[("cam-a", 1)]]
    late = assoc.add(event("cam-b", 1, 10.05))
    assert groups(late) == [[("cam-b", 1)]]
    assert late[0].late
    assert assoc.counts.late == 1
    assert groups(assoc.flush()) == [[("cam-a", 2)]]


def test_duplicates_are_dropped_and_counted() -> None:
    """A sequence number already seen from a device is dropped."""
    assoc = Associator(FusionConfig(lateness=0.0))
    assoc.add(event("cam-a", 1, 10.0))
    assoc.add(event("cam-a", 1, 10.0))
    assert assoc.counts.duplicates == 1
    assert groups(assoc.flush()) == [[("cam-a", 1)]]


def test_every_report_comes_out_exactly_once() -> None:
    """A shuffled stream of many reports: each appears in exactly one observation."""
    import random

    rng = random.Random(7)
    stream = [
        event(f"cam-{c}", s, s * 0.4 + c * 0.05 + rng.uniform(0, 0.1), f"z{rng.randrange(3)}")
        for s in range(1, 60)
        for c in range(3)
    ]
    rng.shuffle(stream[:30])
    # keep each device's own reports in sequence order (twins deliver them so)
    by_device: dict[str, list[object]] = {}
    for e in stream:
        by_device.setdefault(e.device, []).append(e)
    assoc = Associator(FusionConfig(window=0.2, lateness=0.3, adjacency=ADJ))
    out: list[FusedObservation] = []
    for e in sorted(stream, key=lambda e: (e.seq, e.device)):
        out += assoc.add(e)
    out += assoc.flush()
    seen = [(r.device, r.seq) for o in out for r in o.reports]
    assert sorted(seen) == sorted((e.device, e.seq) for e in stream)
    assert len(set(seen)) == len(seen)


def test_bad_configuration_is_refused() -> None:
    """A config that could never fuse anything is refused, naming the key."""
    with pytest.raises(ConfigError, match="diff_sigma"):
        FusionConfig(same_sigma=10, diff_sigma=5)
    with pytest.raises(ConfigError, match="window"):
        FusionConfig(window=float("nan"))
    with pytest.raises(ConfigError, match="adjacency"):
        FusionConfig(adjacency={"z0": "z1"})
