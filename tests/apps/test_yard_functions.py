"""Event functions: pure, registered from app-file tables, each isolated in the chain."""

from __future__ import annotations

import pytest

from edgeloop.apps.yard_functions import FunctionChain, build_chain, drop_low_score, tag_night
from edgeloop.errors import ConfigError
from edgeloop.messages import Event


def event(seq: int = 1, *, score: float = 0.9, label: str = "skunk", ts: float = 0.0) -> Event:
    return Event(
        device="cam-1",
        seq=seq,
        ts=ts,
        zone="lawn",
        label=label,
        score=score,
        embedding=bytes(20),
        head_version=1,
        config_version=1,
    )


def explode(e: Event) -> Event | None:
    raise RuntimeError(f"bad function on {e.seq}")


def not_an_event(e: Event) -> object:
    return {"seq": e.seq}


def test_drop_low_score_and_tag_night() -> None:
    assert drop_low_score(event(score=0.1), min_score=0.3) is None
    assert drop_low_score(event(score=0.5), min_score=0.3) == event(score=0.5)
    # start 18:00, a 600 s day: t = 100 s is 22:00 (night), t = 400 s is 10:00 (day)
    night = tag_night(event(ts=100.0), start_hour=18.0, day_length=600.0)
    day = tag_night(event(ts=400.0), start_hour=18.0, day_length=600.0)
    assert night is not None
    assert night.extra == {"night": True}
    assert day is not None
    assert day.extra == {"night": False}


def test_a_function_that_raises_is_counted_and_the_stream_goes_on() -> None:
    chain = FunctionChain(
        [
            ("explode", explode, None),
            ("not_an_event", not_an_event, None),  # type: ignore[list-item]
            ("drop_low_score", drop_low_score, None),
            ("tag_night", tag_night, ["skunk"]),
        ]
    )
    out = [chain(event(seq, score=0.1 if seq == 2 else 0.9, ts=100.0)) for seq in (1, 2, 3)]
    assert [e.seq if e else None for e in out] == [1, None, 3]
    assert out[0] is not None
    assert out[0].extra == {"night": True}
    assert chain.failures == {"explode": 3, "not_an_event": 3}  # they run before the drop
    assert chain.dropped == {"drop_low_score": 1}
    cat = chain(event(4, label="cat", ts=100.0))
    assert cat is not None
    assert cat.extra == {}


def test_build_chain_from_app_tables() -> None:
    chain = build_chain(
        [
            {"call": "edgeloop.apps.yard_functions:drop_low_score", "args": {"min_score": 0.5}},
            {"call": "edgeloop.apps.yard_functions:tag_night", "on": ["*"]},
        ]
    )
    assert chain.names == ["drop_low_score", "tag_night"]
    assert chain(event(score=0.4)) is None


@pytest.mark.parametrize(
    ("tables", "key"),
    [
        ("drop_low_score", "functions"),
        ([42], "functions[0]"),
        ([{"call": "no_colon"}], "functions[0].call"),
        ([{"call": "edgeloop.apps.nothing_here:f"}], "functions[0].call"),
        ([{"call": "edgeloop.apps.yard_functions:missing"}], "functions[0].call"),
        ([{"call": "edgeloop.apps.yard_functions:tag_night", "args": 3}], "functions[0].args"),
        ([{"call": "edgeloop.apps.yard_functions:tag_night", "on": "cat"}], "functions[0].on"),
        ([{"call": "edgeloop.apps.yard_functions:tag_night", "when": 1}], "functions[0].when"),
    ],
)
def test_bad_tables_name_what_was_wrong(tables: object, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_chain(tables)  # type: ignore[arg-type]
    assert raised.value.key == key
